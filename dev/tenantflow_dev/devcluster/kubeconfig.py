"""Kubeconfig files with the credentials embedded, so any client can use them unchanged."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from tenantflow_dev.devcluster.pki import KeyPair


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write(
    path: Path, *, server: str, ca: Path, client: KeyPair, name: str = "tenantflow-dev"
) -> Path:
    """Write a single-context kubeconfig for `client` talking to `server`."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path
