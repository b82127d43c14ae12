# expect-output-without: ESCAPED
# class 1: no runner.sock / runner.log is visible to replace with a symlink or a fake runner
# The whole tree is walked, one top-level directory per step (each within the step
# deadline even on a loaded machine; one walk of all of / may not be).
import os


def hits_under(top):
    hits = []
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath.startswith(("/proc", "/sys")):
            dirnames[:] = []
            continue
        hits += [os.path.join(dirpath, f) for f in filenames if f.endswith((".sock", "runner.log"))]
    return hits


async def run(event, step):
    tops = sorted(os.listdir("/"))
    hits = [f"/{t}" for t in tops if t.endswith((".sock", "runner.log"))]
    for top in tops:
        if top not in ("proc", "sys") and os.path.isdir(f"/{top}"):
            hits += await step.do(f"walk-{top}", lambda top=top: hits_under(f"/{top}"))
    return "ESCAPED " + ",".join(hits) if hits else f"contained ({len(tops)} top-level entries)"
