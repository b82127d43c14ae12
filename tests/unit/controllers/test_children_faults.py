"""The children protocol under faults, as a property: whatever is lost on the way — watch
events dropped or held back by a cut watch, a relist instead of the events, 409/500
answers (before or after the write is applied), moments when the shard's lease is not
current, operator restarts — every parent learns its children's end and finishes.

Found by `make chaos` (issue 41): parents Waiting for ever on a child that had finished
(its finish seen while the lease was being renewed late), or on a child never created
(its create answered 409 by the proxy, then found missing). The fake API injects the same
kinds of faults as the chaos suite's proxy; after the fault phase, time passes (every
run-later comes due, the children's resync interval elapses) with a healthy API and
watch, and every parent must end Complete with its children's outputs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tenantflow.controllers.ownership import Verdict
from tenantflow.kube.client import ApiException
from tenantflow.vocabulary import API_VERSION, FINISHED, INSTANCE, Phase
from tenantflow_dev.fake_kube import FakeKube
from tests.unit.controllers.harness import NS, Harness

PARENT = """
import asyncio
async def run(event, step, env):
    n = event['payload']['n']
    first = await step.child('kid', 'kid', {'n': n})
    more = await asyncio.gather(
        step.child('a', 'kid', {'n': n + 1}), step.child('b', 'kid', {'n': n + 2})
    )
    return [first['double'], *[m['double'] for m in more]]
"""

KID = """
async def run(event, step, env):
    n = event['payload']['n']
    return {'double': await step.do('double', lambda: 2 * n)}
"""

# the start-rate budget refills in real time, which this test does not let pass
LIMITS = {"maxInstanceStartsPerSecond": 1000}
WRITE_FAULTS = ("error500", "conflict409", "lost_response")


@dataclass
class FaultyKube(FakeKube):
    """The in-memory API with the chaos proxy's faults: a write refused before it is
    applied (500, a 409 as a concurrent writer would cause), applied with its answer lost
    (500), and reads answered 500."""

    rng: random.Random = field(default_factory=random.Random)
    rate: float = 0.0
    injected: dict[str, int] = field(default_factory=dict)

    def _fault(self, kinds: tuple[str, ...]) -> str | None:
        if self.rate and self.rng.random() < self.rate:
            kind = self.rng.choice(kinds)
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind
        return None

    async def _write(self, apply: Any) -> Any:
        fault = self._fault(WRITE_FAULTS)
        if fault == "error500":
            raise ApiException(status=500, reason="injected")
        if fault == "conflict409":
            raise ApiException(status=409, reason="Conflict")
        out = await apply()
        if fault == "lost_response":
            raise ApiException(status=500, reason="injected: response lost")
        return out

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        parent = super()
        return await self._write(lambda: parent.create(obj))  # type: ignore[no-any-return]

    async def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        parent = super()
        return await self._write(lambda: parent.patch(*args, **kwargs))  # type: ignore[no-any-return]

    async def get(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        if self._fault(("error500",)):
            raise ApiException(status=500, reason="injected")
        return await super().get(*args, **kwargs)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    """One operator (replaced on a restart) over the faulty API, and a watch that drops,
    holds back and relists."""

    h: Harness
    kube: FaultyKube
    rng: random.Random
    clock: Clock
    acting: bool = True  # the lease is current (False: renewed late, work is fenced)
    seen: dict[str, str] = field(default_factory=dict)  # name -> resourceVersion delivered

    def names(self) -> list[str]:
        return sorted(
            o["metadata"]["name"] for (_, k, _, _), o in self.kube.objects.items() if k == INSTANCE
        )

    def restart(self, tmp_path: Path) -> None:
        """A new operator process: nothing of the old one's memory survives."""
        self.h = Harness.new(tmp_path, kube=self.kube, **LIMITS)
        self.wire()
        self.seen.clear()

    def wire(self) -> None:
        c = self.h.controller
        c.gate = lambda namespace: Verdict.ACT if self.acting else Verdict.DEFER
        c.children.clock = self.clock

    async def adopt(self) -> None:
        await self.h.controller.adopt(lambda namespace: True)  # (lists: not faulted here)

    def relist(self) -> None:
        names = self.names()
        for name in names:
            body = self.kube.read(API_VERSION, INSTANCE, name, NS)
            assert body is not None
            self.h.controller.on_event("LISTED", body)
            self.seen[name] = body["metadata"]["resourceVersion"]
        self.h.controller.relisted({(NS, n) for n in names}, lambda namespace: True)

    def watch(self, drop: float) -> None:
        """Each object's newest state, as a watch would bring it, unless dropped (a cut
        watch resumed past it: that state is never delivered)."""
        names = self.names()
        for name in names:
            body = self.kube.read(API_VERSION, INSTANCE, name, NS)
            assert body is not None
            rv = body["metadata"]["resourceVersion"]
            if self.seen.get(name) == rv:
                continue
            kind = "MODIFIED" if name in self.seen else "ADDED"
            self.seen[name] = rv
            if self.rng.random() >= drop:
                self.h.controller.on_event(kind, body)

    async def run_due(self) -> None:
        """Time passes: every run-later is due now."""
        q = self.h.controller.queue
        for key in list(q._due):
            q.cancel_later(key)
            q.request(key)
        await q.drain()


async def _rig(tmp_path: Path, seed: int) -> Rig:
    kube = FaultyKube(rng=random.Random(seed))
    h = Harness.new(tmp_path, kube=kube, **LIMITS)
    await h.define("parent", PARENT)
    await h.define("kid", KID)
    rig = Rig(h, kube, random.Random(seed + 1), Clock())
    rig.wire()
    return rig


@pytest.mark.parametrize("resync", [True, False], ids=["with-resync", "watch-only"])
@pytest.mark.parametrize("seed", [20261205, *range(1, 12)])
async def test_every_parent_finishes_whatever_the_faults(
    tmp_path: Path, seed: int, resync: bool
) -> None:
    """`watch-only`: every state reaches the operator (as a watch resumed from its last
    resourceVersion, or a restarted operator's list, brings it) though perhaps while it
    is fenced, and time does not reach the children's resync: the fixes at the root
    must suffice. `with-resync`: states dropped for good too, and the resync interval
    passes: nothing may strand a parent even then."""
    rig = await _rig(tmp_path, seed)
    parents = [f"p{i}" for i in range(6)]
    for i, name in enumerate(parents):
        rig.h.start(name, "parent", params={"n": 10 * i})
    await rig.adopt()

    # the fault phase
    rig.kube.rate = 0.25
    for _ in range(60):
        roll = rig.rng.random()
        rig.acting = roll >= 0.15  # a late renewal: events and drives are fenced
        if roll < 0.05:
            rig.restart(tmp_path)
            await rig.adopt()
        elif roll < 0.12:
            rig.relist()
        rig.watch(drop=0.3 if resync else 0.0)
        await rig.h.controller.queue.drain()
        if rig.rng.random() < 0.3:
            rig.clock.now += 5
            await rig.run_due()

    # healthy again: the watch delivers, time goes on (up to 15 minutes: past the
    # children's resync, the safety net, so that a parent left to it still finishes)
    rig.kube.rate, rig.acting = 0.0, True
    for _ in range(30):
        rig.watch(drop=0.0)
        await rig.h.controller.queue.drain()
        if all(rig.h.status(p).get("phase") in FINISHED for p in parents):
            break
        rig.clock.now += 30 if resync else 1
        await rig.run_due()

    stuck = {
        name: (st.get("phase"), st.get("waitingFor"), st.get("error"))
        for name in parents
        if (st := rig.h.status(name)).get("phase") != Phase.COMPLETE
    }
    assert not stuck, f"faults injected {rig.kube.injected}; parents not Complete: {stuck}"
    for i, name in enumerate(parents):
        n = 10 * i
        assert rig.h.status(name)["output"] == [2 * n, 2 * (n + 1), 2 * (n + 2)]
    assert sum(rig.kube.injected.values()) > 20, rig.kube.injected
