"""The ControllerRevisions instances run, cached: revisions are immutable, so an entry
is forgotten only when its definition changes or goes. One cache, written by the instance
controller's resolver and emptied by the definition controller's events: the one thing
those two controllers share, so it lives beside them rather than inside either."""

from __future__ import annotations

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

    def forget_definition(self, namespace: str, name: str) -> None:
        self.revisions.forget(lambda k: k[:2] == (namespace, name))
        self.active.discard((namespace, name))
