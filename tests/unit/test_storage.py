"""The tenant database supervisor, on real SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantflow.storage.database import (
    DatabaseError,
    StorageQuotaExceeded,
    StorageRateLimited,
    TenantDatabase,
)
from tenantflow.storage.outputs import SqliteOutputStore
from tenantflow.supervisor.token_bucket import TokenBucket

pytestmark = pytest.mark.unit


@pytest.fixture
def db(tmp_path: Path) -> TenantDatabase:
    return TenantDatabase(tmp_path / "tenant.sqlite3")


def test_rows_come_back_as_dicts(db: TenantDatabase) -> None:
    db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    assert db.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y")]) == 2
    assert db.query("SELECT * FROM t WHERE a > ?", (1,)) == [{"a": 2, "b": "y"}]


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '/tmp/other.sqlite3' AS other",
        "SELECT load_extension('/tmp/evil.so')",
        "PRAGMA journal_mode=DELETE",
        "PRAGMA max_page_count=999999999",
        "PRAGMA synchronous=OFF",
    ],
)
def test_escape_hatches_are_refused(db: TenantDatabase, sql: str) -> None:
    with pytest.raises(DatabaseError, match=r"not authorized|refuses"):
        db.execute(sql)


def test_harmless_pragmas_are_allowed(db: TenantDatabase) -> None:
    db.execute("PRAGMA foreign_keys=ON")
    assert db.query("PRAGMA foreign_keys") == [{"foreign_keys": 1}]


def test_the_storage_limit_is_a_clear_quota_error(tmp_path: Path) -> None:
    small = TenantDatabase(tmp_path / "small.sqlite3", max_bytes=64 * 1024)
    small.execute("CREATE TABLE blobs (b BLOB)")
    with pytest.raises(StorageQuotaExceeded, match=r"spec.limits.storage"):
        for _ in range(100):
            small.execute("INSERT INTO blobs VALUES (?)", (b"x" * 4096,))
    assert small.size_bytes() <= 64 * 1024


def test_ops_are_rate_limited_by_waiting_then_refusing(tmp_path: Path) -> None:
    now = [0.0]
    slept: list[float] = []
    db = TenantDatabase(tmp_path / "r.sqlite3", ops_per_second=2, sleep=slept.append)
    db._bucket = TokenBucket(2, 2, clock=lambda: now[0])  # a controllable clock
    db.execute("SELECT 1")
    db.execute("SELECT 1")
    db.execute("SELECT 1")  # bucket empty: waits half a second for the next token
    assert slept == [0.5]
    db._bucket.tokens = -10  # deep in debt: a wait over a second is refused
    with pytest.raises(StorageRateLimited, match="maxStorageOpsPerSecond"):
        db.execute("SELECT 1")


def test_large_outputs_round_trip_through_the_store(db: TenantDatabase) -> None:
    store = SqliteOutputStore(db)
    ref = store.put("step", b'"' + b"x" * 100_000 + b'"')
    assert ref.startswith("sqlite:") and store.get(ref).endswith(b'x"')
    assert store.put("again", b'"' + b"x" * 100_000 + b'"') == ref, "content-addressed"


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=20, clock=lambda: now[0])
    assert sum(bucket.try_take() for _ in range(25)) == 20
    now[0] = 0.5
    assert sum(bucket.try_take() for _ in range(25)) == 5
    assert bucket.wait_time() == pytest.approx(0.1)
