"""bench/results/latest.json and latest.png: the headline numbers against their goals.

Built from the per-benchmark JSON files; a key is null until its benchmark exists.
"""

from __future__ import annotations

import json
from typing import Any

from bench.machine import RESULTS, machine


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["results"] if path.exists() else {}


# key -> (goal, True when higher is better)
GOALS: dict[str, tuple[float, bool]] = {
    "starts_per_s": (300, True),
    "completions_per_s": (300, True),
    "backlog_starts_per_s": (300, True),
    "backlog_completions_per_s": (300, True),
    "waiting_instances": (50000, True),
    "operator_rss_mib_at_waiting": (1024, False),
    "event_waiting_instances": (50000, True),
    "operator_rss_mib_at_event_waiting": (1024, False),
    "wake_p99_s": (1.0, False),
    "event_p99_s": (0.5, False),
    "kube_writes_per_instance": (3, False),
    "dispatch_p50_ms": (5, False),
    "sandbox_cold_start_s": (5, False),
    "sandbox_wake_from_zero_s": (1.5, False),  # issue 37.3: p50 < 1.5 s on the dev node
    "ui_first_screen_s": (1.0, False),  # the instance list, 50,000 instances in the cluster
    "ui_archived_first_screen_s": (1.0, False),  # a namespace's, its instances archived
    # issue 34.5: 1,000,000 archived over 100 tenants; a step printing 100,000 lines
    "archive_page_by_attribute_p99_ms": (100, False),
    "log_lines_visible_of_100000": (100_000, True),
    "other_tenant_dispatch_slowdown_while_printing": (1.1, False),
    # against the peers (make bench-peers): 1 = as fast as they are
    "vs_temporal_completions": (1, True),
    "vs_dbos_completions": (1, True),
    "fraction_of_api_ceiling": (0.6, True),  # issue 40
    "cpu_ms_per_instance": (12, False),  # issue 40: every component, workload A
}
PEER_KEYS = (
    "vs_temporal_starts",
    "vs_temporal_completions",
    "vs_dbos_starts",
    "vs_dbos_completions",
    "fraction_of_api_ceiling",
)


def chart(latest: dict[str, Any]) -> None:
    """latest.png: each headline as a fraction of its goal (1 = goal met exactly)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in GOALS if latest.get(k)]
    scores = []
    for key in keys:
        goal, higher = GOALS[key]
        scores.append(min(2.0, latest[key] / goal if higher else goal / latest[key]))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(keys) + 1.2))
    colors = ["#2e7d32" if s >= 1 else "#c62828" for s in scores]
    ax.barh(keys, scores, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    for i, key in enumerate(keys):
        goal, higher = GOALS[key]
        ax.text(
            0.02,
            i,
            f"{latest[key]:g} ({'≥' if higher else '≤'} {goal:g})",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "linewidth": 0},
        )
    ax.set_xlim(0, 2)
    ax.set_xlabel("fraction of goal (capped at 2; right of the line = met)")
    ax.set_title(f"tenantflow on {latest['machine']['cores']} cores, {latest['machine']['cpu']}")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(RESULTS / "latest.png", dpi=110)
    plt.close(fig)


def main() -> None:
    throughput, sandbox, latency = _load("throughput"), _load("sandbox"), _load("latency")
    pods, history, archive_run = _load("pods"), _load("history"), _load("archive")
    archive, logs = history.get("archive") or {}, history.get("logs") or {}
    scale, scale_event, peers = _load("scale"), _load("scale_event"), _load("peers")
    latest = {
        "starts_per_s": throughput.get("starts_per_s"),
        "completions_per_s": throughput.get("completions_per_s"),
        "backlog_starts_per_s": (throughput.get("backlog") or {}).get("starts_per_s"),
        "backlog_completions_per_s": (throughput.get("backlog") or {}).get("completions_per_s"),
        "kube_writes_per_instance": throughput.get("kube_writes_per_instance"),
        "dispatch_p50_ms": pods.get("warmP50Ms"),  # through the cluster transport, to a pod
        "dispatch_p50_ms_paced": pods.get("warmPacedP50Ms"),  # the same, calls 50 ms apart
        "dispatch_p50_ms_local_jail": sandbox.get("warmP50Ms"),
        "sandbox_cold_start_s": pods.get("coldStartSeconds"),
        "sandbox_wake_from_zero_s": pods.get("wakeFromZeroSeconds"),
        "waiting_instances": scale.get("waiting_instances"),
        "operator_rss_mib_at_waiting": scale.get("operator_rss_mib_at_waiting"),
        "ui_first_screen_s": scale.get("ui_first_screen_s"),
        "ui_instances_page_ms": scale.get("ui_instances_page_ms"),
        "ui_archived_first_screen_s": archive_run.get("ui_archived_first_screen_s"),
        "archived_per_s": archive_run.get("archived_per_s"),
        "archive_page_by_attribute_p99_ms": (archive.get("pageOf50ByAttribute") or {}).get("p99Ms"),
        "log_lines_visible_of_100000": logs.get("visibleLines"),
        "other_tenant_dispatch_slowdown_while_printing": logs.get("otherTenantSlowdown"),
        "event_waiting_instances": scale_event.get("waiting_instances"),
        "operator_rss_mib_at_event_waiting": scale_event.get("operator_rss_mib_at_waiting"),
        "wake_p99_s": latency.get("wake_p99_s"),
        "event_p99_s": latency.get("event_p99_s"),
        **{key: peers.get(key) for key in PEER_KEYS},
        "cpu_ms_per_instance": ((peers.get("tenantflow") or {}).get("three") or {}).get(
            "cpu_ms_per_instance_total"
        ),
        "machine": machine(),
        "goals": {k: {"goal": g, "higherIsBetter": h} for k, (g, h) in GOALS.items()},
    }
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    chart(latest)
    print(json.dumps(latest, indent=2))


if __name__ == "__main__":
    main()
