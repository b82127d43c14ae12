"""Hostile tenant programs in a real jailed runner: each ends as a clear error, and the
runner (and another tenant's runner) keeps working. Python programs are tests/hostile/*.py;
TypeScript ones (issue 38, run by Deno inside the same worker) are tests/hostile/ts/*.ts,
their header in `//` comments, each given to the runner as the revision's `workflow.ts`."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tenantflow.engine import EngineLimits
from tenantflow.engine.env import MAX_LOG_LINE_BYTES, MAX_LOG_LINES
from tenantflow.lifecycle.source import Code
from tenantflow.sandbox.client.transport import HttpTransport, SandboxUnavailable
from tenantflow.sandbox.jail.local import LocalSandboxes, host_uid
from tenantflow.sandbox.protocol.frames import MAX_RUNNING
from tenantflow.sandbox.protocol.payload import advance_payload

pytestmark = pytest.mark.slow
HOSTILE = Path(__file__).resolve().parents[1] / "hostile"
PROGRAMS = sorted(HOSTILE.glob("*.py")) + sorted((HOSTILE / "ts").glob("*.ts"))
BENIGN = "async def run(event, step, env):\n    return await step.do('ok', lambda: 'fine')\n"
LIMITS = EngineLimits(max_step_timeout=5, batch_seconds=1)
# the hostile tenant's Secret: its runner masks it; its code is handed it in params (the
# local jail gives tenant code no env.secrets) and tries every way out (class 14)
SECRET = "Qx7Lm2Vb9Rz4Kp8Wn3Hj6Yc0Tf5Gd1Ns"
SHORTEST_PIECE = 4
# another tenant's benign advance must finish within PROMPT seconds after every program;
# '# victim-during': also while it runs, started VICTIM_DELAY into it (CPU weights, a
# zygote nothing can stall)
VICTIM_DELAY, PROMPT = 0.7, 1.0
STORAGE = 64 * 1024 * 1024  # each tenant's limit: its files' total (a volume) and env.db's


class Sandboxes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.local = LocalSandboxes(root / "sockets")
        self.transport = HttpTransport()
        self.loop = asyncio.new_event_loop()
        self.runs = itertools.count()
        self.last_uid: dict[str, str] = {}

    def data_dir(self, tenant: str) -> str:
        path = self.root / "data" / tenant
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def secrets_dir(self) -> str:
        path = self.root / "secrets"
        (path / "git").mkdir(parents=True, exist_ok=True)
        (path / "git" / "token").write_text(SECRET + "\n")
        return str(path)

    async def _call(self, tenant: str, source: str | Code, params: Any = None) -> dict[str, Any]:
        secrets = self.secrets_dir() if tenant == "hostile" else None
        key = b"k-" + tenant.encode()
        ep = await self.local.endpoint(
            tenant, self.data_dir(tenant), key, secrets, storage_bytes=STORAGE
        )
        n = next(self.runs)
        self.last_uid[tenant] = f"uid-{n}"  # what a query names (class 22)
        return await self.transport.advance(
            ep,
            advance_payload(
                source=source,
                # every call is a new run: nothing recalled from an earlier one
                instance_id=f"i-{n}",
                instance_uid=f"uid-{n}",
                started_at="2030-01-01T00:00:00Z",
                params=params,
                limits=LIMITS,
                max_bytes=STORAGE,
            ),
        )

    def query(self, tenant: str, name: str) -> tuple[int, Any]:
        """A query of the tenant's last advanced instance, on its runner's people's port."""
        return self.read(tenant, f"/v1/queries/{self.last_uid[tenant]}/{name}")

    def logs(self, tenant: str) -> tuple[int, Any]:
        """The log lines the tenant's history keeps of its last advanced instance, as its
        people read them (`tenantflow logs`, the UI)."""
        return self.read(tenant, f"/v1/logs/{self.last_uid[tenant]}?limit=10000")

    def read(self, tenant: str, path: str) -> tuple[int, Any]:
        """A GET on the tenant's runner's people's port."""

        async def call() -> tuple[int, Any]:
            connector = aiohttp.UnixConnector(path=str(self.local.people_socket(tenant)))
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(f"http://sandbox{path}") as resp,
            ):
                return resp.status, json.loads(await resp.text())

        return self.loop.run_until_complete(call())

    def advance(self, tenant: str, source: str | Code, params: Any = None) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(tenant, source, params))

    def advance_beside_victim(
        self, source: str | Code, params: Any
    ) -> tuple[dict[str, Any], float]:
        """The hostile tenant's advance, and the seconds the victim's benign advance took
        while it ran (started VICTIM_DELAY into it)."""

        async def both() -> tuple[dict[str, Any], float]:
            hostile = asyncio.ensure_future(self._call("hostile", source, params))
            await asyncio.sleep(VICTIM_DELAY)
            assert not hostile.done(), "the hostile advance ended before the victim's began"
            started = time.monotonic()
            victim = await self._call("victim", BENIGN)
            took = time.monotonic() - started
            assert victim["outcome"]["output"] == "fine", victim
            return await hostile, took

        return self.loop.run_until_complete(both())

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
    sb.healthy("hostile")  # the jail exists: now plant what it must not read (class 8)
    secret = Path(sb.data_dir("hostile")) / "root-only.txt"
    secret.write_text("root only")
    os.chown(secret, 0, 0)
    secret.chmod(0o600)
    yield sb
    sb.close()


def test_there_are_hostile_programs_for_every_class() -> None:
    classes = {p.stem.split("_")[0] for p in PROGRAMS if p.stem.startswith("c")}
    assert {f"c{n:02}" for n in range(1, 17)} | {"c17", "c18", "c20", "c21", "c22"} <= classes
    assert len(PROGRAMS) >= 52


def leaked_pieces(*found: Any) -> list[str]:
    """The pieces of SECRET (SHORTEST_PIECE+ characters) in what left the sandbox."""
    text = json.dumps([str(f) if isinstance(f, BaseException) else f for f in found])
    return [
        SECRET[i : i + SHORTEST_PIECE]
        for i in range(len(SECRET) - SHORTEST_PIECE + 1)
        if SECRET[i : i + SHORTEST_PIECE] in text
    ]


def program_id(program: Path) -> str:
    return f"ts/{program.stem}" if program.suffix == ".ts" else program.stem


def load(program: Path) -> tuple[str | Code, list[str]]:
    """A program's source as the runner gets it, and its header lines as `# ...` (a
    TypeScript program's `// ...` comments read the same)."""
    text = program.read_text()
    lines = text.splitlines()
    if program.suffix == ".ts":
        lines = ["#" + line[2:] if line.startswith("//") else line for line in lines]
        return Code({"workflow.ts": text}), lines
    return text, lines


@pytest.mark.parametrize("program", PROGRAMS, ids=program_id)
def test_hostile_program_ends_clearly_and_harms_nobody(sandboxes: Sandboxes, program: Path) -> None:
    source, header = load(program)
    kind, _, detail = header[0].removeprefix("# ").partition(": ")
    sandboxes.healthy("victim")
    params = {"other_data_dir": sandboxes.data_dir("victim"), "secret": SECRET}
    result: dict[str, Any] | None
    for _ in range(2 if header[1] == "# twice" else 1):
        refused: SandboxUnavailable | None = None
        try:
            if "# victim-during" in header[:3]:
                result, took = sandboxes.advance_beside_victim(source, params)
                assert took < PROMPT, f"another tenant's advance took {took:.2f}s meanwhile"
            else:
                result = sandboxes.advance("hostile", source, params)
        except SandboxUnavailable as exc:
            result, lost, lost_steps, cause = None, exc.reason, exc.lost_steps, exc.cause
            refused = exc
        if header[1] == "# twice":
            sandboxes.healthy("hostile")  # a worker host it killed is back for round 2
        # nothing of the secret leaves, on any path (class 14)
        assert not leaked_pieces(
            result, refused, refused and refused.lost_steps, refused and refused.cause
        )
    if kind == "expect-lost":
        assert result is None and lost == "SandboxWorkerLost", result
        # what a child reports of itself is bounded, whatever it forges (class 5)
        assert len(lost_steps) <= MAX_RUNNING, len(lost_steps)
        assert all(0 < len(name) <= 253 for name in lost_steps), lost_steps
        assert len(str(cause)) <= 1200, cause
    elif kind == "expect-unavailable":
        assert result is None and lost == detail, result
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
        assert result is not None and result["outcome"]["kind"] == "Complete", result
        assert detail not in str(result["outcome"]["output"]), result["outcome"]
        assert len(result["logs"]) <= MAX_LOG_LINES
        for line in result["logs"]:  # namespaced and capped (class 4)
            assert set(line) == {"ts", "level", "message", "fields"}, line
            assert line["level"] == "info" and len(line["message"]) <= MAX_LOG_LINE_BYTES
    if "# then-logs" in header[:3]:  # what the tenant's people read of it leaks nothing
        status, kept = sandboxes.logs("hostile")
        assert status == 200 and kept["lines"], kept
        assert not leaked_pieces(kept)
    unwanted = next((h.split(": ", 1)[1] for h in header[:3] if "then-logs-without" in h), None)
    if unwanted:  # nothing of the engine's own failures reaches what its people read
        status, kept = sandboxes.logs("hostile")
        assert status == 200 and kept["lines"], kept
        assert not [line for line in kept["lines"] if unwanted in line["message"]], kept
    asked = next((h.removeprefix("# then-query: ") for h in header[:3] if "then-query" in h), None)
    if asked:  # class 22: a query of it is answered, leaks nothing, and leaves nothing
        status, answer = sandboxes.query("hostile", asked)
        assert status == 200, answer
        assert not leaked_pieces(answer)
        assert "written" not in json.dumps(answer), answer  # every write was refused
        again = sandboxes.advance("hostile", source, params)
        assert again["outcome"]["kind"] == "Complete", again
        assert detail not in str(again["outcome"]["output"]), again["outcome"]
        assert [e["name"] for e in again["journal"]] == [e["name"] for e in result["journal"]]
    if "# next-advance-first-try" in header[:3]:  # no retry allowed: nothing was lost
        assert sandboxes.advance("hostile", BENIGN)["outcome"]["output"] == "fine"
    if program.stem == "c08_setuid_copy":
        planted = Path(sandboxes.data_dir("hostile")) / "scratch" / "suid-sh"
        assert planted.stat().st_uid == host_uid("hostile") != 0
    # the victim still advances, first try and promptly, and the hostile tenant recovers
    started = time.monotonic()
    assert sandboxes.advance("victim", BENIGN)["outcome"]["output"] == "fine"
    assert time.monotonic() - started < PROMPT, "another tenant's advance was slow after it"
    assert sandboxes.healthy("hostile")["outcome"]["output"] == "fine"
