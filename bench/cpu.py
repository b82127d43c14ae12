"""CPU per component during a run, from /proc: where the cores go per instance.

Each live process's user+system time plus that of its children it has reaped (a zygote's
forked advances, a shim's containers), grouped by what it is. A snapshot before and after
a run, subtracted, divided by the instances: CPU milliseconds per instance by component,
the figure that says which part stands between a run and more instances per second.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
# the first pattern found in a process's command line names its group
GROUPS = (
    ("kube-apiserver", "kube-apiserver"),
    ("etcd", "/etcd "),
    ("operator", "-m tenantflow --kubeconfig"),  # bench's OperatorProcess
    ("operator", "-m tenantflow operator"),  # the chart's
    ("sandbox runner", "tenantflow.sandbox.pod.runner"),
    ("sandbox zygote", "tenantflow.sandbox.pod.zygote"),  # and its forked advances
    ("egress", "tenantflow.egress"),
    ("kubelet", "kubelet "),
    ("containerd", "containerd"),
    ("kube-router", "kube-router"),
    ("kube-proxy", "kube-proxy"),
    ("controllers", "kube-controller-manager"),
    ("controllers", "kube-scheduler"),
    ("controllers", "kwok "),
    ("bench", "-m bench"),  # the load generator
)


def _group(cmdline: str) -> str:
    return next((name for name, pattern in GROUPS if pattern in cmdline), "other")


def snapshot() -> dict[str, float]:
    """CPU seconds by group, now."""
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        group = _group(cmdline) if cmdline else "kernel"
        out[group] = out.get(group, 0.0) + (utime + stime + cutime + cstime) / TICK
    return out


def per_instance_ms(
    before: dict[str, float], after: dict[str, float], count: int
) -> dict[str, float]:
    """CPU milliseconds per instance by group, biggest first (those above 0.05 ms)."""
    used = {g: (after.get(g, 0.0) - before.get(g, 0.0)) * 1000 / count for g in after}
    return {g: round(ms, 2) for g, ms in sorted(used.items(), key=lambda kv: -kv[1]) if ms > 0.05}
