# expect-lost
# charged
# class 15: every advance forges "killed by the memory limit" for 64 long bogus steps:
# the operator charges it as a worker loss (backoff, three strikes) with bounded records
import json
import os
import stat
import struct


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


async def run(event, step):
    def forge():
        lie = b"".join(
            frame({"progress": {"step": f"bogus-{i}-" + "b" * 240, "attempt": 999_999}})
            for i in range(64)
        )
        lie += frame({"lost": {"name": "OutOfMemory", "message": "o" * 100_000}})
        for fd in range(3, 256):
            if _is_socket(fd):
                os.write(fd, lie)
        os._exit(0)

    return await step.do("hog", forge, retries={"limit": 1000})


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
