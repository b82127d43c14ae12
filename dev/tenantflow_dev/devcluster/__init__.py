"""The local control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok.

Built from Go modules (no Docker needed) and started on loopback ports, like envtest, but
with real controllers and fake kwok nodes so Deployments, StatefulSets and PVCs work.
"""

from tenantflow_dev.devcluster.cluster import DevCluster

__all__ = ["DevCluster"]
