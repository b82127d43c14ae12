"""Forged stored records (class 16), on a real jailed runner: tenant code of one instance
writes the tenant's store to make another instance recall a step result it never produced
(`c16_forge_step_result_for_another_instance`) or replay an offloaded output it rewrote
(`c16_rewrite_offloaded_output`). The victim instance never gets the forged value: its
step runs for real, its answer reports the rejected record, and an honest recall (an
answer lost, the next advance from an older journal) still works. Another tenant's advance
stays prompt meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenantflow.engine.state import InboxEvent
from tenantflow.sandbox.protocol.payload import advance_payload
from tests.sandbox.test_hostile import BENIGN, LIMITS, PROMPT, Sandboxes

pytestmark = pytest.mark.slow
HOSTILE = Path(__file__).resolve().parents[1] / "hostile"
FORGE = (HOSTILE / "c16_forge_step_result_for_another_instance.py").read_text()
REWRITE = (HOSTILE / "c16_rewrite_offloaded_output.py").read_text()
STARTED = "2030-01-01T00:00:00Z"

CHARGE = """
import time

async def run(event, step, env):
    charged = await step.do("charge", lambda: {"real": str(time.time_ns())})
    await step.wait_for_event("go", type="go")
    return charged
"""

BIG = """
async def run(event, step, env):
    big = await step.do("big", lambda: {"blob": "real" * 10_000})
    await step.wait_for_event("go", type="go")
    return big["blob"][:8]
"""


class Tenant:
    """Advances of named instances of one tenant, with their journals (as the operator
    would send them)."""

    def __init__(self, sandboxes: Sandboxes, tenant: str) -> None:
        self.sb, self.tenant = sandboxes, tenant

    def advance(
        self,
        instance: str,
        source: str,
        *,
        journal: list[dict[str, Any]] | None = None,
        go: bool = False,
        params: Any = None,
    ) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            ep = await self.sb.local.endpoint(
                self.tenant, self.sb.data_dir(self.tenant), b"k-" + self.tenant.encode()
            )
            payload = advance_payload(
                source=source,
                instance_id=instance,
                started_at=STARTED,
                journal=journal,
                inbox=[InboxEvent("go")] if go else None,
                params=params,
                limits=LIMITS,
                max_bytes=64 * 1024 * 1024,
            )
            return await self.sb.transport.advance(ep, payload)

        return self.sb.loop.run_until_complete(call())


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    sb = Sandboxes(tmp_path_factory.mktemp("records"))
    yield sb
    sb.close()


def another_tenant_is_prompt(sandboxes: Sandboxes) -> None:
    sandboxes.healthy("victim")  # its runner is up: what is timed is the advance
    started = time.monotonic()
    assert sandboxes.advance("victim", BENIGN)["outcome"]["output"] == "fine"
    assert time.monotonic() - started < PROMPT, "another tenant's advance was slow"


def rejected(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["record"], e["step"]) for e in answer.get("rejected", [])]


def test_a_step_result_forged_by_another_instance_is_never_recalled(
    sandboxes: Sandboxes,
) -> None:
    t = Tenant(sandboxes, "hostile")
    victim = "victim-charge"
    target = {"targets": [[f"{victim}@{STARTED}", "charge"]]}
    forger = t.advance("forger-1", FORGE, params=target)
    assert forger["outcome"]["kind"] == "Complete", forger["outcome"]

    first = t.advance(victim, CHARGE)
    assert first["executed"] == [["charge", "success"]], "the step ran for real"
    assert "forged" not in str(first["journal"])
    assert rejected(first) == [("stepResult", "charge")], "reported"
    real = first["journal"][0]["output"]

    # its answer is lost: the next advance starts from an empty journal and recalls the
    # real result, which the runner vouched for
    again = t.advance(victim, CHARGE)
    assert again["executed"] == [["charge", "recalled"]] and not rejected(again)
    assert again["journal"][0]["output"] == real

    # now the forger rewrites that real row, and asks the runner to vouch for its bytes
    assert t.advance("forger-2", FORGE, params=target)["outcome"]["kind"] == "Complete"
    third = t.advance(victim, CHARGE)
    assert third["executed"] == [["charge", "success"]], "ran again, not the forged value"
    assert "forged" not in str(third["journal"]) and third["journal"][0]["output"] != real
    assert rejected(third) == [("stepResult", "charge")]

    done = t.advance(victim, CHARGE, journal=third["journal"], go=True)
    assert done["outcome"]["kind"] == "Complete" and not rejected(done)
    assert done["outcome"]["output"] == third["journal"][0]["output"]
    another_tenant_is_prompt(sandboxes)


def test_a_rewritten_offloaded_output_is_never_replayed(sandboxes: Sandboxes) -> None:
    t = Tenant(sandboxes, "hostile")
    victim = "victim-big"
    first = t.advance(victim, BIG)
    assert first["outcome"]["kind"] == "Waiting"
    ref = first["journal"][0]["outputRef"]
    assert ref.startswith("sqlite:"), first["journal"][0]

    forger = t.advance("rewriter-1", REWRITE)
    assert forger["outcome"]["kind"] == "Complete" and forger["outcome"]["output"]["rewritten"] >= 2

    replay = t.advance(victim, BIG, journal=first["journal"], go=True)
    assert replay["outcome"]["kind"] == "Complete", replay["outcome"]
    assert replay["outcome"]["output"] == "realreal", "never the forged bytes"
    assert ["big", "success"] in replay["executed"], "the step ran again for real"
    assert rejected(replay) == [("output", "big")], "reported"
    assert replay["journal"][0]["outputRef"] == ref, "the real bytes, stored again"
    another_tenant_is_prompt(sandboxes)
