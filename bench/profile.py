"""Where each component's CPU goes during a run: py-spy flame graphs and top-function tables.

    BENCH_PROFILE=1 python -m bench throughput

`sampled(tenant)` wraps the live run: py-spy records the operator, the tenant's sandbox
runner and its zygote (with the advances it forks, as far as py-spy's sampling catches
such short-lived children) without pausing them (--nonblocking: about 1 % of a core
each). Each writes `results/flame-<component>.svg` (the flame graph to publish) and
`results/profile.json` gets each component's top functions by samples, self and
inclusive: the table the README's CPU analysis quotes (issue 40).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.machine import write

RESULTS = Path(__file__).parent / "results"
PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 100  # samples per second
TOP = 25
# a component, and what its command line holds (the tenant's name follows `--tenant`)
COMPONENTS = (
    ("operator", "-m tenantflow --kubeconfig"),
    ("runner", "tenantflow.sandbox.pod.runner"),
    ("zygote", "tenantflow.sandbox.pod.zygote"),
)


def _pids(tenant: str) -> dict[str, int]:
    """The oldest process of each component (the runner and zygote: the tenant's)."""
    found: dict[str, tuple[float, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            started = float((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except OSError:
            continue
        line = b" ".join(argv).decode(errors="replace")
        for name, pattern in COMPONENTS:
            if pattern not in line or (name != "operator" and f"--tenant {tenant} " not in line):
                continue
            if name not in found or started < found[name][0]:
                found[name] = (started, int(entry.name))
    return {name: pid for name, (_, pid) in found.items()}


def _record(pid: int, out: Path, fmt: str, children: bool) -> subprocess.Popen[bytes]:
    argv = [str(PY_SPY), "record", "--nonblocking", "--pid", str(pid), "--rate", str(RATE)]
    argv += ["--format", fmt, "--output", str(out), "--function"]
    return subprocess.Popen(
        argv + (["--subprocesses"] if children else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def top(raw: Path, n: int = TOP) -> dict[str, Any]:
    """py-spy's collapsed stacks (`frame;frame;... count` per line) as the top functions
    by self samples and by inclusive samples (a frame counted once per stack)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[f, round(100 * c / total, 1)] for f, c in counter.most_common(n)]

    return {"samples": total, "self_percent": share(own), "inclusive_percent": share(inclusive)}


@contextlib.contextmanager
def sampled(tenant: str) -> Iterator[None]:
    """py-spy on the operator and the tenant's runner and zygote for the block's length."""
    pids = _pids(tenant)
    RESULTS.mkdir(exist_ok=True)
    running = [
        (name, fmt, _record(pid, RESULTS / f"{stem}-{name}.{ext}", fmt, name == "zygote"))
        for name, pid in pids.items()
        for fmt, stem, ext in (("flamegraph", "flame", "svg"), ("raw", "profile", "txt"))
    ]
    try:
        yield
    finally:
        for _, _, proc in running:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        tables: dict[str, Any] = {}
        for name, fmt, proc in running:
            _, err = proc.communicate(timeout=120)
            raw = RESULTS / f"profile-{name}.txt"
            if fmt == "raw" and raw.exists():
                tables[name] = {"pid": pids[name], **top(raw)}
                raw.unlink()  # the table keeps what the README needs; the SVG the rest
            elif fmt == "raw":
                tables[name] = {"pid": pids[name], "error": err.decode(errors="replace")[-500:]}
        write("profile", {"tenant": tenant, "rate_hz": RATE, "components": tables})
    missing = {name for name, _ in COMPONENTS} - pids.keys()
    if missing:
        print(f"  profile: no process found for {sorted(missing)}", flush=True)


if __name__ == "__main__":  # the tables of a raw file recorded by hand
    print(json.dumps(top(Path(sys.argv[1])), indent=1))
