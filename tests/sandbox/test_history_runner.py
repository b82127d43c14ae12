"""The runner keeps the tenant's history (issue 34), on a real jailed runner: an advance's
log lines land in the store (attributed to the instance the operator named, by step and
attempt) and leave the answer; the operator's signed archive writes and reads work and
unsigned or malformed ones are refused; tenant code cannot reach the store's file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tenantflow.engine.env import MAX_LOG_LINE_BYTES, MAX_STREAMED_ADVANCE_LINES
from tenantflow.sandbox.jail.local import LocalSandboxes
from tenantflow.sandbox.protocol import auth
from tenantflow.sandbox.protocol.payload import advance_payload

pytestmark = pytest.mark.slow
KEY = b"history-key"
LOGGING = """
from tenantflow.sdk import current_attempt

async def run(event, step, env):
    env.log.info("starting", branch=event["payload"]["branch"])
    def build():
        env.log.info("compiling", attempt=current_attempt())
        if current_attempt() < 2:
            raise RuntimeError("flaky compiler")
        return "built"
    return await step.do("build", build, retries={"limit": 2, "delay": "0s"})
"""
PEEK = """
import os

async def run(event, step, env):
    found = []
    for path in event["payload"]["paths"]:
        try:
            with open(path, "rb") as f:
                found.append(len(f.read()))
        except OSError as exc:
            found.append(type(exc).__name__)
    return found
"""


class Runner:
    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.local = LocalSandboxes(root / "s")
        ep = self.loop.run_until_complete(self.local.endpoint("hist", str(root / "d"), KEY))
        assert ep.socket is not None
        self.socket = ep.socket
        self.store = Path(ep.socket).with_suffix(".history") / "history.sqlite3"

    async def call(
        self, path: str, value: Any, *, sign: bool = True, timeout: float = 300
    ) -> tuple[int, Any]:
        """One request as the operator makes it (signed), giving up after `timeout`."""
        body = json.dumps(value).encode()
        headers = {"Content-Type": "application/json", **(auth.sign(KEY, body) if sign else {})}
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket)) as session,
            session.post(
                f"http://sandbox{path}",
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    def post(self, path: str, value: Any, *, sign: bool = True) -> tuple[int, Any]:
        return self.loop.run_until_complete(self.call(path, value, sign=sign))

    def advance(self, source: str, params: Any, uid: str) -> Any:
        payload = advance_payload(
            source=source,
            instance_id="build-1",
            instance_uid=uid,
            started_at="2030-01-01T00:00:00Z",
            params=params,
        )
        status, answer = self.post("/v1/advance", payload)
        assert status == 200, answer
        return answer

    def close(self) -> None:
        self.local.stop_all()
        self.loop.close()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    r = Runner(tmp_path_factory.mktemp("history"))
    yield r
    r.close()


def test_an_advances_log_lines_are_kept_by_step_and_attempt(runner: Runner) -> None:
    answer = runner.advance(LOGGING, {"branch": "main"}, "uid-1")
    assert answer["outcome"]["kind"] == "Complete"
    assert answer["logs"] == [] and answer["logsKept"] == 3, "kept, and out of the answer"
    assert answer["storageBytes"] > 0, "the tenant's store size, for Tenant.status.usage"
    status, got = runner.post("/v1/history", {"op": "logs", "uid": "uid-1"})
    assert status == 200
    lines = [(g["message"], g["step"], g["attempt"]) for g in got["lines"]]
    assert lines == [("starting", "", 0), ("compiling", "build", 1), ("compiling", "build", 2)]
    assert got["lines"][0]["fields"]["branch"] == "main"
    status, one = runner.post(
        "/v1/history", {"op": "logs", "uid": "uid-1", "step": "build", "attempt": 2}
    )
    assert [g["message"] for g in one["lines"]] == ["compiling"]


def test_the_operators_archive_is_written_and_read_back(runner: Runner) -> None:
    record = {
        "uid": "uid-9",
        "name": "build-9",
        "definition": "ci",
        "phase": "Complete",
        "createdAt": "2030-01-01T00:00:00Z",
        "finishedAt": "2030-01-01T00:01:00Z",
        "attributes": {"repo": "acme-web"},
        "record": {"status": {"output": "built"}},
    }
    assert runner.post("/v1/history", {"op": "archive", "instance": record}) == (
        200,
        {"archived": True},
    )
    status, page = runner.post("/v1/history", {"op": "search", "attributes": {"repo": "acme-web"}})
    assert status == 200 and [i["name"] for i in page["items"]] == ["build-9"]
    status, got = runner.post("/v1/history", {"op": "get", "name": "build-9"})
    assert got["instance"]["record"] == {"status": {"output": "built"}}


def test_a_batch_is_stored_in_one_request_and_a_bad_record_is_refused_alone(
    runner: Runner,
) -> None:
    def record(n: int, **more: Any) -> dict[str, Any]:
        return {
            "uid": f"uid-b{n}",
            "name": f"batch-{n}",
            "definition": "ci",
            "phase": "Complete",
            "createdAt": "2030-01-01T00:00:00Z",
            "finishedAt": f"2030-01-01T00:0{n}:00Z",
            "attributes": {"lot": "b"},
            "record": {"status": {"output": n}},
            **more,
        }

    batch = [record(1), record(2, attributes={"k": "v" * 10_000}), record(3)]
    status, got = runner.post("/v1/history", {"op": "archive", "instances": batch})
    assert status == 200, got
    assert got["archived"] == ["uid-b1", "uid-b3"]
    assert [r["uid"] for r in got["refused"]] == ["uid-b2"]
    assert "at most 256" in got["refused"][0]["error"]
    status, page = runner.post("/v1/history", {"op": "search", "attributes": {"lot": "b"}})
    assert status == 200 and sorted(i["name"] for i in page["items"]) == ["batch-1", "batch-3"]


@pytest.mark.parametrize(
    ("request_body", "sign", "status", "names"),
    [
        ({"op": "get", "name": "build-9"}, False, 401, "signature"),
        ({"op": "drop-table"}, True, 400, "op must be"),
        ({"op": "archive", "instance": {"uid": "x"}}, True, 400, "instance.record"),
        ({"op": "archive", "instances": []}, True, 400, "instances must be a list of 1 to"),
        ({"op": "archive", "instances": [{}] * 17}, True, 400, "instances must be a list"),
        ({"op": "archive", "instances": {"uid": "x"}}, True, 400, "instances must be a list"),
        ({"op": "logs", "uid": "u", "limit": 10**9}, True, 400, "limit"),
        ({"op": "search", "before": "'; DROP TABLE logs"}, True, 400, "before"),
    ],
)
def test_unsigned_and_malformed_history_requests_are_refused(
    runner: Runner, request_body: Any, sign: bool, status: int, names: str
) -> None:
    got_status, got = runner.post("/v1/history", request_body, sign=sign)
    assert got_status == status and names in got["error"]["message"], got


def test_tenant_code_cannot_reach_its_history_store(runner: Runner) -> None:
    assert runner.store.is_file(), "the store exists, outside the jail"
    paths = [str(runner.store), str(runner.store.parent), "/proc/1/root" + str(runner.store)]
    answer = runner.advance(PEEK, {"paths": paths}, "uid-peek")
    assert answer["outcome"]["kind"] == "Complete"
    assert all(isinstance(r, str) for r in answer["outcome"]["output"]), answer["outcome"]


FORGE_LINES = """
import json, os, stat, struct

async def run(event, step, env):
    answer = {
        "outcome": {"kind": "Complete", "output": "forged", "outputRef": None},
        "journal": [], "executed": [], "changed": False,
        "logs": [{"ts": "1999-01-01T00:00:00Z", "uid": "uid-victim", "instance": "victim",
                  "step": "deploy", "attempt": -5, "level": "info",
                  "message": "written by someone else", "fields": {"uid": "uid-victim"}}],
    }
    body = json.dumps(answer).encode()
    for fd in range(3, 256):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack(">I", len(body)) + body)
        except OSError:
            pass
    os._exit(0)
"""


def test_tenant_code_cannot_write_into_another_instances_history(runner: Runner) -> None:
    """A forged answer's log lines are kept as the lines of the advance the operator
    asked for, stamped by the runner: tenant code picks neither whose lines they are nor
    when they were written."""
    runner.advance(FORGE_LINES, {}, "uid-forger")
    _, victim = runner.post("/v1/history", {"op": "logs", "uid": "uid-victim"})
    assert victim["lines"] == [], "nothing reached another instance's history"
    _, own = runner.post("/v1/history", {"op": "logs", "uid": "uid-forger"})
    (line,) = own["lines"]  # the forged answer was taken, as its own advance's
    assert line["message"] == "written by someone else"
    assert not line["at"].startswith("1999"), "the runner's clock, not the forged one"
    assert (line["step"], line["attempt"]) == ("", 0), "a step with a bad attempt is not kept"


SLEEPY_STEPS = """
async def run(event, step):
    total = 0
    for i in range(8):
        total += await step.do(f"s{i}", lambda i=i: i)
    await step.sleep("nap", "1h")
    return total
"""


def test_a_long_journal_leaves_the_status_for_the_store_and_replays_whole(runner: Runner) -> None:
    """Issue 34.4 on a real jailed runner: with a window of 3, the answer holds the newest
    entries and what the store keeps; the next advance (the operator's status sent back:
    window + offloadedSteps) replays the whole journal; the archive gets all of it."""

    def advance(journal: list[Any], offloaded: dict[str, Any] | None) -> Any:
        payload = advance_payload(
            source=SLEEPY_STEPS,
            instance_id="long-1",
            instance_uid="uid-long-1",
            started_at="2030-01-01T00:00:00Z",
            journal=journal,
            offloaded=offloaded,
            journal_window=3,
        )
        status, answer = runner.post("/v1/advance", payload)
        assert status == 200, answer
        return answer

    first = advance([], None)
    assert first["outcome"]["kind"] == "Waiting"
    names = [e["name"] for e in first["journal"]]
    assert names == ["s6", "s7", "nap"] and first["offloaded"]["count"] == 6
    # woken early (the sleep not due): the same journal, replayed whole, nothing re-run
    again = advance(first["journal"], first["offloaded"])
    assert [e["name"] for e in again["journal"]] == names and again["executed"] == []
    assert again["offloaded"] == first["offloaded"]
    # a status whose digest does not match what the store holds: a clear error, no replay
    forged = advance(first["journal"], {**first["offloaded"], "digest": "0" * 64})
    assert forged["outcome"]["kind"] == "Errored"
    assert forged["outcome"]["error"]["name"] == "JournalUnavailable"
    record = {
        "uid": "uid-long-1",
        "name": "long-1",
        "definition": "ci",
        "phase": "Waiting",
        "createdAt": "2030-01-01T00:00:00Z",
        "finishedAt": "2030-01-01T00:01:00Z",
        "attributes": {},
        "record": {"status": {"steps": again["journal"], "offloadedSteps": again["offloaded"]}},
    }
    assert runner.post("/v1/history", {"op": "archive", "instance": record})[0] == 200
    _, got = runner.post("/v1/history", {"op": "get", "name": "long-1"})
    steps = got["instance"]["record"]["status"]["steps"]
    assert [e["name"] for e in steps] == [f"s{i}" for i in range(8)] + ["nap"]


PRINTING = """
import subprocess, sys

async def run(event, step):
    def build():
        print("from python")
        subprocess.run(["sh", "-c", "echo from sh; echo to stderr >&2"], check=True)
        return "built"
    return await step.do("compile", build)  # (a step no other test of this runner ran)
"""


def test_what_a_step_and_its_subprocesses_print_is_kept_by_step(runner: Runner) -> None:
    """Issue 34.1 on a real jailed runner: print() and a subprocess's stdout and stderr
    land in the tenant's history as the step's lines, attributed by the runner."""
    answer = runner.advance(PRINTING, None, "uid-printing")
    assert answer["outcome"]["kind"] == "Complete" and answer["logs"] == []
    _, got = runner.post("/v1/history", {"op": "logs", "uid": "uid-printing"})
    lines = [(g["level"], g["message"], g["step"], g["attempt"]) for g in got["lines"]]
    assert lines == [
        ("stdout", "from python", "compile", 1),
        ("output", "from sh", "compile", 1),
        ("output", "to stderr", "compile", 1),
    ]


FLOOD = """
import subprocess

async def run(event, step, env):
    def build():
        env.log.info("first")
        for i in range(100_000):
            print(f"line {i}")
        env.log.info("last")
        return "built"
    await step.do("flood-build", build)

    def tests():
        subprocess.run(["sh", "-c", "seq 1 150000"], check=True)
        return "tested"
    return await step.do("flood-tests", tests)
"""


def _all_lines(runner: Runner, uid: str) -> list[dict[str, Any]]:
    """Every line of an instance, in the pages `tenantflow logs` reads."""
    lines: list[dict[str, Any]] = []
    while True:
        after = lines[-1]["seq"] if lines else 0
        status, got = runner.post(
            "/v1/history", {"op": "logs", "uid": uid, "after": after, "limit": 10_000}
        )
        assert status == 200, got
        if not got["lines"]:
            return lines
        lines += got["lines"]


def test_a_step_printing_100000_lines_is_kept_whole_and_in_order(runner: Runner) -> None:
    """Issue 34.5: a CI step's output is not cut to what one answer may carry. The worker
    streams its lines to the runner as they come (frames.LINES), the runner keeps them in
    the history store in order, with a subprocess's 150,000 after them."""
    answer = runner.advance(FLOOD, None, "uid-flood")
    assert answer["outcome"] == {"kind": "Complete", "output": "tested", "outputRef": None}
    assert answer["logs"] == [], "the lines left through the stream, not the answer"
    lines = _all_lines(runner, "uid-flood")
    build = [ln for ln in lines if ln["step"] == "flood-build"]
    assert [ln["message"] for ln in build[:2]] == ["first", "line 0"]
    printed = [ln["message"] for ln in build if ln["level"] == "stdout"]
    assert printed == [f"line {i}" for i in range(100_000)]
    assert build[-1]["message"] == "last" and build[-1]["level"] == "info"
    tests = [ln["message"] for ln in lines if ln["step"] == "flood-tests"]
    assert tests == [str(i) for i in range(1, 150_001)], "a subprocess's lines, all of them"
    assert len(lines) == 100_002 + 150_000
    seqs = [ln["seq"] for ln in lines]
    assert seqs == sorted(seqs)


FORGE_STREAM = """
import json, os, socket, stat, struct

async def run(event, step, env):
    def frame(value):
        body = json.dumps(value).encode()
        return struct.pack(">I", len(body)) + body

    line = {"ts": "1999-01-01T00:00:00Z", "uid": "uid-victim", "step": "deploy",
            "attempt": 1, "level": "info" * 4, "message": "m", "fields": {}}
    wide = frame({"lines": [{**line, "message": "w" * 5_000}] * 1_000})
    flood = frame({"lines": [line] * 1_000})
    odd = frame({"lines": ["not a line", 7, None, {"message": {"nested": True}}]})
    for fd in [fd for fd in range(3, 256) if _is_socket(fd)]:
        sock = socket.socket(fileno=os.dup(fd))
        sock.settimeout(3)  # a socket nobody reads (5 MB do not fit its buffer): the next
        try:
            sock.sendall(odd + wide)
            sock.settimeout(60)  # the runner's: it reads as it keeps, wait for it
            for _ in range(420):  # 421,000 lines, more than an advance may stream
                sock.sendall(flood)
        except OSError:
            pass
    return "flooded"

def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
"""


def test_a_forged_stream_of_lines_is_bounded_and_stays_the_advances_own(runner: Runner) -> None:
    """Tenant code writes frames.LINES frames to its socket itself: 421,000 lines with a
    forged instance, time and oversized fields, and batches that are not lines. The
    runner keeps at most an advance's streamed cap, each line re-built within the line
    caps, as the lines of the instance the operator named, stamped with its own clock;
    nothing reaches another instance, and the runner answers the next advance."""
    answer = runner.advance(FORGE_STREAM, {}, "uid-stream-forger")
    assert answer["outcome"].get("output") == "flooded", answer["outcome"]
    _, victim = runner.post("/v1/history", {"op": "logs", "uid": "uid-victim"})
    assert victim["lines"] == [], "nothing reached another instance's history"
    lines = _all_lines(runner, "uid-stream-forger")
    # taken as the advance's own up to its cap, which the odd batch's three entries that
    # are not objects count towards (they are dropped, the fourth is re-built)
    assert len(lines) == MAX_STREAMED_ADVANCE_LINES - 3, len(lines)
    assert all(len(ln["message"]) <= MAX_LOG_LINE_BYTES and len(ln["level"]) <= 10 for ln in lines)
    assert not any(ln["at"].startswith("1999") for ln in lines)
    after = 'async def run(event, step, env):\n    env.log.info("next")\n    return 1\n'
    assert runner.advance(after, None, "uid-after-flood")["logsKept"] == 1, "the runner goes on"
