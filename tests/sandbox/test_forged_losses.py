"""Forged loss reports (class 15), end to end but for the wire: the hostile programs run
in a real jailed runner, and what its signed answers say reaches the instance controller
(over the in-memory API) as the transport parsed it. A reported loss costs a strike and a
backoff like any worker loss, three in a row end the instance, and its records stay small:
tenant output cannot make the operator loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenantflow.lifecycle.instance_state import MAX_LOST_BYTES, MAX_LOST_RECORDS
from tenantflow.sandbox.client.transport import SandboxUnavailable
from tenantflow.vocabulary import Phase
from tests.sandbox.test_hostile import Sandboxes
from tests.unit.controllers.harness import Harness

pytestmark = pytest.mark.slow
HOSTILE = Path(__file__).resolve().parents[1] / "hostile"
CHARGED = sorted(p for p in HOSTILE.glob("*.py") if "# charged" in p.read_text().splitlines()[:3])


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    sb = Sandboxes(tmp_path_factory.mktemp("forged"))
    yield sb
    sb.close()


def test_there_are_forged_loss_programs() -> None:
    assert len(CHARGED) >= 2


@pytest.mark.parametrize("program", CHARGED, ids=lambda p: p.stem)
async def test_a_forged_loss_is_charged_like_any_worker_loss(
    sandboxes: Sandboxes, program: Path, tmp_path: Path
) -> None:
    source = await asyncio.to_thread(program.read_text)
    reports: list[SandboxUnavailable] = []
    for _ in range(3):
        with pytest.raises(SandboxUnavailable) as raised:
            await _in_thread(sandboxes, source)
        reports.append(raised.value)
    assert all(r.lost_steps and r.cause for r in reports), "reported as a charged loss"

    h = Harness.new(tmp_path)
    await h.define("hostile", source)
    key = h.start("one", "hostile")
    for strike, report in enumerate(reports, 1):
        h.sandbox.failures = [report]
        await h.drive(key)
        st = h.status("one")
        lost = st.get("lostAttempts") or {}
        assert len(lost) <= MAX_LOST_RECORDS and len(json.dumps(lost)) <= MAX_LOST_BYTES
        if strike < 3:
            assert st["phase"] == Phase.RUNNING
            assert not h.controller.queue.busy(key), "not driven again at once"
            assert h.controller.queue.scheduled() == 1, "driven again after a backoff"
    st = h.status("one")
    assert st["phase"] == Phase.ERRORED and st["error"]["name"] == "SandboxWorkerLost"
    assert len(json.dumps(st)) < 64_000, "the object stays small"
    assert h.sandbox.calls == 3
    victim = await asyncio.to_thread(sandboxes.healthy, "victim")
    assert victim["outcome"]["output"] == "fine", "another tenant still advances"


async def _in_thread(sandboxes: Sandboxes, source: str) -> None:
    """`Sandboxes.advance` runs its own loop: keep it off this test's."""
    await asyncio.to_thread(sandboxes.advance, "hostile", source)
