# expect-output-without: ESCAPED
# victim-during
# class 17: a slow or half-sent request must stall nothing. Tenant code opens as many
# connections as it can to every unix socket it can name (the pod's zygote socket too),
# sends half a request on each and holds them, while the harness runs another tenant's
# advance (and this tenant's next one) beside it
import socket
import struct
import time


def addresses(params):
    """The socket it is given (the pod's zygote, in the pod-layout test), else every unix
    socket it can name in its own network namespace: abstract ones and files."""
    if params.get("zygote_socket"):
        return [params["zygote_socket"]]
    with open("/proc/net/unix") as table:
        return sorted({f[7] for f in map(str.split, list(table)[1:]) if len(f) >= 8})


async def run(event, step, env=None):
    def stall():
        held = []
        for address in addresses(event["payload"] or {}):
            where = "\0" + address[1:] if address.startswith("@") else address
            while len(held) < 200:  # of the 256 descriptors an advance may hold
                conn = socket.socket(socket.AF_UNIX)
                conn.setblocking(False)
                try:
                    conn.connect(where)
                    conn.send(struct.pack(">I", 1000) + b'{"op": "adv')
                except OSError:
                    conn.close()
                    break
                held.append(conn)
        time.sleep(2.5)
        served = 0
        for conn in held:  # did a listener keep any of them open, waiting for the rest?
            try:
                conn.send(b"x")
                served += 1
            except OSError:
                pass
        if served:
            return f"ESCAPED: {served} of {len(held)} half-sent requests held open"
        return "contained"

    return await step.do("stall", stall)
