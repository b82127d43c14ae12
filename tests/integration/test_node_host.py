"""What the dev node changes on the host is undone: checked on this host's real iptables,
and the image layers are reproducible (equal inputs, equal digests: the cache's premise)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tenantflow.devcluster import images, node

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes iptables: needs root")


def _rules() -> str:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout


def test_kube_chains_and_their_quoted_jumps_are_removed() -> None:
    chain = "KUBE-TENANTFLOW-TEST"
    subprocess.run(["iptables", "-w", "-N", chain], check=True)
    subprocess.run(
        [
            *("iptables", "-w", "-A", "INPUT", "-m", "comment"),
            *("--comment", "kube-router netpol - a quoted comment", "-j", chain),
        ],
        check=True,
    )
    assert chain in _rules()
    node.remove_kube_chains("iptables")
    assert chain not in _rules(), _rules()


def test_layers_are_reproducible(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "a.py").write_text("A = 1\n")
    (tree / "pkg" / "run").write_text("#!/bin/sh\n")
    (tree / "pkg" / "run").chmod(0o755)
    digests = set()
    for n in range(2):
        os.utime(tree / "pkg" / "a.py", (n * 1000, n * 1000))  # file times must not matter
        out = tmp_path / f"layer{n}.tar"
        images._write_tar(out, [(tree / "pkg", "usr/lib/pkg")], dirs={"data": 10001})
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1
