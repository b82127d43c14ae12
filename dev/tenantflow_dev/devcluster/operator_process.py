"""The operator as a child process, for tests, benchmarks and the chaos suite.

Its command line names the cluster's kubeconfig, so `dev-cluster down` (which stops every
process mentioning the cluster directory) stops it too. On a dev cluster with a real node,
tenant sandboxes are real pods reached over the pod network (the cluster transport, as in a
cluster); without one, they are local jails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from tenantflow.errors import DevClusterError
from tenantflow_dev.devcluster import images, node
from tenantflow_dev.devcluster.cluster import DevCluster
from tenantflow_dev.devcluster.process import free_port


def protected_cidrs() -> tuple[str, ...]:
    return (node.POD_CIDR, node.SERVICE_CIDR, f"{node.NODE_IP}/32")


def sandbox_transport(kubeconfig: Path) -> str:
    """`cluster` when the dev cluster behind `kubeconfig` has a real node, else `local`."""
    cluster = DevCluster()
    return "cluster" if kubeconfig.parent == cluster.dir and cluster.has_node() else "local"


class OperatorProcess:
    """The real operator (`python -m tenantflow operator`) as a child process."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        identity: str | None = None,
        metrics_port: int | None = None,
        sandboxes: str | None = None,
    ) -> None:
        self.kubeconfig, self.log_path = kubeconfig, log_path
        # stable across restart(): the same identity takes its shards back at once (the
        # process before it is dead), as a container restarted in the same pod does
        self.identity = identity or f"dev-{uuid.uuid4().hex[:8]}"
        self.sandboxes = sandboxes or sandbox_transport(kubeconfig)
        self.metrics_port = metrics_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        """Start and wait for the liveness endpoint (the operator has logged in)."""
        liveness = free_port()
        env = dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            TENANTFLOW_LOG_FORMAT="json",
            TENANTFLOW_SANDBOX_TRANSPORT=self.sandboxes,
            TENANTFLOW_SANDBOX_IMAGE=images.ref("sandbox"),
            TENANTFLOW_ALLOWED_SANDBOX_IMAGES=f"{images.REPOSITORY}/*",
            # the dev cluster's pods, services and node address (tests add others beside it)
            TENANTFLOW_PROTECTED_CIDRS=",".join(protected_cidrs()),
            TENANTFLOW_IDENTITY=self.identity,
        )
        argv = [
            sys.executable,
            "-m",
            "tenantflow",
            "--kubeconfig",
            str(self.kubeconfig),
            "operator",
            "--metrics-port",
            str(self.metrics_port),
            "--liveness-port",
            str(liveness),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise DevClusterError(f"the operator exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()  # never leave a half-started operator behind
                    raise DevClusterError(
                        f"the operator did not become live:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly like a crashed pod."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:]
