"""bench/results/latest.json: the headline numbers under the keys issue 11 asks for.

Built from the per-benchmark JSON files; a key is null until its benchmark exists.
"""

from __future__ import annotations

import json
from typing import Any

from bench.machine import RESULTS, machine


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["results"] if path.exists() else {}


def main() -> None:
    throughput, sandbox, latency = _load("throughput"), _load("sandbox"), _load("latency")
    scale = _load("scale")
    latest = {
        "starts_per_s": throughput.get("starts_per_s"),
        "completions_per_s": throughput.get("completions_per_s"),
        "kube_writes_per_instance": throughput.get("kube_writes_per_instance"),
        "dispatch_p50_ms": sandbox.get("warmP50Ms"),
        "waiting_instances": scale.get("waiting_instances"),
        "operator_rss_mib_at_waiting": scale.get("operator_rss_mib_at_waiting"),
        "wake_p99_s": latency.get("wake_p99_s"),
        "event_p99_s": latency.get("event_p99_s"),
        "machine": machine(),
    }
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    print(json.dumps(latest, indent=2))


if __name__ == "__main__":
    main()
