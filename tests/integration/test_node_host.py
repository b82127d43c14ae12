"""What the dev node changes on the host is undone: checked on this host's real iptables,
and the image layers are reproducible (equal inputs, equal digests: the cache's premise)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tenantflow_dev.devcluster import images, node

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes iptables: needs root")


def _rules(table: str = "filter") -> str:
    return subprocess.run(
        ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True
    ).stdout


def test_kube_chains_and_their_quoted_jumps_are_removed() -> None:
    chain = "KUBE-TENANTFLOW-TEST"
    # in mangle: kube-router rewrites the filter table from a snapshot while it syncs, which
    # can undo a removal made in between (teardown removes after stopping it)
    node.remove_kube_chains("iptables", prefix=chain)  # a run killed half-way left it
    subprocess.run(["iptables", "-w", "-t", "mangle", "-N", chain], check=True)
    subprocess.run(
        [
            *("iptables", "-w", "-t", "mangle", "-A", "INPUT", "-m", "comment"),
            *("--comment", "tenantflow test - a quoted comment", "-j", chain),
        ],
        check=True,
    )
    assert chain in _rules("mangle")
    # only the test's chain: the node's own KUBE-* chains (kube-router's, kube-proxy's) are
    # live while the suite runs, and wiping them would open every pod until their next sync
    lasting = {"-N KUBE-ROUTER-FORWARD", "-N KUBE-ROUTER-INPUT", "-N KUBE-SERVICES"}
    before = lasting & set(_rules().splitlines())
    node.remove_kube_chains("iptables", prefix=chain)
    assert chain not in _rules("mangle"), _rules("mangle")
    assert before <= set(_rules().splitlines()), "the node's own chains are left alone"


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
