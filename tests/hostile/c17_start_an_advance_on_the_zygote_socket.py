# expect-output-without: ESCAPED
# next-advance-first-try
# class 17: only the runner may start an advance. Tenant code connects to every unix socket
# it can name (the pod's zygote socket is abstract: it is listed in /proc/net/unix) and asks
# for an advance that leaves a mark, and for a ping
import os
import socket
import time

from tenantflow.sandbox.protocol import frames
from tenantflow.sandbox.protocol.payload import advance_payload, advance_request

FORGED = """
import os
async def run(event, step):
    open(event["payload"]["mark"], "w").close()
    return "forged"
"""


def addresses(params):
    """The socket it is given (the pod's zygote, in the pod-layout test), else every unix
    socket it can name in its own network namespace: abstract ones and files."""
    if params.get("zygote_socket"):
        return [params["zygote_socket"]]
    with open("/proc/net/unix") as table:
        return sorted({f[7] for f in map(str.split, list(table)[1:]) if len(f) >= 8})


def ask(address, request):
    """The first frame the listener answers, or why there is none."""
    where = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(2)
        try:
            conn.connect(where)
            conn.sendall(request if isinstance(request, bytes) else frames.encode(request))
            return frames.recv(conn, frames.MAX_RESULT)
        except (OSError, frames.FrameError) as exc:
            return f"refused ({type(exc).__name__})"


async def run(event, step, env=None):
    def forge():
        mark = os.path.join(os.getcwd(), f"forged-{os.getpid()}")
        payload = advance_payload(
            source=FORGED,
            instance_id="forged",
            started_at="2030-01-01T00:00:00Z",
            params={"mark": mark},
        )
        out = []
        for address in addresses(event["payload"] or {}):
            for request in ({"op": "ping"}, advance_request(payload)):
                answer = ask(address, request)
                if isinstance(answer, dict):
                    out.append(f"ESCAPED: {address} answered tenant code: {str(answer)[:80]}")
        time.sleep(1.5)  # time for a forged advance to run
        if os.path.exists(mark):
            out.append("ESCAPED: an advance no runner asked for ran")
        return out or "contained"

    return await step.do("forge", forge)
