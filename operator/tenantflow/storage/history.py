"""A tenant's history: finished instances archived, and what its code logged, in the
tenant's own store (issue 34) rather than in the shared control plane.

Written only by the sandbox's runner — the trusted half of the pod, which tenant code
cannot reach or impersonate — in a file the worker cannot open: archive records come from
the operator (signed requests), log lines from the runner's own reading of each advance's
answer, attributed by the runner (instance, attempt) rather than by anything tenant code
wrote. Tenant code never opens this file, so nothing here is tenant-forged after the fact.

- **Archive.** One row per instance (by uid, so re-archiving is idempotent and a name
  reused after deletion is another row), with the whole record as JSON and the columns a
  search filters on; its search attributes in their own indexed table.
- **Logs.** One row per line in arrival order (`seq`), capped per instance with one
  visible truncation marker, never silently.
- **Journal.** The oldest finished entries of a live instance's journal, which its status
  no longer holds (sandbox/pod/journal_window.py): by position, replaced in place if written
  again (a repeated advance writes the same entries), merged back into its archive record.
  Never pruned by age: a live instance may sleep for longer than any retention (the
  entries of one deleted without being archived stay, within the store's size cap).
- **Retention.** `prune` drops archived instances (and their lines) finished before a
  cut-off, and lines of instances never archived that are older than it.
- **Size.** The file has a byte cap (SQLite's page cap): a write past it fails with
  `HistoryFull`, which the runner answers as a refusal the operator turns into a condition
  and a retry — never a lost record.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenantflow.errors import TenantflowError
from tenantflow.vocabulary import INSTANCES_PAGE

FILE = "history.sqlite3"
MAX_LINES_PER_INSTANCE = 1_000_000  # then one marker, and the rest of its lines are dropped
MAX_PAGE = 500
MAX_STEP_NAME = 253  # items of one list page, at most
DEFAULT_MAX_BYTES = 1 << 30
TRUNCATED = "[tenantflow] log truncated: this instance reached {n} lines; later lines dropped"

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    uid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    phase TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    archived_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_name ON instances (name, finished_at);
CREATE INDEX IF NOT EXISTS instances_by_finish ON instances (finished_at, uid);
CREATE TABLE IF NOT EXISTS attributes (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    uid TEXT NOT NULL,
    PRIMARY KEY (key, value, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL,
    at TEXT NOT NULL,
    step TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_instance ON logs (uid, seq);
CREATE TABLE IF NOT EXISTS log_counts (uid TEXT PRIMARY KEY, lines INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    uid TEXT NOT NULL,
    idx INTEGER NOT NULL,
    written_at TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (uid, idx)
) WITHOUT ROWID;
"""


class HistoryError(TenantflowError):
    """A history request the store cannot serve; the message says which field and why."""


class HistoryFull(HistoryError):
    """The tenant's history store reached its size cap: nothing was written."""


@dataclass(frozen=True)
class Archived:
    """One finished instance, as archived: what `search` returns per row and `get` in full."""

    uid: str
    name: str
    definition: str
    phase: str
    created_at: str
    finished_at: str
    attributes: dict[str, str] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # the CR as it was: spec, status

    def summary(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "name": self.name,
            "definition": self.definition,
            "phase": self.phase,
            "createdAt": self.created_at,
            "finishedAt": self.finished_at,
            "attributes": self.attributes,
        }


@dataclass(frozen=True)
class LogLine:
    seq: int
    at: str
    step: str  # "" for a line written outside any step
    attempt: int
    level: str
    message: str
    fields: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "step": self.step,
            "attempt": self.attempt,
            "level": self.level,
            "message": self.message,
            "fields": self.fields,
        }


class History:
    """The store, one per tenant; safe to call from several threads (one connection)."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        page = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an archived record outlives a power cut
        self._db.execute(f"PRAGMA max_page_count={max(max_bytes // page, 64)}")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except sqlite3.OperationalError as exc:
                self._rollback()  # (SQLite rolls a full disk's transaction back itself)
                if "full" in str(exc):
                    raise HistoryFull(
                        f"the tenant's history store is full ({self.size_bytes()} bytes): "
                        "lower spec.history.retention or raise its size"
                    ) from None
                raise
            except BaseException:
                self._rollback()
                raise
            self._db.execute("COMMIT")

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def size_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * int(self._db.execute("PRAGMA page_size").fetchone()[0])

    # ------------------------------------------------------------------ archive
    def archive(self, item: Archived, archived_at: str) -> None:
        """Keep `item` (again: a repeated archive of one uid replaces its row), with the
        journal entries its status no longer held put back in front of its steps."""
        self.archive_many([item], archived_at)

    def archive_many(self, items: Sequence[Archived], archived_at: str) -> None:
        """Keep every item of `items` in one transaction: one sync of the store for all of
        them (the operator sends the instances due together as one request)."""
        with self._write() as db:
            for item in items:
                self._archive_one(db, item, archived_at)

    @staticmethod
    def _archive_one(db: sqlite3.Connection, item: Archived, archived_at: str) -> None:
        older = [
            json.loads(r[0])
            for r in db.execute("SELECT entry FROM journal WHERE uid = ? ORDER BY idx", (item.uid,))
        ]
        status = item.record.get("status")
        if older and isinstance(status, dict):
            offloaded = status.pop("offloadedSteps", None) or {}
            count = int(offloaded.get("count") or 0)
            status["steps"] = older[:count] + list(status.get("steps") or [])
        db.execute("DELETE FROM journal WHERE uid = ?", (item.uid,))
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.uid,
                item.name,
                item.definition,
                item.phase,
                item.created_at,
                item.finished_at,
                archived_at,
                json.dumps({"attributes": item.attributes, "record": item.record}),
            ),
        )
        db.execute("DELETE FROM attributes WHERE uid = ?", (item.uid,))
        db.executemany(
            "INSERT INTO attributes VALUES (?, ?, ?)",
            [(k, v, item.uid) for k, v in item.attributes.items()],
        )

    def get(self, name: str) -> Archived | None:
        """The newest archived instance of that name (names may be reused)."""
        row = self._db.execute(
            "SELECT * FROM instances WHERE name = ? ORDER BY finished_at DESC LIMIT 1", (name,)
        ).fetchone()
        return _archived(row, full=True) if row else None

    def search(
        self,
        *,
        phase: str | None = None,
        definition: str | None = None,
        attributes: dict[str, str] | None = None,
        before: tuple[str, str] | None = None,
        limit: int = INSTANCES_PAGE,
    ) -> tuple[list[Archived], tuple[str, str] | None]:
        """Archived instances, newest first, filtered; and where the next page starts
        (`before`: the (finishedAt, uid) of the last row of the previous page)."""
        if not 0 < limit <= MAX_PAGE:
            raise HistoryError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        where, args = ["1=1"], []
        for column, value in (("phase", phase), ("definition", definition)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        for key, value in (attributes or {}).items():
            where.append("uid IN (SELECT uid FROM attributes WHERE key = ? AND value = ?)")
            args += [key, value]
        if before is not None:
            where.append("(finished_at, uid) < (?, ?)")
            args += list(before)
        rows = self._db.execute(
            f"SELECT * FROM instances WHERE {' AND '.join(where)} "
            "ORDER BY finished_at DESC, uid DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        items = [_archived(r, full=False) for r in rows[:limit]]
        more = len(rows) > limit
        return items, ((items[-1].finished_at, items[-1].uid) if more else None)

    # ------------------------------------------------------------------ logs
    def append_logs(self, uid: str, at: str, lines: Iterable[dict[str, Any]]) -> int:
        """Keep an advance's log lines, in order, stamped `at` by the runner (the time a
        line claims is the tenant's word: it stays in its fields; its step and attempt are
        its own instance's business); returns how many were kept. Past
        MAX_LINES_PER_INSTANCE one marker line says so and later lines are dropped."""
        lines = list(lines)
        if not lines:
            return 0
        with self._write() as db:
            row = db.execute("SELECT lines FROM log_counts WHERE uid = ?", (uid,)).fetchone()
            have = row[0] if row else 0
            room = MAX_LINES_PER_INSTANCE - have
            kept = [_log_row(uid, at, line) for line in lines[: max(room, 0)]]
            if 0 <= room < len(lines):
                marker = {"level": "warning", "message": TRUNCATED.format(n=MAX_LINES_PER_INSTANCE)}
                kept.append(_log_row(uid, at, marker))
            db.executemany(
                "INSERT INTO logs (uid, at, step, attempt, level, message, fields) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                kept,
            )
            db.execute("INSERT OR REPLACE INTO log_counts VALUES (?, ?)", (uid, have + len(lines)))
        return len(kept)

    def logs(
        self,
        uid: str,
        *,
        step: str | None = None,
        attempt: int | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[LogLine]:
        """An instance's lines after `after` (a `seq`), oldest first, of one step (and one
        attempt of it) if asked: page through them, or follow."""
        if not 0 < limit <= 10_000:
            raise HistoryError(f"limit must be between 1 and 10000, not {limit}")
        where, args = ["uid = ?", "seq > ?"], [uid, after]
        for column, value in (("step", step), ("attempt", attempt)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = self._db.execute(
            "SELECT seq, at, step, attempt, level, message, fields FROM logs "
            f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [LogLine(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    # ------------------------------------------------------------------ journal
    def offload(self, uid: str, start: int, entries: list[dict[str, Any]], at: str) -> None:
        """Keep journal entries `start`, `start + 1`, ... of a live instance (in place)."""
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?)",
                [
                    (uid, start + i, at, json.dumps(e, separators=(",", ":")))
                    for i, e in enumerate(entries)
                ],
            )

    def offloaded(self, uid: str, count: int) -> list[dict[str, Any]]:
        """The first `count` kept entries of an instance's journal (fewer if lost)."""
        rows = self._db.execute(
            "SELECT entry FROM journal WHERE uid = ? AND idx < ? ORDER BY idx", (uid, count)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    # ------------------------------------------------------------------ retention
    def prune(self, before: str) -> int:
        """Forget instances finished before `before` (an RFC 3339 time) and their lines,
        and lines of instances never archived that were written before it."""
        with self._write() as db:
            doomed = [
                r[0]
                for r in db.execute("SELECT uid FROM instances WHERE finished_at < ?", (before,))
            ]
            for table in ("instances", "attributes", "logs", "log_counts"):
                db.executemany(f"DELETE FROM {table} WHERE uid = ?", [(u,) for u in doomed])
            db.execute(
                "DELETE FROM logs WHERE at < ? AND uid NOT IN (SELECT uid FROM instances)",
                (before,),
            )
        return len(doomed)


def _archived(row: tuple[Any, ...], *, full: bool) -> Archived:
    uid, name, definition, phase, created_at, finished_at, _archived_at, blob = row
    data = json.loads(blob)
    return Archived(
        uid,
        name,
        definition,
        phase,
        created_at,
        finished_at,
        attributes=data.get("attributes") or {},
        record=(data.get("record") or {}) if full else {},
    )


def _log_row(uid: str, at: str, line: dict[str, Any]) -> tuple[Any, ...]:
    fields = dict(line.get("fields") or {})
    if line.get("ts"):
        fields["ts"] = str(line["ts"])
    attempt = line.get("attempt")
    return (
        uid,
        at,
        str(line.get("step") or "")[:MAX_STEP_NAME],
        attempt if isinstance(attempt, int) and 0 <= attempt < 1 << 31 else 0,
        str(line.get("level") or "info"),
        str(line.get("message") or ""),
        json.dumps(fields),
    )
