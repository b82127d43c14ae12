"""The ControllerRevisions instances run, cached: revisions are immutable, so an entry
is forgotten only when its definition changes or goes. One cache, written by the instance
controller's resolver and emptied by the definition controller's events: the one thing
those two controllers share, so it lives beside them rather than inside either. With it,
the lock that numbers a definition's revisions: the definition controller creates them,
and so does a parent's drive for a plan written at runtime (instances/plans.py)."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from tenantflow.cache import Cache
from tenantflow.lifecycle.rollout import Assignment


@dataclass
class RevisionCache:
    """Shared with the definition controller, which forgets a definition on its events."""

    # ControllerRevisions by (namespace, definition, number): immutable while their
    # definition exists, so forgotten whenever the definition changes or goes
    revisions: Cache[tuple[str, str, int], dict[str, Any]] = field(
        default_factory=lambda: Cache(maxsize=2048)
    )
    # which revision new instances run, by (namespace, definition): status.activeRevision
    # and a rollout's canary; forgotten on the same events
    active: Cache[tuple[str, str], Assignment] = field(default_factory=lambda: Cache(maxsize=4096))
    # one writer of a definition's revisions at a time, by (namespace, definition): a new
    # revision is numbered after the newest, so two writers would give two the same number.
    # Both writers act on the replica that holds the namespace's shard (controllers/shards.py),
    # so a lock in this process is enough; one nobody holds or awaits is let go
    _writers: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )

    def writing(self, namespace: str, name: str) -> asyncio.Lock:
        """The lock held while a definition's revisions are read and one is created."""
        lock = self._writers.get((namespace, name))
        if lock is None:
            lock = self._writers[(namespace, name)] = asyncio.Lock()
        return lock

    def forget_definition(self, namespace: str, name: str) -> None:
        self.revisions.forget(lambda k: k[:2] == (namespace, name))
        self.active.discard((namespace, name))
