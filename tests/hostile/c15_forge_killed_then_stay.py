# expect-lost
# charged
# class 15: forge "killed at the deadline" for the running step, then keep running (the
# runner must not wait for it, the zygote kills it once the runner hangs up); the
# operator does not drive it again at once
import json
import os
import stat
import struct
import time


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


async def run(event, step):
    def forge():
        lie = frame({"progress": {"step": "work", "attempt": 1}})
        lie += frame({"lost": {"name": "StepTimeout", "message": "t" * 1_000_000}})
        for fd in range(3, 256):
            if _is_socket(fd):
                os.write(fd, lie)
        time.sleep(3600)

    return await step.do("work", forge, retries={"limit": 1000})


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
