# expect-lost
# class 6: ignore SIGXCPU and spin in run() itself: the hard CPU limit (or the deadline) kills it
import signal


async def run(event, step):
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    while True:
        pass
