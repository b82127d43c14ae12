"""The runner's side of vouching (`sandbox.protocol.vouch`): digests of completed steps' results
by run, kept beside the runner's history (the runner's own volume in a pod, a directory
outside the jail locally; in memory when it has none), written by the runner alone."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from tenantflow.observability.logging import get_logger
from tenantflow.sandbox.protocol.vouch import MAX_STEP_NAME

log = get_logger("tenantflow.runner")

FILE = "vouched.sqlite3"
RETAIN_SECONDS = 7 * 86400.0  # as the rows they vouch for (storage.step_results)
MAX_ROWS = 100_000  # the oldest go first past this (a digest's row is ~200 bytes)
PURGE_EVERY = 3600.0
_SHA256 = re.compile(r"[0-9a-f]{64}")

VOUCHES = Counter(
    "tenantflow_runner_vouched_results_total",
    "Step results the runner was told of, by what became of them.",
    ["result"],
)
REJECTED_RECORDS = Counter(
    "tenantflow_runner_rejected_records_total",
    "Stored records an advance ignored as forged or rewritten (reported to the operator).",
    ["record"],
)


class Vouches:
    """The runner's digests of completed steps' results, by run; only the runner writes
    them (one connection, serialised by a lock: called from worker threads)."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        max_rows: int = MAX_ROWS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path = ":memory:"
        if directory is not None:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = str(directory / FILE)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._max_rows, self._clock = max_rows, clock
        self._added = 0
        self._purged = clock()
        with self._lock:
            if directory is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vouched "
                "(run TEXT, step TEXT, sha TEXT, at REAL, PRIMARY KEY (run, step))"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS vouched_at ON vouched (at)")

    def begin(self, run: str, done: set[str]) -> dict[str, str]:
        """The digests an advance of `run` is handed; those of steps its status holds
        (`done`) are forgotten, as the child deletes their rows."""
        with self._lock:
            now = self._clock()
            if now - self._purged >= PURGE_EVERY:
                self._purged = now
                self._db.execute("DELETE FROM vouched WHERE at < ?", (now - RETAIN_SECONDS,))
            rows = self._db.execute("SELECT step, sha FROM vouched WHERE run = ?", (run,))
            found = {str(step): str(sha) for step, sha in rows.fetchall()}
            if found.keys() & done:
                self._db.executemany(
                    "DELETE FROM vouched WHERE run = ? AND step = ?",
                    [(run, step) for step in sorted(found.keys() & done)],
                )
        return {step: sha for step, sha in found.items() if step not in done}

    def vouch_many(self, run: str, results: list[tuple[str, str]]) -> None:
        """Keep the digests of `results` ((step, sha256) in the order they came: a later
        one of the same step replaces an earlier) under `run`, in one transaction."""
        with self._lock:
            at = self._clock()
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vouched VALUES (?, ?, ?, ?)",
                    [(run, step, sha, at) for step, sha in results],
                )
                before, self._added = self._added, self._added + len(results)
                if before // 256 != self._added // 256:  # now and then: the oldest go
                    self._db.execute(
                        "DELETE FROM vouched WHERE rowid IN (SELECT rowid FROM vouched "
                        "ORDER BY at DESC LIMIT -1 OFFSET ?)",
                        (self._max_rows,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()


class Taker:
    """An advance's `result` frames, as the runner takes them: well-formed ones only, at
    most `limit` (the instance's step cap: no honest advance completes more), each kept
    under the run of the operator's request. A store that fails keeps nothing (the step
    would run again: the journal stays the first guard), counted and logged.

    Kept in batches: a result waits at most KEEP_AFTER seconds (or the advance's end,
    `flush`, whatever its end) for the others of the advance, so a three-step advance is
    one thread hop and one transaction of the store, not three."""

    KEEP_AFTER = 0.05

    def __init__(self, vouches: Vouches, run: str, limit: int, tenant: str) -> None:
        self.vouches, self.run, self.limit, self.tenant = vouches, run, limit, tenant
        self.taken = 0
        self.pending: list[tuple[str, str]] = []
        self._soon: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None

    async def __call__(self, value: Any) -> None:
        step = value.get("step") if isinstance(value, dict) else None
        sha = value.get("sha256") if isinstance(value, dict) else None
        if not (
            isinstance(step, str)
            and 0 < len(step) <= MAX_STEP_NAME
            and isinstance(sha, str)
            and _SHA256.fullmatch(sha)
        ):
            VOUCHES.labels("malformed").inc()
            return
        if self.taken >= self.limit:
            VOUCHES.labels("over-limit").inc()
            return
        self.taken += 1
        self.pending.append((step, sha))
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(self.KEEP_AFTER, self._keep_soon)

    def _keep_soon(self) -> None:
        self._soon = None
        self._writing = asyncio.ensure_future(self._keep(after=self._writing))

    async def flush(self) -> None:
        """Keep what is pending now (the advance ended, whatever its end)."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        await self._keep(after=self._writing)

    async def _keep(self, after: asyncio.Task[None] | None = None) -> None:
        """One write of what is pending, after the write before it (in order: a later
        result of the same step replaces an earlier)."""
        if after is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(after)
        results, self.pending = self.pending, []
        if not results:
            return
        try:
            await asyncio.to_thread(self.vouches.vouch_many, self.run, results)
        except sqlite3.Error as exc:
            VOUCHES.labels("not-kept").inc(len(results))
            log.warning("step result not vouched for", tenant=self.tenant, error=str(exc)[:300])
            return
        VOUCHES.labels("kept").inc(len(results))


def report_rejected(tenant: str, instance: str, rejected: Any) -> None:
    """The runner's own account of an answer's rejected records (already checked by
    `vouch.checked_rejections`): a structured warning and a count by record kind."""
    if not rejected:
        return
    for entry in rejected:
        REJECTED_RECORDS.labels(entry["record"]).inc()
    log.warning(
        "stored records rejected",
        tenant=tenant,
        instance=instance,
        records=[{k: e[k] for k in ("record", "step", "problem")} for e in rejected],
    )
