"""The sandbox runner service: authenticated `advance` calls executed in worker processes.

    python -m tenantflow.sandbox.runner --data /data --tenant acme (--port 8080 | --socket P)

The HMAC key comes from $TENANTFLOW_HMAC_KEY and is removed from the environment before
any worker starts. A worker that dies (CPU limit, memory, os._exit, a segfault) or hangs
is replaced; the caller gets a 503 naming the reason, and the runner keeps serving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import sys
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
        reap_strays: bool = False,
    ) -> None:
        self.key = key
        self.reap_strays = reap_strays
        self.in_flight = 0
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
        old = self.pool
        for proc in list((getattr(old, "_processes", None) or {}).values()):
            proc.kill()
        old.shutdown(wait=False, cancel_futures=True)
        self._reap()
        self.pool = self._new_pool()

    def _reap(self) -> None:
        """Kill what tenant code left behind (forked children, a fork bomb's remains).

        Only inside the sandbox's own pid namespace, where every process but the runner,
        the jail's init, multiprocessing's helpers and the pool's workers is tenant code.
        """
        if not self.reap_strays:
            return
        keep = {os.getpid(), os.getppid(), 1, *(getattr(self.pool, "_processes", None) or {})}
        keep |= _multiprocessing_helpers()
        for _ in range(100):  # a fork bomb keeps forking while we kill: repeat until quiet
            strays = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in keep]
            if not strays:
                return
            for pid in strays:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        log.warning("stray processes survived reaping", tenant=self.tenant)

    async def advance(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            auth.verify(self.key, body, request.headers)
        except auth.AuthError as exc:
            ADVANCES.labels("unauthorized").inc()
            return _error(401, "Unauthorized", str(exc))
        try:
            payload = validate(json.loads(body))
        except (ValueError, TypeError) as exc:
            ADVANCES.labels("bad-request").inc()
            return _error(400, "BadRequest", str(exc))
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self.in_flight += 1
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
            return _error(503, "SandboxWorkerLost", reason)
        except Exception as exc:  # a runner bug, not tenant code: say so, keep serving
            log.exception("advance failed", tenant=self.tenant)
            return _error(500, "SandboxError", f"{type(exc).__name__}: {exc}")
        finally:
            self.in_flight -= 1
        if not self.in_flight:  # a step's processes do not outlive its advance
            self._reap()
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


_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "revision": {"sha256": str, "source": str},
    "instance": {"id": str, "startedAt": str},
    "defaults": {"retries": dict, "timeout": (int, float), "eventTimeout": (int, float)},
    "limits": {"max_steps": int, "max_step_timeout": (int, float)},
}


def validate(payload: object) -> dict[str, object]:
    """The advance request's shape, checked before any worker sees it (400 otherwise)."""
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    for section, fields in _REQUIRED.items():
        value = payload.get(section)
        if not isinstance(value, dict):
            raise ValueError(f"{section!r} must be an object")
        for name, kind in fields.items():
            if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
                raise ValueError(f"{section}.{name} is missing or has the wrong type")
    for name in ("journal", "inbox"):
        if not isinstance(payload.get(name, []), list):
            raise ValueError(f"{name!r} must be a list")
    return payload


def _error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"error": {"name": name, "message": message}}, status=status)


def _multiprocessing_helpers() -> set[int]:
    """Pids of the forkserver and resource tracker (started lazily by multiprocessing)."""
    from multiprocessing import forkserver, resource_tracker

    pids = {
        getattr(forkserver._forkserver, "_forkserver_pid", None),
        getattr(resource_tracker._resource_tracker, "_pid", None),
    }
    return {p for p in pids if p}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data",
        default=os.environ.get("TENANTFLOW_DATA"),
        help="the tenant's data directory ($TENANTFLOW_DATA)",
    )
    parser.add_argument(
        "--tenant",
        default=os.environ.get("TENANTFLOW_TENANT"),
        help="the tenant's name ($TENANTFLOW_TENANT)",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--socket")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-bytes", type=int, default=1 << 30)
    parser.add_argument("--request-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--key-stdin",
        action="store_true",
        help="read the HMAC key from stdin instead of $TENANTFLOW_HMAC_KEY",
    )
    parser.add_argument(
        "--reap-strays",
        action="store_true",
        help="kill processes left by tenant code (only inside a pid namespace)",
    )
    args = parser.parse_args(argv)
    if not args.data or not args.tenant:
        parser.error("--data and --tenant (or TENANTFLOW_DATA and TENANTFLOW_TENANT) are required")
    configure()
    env_key = os.environ.pop("TENANTFLOW_HMAC_KEY", "")
    key = (sys.stdin.readline().strip() if args.key_stdin else env_key).encode()
    if not key:
        parser.error("no HMAC key: set TENANTFLOW_HMAC_KEY or pass it on stdin (--key-stdin)")
    runner = Runner(
        key=key,
        data_dir=args.data,
        tenant=args.tenant,
        workers=args.workers,
        memory_bytes=args.memory_bytes,
        request_timeout=args.request_timeout,
        reap_strays=args.reap_strays,
    )
    log.info("runner starting", tenant=args.tenant, socket=args.socket, port=args.port)
    web.run_app(runner.app(), port=args.port, path=args.socket, print=None)


if __name__ == "__main__":
    main()
