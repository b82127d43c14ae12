"""Hostile tenant programs in a real jailed runner: each ends as a clear error, and the
runner (and another tenant's runner) keeps working."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenantflow.engine import EngineLimits
from tenantflow.sandbox.local import LocalSandboxes
from tenantflow.sandbox.payload import advance_payload
from tenantflow.sandbox.transport import HttpTransport, SandboxUnavailable

pytestmark = pytest.mark.slow
PROGRAMS = sorted((Path(__file__).resolve().parents[1] / "hostile").glob("*.py"))
BENIGN = "async def run(event, step, env):\n    return await step.do('ok', lambda: 'fine')\n"
LIMITS = EngineLimits(max_step_timeout=5, batch_seconds=1)


class Sandboxes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.local = LocalSandboxes(root / "sockets")
        self.transport = HttpTransport()
        self.loop = asyncio.new_event_loop()

    def data_dir(self, tenant: str) -> str:
        path = self.root / "data" / tenant
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def advance(self, tenant: str, source: str, params: Any = None) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            ep = await self.local.endpoint(tenant, self.data_dir(tenant), b"k-" + tenant.encode())
            return await self.transport.advance(
                ep,
                advance_payload(
                    source=source,
                    instance_id="i",
                    started_at="2030-01-01T00:00:00Z",
                    params=params,
                    limits=LIMITS,
                    max_bytes=64 * 1024 * 1024,
                ),
            )

        return self.loop.run_until_complete(call())

    def healthy(self, tenant: str) -> dict[str, Any]:
        """A benign advance succeeds (a lost worker is replaced: allow two retries)."""
        for _ in range(3):
            try:
                return self.advance(tenant, BENIGN)
            except SandboxUnavailable:
                continue
        raise AssertionError(f"the runner for {tenant} did not recover")

    def close(self) -> None:
        self.loop.run_until_complete(self.transport.close())
        self.local.stop_all()
        self.loop.close()


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    sb = Sandboxes(tmp_path_factory.mktemp("hostile"))
    yield sb
    sb.close()


def test_there_are_at_least_15_hostile_programs() -> None:
    assert len(PROGRAMS) >= 15


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_hostile_program_ends_clearly_and_harms_nobody(sandboxes: Sandboxes, program: Path) -> None:
    source = program.read_text()
    kind, _, detail = source.splitlines()[0].removeprefix("# ").partition(": ")
    sandboxes.healthy("victim")
    params = {"other_data_dir": sandboxes.data_dir("victim")}
    try:
        result: dict[str, Any] | None = sandboxes.advance("hostile", source, params)
    except SandboxUnavailable as exc:
        result, lost = None, exc.reason
    if kind == "expect-lost":
        assert result is None and lost == "SandboxWorkerLost", result
    elif kind == "expect-error":
        assert result is not None, f"runner lost: {lost}"
        outcome = result["outcome"]
        assert outcome["kind"] == "Errored", outcome
        assert (
            outcome["error"]["name"] == detail
            or detail in outcome["error"]["message"]
            or (
                detail == "OSError"
                and outcome["error"]["name"] in ("PermissionError", "FileNotFoundError", "OSError")
            )
        ), outcome["error"]
    else:
        assert kind == "expect-output-without"
        assert result is not None and result["outcome"]["kind"] == "Complete"
        assert detail not in str(result["outcome"]["output"])
    assert sandboxes.healthy("hostile")["outcome"]["output"] == "fine"
    assert sandboxes.healthy("victim")["outcome"]["output"] == "fine"
