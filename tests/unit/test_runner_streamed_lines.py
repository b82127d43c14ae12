"""The runner's side of streamed log lines (StreamedLines), against a real history store:
bounded by lines and bytes per advance whatever the stream sends, kept in few
transactions, attributed to the operator's instance, flushed at the advance's end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tenantflow.sandbox.pod import runner as runner_mod
from tenantflow.sandbox.pod.runner import Runner, StreamedLines
from tenantflow.storage.history import History


def _line(message: str, **extra: Any) -> dict[str, Any]:
    return {
        "ts": "1999-01-01T00:00:00Z",
        "level": "stdout",
        "message": message,
        "fields": {},
    } | extra


def _keeper(tmp_path: Path, uid: Any = "uid-1") -> tuple[StreamedLines, History]:
    store = History(tmp_path / "history")
    # the runner itself, but for its zygote link (streamed lines never reach it)
    runner = Runner(key=b"k", tenant="t", link=None, history=store)  # type: ignore[arg-type]
    return StreamedLines(runner, uid), store


def test_one_line_frames_are_kept_in_few_transactions_and_all_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper, store = _keeper(tmp_path)
    writes: list[int] = []
    append = store.append_logs
    monkeypatch.setattr(
        store,
        "append_logs",
        lambda uid, at, lines: writes.append(len(lines)) or append(uid, at, lines),
    )

    async def main() -> None:
        for i in range(5_000):
            await keeper([_line(f"l{i}", uid="uid-victim")])
        await keeper.flush()

    asyncio.run(main())
    assert sum(writes) == 5_000 and len(writes) <= 5_000 // StreamedLines.KEEP_BATCH + 2, writes
    got = [ln.message for ln in store.logs("uid-1", limit=10_000)]
    assert got == [f"l{i}" for i in range(5_000)]
    assert store.logs("uid-victim") == [], "the operator's instance, not the forged one"


def test_a_stream_past_its_bytes_is_dropped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_mod, "MAX_STREAMED_ADVANCE_BYTES", 40_000)
    keeper, store = _keeper(tmp_path)

    async def main() -> None:
        for _ in range(20):
            await keeper([_line("x" * 4000)] * 5)
        await keeper.flush()

    asyncio.run(main())
    kept = store.logs("uid-1", limit=10_000)
    assert 0 < len(kept) <= 10 and keeper.kept == len(kept)


def test_without_a_uid_nothing_is_kept(tmp_path: Path) -> None:
    keeper, _store = _keeper(tmp_path, uid=None)

    async def main() -> None:
        await keeper([_line("a")])
        await keeper.flush()

    asyncio.run(main())
    assert keeper.kept == 0
