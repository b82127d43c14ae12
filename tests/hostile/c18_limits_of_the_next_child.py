# expect-output-without: ESCAPED
# next-advance-first-try
# class 18: the next advance's child (forked ahead, same uid) gets its limits after its
# payload; tenant code tries to set them first (a tiny memory limit, one second of CPU,
# three files), to pin it to one CPU and to lower its I/O and CPU priority. The next
# advance must run first try, with its own limits
import ctypes
import os
import resource

IOPRIO_WHO_PROCESS, IOPRIO_IDLE = 1, (3 << 13)
SYS_IOPRIO_SET = 251


def siblings():
    me, parent = os.getpid(), os.getppid()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == parent and int(entry) != me:
                    yield int(entry)
        except (OSError, ValueError, IndexError):
            continue


async def run(event, step):
    def probe():
        out, libc = [], ctypes.CDLL(None, use_errno=True)
        for pid in siblings():
            for what, call in (
                (
                    "AS",
                    lambda pid=pid: resource.prlimit(pid, resource.RLIMIT_AS, (1 << 24, 1 << 24)),
                ),
                ("CPU", lambda pid=pid: resource.prlimit(pid, resource.RLIMIT_CPU, (1, 1))),
                ("NOFILE", lambda pid=pid: resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, 3))),
                ("affinity", lambda pid=pid: os.sched_setaffinity(pid, {0})),
                ("nice", lambda pid=pid: os.setpriority(os.PRIO_PROCESS, pid, 19)),
            ):
                try:
                    call()
                    out.append(f"ESCAPED: {what} of sibling {pid}")
                except OSError:
                    pass
            if libc.syscall(SYS_IOPRIO_SET, IOPRIO_WHO_PROCESS, pid, IOPRIO_IDLE) == 0:
                out.append(f"ESCAPED: I/O priority of sibling {pid}")
        return out or "contained"

    return await step.do("probe", probe)
