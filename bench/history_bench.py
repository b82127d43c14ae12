"""A tenant's history at scale (issue 34.5), measured on real SQLite files and a real jailed
runner, without a cluster:

- **Archive.** 1,000,000 archived instances over 100 tenants, written straight into their
  stores (the issue allows it: what is measured is the read side), each record a finished
  three-step instance with search attributes. Then pages of 50 filtered by an attribute
  (first pages and the page after one), unfiltered first pages and name lookups, as the
  runner's history endpoint runs them for `tenantflow list/get` and the UI: p50/p99.
- **Logs.** A step printing 100,000 lines, on a local jailed runner: how many of them the
  tenant's history keeps, in order; and another tenant's warm dispatch p50 alone and while
  the printing tenant's advances run (goal: within 10 %).

    python -m bench history        (HISTORY_TENANTS / HISTORY_PER_TENANT to shrink it)
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import write
from bench.sandbox_bench import NOOP, warm_calls
from tenantflow.sandbox.client.transport import HttpTransport
from tenantflow.sandbox.jail.local import LocalSandboxes
from tenantflow.sandbox.protocol.payload import advance_payload
from tenantflow.storage.history import History

TENANTS = int(os.environ.get("HISTORY_TENANTS", "100"))
PER_TENANT = int(os.environ.get("HISTORY_PER_TENANT", "10000"))
REPOS, BRANCHES = 200, 5  # attribute values: a filter by repo matches ~1 in 200
QUERIES = 400
PRINTED = 100_000
PRINTER = f"""
async def run(event, step):
    def build():
        for i in range({PRINTED}):
            print(f"line {{i}}")
        return "built"
    return await step.do("build", build)
"""


def _record(n: int, finished: str) -> dict[str, Any]:
    """A finished three-step instance as the operator archives it (spec, status, journal)."""
    steps = [
        {
            "name": s,
            "kind": "do",
            "state": "Complete",
            "attempts": 1,
            "output": {"ok": True, "n": n},
            "startedAt": finished,
            "finishedAt": finished,
        }
        for s in ("checkout", "build", "test")
    ]
    return {
        "metadata": {"name": f"run-{n}", "labels": {"tenantflow.dev/definition": "ci"}},
        "spec": {"workflowRef": {"name": "ci"}, "params": {"commit": f"{n:040x}"}},
        "status": {"phase": "Complete", "revision": 3, "steps": steps, "output": {"n": n}},
    }


def _fill(store: History, tenant: int) -> None:
    rows, attrs = [], []
    for n in range(PER_TENANT):
        uid = f"t{tenant}-{n:07d}"
        finished = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z"
        labels = {"repo": f"repo-{n % REPOS}", "branch": f"b{n % BRANCHES}"}
        record = {"attributes": labels, "record": _record(n, finished)}
        rows.append((uid, f"run-{n}", "ci", "Complete", finished, finished, finished, record))
        attrs += [(k, v, uid) for k, v in labels.items()]
    db = store._db  # autocommit: one explicit transaction per tenant
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r[:7], json.dumps(r[7])) for r in rows],
    )
    db.executemany("INSERT INTO attributes VALUES (?, ?, ?)", attrs)
    db.execute("COMMIT")


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50Ms": round(statistics.median(samples) * 1000, 2),
        "p99Ms": round(samples[max(0, int(len(samples) * 0.99) - 1)] * 1000, 2),
    }


def _timed(calls: list[Callable[[], object]]) -> dict[str, float]:
    samples = []
    for call in calls:
        t = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t)
    return _percentiles(samples)


def archive(root: Path) -> dict[str, Any]:
    stores = []
    t0 = time.perf_counter()
    for t in range(TENANTS):
        store = History(root / f"tenant-{t}", max_bytes=8 << 30)
        _fill(store, t)
        stores.append(store)
    written = time.perf_counter() - t0
    rng = random.Random(7)
    draws = [
        (stores[rng.randrange(TENANTS)], rng.randrange(REPOS), rng.randrange(PER_TENANT))
        for _ in range(QUERIES)
    ]

    def by_attribute(store: History, repo: int, _: int) -> None:
        store.search(attributes={"repo": f"repo-{repo}"}, limit=50)

    def by_two(store: History, repo: int, _: int) -> None:
        store.search(attributes={"repo": f"repo-{repo}", "branch": f"b{repo % BRANCHES}"})

    def second_page(store: History, repo: int, _: int) -> None:
        _page, cursor = store.search(attributes={"repo": f"repo-{repo}"}, limit=50)
        store.search(attributes={"repo": f"repo-{repo}"}, before=cursor, limit=50)

    def unfiltered(store: History, _: int, __: int) -> None:
        store.search(limit=50)

    def by_name(store: History, _: int, n: int) -> None:
        store.get(f"run-{n}")

    def timed(query: Callable[[History, int, int], None]) -> dict[str, float]:
        return _timed([functools.partial(query, *d) for d in draws])

    got, _ = stores[0].search(attributes={"repo": "repo-3"}, limit=50)
    assert len(got) == 50 and all(a.attributes["repo"] == "repo-3" for a in got), got[:2]
    sizes = [s.size_bytes() for s in stores]
    out = {
        "tenants": TENANTS,
        "archivedPerTenant": PER_TENANT,
        "archived": TENANTS * PER_TENANT,
        "writeSeconds": round(written, 1),
        "storeMiBPerTenant": round(statistics.mean(sizes) / 2**20, 1),
        "storeBytesPerInstance": round(sum(sizes) / (TENANTS * PER_TENANT)),
        "pageOf50ByAttribute": timed(by_attribute),
        "pageOf50ByTwoAttributes": timed(by_two),
        "secondPageByAttribute": timed(second_page),
        "pageOf50Unfiltered": timed(unfiltered),
        "getByName": timed(by_name),
        "goalP99Ms": 100,
    }
    for store in stores:
        store.close()
    return out


async def logs(root: Path) -> dict[str, Any]:
    sandboxes = LocalSandboxes(root / "sockets")
    transport = HttpTransport()
    try:
        quiet = await sandboxes.endpoint("quiet", str(root / "quiet"), b"quiet-key")
        printer = await sandboxes.endpoint("printer", str(root / "printer"), b"printer-key")
        await transport.advance(
            quiet,
            advance_payload(source=NOOP, instance_id="w", started_at="2030-01-01T00:00:00Z"),
        )
        alone = await warm_calls(transport, quiet, 200)

        advances = 0
        printing = asyncio.Event()

        async def print_until(done: asyncio.Event) -> float:
            nonlocal advances
            took = 0.0
            while not done.is_set():
                t = time.perf_counter()
                result = await transport.advance(
                    printer,
                    advance_payload(
                        source=PRINTER,
                        instance_id=f"p{advances}",
                        instance_uid=f"uid-p{advances}",
                        started_at="2030-01-01T00:00:00Z",
                    ),
                )
                assert result["outcome"]["kind"] == "Complete", result["outcome"]
                took = time.perf_counter() - t
                advances += 1
                printing.set()
            return took

        done = asyncio.Event()
        loud = asyncio.ensure_future(print_until(done))
        await printing.wait()  # one whole advance of it first: the runner's share is known
        during = await warm_calls(transport, quiet, 200)
        done.set()
        advance_seconds = await loud
    finally:
        await transport.close()
        sandboxes.stop_all()
    assert printer.socket is not None, "a local runner listens on a socket"
    store = History(Path(printer.socket).with_suffix(".history"))
    try:
        lines = []
        after = 0
        while page := store.logs("uid-p0", after=after, limit=1000):
            lines += page
            after = page[-1].seq
    finally:
        store.close()
    printed = [ln.message for ln in lines if ln.message.startswith("line ")]
    in_order = printed == [f"line {i}" for i in range(len(printed))]
    return {
        "printedLines": PRINTED,
        "visibleLines": len(printed),
        "visibleInOrder": in_order,
        "lastLine": lines[-1].message if lines else None,
        "printingAdvanceSeconds": round(advance_seconds, 2),
        "printingAdvancesDuringVictim": advances,
        "otherTenantDispatchP50MsAlone": alone["warmP50Ms"],
        "otherTenantDispatchP50MsDuring": during["warmP50Ms"],
        "otherTenantSlowdown": round(during["warmP50Ms"] / alone["warmP50Ms"], 2),
        "goalSlowdown": 1.1,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {"archive": archive(Path(tmp) / "archive")}
    with tempfile.TemporaryDirectory() as tmp:
        results["logs"] = asyncio.run(logs(Path(tmp)))
    write("history", results)


if __name__ == "__main__":
    main()
