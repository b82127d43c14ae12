# expect-output-without: forged
# class 14: forge a whole answer whose log line is cut by the runner (4,096) inside the
# secret, and whose output and keys carry it: all of it leaves masked
import json
import os
import stat
import struct


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


async def run(event, step):
    secret = event["payload"]["secret"]
    answer = {
        "outcome": {"kind": "Complete", "output": {secret: secret}, "outputRef": None},
        "journal": [],
        "executed": [],
        "changed": False,
        "logs": [{"ts": secret, "level": "info", "message": "l" * 4090 + secret, "fields": {}}],
    }
    for fd in range(3, 256):
        if _is_socket(fd):
            os.write(fd, frame(answer))
    os._exit(0)


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
