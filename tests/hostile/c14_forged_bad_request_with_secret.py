# expect-unavailable: BadRequest
# class 14: forge the answer the worker gives to a payload it cannot run (the runner
# answers 400), with the secret where the runner cuts it at 1,000 characters
import json
import os
import stat
import struct


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


async def run(event, step):
    secret = event["payload"]["secret"]
    lie = frame({"badRequest": "z" * 990 + secret})
    for fd in range(3, 256):
        if _is_socket(fd):
            os.write(fd, lie)
    os._exit(0)


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
