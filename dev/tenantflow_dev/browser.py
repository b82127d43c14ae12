"""The web UI under test: `tenantflow ui` as a process, and how to start Debian's Chromium
for Playwright (its own browser download does not work here). Shared by the e2e tests
and the benchmark."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# no background traffic: this machine's network is closed, and tests stay on loopback
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def start_ui(kubeconfig: Path, log: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`tenantflow ui` on a free port with this kubeconfig: (process, the URL it printed,
    its token included)."""
    err = log.open("w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantflow", "--kubeconfig", str(kubeconfig), "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=err,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    found = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
    if not found:
        proc.kill()
        raise RuntimeError(f"tenantflow ui printed no URL: {line!r}")
    return proc, found.group(1)
