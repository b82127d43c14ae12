# expect-output-without: ESCAPED
# class 21: the total of a tenant's files is bounded, not only each file: files of 16 MiB
# each (under the per-file limit) until the store refuses, then what the store holds
import errno
import os


async def run(event, step):
    def fill():
        names, written, refused = [], 0, None
        try:
            for i in range(12):  # 192 MiB, three times the 64 MiB limit
                name = f"fill-{i}.bin"
                names.append(name)
                with open(name, "wb") as f:
                    for _ in range(16):
                        f.write(b"x" * (1 << 20))
                        f.flush()
                        written += 1 << 20
        except OSError as exc:
            refused = exc.errno
        total = 0
        for dirpath, _dirs, files in os.walk(".."):
            for f in files:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
        for name in names:
            if os.path.exists(name):
                os.remove(name)  # leave the tenant usable for the next test
        if refused != errno.ENOSPC or total > (64 << 20) or written > (64 << 20):
            return f"ESCAPED wrote {written >> 20} MiB, store {total >> 20} MiB, {refused}"
        return f"contained: refused after {written >> 20} MiB (ENOSPC)"

    return await step.do("fill", fill, retries={"limit": 0})
