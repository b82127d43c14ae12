"""Queries (issue 36.7) on a real jailed runner: a query replays the journal the runner
kept from the instance's last advance (the operator's signed request, its own answer)
read-only in a fresh child, and answers on the people's port; nothing a caller sends is
replayed, nothing is written, the instance advances on as if no query had been made."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tenantflow.lifecycle.source import Code
from tenantflow.sandbox.jail.local import LocalSandboxes
from tenantflow.sandbox.protocol import auth
from tenantflow.sandbox.protocol.payload import advance_payload

pytestmark = pytest.mark.slow
KEY = b"query-key"
TENANT = "qry-runner"
SECRET = "Vb9Rz4Kp8Wn3Hj6Yc0Tf"
SOURCE = """
async def run(event, step, env):
    done = []
    step.query("progress", lambda: {"done": list(done), "total": 3})
    step.query("item", lambda i: done[i])
    step.query("boom", lambda: 1 / 0)
    step.query("write", lambda: env.db.execute("CREATE TABLE IF NOT EXISTS planted (x)"))
    step.query("secret", lambda: "token " + event["payload"]["secret"])
    for i in range(3):
        def work(i=i):
            env.db.execute("CREATE TABLE IF NOT EXISTS runs (step INTEGER)")
            env.db.execute("INSERT INTO runs VALUES (?)", (i,))
            return i * 10
        done.append(await step.do(f"s{i}", work))
        if i == 1:
            await step.wait_for_event("go", type="go", timeout="1h")
    return {"done": done, "runs": env.db.query("SELECT step FROM runs ORDER BY rowid")}
"""


class Runner:
    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.local = LocalSandboxes(root / "s")
        secrets = root / "secrets" / "git"
        secrets.mkdir(parents=True)
        (secrets / "token").write_text(SECRET)
        ep = self.loop.run_until_complete(
            self.local.endpoint(TENANT, str(root / "d"), KEY, str(root / "secrets"))
        )
        assert ep.socket is not None
        self.socket = ep.socket
        self.people = str(self.local.people_socket(TENANT))

    def _call(self, socket: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async def call() -> tuple[int, Any]:
            async with (
                aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket)) as session,
                session.request(method, f"http://sandbox{path}", **kw) as resp,
            ):
                text = await resp.text()
                try:
                    return resp.status, json.loads(text)
                except ValueError:
                    return resp.status, text

        return self.loop.run_until_complete(call())

    def advance(self, payload: dict[str, Any]) -> tuple[int, Any]:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **auth.sign(KEY, body)}
        return self._call(self.socket, "POST", "/v1/advance", data=body, headers=headers)

    def query(self, uid: str, name: str, args: Any = None, **more: str) -> tuple[int, Any]:
        params = {**({"args": json.dumps(args)} if args is not None else {}), **more}
        return self._call(self.people, "GET", f"/v1/queries/{uid}/{name}", params=params)

    def close(self) -> None:
        self.local.stop_all()
        self.loop.close()


def payload(uid: str, journal: list[Any], inbox: Any = None) -> dict[str, Any]:
    p = advance_payload(
        source=SOURCE,
        instance_id="build-1",
        instance_uid=uid,
        started_at="2030-01-01T00:00:00Z",
        params={"secret": SECRET},
        journal=journal,
    )
    if inbox:
        p["inbox"] = inbox
    return p


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("queries"))
    yield r
    r.close()


def test_a_query_answers_as_of_the_journal_and_changes_nothing(runner: Runner) -> None:
    status, first = runner.advance(payload("uid-q1", []))
    assert status == 200, first
    assert first["outcome"]["kind"] == "Waiting"
    assert first["queries"] == ["boom", "item", "progress", "secret", "write"]
    status, got = runner.query("uid-q1", "progress")
    assert status == 200, got
    assert got["value"] == {"done": [0, 10], "total": 3}
    assert got["asOf"]["steps"] == 3 and got["asOf"]["phase"] == "Waiting"
    assert runner.query("uid-q1", "item", [1]) == (200, got | {"query": "item", "value": 10})
    # the instance goes on as if no query had been made: no step ran twice, none early
    status, done = runner.advance(
        payload("uid-q1", first["journal"], [{"type": "go", "payload": None, "timestamp": None}])
    )
    assert status == 200, done
    assert done["outcome"]["kind"] == "Complete"
    assert done["outcome"]["output"]["runs"] == [{"step": 0}, {"step": 1}, {"step": 2}]
    status, got = runner.query("uid-q1", "progress")
    assert (status, got["value"], got["asOf"]["phase"]) == (
        200,
        {"done": [0, 10, 20], "total": 3},
        "Complete",
    )


def test_errors_name_the_query_and_nothing_is_written(runner: Runner) -> None:
    assert runner.advance(payload("uid-q2", []))[0] == 200
    status, got = runner.query("uid-q2", "nope")
    assert status == 404 and got["error"]["name"] == "UnknownQuery", got
    assert "registered: boom, item, progress, secret, write" in got["error"]["message"]
    status, got = runner.query("uid-q2", "boom")
    assert status == 422 and got["error"]["name"] == "QueryFailed", got
    assert "query 'boom' raised ZeroDivisionError" in got["error"]["message"]
    status, got = runner.query("uid-q2", "write")
    assert status == 422 and "read-only in a query handler" in got["error"]["message"], got
    status, got = runner.query("uid-q2", "item", "not a list")
    assert status == 400 and got["error"]["name"] == "BadQueryArguments", got
    status, got = runner.query("uid-q2", "item", [7])
    assert status == 422 and "IndexError" in got["error"]["message"], got
    # the runner masks the tenant's secret values in a query's answer too
    status, got = runner.query("uid-q2", "secret")
    assert status == 200 and SECRET not in json.dumps(got) and got["value"] == "token ***", got


def test_only_journals_the_runner_kept_are_replayed(runner: Runner) -> None:
    # an instance this runner never advanced: nothing to answer from
    status, got = runner.query("uid-never", "progress")
    assert status == 404 and got["error"]["name"] == "InstanceUnknown", got
    # a caller's journal, in any form, is no input: the query string is ignored, a body
    # cannot be sent (GET only), and the operator's advance may not carry a query
    forged = [{"name": "s0", "kind": "do", "state": "Complete", "output": "forged", "attempts": 1}]
    assert runner.advance(payload("uid-q3", []))[0] == 200
    status, got = runner.query("uid-q3", "item", [0], journal=json.dumps(forged))
    assert (status, got["value"]) == (200, 0), got
    status, _ = runner._call(
        runner.people, "POST", "/v1/queries/uid-q3/item", data=json.dumps({"journal": forged})
    )
    assert status == 405
    asked = payload("uid-q3", forged) | {"query": {"name": "item", "args": [0]}}
    status, got = runner.advance(asked)
    assert status == 400 and "'query' is not a field" in got["error"]["message"], got


TS_SOURCE = """
export async function run(event, step, env) {
  const done = [];
  step.query("progress", () => ({ done: [...done], total: 3 }));
  step.query("secret", () => "token " + event.payload.secret);
  for (let i = 0; i < 3; i++) {
    done.push(await step.do(`s${i}`, async () => i * 10));
    if (i === 1) await step.waitForEvent("go", { type: "go", timeout: "1 hour" });
  }
  return done;
}
"""


def test_a_typescript_query_is_answered_by_its_own_deno_in_the_jail(runner: Runner) -> None:
    p = advance_payload(
        source=Code({"workflow.ts": TS_SOURCE}),
        instance_id="build-ts",
        instance_uid="uid-ts",
        started_at="2030-01-01T00:00:00Z",
        params={"secret": SECRET},
    )
    status, first = runner.advance(p)
    assert status == 200, first
    assert first["outcome"]["kind"] == "Waiting" and first["queries"] == ["progress", "secret"]
    status, got = runner.query("uid-ts", "progress")
    assert status == 200 and got["value"] == {"done": [0, 10], "total": 3}, got
    status, got = runner.query("uid-ts", "secret")  # masked on the way out, as Python's
    assert status == 200 and SECRET not in json.dumps(got) and got["value"] == "token ***", got
