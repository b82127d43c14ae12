"""`env.db`: a sqlite3-like handle on the tenant's own database, with the escape hatches shut.

ATTACH/DETACH (other files), extension loading and `VACUUM INTO` are refused by an
authorizer, so tenant SQL can reach nothing but its own file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tenantflow.errors import TenantflowError


class DatabaseError(TenantflowError):
    """A statement failed or was refused; the message names the statement's problem."""


_DENIED = {sqlite3.SQLITE_ATTACH: "ATTACH", sqlite3.SQLITE_DETACH: "DETACH"}


def _authorizer(
    action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
) -> int:
    if action in _DENIED:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and arg2 in {"load_extension", "readfile", "writefile"}:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class TenantDatabase:
    """One connection, serialised by a lock (step callables may run in worker threads)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.set_authorizer(_authorizer)
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        with self._lock:
            return self._run(lambda: self._conn.execute(sql, params)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        with self._lock:
            return self._run(lambda: self._conn.executemany(sql, rows)).rowcount

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts: JSON-ready, so they can be returned from step.do as they are."""
        with self._lock:
            cursor = self._run(lambda: self._conn.execute(sql, params))
            return [dict(row) for row in cursor.fetchall()]

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    def _run(op: Any) -> sqlite3.Cursor:
        try:
            return op()
        except sqlite3.DatabaseError as exc:
            msg = str(exc)
            if "not authorized" in msg:
                msg += " (ATTACH, DETACH and extension loading are disabled in env.db)"
            raise DatabaseError(msg) from None
