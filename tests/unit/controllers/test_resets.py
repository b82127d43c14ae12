"""Reset and retry through the real instance controller (in-memory API, the real engine
in-process): the steps before the cut are not run again, the ones after are, on the
revision asked for; the request is applied once."""

from __future__ import annotations

from pathlib import Path

from tenantflow.lifecycle.reset import ResetRequest
from tenantflow.vocabulary import API_VERSION, INSTANCE, RESET_ANNOTATION, Phase
from tests.unit.controllers.harness import NS, Harness

FLOW = """
async def run(event, step, env):
    env.db.execute('CREATE TABLE IF NOT EXISTS ran (step TEXT)')
    def body(name):
        env.db.execute('INSERT INTO ran VALUES (?)', (name,))
        if name == 'b' and BROKEN:
            raise ValueError('bug in b')
        return name
    a = await step.do('a', lambda: body('a'))
    b = await step.do('b', lambda: body('b'), retries={'limit': 0})
    return [a, b, env.db.query("SELECT count(*) AS n FROM ran WHERE step = 'a'")[0]['n']]
"""


def request(h: Harness, name: str, req: ResetRequest) -> None:
    body = h.kube.read(API_VERSION, INSTANCE, name, NS)
    body["metadata"]["annotations"] = {RESET_ANNOTATION: req.annotation()}
    h.kube.put(body)


async def settle(h: Harness, key: str) -> None:
    """One drive (it applies the request and asks to run again), then what it queued:
    through the queue only, which never runs two drives of one instance at once."""
    await h.drive(key)
    await h.controller.queue.drain()


async def test_a_reset_to_the_failed_step_on_the_fixed_revision_completes_without_rerunning_a(
    tmp_path: Path,
) -> None:
    h = Harness.new(tmp_path)
    assert await h.define("flow", FLOW.replace("BROKEN", "True")) == 1
    assert await h.define("flow", FLOW.replace("BROKEN", "False")) == 2
    key = h.start("build", "flow", workflowRef={"name": "flow", "revision": 1})
    await h.drive(key, times=2)
    assert h.status("build")["phase"] == Phase.ERRORED
    request(h, "build", ResetRequest("r1", "b", revision=2, reason="fixed b", by="alice"))
    await settle(h, key)
    st = h.status("build")
    assert st["phase"] == Phase.COMPLETE, st
    assert st["output"] == ["a", "b", 1], "a ran once, before the reset"
    assert st["revision"] == 2
    assert st["resets"][0]["by"] == "alice" and st["resets"][0]["stepsCut"] == 1
    assert ("Normal", "Reset") in h.events()
    await h.drive(key)  # the same request again: applied once
    assert len(h.status("build")["resets"]) == 1


async def test_a_retry_of_a_complete_instance_is_refused_and_recorded(tmp_path: Path) -> None:
    h = Harness.new(tmp_path)
    await h.define("flow", FLOW.replace("BROKEN", "False"))
    key = h.start("done", "flow")
    await h.drive(key, times=2)
    assert h.status("done")["phase"] == Phase.COMPLETE
    request(h, "done", ResetRequest("r2", None))
    await h.drive(key)
    st = h.status("done")
    assert st["phase"] == Phase.COMPLETE
    assert "retry needs an Errored instance" in st["resets"][0]["refused"]
    assert ("Warning", "ResetRefused") in h.events()


async def test_a_step_cut_by_a_reset_runs_again_rather_than_being_recalled(
    tmp_path: Path,
) -> None:
    """A completed step's result stays in the tenant's store for a lost advance to
    recall; after a reset that cuts it, a new epoch means it really runs again."""
    h = Harness.new(tmp_path)
    await h.define("flow", FLOW.replace("BROKEN", "False"))
    key = h.start("again", "flow")
    await h.drive(key, times=2)
    assert h.status("again")["output"] == ["a", "b", 1]
    request(h, "again", ResetRequest("r3", "a", reason="rerun everything"))
    await settle(h, key)
    st = h.status("again")
    assert st["phase"] == Phase.COMPLETE and st["resets"][0]["stepsCut"] == 2
    assert st["output"] == ["a", "b", 2], "a ran a second time: not recalled from the store"
