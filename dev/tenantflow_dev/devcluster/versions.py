"""Pinned versions of the control-plane tools and where their binaries are cached."""

from __future__ import annotations

from pathlib import Path

from tenantflow.paths import cache_dir

KUBERNETES = "v1.37.2"  # newest k8s.io/kubernetes whose go.mod builds with Go 1.26
ETCD = "v3.6.16"
KWOK = "v0.8.0"
HELM = "v3.22.0"
KUBE_ROUTER = "v2.1.0"  # NetworkPolicy enforcement on the dev node (the only v2 served)
CLI_UTILS = "v0.37.2"  # sigs.k8s.io/cli-utils: kstatus, the health rules Flux and kubectl use

TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
    "kube-router",
    "kstatus",
    "kwok",
    "helm",
)
ARTIFACTS = (*TOOLS, "kwok-stages.yaml")  # kwok's Stage objects, taken from its module


def bin_dir() -> Path:
    """Binaries for the pinned versions; a version bump gets a fresh directory."""
    return cache_dir() / "bin" / KUBERNETES
