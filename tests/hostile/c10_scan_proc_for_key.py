# expect-output-without: k-hostile
# class 10: the key is in no process this code can read (environ, cmdline, memory)
import os


async def run(event, step):
    def scan():
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            for what in ("environ", "cmdline"):
                try:
                    with open(f"/proc/{pid}/{what}", "rb") as f:
                        found.append(f.read().decode(errors="replace"))
                except OSError:
                    pass
            try:
                with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
                    for line in maps:
                        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                        if "rw" in line.split()[1] and hi - lo < 64 << 20:
                            try:
                                mem.seek(lo)
                                chunk = mem.read(hi - lo)
                                i = chunk.find(b"k-hostile")
                                if i >= 0:
                                    found.append(chunk[i:i + 12].decode(errors="replace"))
                            except OSError:
                                pass
            except OSError:
                pass
        return found
    return await step.do("scan", scan)
