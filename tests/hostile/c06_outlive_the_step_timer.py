# expect-lost
# class 6: a sync step body running alone runs on the advance's own thread, its timeout a
# timer signal (engine/inline.py); block that signal and cancel the timer, then sleep for an
# hour: the advance's deadline kills it all the same
import signal
import time


async def run(event, step):
    def outlive():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        signal.setitimer(signal.ITIMER_REAL, 0)
        time.sleep(3600)
        return "ESCAPED"

    return await step.do("outlive", outlive, timeout="1s", retries={"limit": 0})
