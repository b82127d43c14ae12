# expect-output-without: ESCAPED
# class 1: no runner.sock / runner.log is visible to replace with a symlink or a fake runner
# Bounded like an attacker's search (a walk of all of / took longer than the step's
# deadline on a loaded machine): every mount the jail shows is walked whole (a socket
# bind-mounted in, even read-only, is in one of them, or is one), except the system
# trees, which only the image's files are in, walked three levels deep like / itself.
import os

SKIP = ("/proc", "/sys")
SYSTEM = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc")


async def run(event, step):
    def probe():
        hits = []

        def walk(root, depth=None):
            for dirpath, dirnames, filenames in os.walk(root):
                if dirpath.startswith(SKIP):
                    dirnames[:] = []
                    continue
                if depth is not None and dirpath.count("/") >= depth:
                    dirnames[:] = []
                hits.extend(
                    os.path.join(dirpath, f)
                    for f in filenames
                    if f.endswith((".sock", "runner.log"))
                )

        mounts = []
        with open("/proc/self/mountinfo") as info:
            for line in info:
                mounts.append(line.split()[4].replace("\\040", " "))
        for mount in mounts:
            if mount.endswith((".sock", "runner.log")):
                hits.append(mount)  # a file bind-mounted in
            if mount == "/" or not os.path.isdir(mount) or mount.startswith(SKIP):
                continue
            walk(mount, 3 if mount.startswith(SYSTEM) else None)
        walk("/", 3)
        if not mounts:
            hits.append("(no mounts listed: the probe saw nothing)")
        return "ESCAPED " + ",".join(sorted(set(hits))[:6]) if hits else "contained"

    return await step.do("probe", probe)
