# expect-output-without: ESCAPED
# twice
# class 20: nothing of an advance lives 0.5 s past it. Forty processes of their own
# sessions spin (the worker host must out-run them to kill them) and write heartbeats;
# the first run ends while they spin, the second looks for a heartbeat written more than
# 0.5 s after the first ended
import glob
import os
import time


def spin(beat):
    os.setsid()
    last = 0.0
    while True:
        now = time.time()
        if now - last > 0.02:
            with open(beat, "w") as f:
                f.write(str(now))
            last = now


async def run(event, step):
    def probe():
        ended = "bomb-ended"
        if os.path.exists(ended):
            time.sleep(1.0)  # long enough for a survivor to beat again
            end = os.stat(ended).st_mtime
            late = [b for b in glob.glob("beat-*") if os.stat(b).st_mtime > end + 0.5]
            for path in [ended, *glob.glob("beat-*")]:
                os.unlink(path)
            return f"ESCAPED: {len(late)} spinner(s) outlived the advance" if late else "contained"
        for n in range(40):
            if os.fork() == 0:
                spin(f"beat-{n}")
        time.sleep(0.5)
        open(ended, "w").close()  # the advance ends right after this
        return "started"

    return await step.do("probe", probe)
