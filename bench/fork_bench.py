"""Where a sandbox advance's CPU goes: the engine's own work in a warm process, fork() and
exit of the warmed-up worker host, and the copy-on-write faults of a first advance in a
fresh child (what process-per-advance isolation costs, bench/README.md).

    python -m bench fork
    BENCH_IMAGE=sandbox python -m bench fork   # on the sandbox image's Python, not this one
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from bench import image_root
from bench.machine import write
from bench.workloads import NO_STEPS, THREE_ASYNC_STEPS, THREE_STEPS
from tenantflow.sandbox.pod import worker
from tenantflow.sandbox.protocol.payload import advance_payload

RUNS = 300
RUNS_PER_CHILD = 5


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


def _advance(data: str, instance: str, source: str = THREE_STEPS) -> None:
    payload = advance_payload(
        source=source, instance_id=instance, started_at="2030-01-01T00:00:00Z"
    )
    result = worker.run(payload, data, "bench")
    assert result["outcome"]["kind"] == "Complete", result


def _forked(body: Callable[[int], None], runs: int) -> tuple[float, float]:
    """CPU ms and minor faults per child, each child running `body(i)` then exiting."""
    cpu, faults = _cpu_s(), _faults()
    for i in range(runs):
        pid = os.fork()
        if pid == 0:
            try:
                body(i)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    return (_cpu_s() - cpu) * 1000 / runs, (_faults() - faults) / runs


def measure(data: str) -> dict[str, float]:
    """The forked runs first: an advance with a sync step starts a thread pool, which a
    child forked afterwards would wait on forever (the zygote never runs one either)."""
    worker.warm_up(data)  # as the zygote does before it forks
    fork_exit, fork_faults = _forked(lambda i: None, RUNS)
    fresh, fresh_faults = _forked(lambda i: _advance(data, f"fresh-{i}"), RUNS)
    # the same child's cost without the steps' thread, and without any step: what the
    # advance's own set-up (event loop, SQLite, loading the code) costs in a fresh child
    fresh_async, async_faults = _forked(
        lambda i: _advance(data, f"async-{i}", THREE_ASYNC_STEPS), RUNS
    )
    fresh_none, none_faults = _forked(lambda i: _advance(data, f"none-{i}", NO_STEPS), RUNS)

    def several(i: int) -> None:
        for k in range(RUNS_PER_CHILD):
            _advance(data, f"reused-{i}-{k}")

    reused, reused_faults = _forked(several, RUNS // RUNS_PER_CHILD)
    for i in range(20):
        _advance(data, f"warm-{i}")
    cpu = _cpu_s()
    for i in range(RUNS):
        _advance(data, f"in-process-{i}")
    in_process = (_cpu_s() - cpu) * 1000 / RUNS
    return {
        "engine_in_warm_process_cpu_ms": round(in_process, 2),
        "fork_exit_cpu_ms": round(fork_exit, 2),
        "fork_exit_faults": round(fork_faults),
        "fresh_child_advance_cpu_ms": round(fresh, 2),
        "fresh_child_advance_faults": round(fresh_faults),
        "fresh_child_async_steps_cpu_ms": round(fresh_async, 2),
        "fresh_child_async_steps_faults": round(async_faults),
        "fresh_child_no_step_cpu_ms": round(fresh_none, 2),
        "fresh_child_no_step_faults": round(none_faults),
        "reused_child_cpu_ms_per_advance": round(reused / RUNS_PER_CHILD, 2),
        "reused_child_faults_per_advance": round(reused_faults / RUNS_PER_CHILD),
        "runs_per_reused_child": RUNS_PER_CHILD,
    }


def main() -> None:
    """Measured in a fresh interpreter holding only what a zygote holds: fork's cost
    grows with the parent's memory, and `python -m bench` has imported every benchmark.
    With BENCH_IMAGE=sandbox, that interpreter is the sandbox image's (image_root.py)."""
    t0 = time.perf_counter()
    name = image_root.image_name()
    with contextlib.ExitStack() as stack:
        if name is None:
            argv = [sys.executable, "-m", "bench.fork_bench", "--measure"]
        else:
            root = stack.enter_context(image_root.unpacked(name))
            argv = image_root.python_argv(root, "-m", "bench.fork_bench", "--measure")
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
    results = json.loads(done.stdout.strip().splitlines()[-1])
    write("fork", {**results, "image": name, "seconds": round(time.perf_counter() - t0, 1)})


if __name__ == "__main__" and sys.argv[1:] == ["--measure"]:
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps({**measure(tmp), "python": platform.python_version()}))
elif __name__ == "__main__":
    main()
