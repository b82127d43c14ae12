"""The sandbox runner: the trusted half of a tenant's sandbox, between operator and worker.

    python -I -m tenantflow.sandbox.pod.runner --tenant T (--port 8080 | --socket P)
        (--zygote-socket PATH | --jail-data DIR) (--key-file F | --key-stdin)

It holds the tenant's HMAC key and nothing of the tenant's: in a pod it is its own
container (the key is mounted only there, its processes are invisible to the worker
container), locally it is a host process outside the jail. Tenant code runs behind the
zygote (`sandbox.pod.zygote`), reached through a unix socket (pod) or passed descriptors
(local jail). The runner checks each request's MAC, hands the zygote one JSON frame, reads
one JSON frame back (size-capped, strictly checked, its logs capped) and signs its answer
for the operator. It pings the zygote every second: a stopped or dead zygote is replaced
(local jail) or reported on `/livez/worker`, which the worker container's liveness probe
reads (pod), within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from tenantflow import jsonsafe
from tenantflow.durations import format_time, parse_duration
from tenantflow.engine import queries as query_rules
from tenantflow.engine.attributes import MAX_LABEL_VALUE
from tenantflow.engine.env import (
    MAX_ANSWER_LINES,
    MAX_LOG_LINE_BYTES,
    MAX_STREAMED_ADVANCE_BYTES,
    MAX_STREAMED_ADVANCE_LINES,
)
from tenantflow.engine.secrets import Secrets
from tenantflow.engine.wire import child_results_from_wire, outcome_from_wire
from tenantflow.lifecycle import attributes
from tenantflow.observability.logging import configure, get_logger
from tenantflow.sandbox.pod import history_api, journal_window, worker, zygote
from tenantflow.sandbox.pod.isolation import IsolationCanary, canary_address
from tenantflow.sandbox.pod.link import WorkerLost, WorkerStarting, ZygoteLink
from tenantflow.sandbox.pod.query_store import QueryContexts
from tenantflow.sandbox.pod.redact import Redactor
from tenantflow.sandbox.pod.run_gate import RunBusy, RunGates
from tenantflow.sandbox.pod.vouch_store import Taker, Vouches, report_rejected
from tenantflow.sandbox.protocol import auth, frames, vouch
from tenantflow.sandbox.protocol.frames import MAX_RUNNING
from tenantflow.sandbox.protocol.payload import (
    ATTRIBUTES,
    BAD_REQUEST,
    NOT_ISOLATED,
    QUERY,
    advance_request,
    deadline_seconds,
)
from tenantflow.storage.history import History, HistoryError, HistoryFull

log = get_logger("tenantflow.runner")
PING = frames.encode({"op": "ping"})  # the zygote's liveness request
ADVANCES = Counter("tenantflow_runner_advances_total", "Advance calls.", ["result"])
ADVANCE_SECONDS = Histogram("tenantflow_runner_advance_seconds", "Advance call latency.")
ZYGOTE_RESTARTS = Counter("tenantflow_runner_worker_restarts_total", "Worker host restarts.")
HISTORY_REQUESTS = Counter(
    "tenantflow_runner_history_requests_total", "History requests by result.", ["result"]
)
QUERIES = Counter(
    "tenantflow_runner_queries_total",
    "Queries (GET /v1/queries on the people's port) by result.",
    ["result"],
)
ATTRIBUTES_IGNORED = Counter(
    "tenantflow_runner_attributes_ignored_total",
    "Search attributes of a worker's answer ignored: undeclared, malformed or too many "
    "(tenant code rewriting its answer). Should stay 0.",
)
LOG_LINES = Counter(
    "tenantflow_runner_log_lines_total", "Workflow log lines, kept or not.", ["result"]
)
MAX_BODY = frames.MAX_REQUEST
PING_EVERY = 1.0
PRUNE_EVERY = 3600.0  # seconds between two prunings of the history store
DEFAULT_RETENTION = 30 * 86400.0  # seconds the history keeps what it holds
PING_TIMEOUT = 2.0
OUTCOMES = frozenset(
    {"Complete", "Errored", "Waiting", "Yielded", "Compensating", "RolledBack", "RollbackFailed"}
)
# deaths a step brings on itself, charged to its attempts; any other (a SIGKILL from
# outside, a crash) is a lost worker, retried for the instance like an unreachable sandbox
CHARGED = frozenset({frames.OUT_OF_MEMORY, frames.STEP_TIMEOUT, frames.TOO_MANY_PROCESSES})
MAX_CAUSE_MESSAGE = 1000  # characters of a lost worker's account
MAX_BAD_REQUEST = 1000  # characters of a worker's account of a payload it could not run


def _note_progress(running: dict[str, int], progress: Any) -> None:
    """Record a step attempt the child says it started; what the child sends is tenant
    code's to forge, so only well-formed, bounded entries are kept."""
    if not isinstance(progress, dict):
        return
    step, attempt = progress.get("step"), progress.get("attempt")
    if (
        isinstance(step, str)
        and 0 < len(step) <= 253
        and isinstance(attempt, int)
        and 0 < attempt < 1_000_000
        and (step in running or len(running) < MAX_RUNNING)
    ):
        running[step] = attempt


def _cause(lost: Any, redactor: Redactor) -> dict[str, str]:
    """The zygote's account of a child's death, reduced to a known name and a bounded,
    masked message (the child shares the connection: tenant code can forge it)."""
    name = lost.get("name") if isinstance(lost, dict) else None
    message = lost.get("message") if isinstance(lost, dict) else None
    if name not in frames.LOST_CAUSES or not isinstance(message, str):
        return {"name": frames.WORKER_KILLED, "message": "the step's process died"}
    return {"name": name, "message": redactor.cut(message, MAX_CAUSE_MESSAGE)}


class Runner:
    def __init__(
        self,
        *,
        key: bytes,
        tenant: str,
        link: ZygoteLink,
        grace: float = 5.0,
        canary: IsolationCanary | None = None,
        redactor: Redactor | None = None,
        history: History | None = None,
        retention: float = DEFAULT_RETENTION,
        history_port: int | None = None,
        vouches: Vouches | None = None,
        people_socket: str | None = None,
        contexts: QueryContexts | None = None,
    ) -> None:
        self.key, self.tenant, self.link, self.grace = key, tenant, link, grace
        # the tenant's history (archive, log lines): this process's alone (issue 34)
        self.history, self.retention = history, retention
        self.history_port = history_port  # people's read-only history (history_api.read_app)
        self.people_socket = people_socket  # the same, on a unix socket (the local jail)
        self.canary = canary  # a pod's: tenant code runs only while its network is fenced
        # masks the Tenant's secret values in every answer, whatever its status
        self.redactor = redactor or Redactor(Secrets(None))
        self.gates = RunGates()
        self.worker_healthy = True
        self.worker_problem = ""
        # digests of step results, by run: what the next advance may recall (sandbox.protocol.vouch)
        self.vouches = vouches or Vouches()
        # each instance's last advance, as this runner saw it: what a query replays
        self.contexts = contexts or QueryContexts()

    # ------------------------------------------------------------------ the one call
    async def _signed(
        self, request: web.Request, counter: Counter
    ) -> tuple[bytes, str, web.Response | None]:
        """A request's body and MAC, and the 401 to answer when the MAC is not the key's."""
        body = await request.read()
        mac = request.headers.get(auth.SIGNATURE_HEADER, "")
        try:
            auth.verify(self.key, body, request.headers)
        except auth.AuthError as exc:
            counter.labels("unauthorized").inc()
            return body, mac, self._error(mac, 401, "Unauthorized", str(exc))
        return body, mac, None

    async def advance(self, request: web.Request) -> web.Response:
        body, mac, refused = await self._signed(request, ADVANCES)
        if refused is not None:
            return refused
        unfenced = self._unfenced()
        if unfenced:
            ADVANCES.labels("not-isolated").inc()
            return self._error(mac, 503, NOT_ISOLATED, unfenced)
        try:
            payload = validate(jsonsafe.loads(body))
            deadline = deadline_seconds(payload) + self.grace
            run = vouch.run_key(payload["instance"])
        except (ValueError, TypeError) as exc:
            ADVANCES.labels("bad-request").inc()
            return self._error(mac, 400, BAD_REQUEST, str(exc))
        started = time.perf_counter()
        try:
            await self.gates.acquire(run, deadline)
        except RunBusy as exc:
            return self._error(mac, 503, "AdvanceInProgress", str(exc))
        work = asyncio.ensure_future(self._advance_run(mac, payload, run, deadline, started))
        work.add_done_callback(lambda done: self._advance_ended(run, done))
        return await asyncio.shield(work)  # a caller that goes does not cut the advance

    def _advance_ended(self, run: str, work: asyncio.Future[web.Response]) -> None:
        self.gates.release(run)
        if not work.cancelled() and work.exception() is not None:
            log.error("advance failed", tenant=self.tenant, error=repr(work.exception())[:500])

    async def _advance_run(
        self, mac: str, payload: dict[str, Any], run: str, deadline: float, started: float
    ) -> web.Response:
        """The advance itself, holding its run (`RunGates`): run to its end by its
        deadline even when its caller has gone, so that what it completed is vouched."""
        try:
            window = await self._expanded(payload)
        except sqlite3.Error as exc:
            return self._error(mac, 503, "HistoryUnavailable", f"the history store: {exc}")
        except journal_window.JournalUnavailable as exc:  # the window as sent, count kept
            return self._respond(mac, 200, worker.failed(payload, "JournalUnavailable", str(exc)))
        except ValueError as exc:
            ADVANCES.labels("bad-request").inc()
            return self._error(mac, 400, BAD_REQUEST, str(exc))
        payload[vouch.VOUCHED] = await self._vouched(run, payload)  # ours, never the caller's
        taker = Taker(self.vouches, run, payload["limits"]["max_steps"], self.tenant)
        streamed = StreamedLines(self, payload["instance"].get("uid"))
        try:
            try:
                async with asyncio.timeout(deadline):
                    result = await self._exchange(advance_request(payload), taker, streamed)
            finally:  # what it printed and completed before any end (a crash, its
                # deadline) is kept
                await streamed.flush()
                await taker.flush()
        except WorkerStarting as exc:
            ADVANCES.labels("worker-starting").inc()
            return self._error(mac, 503, "SandboxNotReady", f"{exc}; retried shortly")
        except (WorkerLost, OSError, TimeoutError) as exc:
            reason = (
                f"the advance did not finish within {deadline:.0f}s (its worker was killed)"
                if isinstance(exc, TimeoutError)
                else f"the worker process died (CPU or memory limit, os._exit, crash): {exc}"
            )
            lost = exc if isinstance(exc, WorkerLost) else WorkerLost(reason)
            log.warning(
                "worker lost",
                tenant=self.tenant,
                reason=reason,
                steps=lost.running,
                cause=lost.cause,
            )
            ADVANCES.labels("worker-lost").inc()
            detail: dict[str, Any] = {}
            if lost.cause and lost.running and lost.cause["name"] in CHARGED:
                detail = {"steps": lost.running, "cause": lost.cause}  # the steps' own doing
            return self._error(mac, 503, "SandboxWorkerLost", reason, **detail)
        except frames.FrameError as exc:  # the worker answered, but not with safe JSON
            result = worker.failed(payload, "SandboxBadOutput", f"the worker's answer: {exc}")
        return await self._answer(mac, payload, result, window, started, streamed.kept)

    async def _answer(
        self,
        mac: str,
        payload: dict[str, Any],
        result: Any,
        window: int,
        started: float,
        streamed: int = 0,
    ) -> web.Response:
        """The worker's answer, checked, its log lines and oldest journal entries kept in
        the tenant's history, as the operator gets it."""
        if isinstance(result, dict) and worker.BAD_REQUEST in result:
            ADVANCES.labels("bad-request").inc()
            why = self.redactor.cut(str(result[worker.BAD_REQUEST]), MAX_BAD_REQUEST)
            return self._error(mac, 400, BAD_REQUEST, why)
        problem = check_result(result, self.redactor.cut, declared(payload))
        if problem:
            result = worker.failed(payload, "SandboxBadOutput", problem)
        else:
            report_rejected(self.tenant, payload["instance"]["id"], result.get(vouch.REJECTED))
            await self._keep_logs(payload, result, streamed)
        await self._windowed(payload, result, window)
        await self._keep_context(payload, result)
        ADVANCE_SECONDS.observe(time.perf_counter() - started)
        ADVANCES.labels("ok").inc()
        return self._respond(mac, 200, result)

    async def _expanded(self, payload: dict[str, Any]) -> int:
        """Put the journal entries the history store keeps for this instance back in front
        of the window the operator sent (checked: count and digest); the window size the
        operator asks for (0: it keeps the whole journal in its status)."""
        kept = journal_window.Offloaded.of(payload.get(journal_window.OFFLOADED))
        window = payload.get(journal_window.WINDOW) or 0
        if type(window) is not int or window < 0:
            raise ValueError(f"{journal_window.WINDOW} must be a number from 0")
        if kept.count and self.history is None:
            raise journal_window.JournalUnavailable(
                "this sandbox keeps no history store, where the oldest journal entries are"
            )
        if kept.count and self.history is not None:
            payload["journal"] = await asyncio.to_thread(
                journal_window.expand, self.history, _uid(payload), payload["journal"], kept
            )
        payload[journal_window.OFFLOADED] = kept.wire()
        return window

    async def _windowed(self, payload: dict[str, Any], result: dict[str, Any], window: int) -> None:
        """The answer's journal as the operator's status keeps it: without the entries
        the store held already, and with the finished prefix beyond `window` kept there
        too (a store that cannot take them now leaves them in the answer)."""
        kept = journal_window.Offloaded.of(payload[journal_window.OFFLOADED])
        journal = result.get("journal")
        if not isinstance(journal, list):
            return
        now_kept, rest = kept, journal[kept.count :]
        uid = payload["instance"].get("uid")
        beyond = len(journal) - window > kept.count  # else nothing to keep: no thread hop
        if window and beyond and self.history is not None and isinstance(uid, str) and uid:
            at = format_time(dt.datetime.now(dt.UTC))
            try:
                rest, now_kept = await asyncio.to_thread(
                    journal_window.trim, self.history, uid, journal, kept, window, at
                )
            except (HistoryError, OSError, sqlite3.Error) as exc:
                log.warning("journal entries not kept", tenant=self.tenant, error=str(exc)[:300])
        result["journal"], result[journal_window.OFFLOADED] = rest, now_kept.wire()

    async def _keep_context(self, payload: dict[str, Any], result: dict[str, Any]) -> None:
        """What a query of this instance replays from now on (sandbox/pod/query_store.py)."""
        at = format_time(dt.datetime.now(dt.UTC))
        try:
            await asyncio.to_thread(self.contexts.keep, payload, result, at)
        except (OSError, sqlite3.Error) as exc:
            log.warning("query context not kept", tenant=self.tenant, error=str(exc)[:300])

    # ------------------------------------------------------------------ queries
    async def query(self, uid: str, name: str, args: str | None) -> web.Response:
        """A person's query (GET /v1/queries/{uid}/{name}?args=JSON on the read-only port,
        reached through the API server's service proxy: the tenant's RBAC decided).
        The journal replayed is the one this runner kept from the instance's last
        advance (the operator's signed request, its own answer), never a caller's."""
        unfenced = self._unfenced()
        if unfenced:
            return self._people(503, "not-isolated", error=(NOT_ISOLATED, unfenced))
        try:
            query_rules.check_name(name)
            parsed = jsonsafe.loads(args.encode()) if args else []
            checked = query_rules.check_args(parsed)
        except (ValueError, query_rules.QueryError) as exc:
            return self._people(400, "bad-request", error=("BadQueryArguments", str(exc)))
        try:
            context = await asyncio.to_thread(self.contexts.context, uid)
            if context is not None and self.history is not None:
                kept = journal_window.Offloaded.of(context.pop("offloaded", None))
                if kept.count:
                    context["journal"] = await asyncio.to_thread(
                        journal_window.expand, self.history, uid, context["journal"], kept
                    )
        except (sqlite3.Error, OSError, ValueError, journal_window.JournalUnavailable) as exc:
            return self._people(503, "unavailable", error=("QueryUnavailable", str(exc)))
        if context is None:
            return self._people(
                404,
                "unknown-instance",
                error=(
                    "InstanceUnknown",
                    f"this sandbox has no advance of the instance with uid {uid} to answer "
                    "from (not started yet, advanced by another sandbox, or pruned)",
                ),
            )
        as_of = {
            "steps": len(context["journal"]),
            "phase": context.pop("phase", None),
            "at": context.pop("at", None),
        }
        context.pop("queries", None)
        payload = {**context, QUERY: {"name": name, "args": checked}}
        deadline = deadline_seconds(payload) + self.grace
        try:
            async with asyncio.timeout(deadline):
                # no on_result: a query's child can have nothing vouched for
                answer = await self._exchange(advance_request(payload))
        except WorkerStarting as exc:
            return self._people(503, "worker-starting", error=("SandboxNotReady", str(exc)))
        except (WorkerLost, OSError, TimeoutError) as exc:
            why = (
                f"the query did not finish within {deadline:.0f}s"
                if isinstance(exc, TimeoutError)
                else f"the query's process died: {exc}"
            )
            return self._people(503, "worker-lost", error=("SandboxWorkerLost", why))
        except frames.FrameError as exc:
            return self._people(502, "bad-output", error=("SandboxBadOutput", str(exc)))
        return self._query_answer(name, answer, as_of)

    def _query_answer(self, name: str, answer: Any, as_of: dict[str, Any]) -> web.Response:
        """The child's answer, checked (tenant code can forge it): a known shape, a value
        within the cap, an error's name a plain word, everything masked."""
        got = answer.get(QUERY) if isinstance(answer, dict) else None
        if not isinstance(got, dict):
            return self._people(
                502, "bad-output", error=("SandboxBadOutput", "the worker's answer is no query")
            )
        registered = [
            n
            for n in (got.get("registered") or [])[: query_rules.MAX_QUERIES]
            if isinstance(n, str) and query_rules.NAME.fullmatch(n)
        ]
        err = got.get("error")
        if isinstance(err, dict) or "value" not in got:
            err = err if isinstance(err, dict) else {}
            reason = err.get("name")
            if not (isinstance(reason, str) and reason.isalnum() and len(reason) <= 64):
                reason = "QueryFailed"
            status, result = {
                "UnknownQuery": (404, "unknown-query"),
                "BadQueryArguments": (400, "bad-request"),
            }.get(reason, (422, "failed"))
            detail = {}
            if isinstance(err.get("traceback"), str):
                detail["traceback"] = self.redactor.cut(err["traceback"], 4096)
            message = self.redactor.cut(str(err.get("message", "")), 4096)
            return self._people(
                status,
                result,
                error=(reason, message),
                detail=detail,
                registered=registered,
                asOf=as_of,
            )
        value = got["value"]
        if len(json.dumps(value, separators=(",", ":"))) > query_rules.MAX_RESULT_BYTES:
            return self._people(
                422,
                "failed",
                error=("QueryResultTooLarge", f"query {name!r}: its value is over the cap"),
                registered=registered,
                asOf=as_of,
            )
        return self._people(200, "ok", query=name, value=value, registered=registered, asOf=as_of)

    def _people(
        self,
        status: int,
        result: str,
        *,
        error: tuple[str, str] | None = None,
        detail: dict[str, Any] | None = None,
        **body: Any,
    ) -> web.Response:
        """An answer on the people's port: counted, masked (not signed: the API server's
        proxy is between, and the person's own credentials brought them here)."""
        QUERIES.labels(result).inc()
        if error is not None:
            body["error"] = {"name": error[0], "message": error[1], **(detail or {})}
        return web.json_response(self.redactor.redact(body), status=status)

    async def _vouched(self, run: str, payload: dict[str, Any]) -> dict[str, str]:
        """The digests this advance may recall by; none if the store fails (then every
        stored result is ignored: the journal stays the first guard)."""
        try:
            done = vouch.persisted(payload.get("journal"))
            return await asyncio.to_thread(self.vouches.begin, run, done)
        except sqlite3.Error as exc:
            log.warning("vouched results not read", tenant=self.tenant, error=str(exc)[:300])
            return {}

    async def _keep_logs(
        self, payload: dict[str, Any], result: dict[str, Any], streamed: int = 0
    ) -> None:
        """An advance's log lines into the tenant's history, masked, attributed to the
        instance the operator named (not to anything tenant code wrote), stamped with
        this process's clock. Kept lines leave the answer; a store that cannot take them
        leaves them there for the operator's log instead (counted, never lost quietly).
        `logsKept`: these and the `streamed` ones (StreamedLines) the store took."""
        uid, lines = payload["instance"].get("uid"), result["logs"]
        if self.history is None or not isinstance(uid, str):
            return
        if not lines:
            result["logsKept"] = streamed
            return
        kept = await self.store_lines(self.history, uid, lines)
        if kept is not None:
            result["logs"], result["logsKept"] = [], streamed + kept

    async def store_lines(
        self, history: History, uid: str, lines: list[dict[str, Any]]
    ) -> int | None:
        """Log lines into the tenant's history, masked, as the lines of `uid` (the
        operator's instance), stamped with this process's clock: how many the store kept
        (the rest past its per-instance cap), or None when it could not take them
        (counted and logged, never quietly)."""
        now = format_time(dt.datetime.now(dt.UTC))
        try:
            kept = await asyncio.to_thread(
                history.append_logs, uid, now, self.redactor.redact(lines)
            )
        except (HistoryError, OSError, sqlite3.Error) as exc:
            LOG_LINES.labels("not-kept").inc(len(lines))
            log.warning("log lines not kept", tenant=self.tenant, error=str(exc)[:300])
            return None
        LOG_LINES.labels("kept").inc(kept)
        LOG_LINES.labels("dropped").inc(len(lines) - kept)
        return kept

    async def history_request(self, request: web.Request) -> web.Response:
        """The operator's archive writes and reads (sandbox/pod/history_api.py)."""
        body, mac, refused = await self._signed(request, HISTORY_REQUESTS)
        if refused is not None:
            return refused
        if self.history is None:
            HISTORY_REQUESTS.labels("no-store").inc()
            return self._error(mac, 503, "NoHistoryStore", "this sandbox keeps no history")
        now = format_time(dt.datetime.now(dt.UTC))
        try:
            answer = await asyncio.to_thread(
                history_api.answer, self.history, jsonsafe.loads(body), now
            )
        except HistoryFull as exc:
            HISTORY_REQUESTS.labels("full").inc()
            return self._error(mac, 507, "HistoryFull", str(exc))
        except (HistoryError, ValueError, TypeError) as exc:
            HISTORY_REQUESTS.labels("bad-request").inc()
            return self._error(mac, 400, BAD_REQUEST, self.redactor.cut(str(exc), 1000))
        HISTORY_REQUESTS.labels("ok").inc()
        return self._respond(mac, 200, answer)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the zygote; WorkerStarting where it accepts none (yet)."""
        try:
            return await self.link.connect()
        except OSError as exc:
            raise WorkerStarting(
                f"the sandbox's worker host accepts no advance yet (starting or restarting: "
                f"{exc.strerror or exc})"
            ) from None

    async def _exchange(
        self,
        request: bytes,
        on_result: Callable[[Any], Awaitable[None]] | None = None,
        on_lines: Callable[[Any], Awaitable[None]] | None = None,
    ) -> Any:
        """Send one request (its frames, encoded); return its answer, after any progress
        (and step result, and log line) frames before it."""
        reader, writer = await self._connect()
        running: dict[str, int] = {}
        try:
            writer.write(request)
            await writer.drain()
            while True:
                try:
                    answer = await frames.read(reader, frames.MAX_RESULT)
                except frames.PeerClosed as exc:
                    raise WorkerLost(str(exc), running) from None
                if not (isinstance(answer, dict) and len(answer) == 1):
                    return answer
                if frames.PROGRESS in answer:  # a step's name may hold a secret
                    _note_progress(running, self.redactor.redact(answer[frames.PROGRESS]))
                elif vouch.RESULT in answer:
                    if on_result is not None:
                        await on_result(answer[vouch.RESULT])
                elif frames.LINES in answer:
                    if on_lines is not None:  # awaited: a flood waits for the store
                        await on_lines(answer[frames.LINES])
                elif frames.LOST in answer:
                    cause = _cause(answer[frames.LOST], self.redactor)
                    raise WorkerLost(cause["message"], running, cause)
                else:
                    return answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # ------------------------------------------------------------------ liveness
    async def watch_worker(self) -> None:
        """Ping the zygote every second; replace (or report) one that stopped answering."""
        while True:
            await asyncio.sleep(PING_EVERY)
            try:
                async with asyncio.timeout(PING_TIMEOUT):
                    answer = await self._exchange(PING)
                ok = isinstance(answer, dict) and answer.get("ok") is True
                problem = "" if ok else self.redactor.cut(f"unexpected ping answer {answer!r}", 200)
            except (OSError, TimeoutError, WorkerLost, WorkerStarting, frames.FrameError) as exc:
                problem = f"the worker host did not answer a ping: {exc!r}"
            self.worker_healthy, self.worker_problem = not problem, problem
            if problem and await self.link.restart(problem):
                ZYGOTE_RESTARTS.inc()

    # ------------------------------------------------------------------ HTTP
    def _respond(self, mac: str, status: int, value: Any) -> web.Response:
        """The one way out of the runner: known secret values are masked in every answer
        (a 400's reason, a lost worker's account and step names, a result), and the
        runner's own cuts mask before they cut."""
        body = json.dumps(self.redactor.redact(value), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        headers.update(auth.sign_response(self.key, mac, status, body))
        return web.Response(status=status, body=body, headers=headers)

    def _error(self, mac: str, status: int, name: str, message: str, **detail: Any) -> web.Response:
        return self._respond(mac, status, {"error": {"name": name, "message": message, **detail}})

    async def healthz(self, _: web.Request) -> web.Response:
        """Readiness: a pod whose network is not yet fenced gets no advances."""
        body: dict[str, Any] = {"ok": True, "tenant": self.tenant, "worker": self.worker_healthy}
        unfenced = self._unfenced()
        if unfenced:
            body.update(ok=False, problem=unfenced)
            return web.json_response(body, status=503)
        return web.json_response(body)

    def _unfenced(self) -> str | None:
        """Why tenant code may not run here now (the pod's network is open), or None."""
        if self.canary is None or self.canary.isolated:
            return None
        return self.canary.problem

    async def livez_worker(self, _: web.Request) -> web.Response:
        status = 200 if self.worker_healthy else 503
        return web.json_response(
            {"ok": self.worker_healthy, "problem": self.worker_problem}, status=status
        )

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/v1/advance", self.advance)
        app.router.add_post("/v1/history", self.history_request)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/livez/worker", self.livez_worker)
        app.router.add_get("/metrics", self.metrics)
        app.cleanup_ctx.append(self._background)
        return app

    async def prune_history(self) -> None:
        """Forget what is older than the tenant's spec.history.retention, every hour."""
        while self.history is not None:
            cut = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.retention)
            try:
                pruned = await asyncio.to_thread(self.history.prune, format_time(cut))
                await asyncio.to_thread(self.contexts.prune, cut.timestamp())
                log.info("history pruned", tenant=self.tenant, instances=pruned)
            except (HistoryError, sqlite3.Error) as exc:
                log.warning("history not pruned", tenant=self.tenant, error=str(exc)[:300])
            await asyncio.sleep(PRUNE_EVERY)

    async def _background(self, _: web.Application) -> Any:
        tasks = [asyncio.create_task(self.watch_worker())]
        reads = None
        if self.history is not None:
            tasks.append(asyncio.create_task(self.prune_history()))
            if self.history_port or self.people_socket:
                reads = web.AppRunner(history_api.read_app(self.history, self.query))
                await reads.setup()
                if self.history_port:
                    await web.TCPSite(reads, port=self.history_port).start()
                if self.people_socket:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.people_socket)
                    await web.UnixSite(reads, self.people_socket).start()
        if self.canary is not None:
            tasks.append(asyncio.create_task(self.canary.watch()))
        yield
        for task in tasks:
            task.cancel()
        if reads is not None:
            await reads.cleanup()
        self.link.close()


_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "revision": {"sha256": str, "files": dict, "main": str},
    "instance": {"id": str, "startedAt": str},
    "defaults": {"retries": dict, "timeout": (int, float), "eventTimeout": (int, float)},
    "limits": {"max_steps": int, "max_step_timeout": (int, float)},
}


def _uid(payload: dict[str, Any]) -> str:
    """The instance's uid, the key of what the store keeps of it (the operator's, signed)."""
    uid = payload["instance"].get("uid")
    if not isinstance(uid, str) or not uid:
        raise journal_window.JournalUnavailable("the request names no instance uid")
    return uid


def validate(payload: object) -> dict[str, Any]:
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
    if QUERY in payload:  # only the runner makes a query's payload, from what it kept
        raise ValueError(f"{QUERY!r} is not a field of an advance")
    for name in ("journal", "inbox"):
        if not isinstance(payload.get(name, []), list):
            raise ValueError(f"{name!r} must be a list")
    if not isinstance(payload.get("storage") or {}, dict):
        raise ValueError("'storage' must be an object")
    declared(payload)
    child_results_from_wire(payload.get("children") or {})
    return payload


def declared(payload: dict[str, Any]) -> list[str]:
    """The search attribute names the request's revision declares: the only ones its
    code may set (ValueError when they are not a list of names)."""
    names = payload["revision"].get(ATTRIBUTES, [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"revision.{ATTRIBUTES} must be a list of names")
    return names


class StreamedLines:
    """An advance's log lines as its worker streams them (frames.LINES), kept in the
    tenant's history as they come: each line re-built within the caps (`_log_line`),
    masked, attributed to the instance the operator named (not to anything tenant code
    wrote), stamped with this process's clock.

    Bounded whatever a forged stream sends: at most MAX_STREAMED_ADVANCE_LINES lines and
    MAX_STREAMED_ADVANCE_BYTES of text per advance (the rest counted as dropped), and
    written in transactions of KEEP_BATCH lines or every KEEP_EVERY seconds (a flood of
    one-line frames is not one fsync'd transaction each, holding the store's lock for the
    tenant's other instances). `flush` at the advance's end, whatever its end; a batch the
    store cannot take is counted and logged, and the advance goes on."""

    KEEP_BATCH = 2_000
    KEEP_EVERY = 1.0

    def __init__(self, runner: Runner, uid: Any) -> None:
        self.runner, self.uid = runner, uid
        self.seen = self.bytes = self.kept = 0
        self.pending: list[dict[str, Any]] = []
        self.since = time.monotonic()

    async def __call__(self, batch: Any) -> None:
        cut = self.runner.redactor.cut
        batch = batch if isinstance(batch, list) else [batch]
        room = max(MAX_STREAMED_ADVANCE_LINES - self.seen, 0)
        self.seen += len(batch)
        taken = 0
        for line in batch[:room]:
            entry = _log_line(line, cut)
            if entry is None:
                continue
            size = len(entry["message"]) + len(json.dumps(entry["fields"]))
            if self.bytes + size > MAX_STREAMED_ADVANCE_BYTES:
                break
            self.bytes += size
            self.pending.append(entry)
            taken += 1
        LOG_LINES.labels("dropped").inc(len(batch) - taken)
        waited = time.monotonic() - self.since
        if len(self.pending) >= self.KEEP_BATCH or waited >= self.KEEP_EVERY:
            await self.flush()

    async def flush(self) -> None:
        lines, self.pending, self.since = self.pending, [], time.monotonic()
        if not lines:
            return
        history = self.runner.history
        if history is None or not isinstance(self.uid, str):
            LOG_LINES.labels("not-kept").inc(len(lines))
            return
        self.kept += await self.runner.store_lines(history, self.uid, lines) or 0


def check_result(
    result: Any, cut: Callable[[str, int], str], declared: Collection[str] = ()
) -> str | None:
    """What is wrong with a worker's answer, or None; trims its logs to the caps in place
    with `cut` (which masks before it cuts), and keeps only the search attributes of the
    `declared` names, well-formed (the rest is ignored, logged and counted)."""
    if not isinstance(result, dict):
        return "the worker's answer is not an object"
    outcome = result.get("outcome")
    if not isinstance(outcome, dict) or outcome.get("kind") not in OUTCOMES:
        return "the worker's answer has no valid outcome"
    for name, kind in (("journal", list), ("executed", list), ("logs", list)):
        if not isinstance(result.get(name), kind):
            return f"the worker's answer has no {name} list"
    if not isinstance(result.get("changed"), bool):
        return "the worker's answer has no changed flag"
    try:  # what the operator will act on (start children) is decoded once, here, first
        outcome_from_wire(outcome)
    except (ValueError, TypeError, KeyError) as exc:
        return "the worker's answer has an invalid outcome: " + cut(str(exc), 512)
    result["logs"] = [
        entry
        for line in result["logs"][:MAX_ANSWER_LINES]
        if (entry := _log_line(line, cut)) is not None
    ]
    names = result.get("queries")
    if names is not None:  # status.queries: names as a handler may have them, capped
        result["queries"] = [
            n
            for n in (names if isinstance(names, list) else [])[: query_rules.MAX_QUERIES]
            if isinstance(n, str) and query_rules.NAME.fullmatch(n)
        ]
    _check_attributes(result, cut, declared)
    rejected = vouch.checked_rejections(result.pop(vouch.REJECTED, None), cut)
    if rejected:
        result[vouch.REJECTED] = rejected
    return None


def _check_attributes(
    result: dict[str, Any], cut: Callable[[str, int], str], declared: Collection[str]
) -> None:
    """The answer's `attributes` (step.set_attributes) as the operator may apply them:
    declared names, label values (secret values masked first) or null; never a failure
    of the advance, whose journal is good whatever tenant code wrote here."""
    kept, ignored = attributes.from_result(
        result.pop("attributes", None), declared, lambda text: cut(text, MAX_LABEL_VALUE)
    )
    if kept:
        result["attributes"] = kept
    if ignored:
        ATTRIBUTES_IGNORED.inc(len(ignored))
        log.warning("search attributes ignored", ignored=[cut(i, 200) for i in ignored[:8]])


def _log_line(line: Any, cut: Callable[[str, int], str]) -> dict[str, Any] | None:
    """One log line of a worker's answer, re-built from known fields within the caps."""
    if not isinstance(line, dict):
        return None
    fields = line.get("fields")
    entry: dict[str, Any] = {
        "ts": cut(str(line.get("ts", "")), 40),
        "level": cut(str(line.get("level", "info")), 10),
        "message": cut(str(line.get("message", "")), MAX_LOG_LINE_BYTES),
        "fields": fields if isinstance(fields, dict) else {},
    }
    if len(json.dumps(entry["fields"])) > MAX_LOG_LINE_BYTES:
        entry["fields"] = {"truncated": True}
    step, attempt = line.get("step"), line.get("attempt")
    if isinstance(step, str) and isinstance(attempt, int) and 0 <= attempt < 1 << 31:
        entry |= {"step": cut(step, 253), "attempt": attempt}  # the line's step, if any
    return entry


def read_key(args: argparse.Namespace) -> bytes:
    """The key from a file (pod: the Secret, mounted only in the runner container) or stdin."""
    if args.key_file:
        with open(args.key_file, "rb") as f:
            return f.read().strip()
    return sys.stdin.readline().strip().encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenant", default=os.environ.get("TENANTFLOW_TENANT"), required=False)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--socket")
    worker_at = parser.add_mutually_exclusive_group(required=True)
    worker_at.add_argument("--zygote-socket", help="the worker host's socket (pod)")
    worker_at.add_argument("--jail-data", help="start the worker host jailed on this data dir")
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key-file")
    keys.add_argument("--key-stdin", action="store_true")
    parser.add_argument("--memory-bytes", type=int, default=1 << 30, help="per advance")
    parser.add_argument("--die-with-parent", action="store_true")
    parser.add_argument("--secrets", help="the Tenant's Secrets (values masked in answers)")
    parser.add_argument(
        "--history-dir",
        help="the tenant's history store, out of tenant code's reach (default with "
        "--socket: beside the socket, outside the jail)",
    )
    parser.add_argument("--history-max-bytes", type=int, default=1 << 30)
    parser.add_argument(
        "--history-port",
        type=int,
        help="serve the history read-only here (for the API server's service proxy)",
    )
    parser.add_argument(
        "--people-socket",
        help="serve the history read-only and queries on this unix socket (the local jail)",
    )
    parser.add_argument(
        "--history-retention",
        default="30d",
        help="how long archived instances and log lines are kept (spec.history.retention)",
    )
    parser.add_argument(
        "--isolation-canary",
        metavar="HOST:PORT|kubernetes",
        help="an address the pod's NetworkPolicy denies; no advance runs while it answers",
    )
    args = parser.parse_args(argv)
    if not args.tenant:
        parser.error("--tenant (or TENANTFLOW_TENANT) is required")
    canary = None
    if args.isolation_canary:
        try:
            canary = IsolationCanary(*canary_address(args.isolation_canary))
        except ValueError as exc:
            parser.error(str(exc))
    configure()
    if args.die_with_parent:  # local: the runner (and so its jail) ends with the operator
        zygote.die_with_parent()
    zygote.harden_self()  # the key is in this process: no ptrace, no /proc/<pid>/mem
    key = read_key(args)
    if not key:
        parser.error("the HMAC key is empty")
    link: ZygoteLink
    if args.jail_data:
        from tenantflow.sandbox.jail.local import JailLink

        link = JailLink(args.tenant, args.jail_data, args.memory_bytes)
    else:
        link = ZygoteLink(args.zygote_socket)
    redactor = Redactor(Secrets(args.secrets))
    history_dir = args.history_dir or (
        Path(args.socket).with_suffix(".history") if args.socket else None
    )
    history = History(Path(history_dir), max_bytes=args.history_max_bytes) if history_dir else None
    vouches = Vouches(Path(history_dir)) if history_dir else Vouches()  # beside the history
    contexts = QueryContexts(Path(history_dir)) if history_dir else QueryContexts()
    try:
        retention = parse_duration(args.history_retention, field="--history-retention")
    except ValueError as exc:
        parser.error(str(exc))
    runner = Runner(
        key=key,
        tenant=args.tenant,
        link=link,
        canary=canary,
        redactor=redactor,
        history=history,
        retention=retention,
        history_port=args.history_port,
        vouches=vouches,
        people_socket=args.people_socket,
        contexts=contexts,
    )
    log.info("runner starting", tenant=args.tenant, socket=args.socket, port=args.port)
    # a request whose caller hung up is cancelled, except an advance once admitted: it
    # runs to its end by its deadline (sandbox/pod/run_gate.py), so that what it completes is
    # vouched for and recalled by the advance its caller's successor sends
    web.run_app(
        runner.app(), port=args.port, path=args.socket, print=None, handler_cancellation=True
    )


if __name__ == "__main__":
    main()
