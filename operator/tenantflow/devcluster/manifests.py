"""Objects every dev cluster starts with: a default StorageClass and kwok's fake nodes."""

from __future__ import annotations

import yaml

STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    # The controller-manager's hostpath provisioner: real PVs under /tmp/hostpath_pv.
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


def fake_node(name: str, zone: str) -> dict[str, object]:
    """A Node kwok manages (annotation selector) with room for many pods."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "topology.kubernetes.io/zone": zone,
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


def bootstrap(nodes: int) -> str:
    """A multi-document YAML stream for `kubectl apply -f -`."""
    docs = [STORAGE_CLASS] + [fake_node(f"kwok-node-{i}", f"zone-{i}") for i in range(nodes)]
    return yaml.safe_dump_all(docs, sort_keys=False)
