"""The security settings every pod the operator runs in a tenant namespace shares (the
sandbox, the egress proxy): what Pod Security `restricted` requires, in one place."""

from __future__ import annotations

from typing import Any


def pod_security(**extra: Any) -> dict[str, Any]:
    """A pod's securityContext: non-root, the runtime's default seccomp profile."""
    return {"runAsNonRoot": True, **extra, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security(uid: int) -> dict[str, Any]:
    """A container's securityContext: its own uid and gid, no privilege escalation, no
    capabilities, a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
    }
