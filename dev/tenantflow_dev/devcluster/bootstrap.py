"""Objects every dev cluster starts with: a default StorageClass and kwok's fake nodes."""

from __future__ import annotations

import yaml

STORAGE_CLASS: dict[str, object] = {
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


def storage_class(real_node: bool) -> dict[str, object]:
    """With a real node, volumes come from the dev provisioner (pod-writable directories)."""
    from tenantflow_dev.devcluster import provisioner

    if not real_node:
        return STORAGE_CLASS
    return {**STORAGE_CLASS, "provisioner": provisioner.NAME}


def fake_node(name: str, zone: str, *, tainted: bool = False) -> dict[str, object]:
    """A Node kwok manages (annotation selector) with room for many pods; tainted when a
    real node exists, so that only pods which ask for a fake node land there."""
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
        "spec": {"taints": [FAKE_TAINT] if tainted else []},
        "status": {"allocatable": resources, "capacity": resources},
    }


FAKE_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}


def bootstrap(nodes: int, *, real_node: bool = False) -> str:
    """A multi-document YAML stream for `kubectl apply -f -`."""
    docs = [storage_class(real_node)]
    docs += [fake_node(f"kwok-node-{i}", f"zone-{i}", tainted=real_node) for i in range(nodes)]
    if real_node:
        from tenantflow_dev.devcluster import node

        docs += node.router_rbac()
    return yaml.safe_dump_all(docs, sort_keys=False)
