"""What a query replays (issue 36.7): each instance's last advance, as the runner saw it.

A query must replay the instance's real journal, never one a caller invented: a handler
runs the tenant's code, which may read `env.secrets`, on whatever step results it is
given. So the runner keeps, per instance uid, what it alone can vouch for: the context of
the operator's signed advance request (revision, instance, defaults, limits) and the
journal of its own answer to it (what the operator persists), with the revision's files
by digest. A query names the instance's uid and nothing else of it.

Kept beside the runner's history (the runner's own volume in a pod, outside the jail
locally; in memory when it has none), written by the runner alone; tenant code never
opens it. Pruned with the history's retention.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FILE = "queries.sqlite3"
MAX_CONTEXT_BYTES = 8 << 20  # one instance's kept context, as JSON (else none is kept)
REVISION_KEYS = ("sha256", "main", "entrypoint", "name")
INSTANCE_KEYS = ("id", "uid", "params", "startedAt", "epoch")


class QueryContexts:
    """One connection, serialised by a lock (called from worker threads)."""

    def __init__(
        self, directory: Path | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        path = ":memory:"
        if directory is not None:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = str(directory / FILE)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._clock = clock
        with self._lock:
            if directory is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS contexts (uid TEXT PRIMARY KEY, sha TEXT, "
                "at REAL, context TEXT)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS revisions (sha TEXT PRIMARY KEY, at REAL, files TEXT)"
            )

    def keep(self, payload: dict[str, Any], result: dict[str, Any], at: str) -> bool:
        """Keep an advance's context for the instance the operator's request named (its
        uid): the request's revision, instance, defaults and limits, the answer's journal
        (as the status will hold it: the window, `offloaded` for the rest) and registered
        query names. False when there is no uid or it is too large to keep (then the
        instance's older context is forgotten too: a query never answers from a stale one)."""
        instance = payload.get("instance") or {}
        uid = instance.get("uid")
        if not isinstance(uid, str) or not uid:
            return False
        revision = payload["revision"]
        context = {
            "revision": {k: revision[k] for k in REVISION_KEYS if k in revision},
            "instance": {k: instance[k] for k in INSTANCE_KEYS if k in instance},
            "defaults": payload["defaults"],
            "limits": payload["limits"],
            "storage": payload.get("storage") or {},
            "journal": result.get("journal") or [],
            "offloaded": result.get("offloaded"),
            "queries": result.get("queries") or [],
            "phase": (result.get("outcome") or {}).get("kind"),
            "at": at,
        }
        text = json.dumps(context, separators=(",", ":"))
        now = self._clock()
        with self._lock:
            if len(text) > MAX_CONTEXT_BYTES:
                self._db.execute("DELETE FROM contexts WHERE uid = ?", (uid,))
                return False
            sha = str(revision["sha256"])
            self._db.execute(
                "INSERT INTO revisions VALUES (?, ?, ?) ON CONFLICT (sha) DO UPDATE SET at = ?",
                (sha, now, json.dumps(revision["files"], separators=(",", ":")), now),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO contexts VALUES (?, ?, ?, ?)", (uid, sha, now, text)
            )
        return True

    def context(self, uid: str) -> dict[str, Any] | None:
        """The instance's last advance context, with its revision's files; None if the
        runner has none (never advanced here, pruned, or too large to keep)."""
        with self._lock:
            row = self._db.execute(
                "SELECT c.context, r.files FROM contexts c JOIN revisions r ON r.sha = c.sha "
                "WHERE c.uid = ?",
                (uid,),
            ).fetchone()
        if row is None:
            return None
        context: dict[str, Any] = json.loads(row[0])
        context["revision"]["files"] = json.loads(row[1])
        return context

    def prune(self, before: float) -> int:
        """Forget contexts not advanced since `before` (epoch seconds), and revisions no
        context uses."""
        with self._lock:
            gone = self._db.execute("DELETE FROM contexts WHERE at < ?", (before,)).rowcount
            self._db.execute(
                "DELETE FROM revisions WHERE at < ? AND sha NOT IN (SELECT sha FROM contexts)",
                (before,),
            )
        return int(gone)

    def close(self) -> None:
        self._db.close()
