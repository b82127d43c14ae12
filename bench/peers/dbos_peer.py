"""The two workloads on DBOS Transact, in one process with a SQLite system database in WAL
mode. Run by the peers' venv (bench/peers/setup.sh), never imported by tenantflow.

    python dbos_peer.py three|sleep COUNT IN_FLIGHT DB_FILE   -> JSON on stdout

Async workflows on DBOS's event loop (as tenantflow's are async): three no-op steps, each
checkpointed, or one 10-minute durable sleep (`DBOS.sleep_async`, whose row in
operation_outputs holds the wake time before the sleep begins).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

from dbos import DBOS, DBOSConfig


@DBOS.step()
async def noop(x: int) -> int:
    return x + 1


@DBOS.workflow()
async def three_steps() -> int:
    a = await noop(0)
    b = await noop(a)
    return await noop(b)


@DBOS.workflow()
async def sleeper() -> None:
    await DBOS.sleep_async(600)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def sleeping(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        row = conn.execute(
            "SELECT count(*) FROM operation_outputs WHERE function_name = 'DBOS.sleep'"
        ).fetchone()
    return int(row[0])


async def drive(workload: str, count: int, in_flight: int, db: Path) -> dict[str, object]:
    gate = asyncio.Semaphore(in_flight)
    started: list[float] = []
    finished: list[float] = []
    handles = []

    async def start() -> None:
        async with gate:
            handles.append(
                await DBOS.start_workflow_async(three_steps if workload == "three" else sleeper)
            )
            started.append(time.perf_counter())

    async def result(handle: object) -> None:
        await handle.get_result()  # type: ignore[attr-defined]
        finished.append(time.perf_counter())

    t0 = time.perf_counter()
    await asyncio.gather(*(start() for _ in range(count)))
    out: dict[str, object] = {
        "instances": count,
        "in_flight": in_flight,
        "starts_per_s": round(count / (max(started) - t0), 1),
    }
    if workload == "three":
        await asyncio.gather(*(result(h) for h in handles))
        out["completions_per_s"] = round(count / (max(finished) - t0), 1)
    else:
        while True:  # polling another connection's view of the file: no event to await
            if sleeping(db) >= count:
                break
            await asyncio.sleep(0.1)
        out["all_waiting_s"] = round(time.perf_counter() - t0, 2)
        out["rss_mib"] = rss_mib()
    return out


def main() -> None:
    workload, count, in_flight, db = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        Path(sys.argv[4]),
    )
    with sqlite3.connect(db) as conn:  # WAL is a property of the file: set before DBOS opens it
        conn.execute("PRAGMA journal_mode=WAL")
    config: DBOSConfig = {"name": "bench", "system_database_url": f"sqlite:///{db}"}
    DBOS(config=config)
    DBOS.launch()
    try:
        print(json.dumps(asyncio.run(drive(workload, count, in_flight, db))))
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main()
