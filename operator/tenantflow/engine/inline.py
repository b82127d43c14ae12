"""A sync step body run on the advance's own thread, its timeout a timer signal (issue 40).

A sync step body runs in a thread (engine/step.py) so that its attempt's timeout can fire
while it works and so that steps started together (`asyncio.gather`) work together. For
the common case — one step at a time — that thread is pure cost in a fresh process per
advance: its start, its stack's pages, two thread hand-offs per step (~0.8 ms per step
on the dev node, `python -m bench fork`). So a body that is the only step running runs
here, on the main thread, and its timeout is an interval timer whose signal raises in it.

What stays the same for the body: it runs in a copy of the step's context (its log lines
are its step's), a blocking call (sleep, a socket read, `subprocess.run`) is interrupted
at the timeout, and it may run an event loop of its own (`asyncio.run`) as it could in a
thread. What differs only for a body that fights it: code that blocks SIGALRM or cancels
the timer is stopped by the advance's deadline instead of its step's timeout, as a thread
that ignored its timeout would be.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
from collections.abc import Callable
from typing import Any


class _Expired(BaseException):
    """The timer's signal: a BaseException, so `except Exception` in the body lets it by."""


def possible() -> bool:
    """Only on the main thread (signals go there) and while nothing else claims SIGALRM."""
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    )


def run(fn: Callable[[], Any], timeout: float) -> Any:
    """`fn()` in a copy of the current context, raising TimeoutError after `timeout` s."""
    armed = [True]

    def expired(_signum: int, _frame: object) -> None:
        if armed[0]:  # a signal after the body returned is late: ignored
            raise _Expired

    loop = asyncio.get_running_loop()
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    asyncio._set_running_loop(None)  # the body may run a loop, as in a thread
    try:
        return contextvars.copy_context().run(fn)
    except _Expired:
        raise TimeoutError from None
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        asyncio._set_running_loop(loop)
        signal.signal(signal.SIGALRM, previous)
