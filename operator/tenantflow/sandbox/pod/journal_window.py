"""A bounded journal in the live status (issue 34.4): the runner keeps the oldest finished
entries of a long journal in the tenant's history store and hands the operator only the
newest ones, with a digest of what it keeps.

The operator's status holds `steps` (the window) and `offloadedSteps: {count, digest}`;
before an advance the runner puts the kept entries back in front of the window, checking
their count and digest, so the worker replays the whole journal as before; after it, the
runner keeps the finished prefix beyond `window` entries and answers with the rest. Every
entry not final yet (running, retrying, waiting: what the operator acts on — children,
wake-ups, lost attempts) stays in the window, whatever its age.

Crash-safe by construction: entries are kept by position before the answer leaves, and a
repeated advance writes the same entries at the same positions; the operator's count says
how many of them are the journal (rows past it are ignored, then overwritten). A store
that lost entries (a deleted volume) fails the advance with a clear error rather than
replaying a journal with a hole in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from tenantflow.engine.journal import FINAL_STATES
from tenantflow.errors import TenantflowError

OFFLOADED = "offloaded"  # payload and answer key: {count, digest}
WINDOW = "journalWindow"  # payload key: the entries the status keeps (0: all of them)
GENESIS = ""  # the digest of no entries


class JournalUnavailable(TenantflowError):
    """The entries the status says the store keeps are not there (or not as written)."""


class Store(Protocol):
    def offload(self, uid: str, start: int, entries: list[dict[str, Any]], at: str) -> None: ...

    def offloaded(self, uid: str, count: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Offloaded:
    count: int = 0
    digest: str = GENESIS

    @classmethod
    def of(cls, value: Any) -> Offloaded:
        """From the operator's payload (what its status holds); absent: nothing kept."""
        if not isinstance(value, dict):
            return cls()
        count, digest = value.get("count"), value.get("digest")
        if type(count) is not int or count < 0 or not isinstance(digest, str):
            raise ValueError("offloaded must be {count: a number from 0, digest: text}")
        return cls(count, digest)

    def wire(self) -> dict[str, Any]:
        return {"count": self.count, "digest": self.digest}


def chain(digest: str, entries: list[dict[str, Any]]) -> str:
    """The digest after `entries`, each folded into the one before (an append-only chain:
    extending it needs only the last digest)."""
    for entry in entries:
        text = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(f"{digest}\0{text}".encode()).hexdigest()
    return digest


def expand(store: Store, uid: str, window: list[dict[str, Any]], kept: Offloaded) -> list[Any]:
    """The whole journal: the kept entries (checked) in front of the window."""
    if kept.count == 0:
        return window
    older = store.offloaded(uid, kept.count)
    if len(older) != kept.count or chain(GENESIS, older) != kept.digest:
        raise JournalUnavailable(
            f"the tenant's history store holds {len(older)} of the {kept.count} oldest "
            "journal entries of this instance, or not as they were written (was its "
            "history volume deleted?): the instance cannot be replayed"
        )
    return older + window


def trim(
    store: Store, uid: str, journal: list[dict[str, Any]], kept: Offloaded, window: int, at: str
) -> tuple[list[dict[str, Any]], Offloaded]:
    """Keep the finished prefix of `journal` (the whole one) beyond `window` entries in the
    store; the entries the status keeps, and what the store now holds of it."""
    prefix = kept.count
    target = max(len(journal) - window, prefix)
    while prefix < target and journal[prefix].get("state") in FINAL_STATES:
        prefix += 1
    if prefix == kept.count:
        return journal[kept.count :], kept
    fresh = journal[kept.count : prefix]
    store.offload(uid, kept.count, fresh, at)
    return journal[prefix:], Offloaded(prefix, chain(kept.digest, fresh))
