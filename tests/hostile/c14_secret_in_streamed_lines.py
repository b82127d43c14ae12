# expect-output-without: ESCAPED
# then-logs
# class 14: the secret printed as log lines now stream to the runner (frames.LINES) and into
# the tenant's history: whole, in two writes of one line, cut at the line cap mid-value, in
# env.log and its fields, in a subprocess's output, and in forged LINES frames; the history
# its people read holds none of it unmasked
import json
import os
import socket
import stat
import struct
import subprocess


async def run(event, step, env):
    secret = event["payload"]["secret"]

    def leak():
        print(secret)
        print(secret[:10], end="")
        print(secret[10:])
        print("x" * 4090 + secret)
        env.log.info("token " + secret, token=secret)
        subprocess.run(["sh", "-c", f"echo {secret}; echo {secret} >&2"], check=True)
        line = {"ts": "t", "level": "info", "message": secret, "fields": {"v": secret}}
        cut = {**line, "message": "y" * 4090 + secret}
        body = json.dumps({"lines": [line, cut]}).encode()
        for fd in range(3, 256):
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    sock = socket.socket(fileno=os.dup(fd))
                    sock.settimeout(2)
                    sock.sendall(struct.pack(">I", len(body)) + body)
            except OSError:
                pass
        return "printed"

    return await step.do("leak", leak)
