"""The sandbox runner service: authenticated `advance` calls executed in worker processes.

    python -m tenantflow.sandbox.runner --data /data --tenant acme (--port 8080 | --socket P)

The HMAC key comes from $TENANTFLOW_HMAC_KEY and is removed from the environment before
any worker starts. A worker that dies (CPU limit, memory, os._exit, a segfault) or hangs
is replaced; the caller gets a 503 naming the reason, and the runner keeps serving.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from tenantflow.observability.logging import configure, get_logger
from tenantflow.sandbox import auth, worker

log = get_logger("tenantflow.runner")
ADVANCES = Counter("tenantflow_runner_advances_total", "Advance calls.", ["result"])
ADVANCE_SECONDS = Histogram("tenantflow_runner_advance_seconds", "Advance call latency.")
MAX_BODY = 32 * 1024 * 1024


class Runner:
    def __init__(
        self,
        *,
        key: bytes,
        data_dir: str,
        tenant: str,
        workers: int,
        memory_bytes: int,
        request_timeout: float,
    ) -> None:
        self.key = key
        self.data_dir, self.tenant = data_dir, tenant
        self.workers, self.memory_bytes = workers, memory_bytes
        self.request_timeout = request_timeout
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=worker.init,
            initargs=(self.data_dir, self.tenant, self.memory_bytes),
        )
        for _ in range(self.workers):  # pre-fork: the first request finds warm workers
            pool.submit(os.getpid)
        return pool

    def _replace_pool(self) -> None:
        old, self.pool = self.pool, self._new_pool()
        for proc in list(getattr(old, "_processes", {}).values()):
            proc.kill()
        old.shutdown(wait=False, cancel_futures=True)

    async def advance(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            auth.verify(self.key, body, request.headers)
        except auth.AuthError as exc:
            ADVANCES.labels("unauthorized").inc()
            return web.json_response(
                {"error": {"name": "Unauthorized", "message": str(exc)}}, status=401
            )
        payload = json.loads(body)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.request_timeout):
                result = await loop.run_in_executor(self.pool, worker.run, payload)
        except (BrokenProcessPool, TimeoutError) as exc:
            reason = (
                "a worker process died (CPU or memory limit, os._exit, crash)"
                if isinstance(exc, BrokenProcessPool)
                else f"the advance did not finish within {self.request_timeout:.0f}s"
            )
            log.warning("worker lost", tenant=self.tenant, reason=reason)
            self._replace_pool()
            ADVANCES.labels("worker-lost").inc()
            return web.json_response(
                {"error": {"name": "SandboxWorkerLost", "message": reason}}, status=503
            )
        ADVANCE_SECONDS.observe(time.perf_counter() - started)
        ADVANCES.labels("ok").inc()
        return web.json_response(result)

    async def _shutdown(self, _: web.Application) -> None:
        await asyncio.to_thread(lambda: self.pool.shutdown(wait=False, cancel_futures=True))

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True, "tenant": self.tenant})

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/v1/advance", self.advance)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.on_shutdown.append(self._shutdown)
        return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="the tenant's data directory")
    parser.add_argument("--tenant", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--socket")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-bytes", type=int, default=1 << 30)
    parser.add_argument("--request-timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    configure()
    key = os.environ.pop("TENANTFLOW_HMAC_KEY", "").encode()
    if not key:
        parser.error("TENANTFLOW_HMAC_KEY is not set")
    runner = Runner(
        key=key,
        data_dir=args.data,
        tenant=args.tenant,
        workers=args.workers,
        memory_bytes=args.memory_bytes,
        request_timeout=args.request_timeout,
    )
    log.info("runner starting", tenant=args.tenant, socket=args.socket, port=args.port)
    web.run_app(runner.app(), port=args.port, path=args.socket, print=None)


if __name__ == "__main__":
    main()
