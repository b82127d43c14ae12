"""Step outputs over the inline cap, kept in the tenant's own database."""

from __future__ import annotations

import hashlib

from tenantflow.storage.database import TenantDatabase

_TABLE = "_tenantflow_outputs"


class SqliteOutputStore:
    """Content-addressed blobs: the journal holds `sqlite:<sha256>`, the bytes live here."""

    def __init__(self, db: TenantDatabase) -> None:
        self._db = db
        db.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (sha TEXT PRIMARY KEY, data BLOB)")

    def put(self, key: str, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self._db.execute(f"INSERT OR IGNORE INTO {_TABLE} VALUES (?, ?)", (sha, data))
        return f"sqlite:{sha}"

    def get(self, ref: str) -> bytes:
        rows = self._db.query(
            f"SELECT data FROM {_TABLE} WHERE sha = ?", (ref.removeprefix("sqlite:"),)
        )
        if not rows:
            raise KeyError(f"output {ref} is not in the tenant store")
        return bytes(rows[0]["data"])
