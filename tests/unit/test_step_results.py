"""The second guard: completed steps' results kept in the tenant's store, recalled instead
of run again by an advance whose journal does not have them (a real SQLite file) — and
only when the runner vouched for them (issue 33.3): tenant code writes that store, so a
row it planted or rewrote is ignored (the step runs) and reported. Offloaded outputs are
checked against the digest in the journal the same way."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tenantflow.engine import EngineLimits
from tenantflow.engine.children import ChildResult
from tenantflow.engine.executor import advance
from tenantflow.engine.journal import dump, load
from tenantflow.engine.outcome import Complete, Waiting
from tenantflow.sandbox.client.transport import REJECTED_REASON, rejected_records
from tenantflow.sandbox.pod.runner import check_result
from tenantflow.sandbox.pod.vouch_store import Taker, Vouches
from tenantflow.sandbox.protocol import vouch
from tenantflow.storage.database import StorageQuotaExceeded, TenantDatabase
from tenantflow.storage.outputs import SqliteOutputStore
from tenantflow.storage.step_results import NOT_VOUCHED, TABLE, TAMPERED, SqliteStepResults
from tenantflow.vocabulary import Phase

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
SMALL = EngineLimits(inline_output_bytes=64)  # a step's big output goes to the store


def workflow(calls: list[str]) -> Any:
    async def run(event: Any, step: Any) -> Any:
        a = await step.do("charge", lambda: calls.append("charge") or {"id": 7})
        await step.sleep("nap", "1h")
        return a

    return run


class Runner:
    """The runner's side, as `sandbox.pod.runner` does it: digests by run, in its own store."""

    def __init__(self) -> None:
        self.vouches = Vouches()

    def results(
        self, db: TenantDatabase, run: str, persisted: set[str] | None = None
    ) -> SqliteStepResults:
        done = persisted or set()
        vouched = self.vouches.begin(run, done)
        return SqliteStepResults(
            db, run, done, vouched, lambda step, sha: self.vouches.vouch_many(run, [(step, sha)])
        )


def plant(db: TenantDatabase, run: str, step: str, value: Any) -> None:
    """What tenant code can do: write a row of the store for any run."""
    db.execute(
        f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)",
        (run, step, json.dumps(value).encode(), 0.0 + 1e9),
    )


def test_a_step_completed_by_a_lost_advance_is_recalled_not_run(tmp_path: Path) -> None:
    calls: list[str] = []
    db, runner = TenantDatabase(tmp_path / "t.sqlite3"), Runner()
    lost = advance(
        workflow(calls), results=runner.results(db, "i@t0"), now=lambda: NOW, started_at=NOW
    )
    assert calls == ["charge"]
    # its answer never reached the status: the next advance starts from an empty journal
    again = advance(
        workflow(calls), results=runner.results(db, "i@t0"), now=lambda: NOW, started_at=NOW
    )
    assert calls == ["charge"], "recalled, not run again"
    assert again.executed == [("charge", "recalled")] and not again.rejected
    assert dump(again.journal)[0]["output"] == {"id": 7} == dump(lost.journal)[0]["output"]


def test_results_are_per_run_and_leave_once_the_status_has_them(tmp_path: Path) -> None:
    calls: list[str] = []
    db, runner = TenantDatabase(tmp_path / "t.sqlite3"), Runner()
    first = advance(
        workflow(calls), results=runner.results(db, "i@t0"), now=lambda: NOW, started_at=NOW
    )
    advance(  # a re-created instance of the same name: another run
        workflow(calls), results=runner.results(db, "i@t1"), now=lambda: NOW, started_at=NOW
    )
    assert calls == ["charge", "charge"]
    persisted = {r.name for r in first.journal if r.state.value == "Complete"}
    runner.results(db, "i@t0", persisted)  # the next advance of i@t0 sees it persisted
    rows = db.query(f"SELECT run, step FROM {TABLE} ORDER BY run")
    assert rows == [{"run": "i@t1", "step": "charge"}]
    assert runner.vouches.begin("i@t0", set()) == {}, "the runner forgot it too"
    assert isinstance(
        advance(
            workflow(calls), journal=load(dump(first.journal)), now=lambda: NOW, started_at=NOW
        ).outcome,
        type(first.outcome),
    )


def test_a_full_store_never_fails_the_step(tmp_path: Path) -> None:
    calls: list[str] = []
    db = TenantDatabase(tmp_path / "t.sqlite3", max_bytes=64 * 1024)
    db.execute("CREATE TABLE filler (x BLOB)")
    with pytest.raises(StorageQuotaExceeded):
        for _ in range(64):  # until not one page is left
            db.execute("INSERT INTO filler VALUES (?)", (b"x" * 1000,))
    result = advance(
        workflow(calls), results=Runner().results(db, "i@t0"), now=lambda: NOW, started_at=NOW
    )
    assert calls == ["charge"] and not isinstance(result.outcome, Complete)
    assert dump(result.journal)[0]["state"] == "Complete"


# ---------------------------------------------------------------- forged step results


def test_a_row_planted_for_another_run_is_ignored_and_reported(tmp_path: Path) -> None:
    calls: list[str] = []
    db, runner = TenantDatabase(tmp_path / "t.sqlite3"), Runner()
    runner.results(db, "other@t0")  # the table exists (any advance makes it)
    plant(db, "victim@t0", "charge", {"id": "forged"})  # by another instance's code
    result = advance(
        workflow(calls), results=runner.results(db, "victim@t0"), now=lambda: NOW, started_at=NOW
    )
    assert calls == ["charge"], "the step ran for real"
    assert dump(result.journal)[0]["output"] == {"id": 7}
    assert result.executed == [("charge", "success")]
    # recalled from now on: the row is the real one, vouched for by the runner
    again = advance(
        workflow(calls), results=runner.results(db, "victim@t0"), now=lambda: NOW, started_at=NOW
    )
    assert calls == ["charge"] and dump(again.journal)[0]["output"] == {"id": 7}


def test_rejected_rows_are_listed_and_deleted(tmp_path: Path) -> None:
    db, runner = TenantDatabase(tmp_path / "t.sqlite3"), Runner()
    advance(workflow([]), results=runner.results(db, "i@t0"), now=lambda: NOW, started_at=NOW)
    plant(db, "i@t0", "charge", {"id": "rewritten"})  # a vouched row, rewritten
    plant(db, "i@t0", "later", {"id": "planted"})  # a step it has not run yet
    results = runner.results(db, "i@t0")
    assert sorted(results.rejected) == [("charge", TAMPERED), ("later", NOT_VOUCHED)]
    assert results.recall("charge") is None and results.recall("later") is None
    assert db.query(f"SELECT step FROM {TABLE}") == [], "reported once, then gone"
    assert runner.results(db, "i@t0").rejected == []


def test_a_digest_vouches_only_for_its_own_run(tmp_path: Path) -> None:
    """Tenant code copying a real row to another run (same bytes) gains nothing: the
    runner keeps digests under the run the operator named."""
    calls: list[str] = []
    db, runner = TenantDatabase(tmp_path / "t.sqlite3"), Runner()
    advance(workflow(calls), results=runner.results(db, "a@t0"), now=lambda: NOW, started_at=NOW)
    db.execute(f"INSERT INTO {TABLE} SELECT 'b@t0', step, data, at FROM {TABLE}")
    results = runner.results(db, "b@t0")
    assert results.recall("charge") is None and results.rejected == [("charge", NOT_VOUCHED)]


def test_without_a_runner_nothing_is_recalled_or_kept(tmp_path: Path) -> None:
    db = TenantDatabase(tmp_path / "t.sqlite3")
    results = SqliteStepResults(db, "i@t0", set(), vouched=None)
    results.record("charge", b"1")
    assert db.query(f"SELECT * FROM {TABLE}") == [] and results.recall("charge") is None


# ---------------------------------------------------------------- offloaded outputs


def big(calls: list[str]) -> Any:
    async def run(event: Any, step: Any) -> Any:
        value = await step.do("big", lambda: calls.append("big") or {"blob": "x" * 200})
        await step.sleep("nap", "1h")
        return value["blob"][:3]

    return run


def rewrite_every_output(db: TenantDatabase, value: Any) -> None:
    db.execute("UPDATE _tenantflow_outputs SET data = ?", (json.dumps(value).encode(),))


@pytest.mark.parametrize("tamper", ["rewrite", "delete"])
def test_a_rewritten_offloaded_output_is_never_read_back(tmp_path: Path, tamper: str) -> None:
    calls: list[str] = []
    db = TenantDatabase(tmp_path / "t.sqlite3")
    store = SqliteOutputStore(db)
    first = advance(big(calls), offload=store, limits=SMALL, now=lambda: NOW, started_at=NOW)
    ref = dump(first.journal)[0]["outputRef"]
    assert ref.startswith("sqlite:") and calls == ["big"]
    if tamper == "rewrite":
        rewrite_every_output(db, {"blob": "forged"})
    else:
        db.execute("DELETE FROM _tenantflow_outputs")
    replay = advance(
        big(calls),
        journal=load(dump(first.journal)),
        offload=store,
        limits=SMALL,
        now=lambda: NOW + dt.timedelta(hours=2),
        started_at=NOW,
    )
    assert calls == ["big", "big"], "treated as absent: the step ran again"
    assert replay.executed == [("big", "success")] and replay.changed
    assert isinstance(replay.outcome, Complete) and replay.outcome.output == "xxx"
    assert [(r["record"], r["step"]) for r in replay.rejected] == [("output", "big")]
    assert dump(replay.journal)[0]["outputRef"] == ref, "the same bytes, stored again"
    # the store was repaired by the run: the next replay reads it without a word
    later = advance(
        big(calls),
        journal=load(dump(replay.journal)),
        offload=store,
        limits=SMALL,
        now=lambda: NOW + dt.timedelta(hours=2),
        started_at=NOW,
    )
    assert calls == ["big", "big"] and not later.rejected


def test_a_childs_rewritten_output_errors_the_step_never_returns_it(tmp_path: Path) -> None:
    db = TenantDatabase(tmp_path / "t.sqlite3")
    store = SqliteOutputStore(db)
    ref = store.put("__output__", json.dumps({"child": "x" * 200}).encode())
    rewrite_every_output(db, {"child": "forged"})
    seen: list[Any] = []

    async def parent(event: Any, step: Any) -> Any:
        try:
            seen.append(await step.child("kid", "other"))
        except Exception as exc:  # StepError
            seen.append(type(exc).__name__)
        return "done"

    start = advance(parent, offload=store, now=lambda: NOW, started_at=NOW)
    assert isinstance(start.outcome, Waiting)
    result = advance(
        parent,
        journal=load(dump(start.journal)),
        offload=store,
        now=lambda: NOW,
        started_at=NOW,
        children={"kid": ChildResult(Phase.COMPLETE, None, ref, None)},
    )
    assert seen == ["StepError"] and "forged" not in json.dumps(dump(result.journal))
    assert dump(result.journal)[0]["error"]["name"] == "OutputRejected"
    assert [(r["record"], r["step"]) for r in result.rejected] == [("output", "kid")]


def test_a_completed_child_step_whose_output_was_rewritten_awaits_its_child_again(
    tmp_path: Path,
) -> None:
    db = TenantDatabase(tmp_path / "t.sqlite3")
    store = SqliteOutputStore(db)
    ref = store.put("__output__", json.dumps({"child": "x" * 200}).encode())
    done = ChildResult(Phase.COMPLETE, None, ref, None)

    async def parent(event: Any, step: Any) -> Any:
        out = await step.child("kid", "other")
        return out["child"][:3]

    first = advance(parent, offload=store, limits=SMALL, now=lambda: NOW, started_at=NOW)
    ended = advance(
        parent,
        journal=load(dump(first.journal)),
        offload=store,
        limits=SMALL,
        now=lambda: NOW,
        started_at=NOW,
        children={"kid": done},
    )
    assert isinstance(ended.outcome, Complete) and ended.outcome.output == "xxx"
    rewrite_every_output(db, {"child": "forged"})
    replay = advance(
        parent, journal=load(dump(ended.journal)), offload=store, now=lambda: NOW, started_at=NOW
    )
    assert isinstance(replay.outcome, Waiting), "the child's result is asked for again"
    assert [c.step for c in replay.outcome.children] == ["kid"]
    assert [(r["record"], r["step"]) for r in replay.rejected] == [("output", "kid")]


# ---------------------------------------------------------------- the runner's side


def test_the_runner_takes_only_well_formed_results_up_to_the_step_cap() -> None:
    vouches = Vouches()
    taker = Taker(vouches, "i@t0", limit=2, tenant="t")
    sha = hashlib.sha256(b"1").hexdigest()

    async def send() -> None:
        for frame in (
            {"step": "a", "sha256": sha},
            {"step": "", "sha256": sha},
            {"step": "b", "sha256": "nothex"},
            {"step": "c" * 300, "sha256": sha},
            ["not", "an", "object"],
            {"step": "b", "sha256": sha},
            {"step": "c", "sha256": sha},  # over the limit
        ):
            await taker(frame)
        await taker.flush()

    asyncio.run(send())
    assert vouches.begin("i@t0", set()) == {"a": sha, "b": sha}
    assert vouches.begin("j@t0", set()) == {}, "only the run the operator named"
    assert vouches.begin("i@t0", {"a"}) == {"b": sha} and vouches.begin("i@t0", set()) == {"b": sha}


def test_the_runner_keeps_an_advances_results_in_one_write_soon_after_they_come() -> None:
    """Batched: the results of a short advance go to the store in one transaction at its
    end; one that waits (a long step after it) is kept within KEEP_AFTER, not at the end."""
    vouches = Vouches()
    writes: list[list[tuple[str, str]]] = []
    write = vouches.vouch_many
    vouches.vouch_many = lambda run, results: writes.append(results) or write(run, results)  # type: ignore[method-assign]
    sha = hashlib.sha256(b"1").hexdigest()

    async def advance() -> None:
        taker = Taker(vouches, "i@t0", limit=10, tenant="t")
        for step in ("a", "b", "c"):
            await taker({"step": step, "sha256": sha})
        await taker.flush()
        assert writes == [[("a", sha), ("b", sha), ("c", sha)]]
        await taker({"step": "d", "sha256": sha})
        await asyncio.sleep(Taker.KEEP_AFTER * 4)  # a long step runs: d is kept meanwhile
        assert vouches.begin("i@t0", set()) == {s: sha for s in "abcd"}
        await taker.flush()
        assert len(writes) == 2, "nothing left to write at the end"

    asyncio.run(advance())


def test_the_runners_store_keeps_at_most_its_cap(tmp_path: Path) -> None:
    clock = [0.0]
    vouches = Vouches(tmp_path / "history", max_rows=100, clock=lambda: clock[0])
    for i in range(512):
        clock[0] = float(i)
        vouches.vouch_many(f"r{i}", [("s", "0" * 64)])
    assert vouches.begin("r0", set()) == {}, "the oldest went"
    assert vouches.begin("r511", set()) == {"s": "0" * 64}
    assert (tmp_path / "history" / "vouched.sqlite3").exists()
    vouches.close()
    assert Vouches(tmp_path / "history").begin("r511", set()), "it outlives the runner"


def test_run_keys_name_the_operators_instance_and_epoch() -> None:
    assert vouch.run_key({"id": "i", "startedAt": "t"}) == "i@t"
    assert vouch.run_key({"id": "i", "startedAt": "t", "epoch": 2}) == "i@t#2"
    # the object's uid when the operator names it: an instance started again by another
    # operator (its first start never persisted) is the same run
    for started in ("t1", "t2"):
        assert vouch.run_key({"id": "i", "startedAt": started, "uid": "u-1"}) == "uid:u-1"
    assert vouch.run_key({"id": "i", "startedAt": "t", "uid": "u-1", "epoch": 1}) == "uid:u-1#1"
    with pytest.raises(ValueError, match="uid"):
        vouch.run_key({"id": "i", "startedAt": "t", "uid": 7})
    with pytest.raises(ValueError, match="epoch"):
        vouch.run_key({"id": "i", "startedAt": "t", "epoch": "2"})


def _answer(rejected: Any) -> dict[str, Any]:
    return {
        "journal": [],
        "executed": [],
        "logs": [],
        "changed": False,
        "outcome": {"kind": "Yielded"},
        "rejected": rejected,
    }


def test_a_report_of_rejected_records_is_bounded_on_its_way_out() -> None:
    forged = [
        {"record": "stepResult", "step": "s" * 1000, "problem": "p" * 10_000},
        {"record": "nonsense", "step": "x", "problem": "y"},
        "not an entry",
        *({"record": "output", "step": f"o{i}", "problem": "rewritten"} for i in range(100)),
    ]
    answer = _answer(forged)
    assert check_result(answer, lambda text, n: text[:n]) is None
    kept = answer["rejected"]
    assert len(kept) == vouch.MAX_REJECTED
    assert len(kept[0]["step"]) == 253 and len(kept[0]["problem"]) == vouch.MAX_PROBLEM
    assert {e["record"] for e in kept} == {"stepResult", "output"}
    empty = _answer("nonsense")
    assert check_result(empty, lambda text, n: text[:n]) is None and "rejected" not in empty


def test_the_operator_makes_one_bounded_warning_of_a_report() -> None:
    assert rejected_records("t", "ns/i", {"rejected": []}) is None
    assert rejected_records("t", "ns/i", {}) is None
    report = [{"record": "stepResult", "step": f"s{i}", "problem": NOT_VOUCHED} for i in range(40)]
    event = rejected_records("t", "ns/i", {"rejected": report})
    assert event is not None
    kind, reason, message = event
    assert (kind, reason) == ("Warning", REJECTED_REASON)
    assert "'s0'" in message and NOT_VOUCHED in message and len(message) <= 1024
