# expect-lost
# class 5: forge frames on the answer's connection: thousands of "attempt started" reports
# with huge and bogus step names, then a fake "killed by the memory limit" account, then
# exit; the runner keeps at most a bounded, well-formed set and charges nothing else
import json
import os
import stat
import struct


def frame(value):
    body = json.dumps(value).encode()
    return struct.pack(">I", len(body)) + body


async def run(event, step):
    def forge():
        sockets = [fd for fd in range(3, 256) if _is_socket(fd)]
        burst = b"".join(
            frame({"progress": {"step": f"bogus-{i}" * (1 if i % 2 else 100), "attempt": i + 1}})
            for i in range(5000)
        )
        lie = frame({"lost": {"name": "OutOfMemory", "message": "x" * 100000}})
        for fd in sockets:
            os.write(fd, burst + lie)
        os._exit(0)

    return await step.do("forge", forge)


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
