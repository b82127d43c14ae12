"""A fault-injecting proxy between a client (the operator) and the API server.

Plain HTTP in front, the kubeconfig's TLS client credentials behind. A seeded fraction of
requests meet a fault of the kinds a real control plane produces:

- `error500`: an internal error before the request reaches the API server;
- `conflict409`: a write refused as a conflict (what a concurrent writer causes);
- `timeout504`: the request is held, then answered 504 without being applied;
- `lost_response`: a write IS applied, but its response is lost (500) — the nastiest one;
- `dropped`: the connection closes without an answer;
- `watch_cut`: a watch stream ends abruptly after a random time.

`GET /__faults` returns the counts by kind; `POST /__faults?rate=R` changes the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tenantflow.errors import DevClusterError
from tenantflow_dev.devcluster.process import free_port

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HOP_BY_HOP = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "keep-alive", "authorization"}
)
KINDS_BY_REQUEST = {
    "write": ("error500", "conflict409", "timeout504", "lost_response", "dropped"),
    "read": ("error500", "timeout504", "dropped"),
    "watch": ("error500", "watch_cut"),
}
CONTROL_PATH = "/__faults"


@dataclass
class FaultPlan:
    rate: float = 0.05  # fraction of requests that meet a fault
    hold_seconds: float = 3.0  # how long a `timeout504` is held
    seed: int = 0


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}
    return web.json_response({**body, "reason": reason, "code": code}, status=code)


def upstream_from_kubeconfig(path: Path) -> tuple[str, ssl.SSLContext]:
    """The server URL and a TLS context carrying the kubeconfig's client certificate."""
    doc = yaml.safe_load(path.read_text())
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]
    user = next(u for u in doc["users"] if u["name"] == context["user"])["user"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain wants files
        cert, key = Path(tmp, "cert"), Path(tmp, "key")
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        ctx.load_cert_chain(cert, key)
    return cluster["server"].rstrip("/"), ctx


class FaultProxy:
    def __init__(self, upstream: str, tls: ssl.SSLContext, plan: FaultPlan) -> None:
        self.upstream, self.tls, self.plan = upstream, tls, plan
        self.rng = random.Random(plan.seed)
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self.session: aiohttp.ClientSession | None = None

    def pick(self, method: str, watch: bool) -> str | None:
        """The fault for this request, if any (seeded, so a run can be reproduced)."""
        if self.rng.random() >= self.plan.rate:
            return None
        kind = "watch" if watch else "write" if method in WRITES else "read"
        return self.rng.choice(KINDS_BY_REQUEST[kind])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == CONTROL_PATH:
            if request.method == "POST":
                self.plan.rate = float(request.query["rate"])
            return web.json_response(
                {"rate": self.plan.rate, "forwarded": self.forwarded, "injected": self.injected}
            )
        watch = request.query.get("watch") in ("true", "1")
        fault = self.pick(request.method, watch)
        if fault:
            self.injected[fault] += 1
        if fault == "error500":
            return _status(500, "InternalError", "fault proxy: injected internal error")
        if fault == "conflict409":
            return _status(409, "Conflict", "fault proxy: injected conflict; read and retry")
        if fault == "timeout504":
            await asyncio.sleep(self.plan.hold_seconds)
            return _status(504, "Timeout", "fault proxy: the request did not complete in time")
        if fault == "dropped":
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never sent: the connection is gone
        return await self._forward(request, fault)

    async def _forward(self, request: web.Request, fault: str | None) -> web.StreamResponse:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        self.forwarded += 1
        try:
            upstream = await self.session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body or None,
                ssl=self.tls,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return _status(503, "ServiceUnavailable", f"fault proxy: upstream unreachable: {exc}")
        async with upstream:
            if fault == "lost_response":
                await upstream.read()  # applied upstream; the client never hears of it
                return _status(500, "InternalError", "fault proxy: response lost after apply")
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            cut_at = (
                asyncio.get_running_loop().time() + self.rng.uniform(0.5, 5.0)
                if fault == "watch_cut"
                else None
            )
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                    if cut_at is not None and asyncio.get_running_loop().time() > cut_at:
                        assert request.transport is not None
                        request.transport.close()
                        return response
            except (aiohttp.ClientError, ConnectionResetError):
                return response  # the API server went away mid-stream: so does the client
            await response.write_eof()
            return response

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def write_kubeconfig(path: Path, port: int) -> Path:
    """A kubeconfig that sends a client through the proxy (no credentials needed in front)."""
    name = "tenantflow-faults"
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": name, "user": {"username": "proxy", "password": "proxy"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def serve(kubeconfig: Path, port: int, plan: FaultPlan) -> None:
    server, tls = upstream_from_kubeconfig(kubeconfig)
    proxy = FaultProxy(server, tls, plan)
    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"listening": port, "upstream": server}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.close()
        await runner.cleanup()


class FaultProxyProcess:
    """The proxy as a child process (it outlives the operators it serves, like a network)."""

    def __init__(self, kubeconfig: Path, workdir: Path, plan: FaultPlan) -> None:
        self.kubeconfig, self.workdir, self.plan = kubeconfig, workdir, plan
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Path:
        """Start; return the kubeconfig that routes a client through the proxy."""
        argv = [sys.executable, "-m", "tenantflow_dev.faultproxy"]
        argv += ["--kubeconfig", str(self.kubeconfig), "--port", str(self.port)]
        argv += ["--rate", str(self.plan.rate), "--hold-seconds", str(self.plan.hold_seconds)]
        argv += ["--seed", str(self.plan.seed)]
        with open(self.workdir / "faultproxy.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.stats()
                return write_kubeconfig(self.workdir / "faults.kubeconfig", self.port)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise DevClusterError("the fault proxy did not start") from None
                time.sleep(0.2)

    def _control(self, method: str, query: str = "") -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{CONTROL_PATH}{query}"
        req = urllib.request.Request(url, method=method)
        with urllib.request.urlopen(req, timeout=5) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer

    def stats(self) -> dict[str, Any]:
        """{"rate", "forwarded", "injected": {kind: count}}."""
        return self._control("GET")

    def set_rate(self, rate: float) -> None:
        self._control("POST", f"?rate={rate}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the real cluster")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=FaultPlan.rate)
    parser.add_argument("--hold-seconds", type=float, default=FaultPlan.hold_seconds)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    plan = FaultPlan(rate=args.rate, hold_seconds=args.hold_seconds, seed=args.seed)
    asyncio.run(serve(args.kubeconfig, args.port, plan))


if __name__ == "__main__":
    main()
