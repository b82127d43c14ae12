"""Completed steps' results in the tenant's store: the second guard against a re-run.

The first guard is the journal in the instance's status: a step whose result is there is
never run again. This one covers what the status cannot: an advance that completed a step
but whose result never reached the status (its operator died, its answer was lost), and an
advance that started from a journal older than a result that did. The child records each
result as its step completes, and a later advance of the same run recalls it instead of
running the step again. Rows go once the status holds their step (the next advance sees
it in its journal) or after RETAIN_SECONDS (a run that finished: no next advance).

The table is in the tenant's own database, which tenant code can write: any instance of
the tenant could plant a row for another's run. So a row is only the bytes; what makes it
a result is the runner's word. As a step completes, the child tells the runner the
result's digest (`vouch`), and the runner, outside tenant code's reach, keeps it under
the run the operator named in its signed request (`sandbox.protocol.vouch`); the next advance of
that run is handed those digests (`vouched`). A row is recalled only if its bytes hash to
the digest vouched for its step; any other row of the run is *rejected*: ignored (the step
runs), deleted, and listed in `rejected` for the sandbox to report.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sqlite3
import time
from collections.abc import Callable, Mapping

from tenantflow.storage.database import DatabaseError, TenantDatabase

TABLE = "_tenantflow_step_results"
RETAIN_SECONDS = 7 * 86400
PURGE_CHANCE = 1 / 64  # of advances that also clear expired rows (housekeeping, not hot path)
NOT_VOUCHED = "the sandbox's runner never vouched for this result (written by tenant code?)"
TAMPERED = "its bytes are not those the sandbox's runner vouched for (rewritten)"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SqliteStepResults:
    """`engine.outputs.StepResults` for one run: keyed by instance and start time, so a
    re-created instance of the same name never recalls its predecessor's results.

    `vouched`: {step: sha256 hex} the runner holds for this run (None: no runner, as in a
    warm-up: nothing is recalled or recorded). `vouch(step, sha256)`: tell the runner of a
    result just recorded."""

    def __init__(
        self,
        db: TenantDatabase,
        run: str,
        persisted: set[str],
        vouched: Mapping[str, str] | None = None,
        vouch: Callable[[str, str], None] | None = None,
    ) -> None:
        self._db, self._run, self._vouch = db, run, vouch if vouched is not None else None
        self._held: dict[str, bytes] = {}  # this run's vouched results the status lacks
        self.rejected: list[tuple[str, str]] = []  # (step, problem): ignored, to report
        try:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(run TEXT, step TEXT, data BLOB, at REAL, PRIMARY KEY (run, step))"
            )
            if random.random() < PURGE_CHANCE:
                self.purge_expired(db)
            rows = db.query(f"SELECT step, data FROM {TABLE} WHERE run = ?", (run,))
            found = {str(r["step"]): r["data"] for r in rows}
            gone = found.keys() & persisted  # the status has them now: the journal is the record
            for step, data in found.items():
                if step in gone or vouched is None:
                    continue
                sha = vouched.get(step)
                # bytes only: tenant code may have stored any type there (bytes() of a
                # string raised, failing every advance of that run; of an integer, it
                # allocated that many bytes)
                if sha is not None and isinstance(data, bytes) and digest(data) == sha:
                    self._held[step] = data
                else:
                    self.rejected.append((step, NOT_VOUCHED if sha is None else TAMPERED))
            drop = gone | {step for step, _ in self.rejected}
            if drop:
                db.executemany(
                    f"DELETE FROM {TABLE} WHERE run = ? AND step = ?",
                    [(run, step) for step in sorted(drop)],
                )
        except (DatabaseError, sqlite3.Error):
            pass  # a full or throttled store: the journal alone guards this advance

    def recall(self, step: str) -> bytes | None:
        return self._held.get(step)

    def record(self, step: str, data: bytes) -> None:
        """Best effort: a full or rate-limited store leaves the journal as the only guard,
        never fails the step that just completed. Nothing is kept without a runner to
        vouch for it (it could never be recalled)."""
        if self._vouch is None:
            return
        try:
            self._db.execute(
                f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)",
                (self._run, step, data, time.time()),
            )
        except (DatabaseError, sqlite3.Error):
            return
        with contextlib.suppress(OSError):
            self._vouch(step, digest(data))

    @staticmethod
    def purge_expired(db: TenantDatabase) -> None:
        """Rows of runs that finished long ago (no later advance came to clear them)."""
        db.execute(f"DELETE FROM {TABLE} WHERE at < ?", (time.time() - RETAIN_SECONDS,))
