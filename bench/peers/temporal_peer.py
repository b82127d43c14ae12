"""The two workloads on Temporal: a worker, and a driver that starts the workflows and
measures. Run by the peers' venv (bench/peers/setup.sh), never imported by tenantflow.

    python temporal_peer.py worker ADDRESS
    python temporal_peer.py drive ADDRESS three|sleep COUNT IN_FLIGHT   -> JSON on stdout

The workflows match tenantflow's: three no-op steps (activities, each durable), or one
10-minute durable sleep (a timer). Worker settings are stated in WORKER_SETTINGS and
reported with the results.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

TASK_QUEUE = "bench"
WORKER_SETTINGS = {
    "max_concurrent_workflow_tasks": 100,
    "max_concurrent_activities": 100,
    "max_cached_workflows": 1000,
    "workflow_runner": "SandboxedWorkflowRunner (the SDK's default)",
}


@activity.defn
async def noop(x: int) -> int:
    return x + 1


@workflow.defn
class ThreeSteps:
    @workflow.run
    async def run(self) -> int:
        opts = {"start_to_close_timeout": timedelta(seconds=60)}
        a = await workflow.execute_activity(noop, 0, **opts)  # type: ignore[arg-type]
        b = await workflow.execute_activity(noop, a, **opts)  # type: ignore[arg-type]
        return await workflow.execute_activity(noop, b, **opts)  # type: ignore[arg-type,no-any-return]


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(600)


async def worker(address: str) -> None:
    client = await Client.connect(address)
    settings = {k: v for k, v in WORKER_SETTINGS.items() if isinstance(v, int)}
    await Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[ThreeSteps, Sleeper],
        activities=[noop],
        **settings,  # type: ignore[arg-type]
    ).run()


async def drive(address: str, workload: str, count: int, in_flight: int) -> dict[str, object]:
    client = await Client.connect(address)
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(in_flight)
    started: list[float] = []
    finished: list[float] = []
    handles: list[WorkflowHandle[object, object]] = []

    async def start(i: int) -> None:
        async with gate:
            handle = await client.start_workflow(
                ThreeSteps.run if workload == "three" else Sleeper.run,  # type: ignore[arg-type]
                id=f"{workload}-{run}-{i}",
                task_queue=TASK_QUEUE,
            )
            started.append(time.perf_counter())
            handles.append(handle)

    async def result(handle: WorkflowHandle[object, object]) -> None:
        await handle.result()
        finished.append(time.perf_counter())

    async def durable(handle: WorkflowHandle[object, object]) -> None:
        """Until the timer is in the history: started, task scheduled/started/completed,
        TimerStarted = 5 events."""
        while True:  # the server's view, polled: no event to await
            if (await handle.describe()).history_length >= 5:
                break
            await asyncio.sleep(0.2)
        finished.append(time.perf_counter())

    t0 = time.perf_counter()
    starts = asyncio.gather(*(start(i) for i in range(count)))
    await starts
    wait_gate = asyncio.Semaphore(in_flight)

    async def gated(handle: WorkflowHandle[object, object]) -> None:
        async with wait_gate:
            await (result(handle) if workload == "three" else durable(handle))

    await asyncio.gather(*(gated(h) for h in handles))
    out: dict[str, object] = {
        "instances": count,
        "in_flight": in_flight,
        "starts_per_s": round(count / (max(started) - t0), 1),
        "worker": WORKER_SETTINGS,
    }
    if workload == "three":
        out["completions_per_s"] = round(count / (max(finished) - t0), 1)
    else:
        out["all_waiting_s"] = round(max(finished) - t0, 2)
    return out


def main() -> None:
    mode, address = sys.argv[1], sys.argv[2]
    if mode == "worker":
        asyncio.run(worker(address))
    else:
        workload, count, in_flight = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(asyncio.run(drive(address, workload, count, in_flight))), flush=True)
        # the SDK's native client threads can abort the interpreter's finalization
        # ("PyGILState_Release ... must be current", exit -6) after the answer is out:
        # the answer is all this process is for
        os._exit(0)


if __name__ == "__main__":
    main()
