# expect-output-without: ESCAPED
# next-advance-first-try
# class 2: the worker host forks the next advance's child ahead of time; freeze it (and
# every other sibling) so the next advance would land in a stopped process. The next
# advance of this tenant must still run, first try (the harness checks it)
import os
import signal


async def run(event, step):
    def freeze_siblings():
        me, parent, stopped = os.getpid(), os.getppid(), 0
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == parent and int(entry) != me:
                    os.kill(int(entry), signal.SIGSTOP)
                    stopped += 1
            except (OSError, ValueError, IndexError):
                continue
        return f"stopped {stopped} sibling(s)"

    return await step.do("freeze", freeze_siblings)
