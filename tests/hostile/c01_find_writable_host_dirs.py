# expect-output-without: ESCAPED
# class 1: the runner's socket/log directory (or any host dir) must not be writable in the jail
# Bounded like an attacker's search: every mount the jail shows is tried (a read-only
# mount cannot hold a writable directory; one mounted beneath it is listed itself), each
# writable mount is walked whole, and the tree is walked three levels deep besides. A
# walk of all of / took longer than the step's deadline on a loaded machine.
import os

ALLOWED = ("/proc", "/sys", "/dev", "/tmp")  # the jail's own: procfs, its /dev, tmpfs


async def run(event, step):
    def probe():
        own = os.getcwd().rsplit("/", 1)[0]  # the tenant's data volume (cwd: its scratch)
        found = []

        def check(path):
            if path.startswith(ALLOWED) or path.startswith(own):
                return
            if os.access(path, os.W_OK) or not os.statvfs(path).f_flag & os.ST_RDONLY:
                found.append(path)

        mounts = []
        with open("/proc/self/mountinfo") as info:
            for line in info:
                mounts.append(line.split()[4].replace("\\040", " "))
        for mount in mounts:
            if not os.path.isdir(mount):
                continue
            check(mount)
            if mount.startswith(ALLOWED) or mount.startswith(own):
                continue
            if not os.statvfs(mount).f_flag & os.ST_RDONLY:
                for dirpath, _, _ in os.walk(mount):
                    check(dirpath)
        for dirpath, dirnames, _ in os.walk("/"):
            if dirpath.count("/") >= 3 or dirpath.startswith(ALLOWED):
                dirnames[:] = []
            check(dirpath)
        if not mounts:
            found.append("(no mounts listed: the probe saw nothing)")
        return "ESCAPED " + ",".join(found[:6]) if found else f"contained ({len(mounts)} mounts)"

    return await step.do("probe", probe)
