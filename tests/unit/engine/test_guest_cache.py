"""The Deno scratch stays bounded: revisions no advance used for a day go, with their
transpiled copies, at most once an hour; the one in use never goes (engine/guest_cache.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tenantflow.engine import guest_cache
from tenantflow.engine.executor import advance
from tenantflow.engine.outcome import Complete
from tenantflow.engine.typescript import GuestCode, typescript_workflow

pytestmark = pytest.mark.unit
DAY = 24 * 3600


def revision(home: Path, name: str, age: float, now: float) -> Path:
    """A source directory last used `age` seconds before `now`, with its transpiled copy."""
    src = home / "src" / name
    src.mkdir(parents=True)
    (src / "workflow.ts").write_text("export async function run() {}")
    gen = home / "cache" / "gen" / "file" / src.absolute().relative_to("/")
    gen.mkdir(parents=True)
    (gen / "workflow.ts.js").write_text("compiled")
    os.utime(src, (now - age, now - age))
    return gen


def test_unused_revisions_go_with_their_transpiled_copies_at_most_once_an_hour(
    tmp_path: Path,
) -> None:
    now = time.time()
    stale_gen = revision(tmp_path, "stale", DAY + 60, now)
    fresh_gen = revision(tmp_path, "fresh", 60, now)
    assert guest_cache.prune(tmp_path, now) == ["stale"]
    assert not (tmp_path / "src" / "stale").exists() and not stale_gen.exists()
    assert (tmp_path / "src" / "fresh").is_dir() and fresh_gen.is_dir()
    # within the hour nothing is pruned, however old
    revision(tmp_path, "old", 2 * DAY, now)
    assert guest_cache.prune(tmp_path, now + 60) == []
    assert (tmp_path / "src" / "old").is_dir()
    assert guest_cache.prune(tmp_path, now + guest_cache.PRUNE_EVERY + 1) == ["old"]


def test_only_the_most_recently_used_revisions_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guest_cache, "MAX_SOURCES", 2)
    now = time.time()
    for age, name in ((30, "newest"), (60, "newer"), (90, "older"), (120, "oldest")):
        revision(tmp_path, name, age, now)
    assert sorted(guest_cache.prune(tmp_path, now)) == ["older", "oldest"]
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["newer", "newest"]


def test_denos_caches_go_once_past_their_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guest_cache, "MAX_CACHE_BYTES", 1000)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "v8_code_cache_v2").write_bytes(b"x" * 600)
    (cache / "v8_code_cache_v2-wal").write_bytes(b"x" * 300)
    (cache / "location_data").touch()
    guest_cache.prune(tmp_path)
    assert (cache / "v8_code_cache_v2").exists()  # 900 bytes: under the cap
    (cache / "dep_analysis_cache_v2").write_bytes(b"x" * 200)
    guest_cache.prune(tmp_path, time.time() + guest_cache.PRUNE_EVERY + 1)
    assert sorted(p.name for p in cache.iterdir()) == ["location_data"]


def test_an_advance_prunes_its_scratch_and_keeps_the_revision_it_runs(tmp_path: Path) -> None:
    now = time.time()
    home = tmp_path / "tenantflow-deno"
    revision(home, "stale", 2 * DAY, now)
    source = 'export async function run(e, step) { return await step.do("a", async () => 7); }'
    code = GuestCode({"workflow.ts": source}, "workflow.ts", scratch=str(tmp_path))
    out = advance(typescript_workflow(code))
    assert isinstance(out.outcome, Complete) and out.outcome.output == 7
    kept = [p.name for p in (home / "src").iterdir()]
    assert len(kept) == 1 and kept[0] != "stale"
    # the one it ran was transpiled into the cache, and stays
    assert any((home / "cache" / "gen").rglob("workflow.ts.js"))
