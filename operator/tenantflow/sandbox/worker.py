"""Code that runs inside a sandbox worker process: limits, code cache, one advance per call."""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

from tenantflow.durations import parse_time
from tenantflow.engine.errors import EngineError
from tenantflow.engine.executor import advance
from tenantflow.engine.journal import load as load_journal
from tenantflow.engine.loader import WorkflowFn, load
from tenantflow.engine.options import EngineLimits
from tenantflow.engine.outcome import Advance, Errored
from tenantflow.engine.wire import (
    advance_to_wire,
    defaults_from_wire,
    inbox_from_wire,
    limits_from_wire,
)
from tenantflow.storage.database import TenantDatabase
from tenantflow.storage.outputs import SqliteOutputStore

_code: dict[str, WorkflowFn] = {}  # compiled once per revision (sha256) per worker
_db: TenantDatabase | None = None
_outputs: SqliteOutputStore | None = None
_tenant = ""
CPU_GRACE_SECONDS = 2
MAX_PROCESSES = 256


def init(data_dir: str, tenant: str, memory_bytes: int) -> None:
    """Worker initializer: limits first, then the tenant database."""
    global _db, _outputs, _tenant
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    if os.getuid() != 0:  # root ignores it; the local jail uses a pids cgroup instead
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    for var in [v for v in os.environ if v.startswith(("TENANTFLOW_", "KUBE"))]:
        del os.environ[var]
    scratch = Path(data_dir) / "scratch"
    scratch.mkdir(exist_ok=True)
    os.chdir(scratch)
    _tenant = tenant
    _db = TenantDatabase(Path(data_dir) / "tenant.sqlite3")
    _outputs = SqliteOutputStore(_db)


def _cpu_budget(seconds: float) -> None:
    """Let this call use `seconds` more CPU; SIGXCPU kills a worker stuck in a busy loop."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime)
    soft = used + int(seconds) + CPU_GRACE_SECONDS
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)  # a hard limit could never rise again
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """One advance for one instance; everything in and out is JSON-shaped."""
    rev = payload["revision"]
    limits = limits_from_wire(payload["limits"])
    _cpu_budget(limits.max_step_timeout + limits.batch_seconds)
    try:
        fn = _code.get(rev["sha256"])
        if fn is None:
            fn = _code[rev["sha256"]] = load(
                rev["source"],
                rev.get("entrypoint", "run"),
                filename=f"<{rev.get('name', 'workflow')}>",
            )
    except EngineError as exc:
        return _failed(payload, exc.reason, str(exc))
    storage = payload.get("storage") or {}
    assert _db is not None
    _db.limit(max_bytes=storage.get("maxBytes"), ops_per_second=storage.get("opsPerSecond"))
    try:
        return advance_to_wire(_advance(fn, payload, limits))
    except (SystemExit, KeyboardInterrupt) as exc:  # tenant code tried to end the process
        return _failed(payload, type(exc).__name__, f"workflow code raised {exc!r} in run()")


def _failed(payload: dict[str, Any], name: str, message: str) -> dict[str, Any]:
    """An Errored outcome that keeps the journal it was given."""
    return advance_to_wire(
        Advance(
            journal=load_journal(payload.get("journal", [])),
            outcome=Errored({"name": name, "message": message}),
            changed=False,
        )
    )


def _advance(fn: WorkflowFn, payload: dict[str, Any], limits: EngineLimits) -> Advance:
    inst = payload["instance"]
    return advance(
        fn,
        journal=load_journal(payload.get("journal", [])),
        params=inst.get("params"),
        instance_id=inst["id"],
        started_at=parse_time(inst["startedAt"]),
        inbox=inbox_from_wire(payload.get("inbox", [])),
        tenant=_tenant,
        db=_db,
        defaults=defaults_from_wire(payload["defaults"]),
        limits=limits,
        offload=_outputs,
    )
