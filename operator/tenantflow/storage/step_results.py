"""Completed steps' results in the tenant's store: the second guard against a re-run.

The first guard is the journal in the instance's status: a step whose result is there is
never run again. This one covers what the status cannot: an advance that completed a step
but whose result never reached the status (its operator died, its answer was lost), and an
advance that started from a journal older than a result that did. The child records each
result as its step completes, and a later advance of the same run recalls it instead of
running the step again. Rows go once the status holds their step (the next advance sees
it in its journal) or after RETAIN_SECONDS (a run that finished: no next advance).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time

from tenantflow.storage.database import DatabaseError, TenantDatabase

TABLE = "_tenantflow_step_results"
RETAIN_SECONDS = 7 * 86400
PURGE_CHANCE = 1 / 64  # of advances that also clear expired rows (housekeeping, not hot path)


class SqliteStepResults:
    """`engine.outputs.StepResults` for one run: keyed by instance and start time, so a
    re-created instance of the same name never recalls its predecessor's results."""

    def __init__(self, db: TenantDatabase, run: str, persisted: set[str]) -> None:
        self._db, self._run = db, run
        self._held: dict[str, bytes] = {}  # this run's results the status does not hold yet
        try:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(run TEXT, step TEXT, data BLOB, at REAL, PRIMARY KEY (run, step))"
            )
            if random.random() < PURGE_CHANCE:
                self.purge_expired(db)
            rows = db.query(f"SELECT step, data FROM {TABLE} WHERE run = ?", (run,))
            held = {r["step"]: bytes(r["data"]) for r in rows}
            if held.keys() & persisted:  # the status has them now: the journal is the record
                db.executemany(
                    f"DELETE FROM {TABLE} WHERE run = ? AND step = ?",
                    [(run, step) for step in held.keys() & persisted],
                )
            self._held = {k: v for k, v in held.items() if k not in persisted}
        except (DatabaseError, sqlite3.Error):
            pass  # a full or throttled store: the journal alone guards this advance

    def recall(self, step: str) -> bytes | None:
        return self._held.get(step)

    def record(self, step: str, data: bytes) -> None:
        """Best effort: a full or rate-limited store leaves the journal as the only guard,
        never fails the step that just completed."""
        with contextlib.suppress(DatabaseError, sqlite3.Error):
            self._db.execute(
                f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)",
                (self._run, step, data, time.time()),
            )

    @staticmethod
    def purge_expired(db: TenantDatabase) -> None:
        """Rows of runs that finished long ago (no later advance came to clear them)."""
        db.execute(f"DELETE FROM {TABLE} WHERE at < ?", (time.time() - RETAIN_SECONDS,))
