# expect-output-without: ESCAPED
# twice
# class 18: limits are a process's own. Tenant code (the zygote's uid) tries to lower the
# zygote's open-file limit and priority, and to raise its own hard limits; it may still
# lower its own. Run twice: the worker host must still serve the second run untouched
import ctypes
import os
import resource

PRIO_PROCESS, PRIO_USER = 0, 2


def host_limit():
    with open(f"/proc/{os.getppid()}/limits") as f:
        return next(line for line in f if line.startswith("Max open files")).split()[3:5]


async def run(event, step):
    def probe():
        zygote, out = os.getppid(), []
        before = host_limit()
        for what, call in (
            (
                "prlimit(zygote, NOFILE)",
                lambda: resource.prlimit(zygote, resource.RLIMIT_NOFILE, (8, 8)),
            ),
            (
                "prlimit(zygote, AS)",
                lambda: resource.prlimit(zygote, resource.RLIMIT_AS, (1 << 24, 1 << 24)),
            ),
            ("setpriority(zygote)", lambda: os.setpriority(PRIO_PROCESS, zygote, 19)),
            ("setpriority(PRIO_USER)", lambda: os.setpriority(PRIO_USER, 0, 19)),
        ):
            try:
                call()
                out.append(f"ESCAPED: {what}")
            except OSError:
                pass
        if host_limit() != before:
            out.append(f"ESCAPED: the zygote's open-file limit is now {host_limit()}")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft // 2, hard))  # its own: allowed
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard * 2, hard * 2))
            out.append("ESCAPED: raised its own hard open-file limit")
        except (OSError, ValueError):
            pass
        libc = ctypes.CDLL(None, use_errno=True)  # the raw call, pid in the upper bits too
        new = (ctypes.c_uint64 * 2)(8, 8)
        for pid in (zygote, zygote | (1 << 32)):
            if libc.syscall(302, ctypes.c_long(pid), 7, new, None) == 0:
                out.append(f"ESCAPED: raw prlimit64({pid:#x})")
        return out or "contained"

    return await step.do("probe", probe)
