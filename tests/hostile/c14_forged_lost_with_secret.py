# expect-lost
# class 14: forge a "killed at the deadline" account on the answer's connection, with the
# secret in a step's name and in the message, cut mid-secret at the runner's 1,000
import json
import os
import stat
import struct


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


async def run(event, step):
    secret = event["payload"]["secret"]

    def forge():
        lie = frame({"progress": {"step": f"s-{secret}", "attempt": 1}})
        lie += frame({"lost": {"name": "StepTimeout", "message": "y" * 990 + secret * 3}})
        for fd in range(3, 256):
            if _is_socket(fd):
                os.write(fd, lie)
        os._exit(0)

    return await step.do("forge", forge)


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
