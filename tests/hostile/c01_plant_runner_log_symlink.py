# expect-output-without: ESCAPED
# class 1: no runner.sock / runner.log is visible to replace with a symlink or a fake runner
import os


async def run(event, step):
    def probe():
        hits = []
        for dirpath, dirnames, filenames in os.walk("/"):
            if dirpath.startswith(("/proc", "/sys")):
                dirnames[:] = []
                continue
            hits += [os.path.join(dirpath, f) for f in filenames if f.endswith((".sock", "runner.log"))]
        return "ESCAPED " + ",".join(hits) if hits else "contained"
    return await step.do("probe", probe)
