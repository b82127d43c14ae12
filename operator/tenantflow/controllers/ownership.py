"""Whether this replica may work on a namespace now: the one gate every work queue asks
before every run, and the one persist asks before every status write.

Ownership is the runtime's, not each controller's: a replica that lost a shard must write
nothing more for its tenants, whichever controller's queue still held work for them (a
usage refresh, a schedule's next time, a rollout's recheck, an instance's wake-up).
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class Verdict(enum.Enum):
    ACT = "act"  # ours, and our lease is current: run
    DEFER = "defer"  # ours, but the lease is late (renewal pending): run again shortly
    DROP = "drop"  # another replica's shard: forget it, that replica adopts the work


Gate = Callable[[str], Verdict]  # a namespace -> whether its work may run here now


def sole_replica(namespace: str) -> Verdict:
    """The gate of a process that owns everything (unit tests, a single controller)."""
    return Verdict.ACT
