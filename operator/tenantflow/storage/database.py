"""`env.db`: the tenant's own SQLite database behind a supervisor.

- an authorizer refuses ATTACH/DETACH (other files), `load_extension` and file helpers,
  and PRAGMA writes outside a small allow-list (so tenant SQL cannot turn off the
  journal, change the page cap or the sync level);
- a page-count cap derived from `limits.storage` (SQLite enforces it: a write that would
  grow the file past it fails, and we say so in quota terms); the total of the tenant's
  files, this one included, is bounded by its volume (a filesystem of that size: the PVC,
  the local jail's loop-mounted image), and a write the volume refuses fails the same
  way. Either way the statement's transaction is rolled back and the file stays whole;
- a token bucket for `limits.maxStorageOpsPerSecond`: statements wait for a token, and
  fail with a clear error when the wait would exceed a second.

Durability: WAL with `synchronous=NORMAL`. A committed transaction survives a crash of
the process; after a power cut the last transactions before the cut may be rolled back,
but the file is never corrupted. Journal and step results do not depend on this: they
are persisted in the WorkflowInstance status (etcd).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tenantflow.errors import TenantflowError
from tenantflow.supervisor.token_bucket import TokenBucket, tuned

PRAGMA_WRITES_ALLOWED = frozenset(
    {"foreign_keys", "defer_foreign_keys", "recursive_triggers", "case_sensitive_like", "optimize"}
)
DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
MAX_RATE_WAIT = 1.0
NEARLY_FULL = 1 << 20  # free bytes under which an I/O error is taken for a full volume


class DatabaseError(TenantflowError):
    """A statement failed or was refused; the message names the problem and the fix."""


class StorageQuotaExceeded(DatabaseError):
    pass


class StorageRateLimited(DatabaseError):
    pass


def _authorizer(
    action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if (
        action == sqlite3.SQLITE_PRAGMA
        and arg2 is not None
        and ((arg1 or "").lower() not in PRAGMA_WRITES_ALLOWED)
    ):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


_WRITES = frozenset(
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_"))
    or name
    in (
        "SQLITE_INSERT",
        "SQLITE_UPDATE",
        "SQLITE_DELETE",
        "SQLITE_ALTER_TABLE",
        "SQLITE_REINDEX",
        "SQLITE_ANALYZE",
    )
)
READ_ONLY = "env.db is read-only in a query handler (a query changes nothing)"


def _read_only_authorizer(
    action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
) -> int:
    """A query's: reads only (and `PRAGMA query_only` below it: SQLite refuses writes too)."""
    if action in _WRITES or (action == sqlite3.SQLITE_PRAGMA and arg2 is not None):
        return sqlite3.SQLITE_DENY
    return _authorizer(action, arg1, arg2, db, trigger)


class TenantDatabase:
    """One connection, serialised by a lock (step callables may run in worker threads)."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        max_bytes: int | None = None,
        ops_per_second: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        read_only: bool = False,
    ) -> None:
        """`read_only`: a query's connection (engine/queries.py): every write, schema
        change and PRAGMA write is refused, by the authorizer and by SQLite itself."""
        self.path = str(path)
        self.read_only = read_only
        self._auth = _read_only_authorizer if read_only else _authorizer
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._sleep = sleep
        self._bucket: TokenBucket | None = None
        self.max_bytes: int | None = None
        try:
            if read_only:
                self._conn.execute("PRAGMA query_only = ON")
            elif self.path != ":memory:":
                self._retry_locked(lambda: self._conn.execute("PRAGMA journal_mode=WAL"))
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            self.limit(max_bytes=max_bytes, ops_per_second=ops_per_second)
        except sqlite3.DatabaseError as exc:  # a full volume: the WAL's index cannot be made
            self._conn.close()
            self.max_bytes = max_bytes
            raise self._translated(exc) from None
        self._conn.set_authorizer(self._auth)

    @staticmethod
    def _retry_locked(op: Callable[[], object], seconds: float = 10.0) -> None:
        """Switching to WAL needs a moment alone with the file: workers opening the same
        new database at once get SQLITE_BUSY without the busy handler's help."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                op()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def limit(self, *, max_bytes: int | None, ops_per_second: float | None) -> None:
        """(Re)apply the tenant's limits; called when the Tenant spec changes."""
        with self._lock:
            if max_bytes != self.max_bytes:
                self._conn.set_authorizer(None)
                pages = max(1, max_bytes // self._page_size) if max_bytes else 1073741823
                self._conn.execute(f"PRAGMA max_page_count = {int(pages)}")
                self._conn.set_authorizer(self._auth)
                self.max_bytes = max_bytes
            if ops_per_second is None:
                self._bucket = None
            else:
                self._bucket = tuned(self._bucket, ops_per_second, max(1.0, ops_per_second))

    @contextlib.contextmanager
    def reading_only(self) -> Iterator[None]:
        """This connection as a query's for a while (WorkflowTestEnv.query; the sandbox
        opens a read-only connection of its own instead)."""
        with self._lock:
            self._conn.set_authorizer(None)
            self._conn.execute("PRAGMA query_only = ON")
            self._conn.set_authorizer(_read_only_authorizer)
            before, self.read_only = self.read_only, True
        try:
            yield
        finally:
            with self._lock:
                self._conn.set_authorizer(None)
                self._conn.execute(f"PRAGMA query_only = {'ON' if before else 'OFF'}")
                self.read_only = before
                self._conn.set_authorizer(self._auth)

    def size_bytes(self) -> int:
        with self._lock:
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * self._page_size

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        return self._run(lambda: self._conn.execute(sql, params)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self._run(lambda: self._conn.executemany(sql, rows)).rowcount

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts: JSON-ready, so they can be returned from step.do as they are."""
        with self._lock:
            self._take_token()
            cursor = self._checked(lambda: self._conn.execute(sql, params))
            return [dict(row) for row in cursor.fetchall()]

    def close(self) -> None:
        self._conn.close()

    def _run(self, op: Callable[[], sqlite3.Cursor]) -> sqlite3.Cursor:
        with self._lock:
            self._take_token()
            return self._checked(op)

    def _take_token(self) -> None:
        if self._bucket is None:
            return
        wait = self._bucket.wait_time()
        if wait > MAX_RATE_WAIT:
            raise StorageRateLimited(
                f"env.db is over the tenant's maxStorageOpsPerSecond "
                f"({self._bucket.rate:g}/s); batch statements with executemany or slow down"
            )
        if wait:
            self._sleep(wait)
        self._bucket.try_take()

    def _checked(self, op: Callable[[], sqlite3.Cursor]) -> sqlite3.Cursor:
        try:
            return op()
        except sqlite3.DatabaseError as exc:
            raise self._translated(exc) from None

    def _translated(self, exc: sqlite3.DatabaseError) -> DatabaseError:
        msg = str(exc)
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and self._volume_full()):
            limit = f" of {_size(self.max_bytes)}" if self.max_bytes else ""
            return StorageQuotaExceeded(
                f"env.db is full: the tenant's storage limit{limit} (Tenant "
                "spec.limits.storage) is reached; it bounds env.db and every file in the "
                "data directory together. Delete rows or files, or raise the limit "
                "(the failed statement's transaction was rolled back)"
            )
        if self.read_only and any(w in msg for w in ("not authorized", "denied", "readonly")):
            return DatabaseError(f"{READ_ONLY}: {msg}")
        if "not authorized" in msg or "prohibited" in msg:
            msg += (
                " (env.db refuses ATTACH/DETACH, extension loading and PRAGMA writes "
                f"other than {', '.join(sorted(PRAGMA_WRITES_ALLOWED))})"
            )
        return DatabaseError(msg)

    def _volume_full(self) -> bool:
        """An I/O error that is the limit's doing: the volume has (next to) no room left
        (ENOSPC where SQLite reports an I/O error: growing the WAL's shared-memory index,
        a checkpoint), or one of the database's files is at the per-file limit (EFBIG
        under RLIMIT_FSIZE, which the sandbox sets to the storage limit)."""
        if self.path == ":memory:":
            return False
        try:
            room = os.statvfs(Path(self.path).parent)
            if room.f_bavail * room.f_frsize < NEARLY_FULL:
                return True
            per_file = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            if per_file == resource.RLIM_INFINITY:
                return False
            sizes = [
                os.stat(self.path + end).st_size for end in ("", "-wal") if _exists(self.path + end)
            ]
            return any(size + NEARLY_FULL > per_file for size in sizes)
        except OSError:
            return False


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"
