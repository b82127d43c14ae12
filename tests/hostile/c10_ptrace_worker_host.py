# expect-output-without: ESCAPED
# class 10: ptrace of the worker host (or any process) is refused
import ctypes
import os


async def run(event, step):
    def attach():
        libc = ctypes.CDLL(None, use_errno=True)
        PTRACE_ATTACH = 16
        rc = libc.ptrace(PTRACE_ATTACH, os.getppid(), None, None)
        return "ESCAPED: attached" if rc == 0 else f"refused errno {ctypes.get_errno()}"
    return await step.do("attach", attach)
