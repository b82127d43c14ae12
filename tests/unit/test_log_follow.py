"""Reading an instance's log lines as people do (issue 34.1): every line, page by page,
in order; `tenantflow logs -f` and the UI's Logs pane follow them while it runs and stop
once it has ended. Against the in-memory API and a real history store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import make_mocked_request

from tenantflow.cli import history_cmds
from tenantflow.cli.common import Env
from tenantflow.kube.client import Kube
from tenantflow.kube.history import LOG_PAGE
from tenantflow.storage.history import History
from tenantflow.ui import server
from tenantflow.vocabulary import API_VERSION, INSTANCE
from tenantflow_dev.fake_kube import FakeKube

pytestmark = pytest.mark.unit
NS = "tenant-acme"


def world(tmp_path: Path) -> tuple[FakeKube, History]:
    fake = FakeKube()
    fake.put(
        {
            "apiVersion": API_VERSION,
            "kind": INSTANCE,
            "metadata": {"name": "build-1", "namespace": NS, "uid": "u1"},
            "spec": {"workflowRef": {"name": "ci"}},
            "status": {"phase": "Running"},
        }
    )
    history = fake.histories.setdefault(NS, History(tmp_path / "history"))
    return fake, history


def write(history: History, part: str, count: int, step: str = "build", attempt: int = 1) -> None:
    history.append_logs(
        "u1",
        "2030-01-01T00:00:00Z",
        [
            {"message": f"{part} {i}", "step": step, "attempt": attempt, "level": "stdout"}
            for i in range(count)
        ],
    )


async def finish(fake: FakeKube) -> None:
    await fake.patch(
        API_VERSION,
        INSTANCE,
        "build-1",
        NS,
        {"status": {"phase": "Complete"}},
        subresource="status",
    )


async def test_every_line_is_read_page_by_page_and_filtered_by_step_and_attempt(
    tmp_path: Path,
) -> None:
    fake, history = world(tmp_path)
    write(history, "one", LOG_PAGE + 500)
    write(history, "two", 3, attempt=2)
    write(history, "other", 2, step="test")
    kube = cast(Kube, fake)
    every = await history_cmds.log_lines(kube, NS, "u1")
    assert [g["message"] for g in every] == [
        *(f"one {i}" for i in range(LOG_PAGE + 500)),
        *(f"two {i}" for i in range(3)),
        *(f"other {i}" for i in range(2)),
    ]
    second = await history_cmds.log_lines(kube, NS, "u1", "build", 2)
    assert [g["message"] for g in second] == ["two 0", "two 1", "two 2"]
    assert [g["message"] for g in await history_cmds.log_lines(kube, NS, "u1", "test")] == [
        "other 0",
        "other 1",
    ]


async def test_follow_prints_each_line_once_as_it_comes_and_stops_when_it_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_cmds, "FOLLOW_POLL", 0.01)
    fake, history = world(tmp_path)
    out: list[str] = []
    env = Env(cast(Kube, fake), NS, out=out.append)
    write(history, "early", 5)
    follow = asyncio.create_task(history_cmds.follow_logs(env, "build-1", None, None))
    await asyncio.sleep(0.05)
    assert not follow.done(), "it runs on while the instance does"
    write(history, "late", LOG_PAGE + 10)  # more than one page arrives at once
    await asyncio.sleep(0.05)
    write(history, "last", 2)
    await finish(fake)
    printed = await asyncio.wait_for(follow, 5)
    messages = [line.split("] ", 1)[1] for line in out]
    assert messages == [
        *(f"early {i}" for i in range(5)),
        *(f"late {i}" for i in range(LOG_PAGE + 10)),
        "last 0",
        "last 1",
    ]
    assert printed == len(out)
    assert out[0].split()[1:3] == ["stdout", "[build#1]"]


async def test_the_ui_logs_pane_reads_after_its_last_line_and_is_told_when_it_ended(
    tmp_path: Path,
) -> None:
    fake, history = world(tmp_path)
    kube = cast(Kube, fake)
    write(history, "a", LOG_PAGE + 1)

    async def read(query: str) -> dict[str, Any]:
        request = make_mocked_request(
            "GET",
            f"/api/instances/{NS}/build-1/logs?{query}",
            match_info={"ns": NS, "name": "build-1"},
        )
        return cast(dict[str, Any], await server._logs(request, kube))

    first = await read("after=0")
    assert len(first["lines"]) == first["limit"] == LOG_PAGE and first["ended"] is False
    rest = await read(f"after={first['lines'][-1]['seq']}")
    assert [g["message"] for g in rest["lines"]] == [f"a {LOG_PAGE}"]
    await finish(fake)
    done = await read(f"after={rest['lines'][-1]['seq']}")
    assert done == {"lines": [], "limit": LOG_PAGE, "ended": True}
