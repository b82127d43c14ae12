"""Step outputs over the inline cap, kept in the tenant's own database."""

from __future__ import annotations

import hashlib

from tenantflow.storage.database import DatabaseError, TenantDatabase

_TABLE = "_tenantflow_outputs"


class OutputRejected(LookupError):
    """The store holds no bytes for a ref, or bytes that are not the ref's (rewritten)."""


class SqliteOutputStore:
    """Content-addressed blobs: the journal holds `sqlite:<sha256>`, the bytes live here.

    Tenant code can write this table (it is the tenant's own database), so the bytes are
    checked against the digest on every read: the digest is in the journal (the instance's
    status), where tenant code cannot rewrite it. A put replaces what is there, so a step
    run again after its output was rejected repairs the row."""

    def __init__(self, db: TenantDatabase) -> None:
        self._db = db
        if not db.read_only:  # a query's store only reads (a missing table: rejected)
            db.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (sha TEXT PRIMARY KEY, data BLOB)")

    def put(self, key: str, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self._db.execute(f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?)", (sha, data))
        return f"sqlite:{sha}"

    def get(self, ref: str) -> bytes:
        sha = ref.removeprefix("sqlite:")
        try:
            rows = self._db.query(f"SELECT data FROM {_TABLE} WHERE sha = ?", (sha,))
        except DatabaseError:  # no such table (a read-only connection does not make it)
            rows = []
        if not rows:
            raise OutputRejected("not in the tenant store (deleted?)")
        data = rows[0]["data"]  # any type: tenant code may have stored one (bytes() raised)
        if not isinstance(data, bytes) or hashlib.sha256(data).hexdigest() != sha:
            raise OutputRejected("its bytes in the tenant store are not those stored (rewritten)")
        return data
