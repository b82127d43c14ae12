"""`python -m tenantflow.testing.serve`: one WorkflowTestEnv run for a TypeScript author's
test kit (`sdk/typescript/testing.ts`), so `deno test` tests a TS workflow with the very
engine the sandbox runs (virtual time, events, children, secrets, env.db), not a copy.

It reads one JSON request on stdin and writes one JSON TestResult on stdout:

    {"workflow": {"dir": "...", "main": "workflow", "entrypoint": "run"},
     "workflows": {"build": {"dir": "...", "main": "build"}},   # what step.child starts
     "secrets": {"git": {"token": "t"}}, "params": ..., "events": [[3600, "approved", {}]],
     "terminateAfter": null, "rollback": false, "instanceId": "test-instance",
     "queries": [["progress"], ["item", 0]]}   # asked after the run, as of its journal

The TestResult carries each query's answer, in the order asked: {"name", "args", "value"}
or {"name", "args", "error": {"name", "message"}}.

A bad request is answered {"error": "..."} naming the field, with exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from tenantflow.engine.queries import QueryError
from tenantflow.testing import TestResult, WorkflowSource, WorkflowTestEnv

MAX_REQUEST_BYTES = 1024 * 1024


def source(spec: Any, field: str) -> WorkflowSource:
    if not isinstance(spec, dict) or not isinstance(spec.get("dir"), str):
        raise ValueError(f"{field}: give {{'dir': <directory of the workflow's files>, 'main'}}")
    main, entrypoint = str(spec.get("main") or "workflow"), str(spec.get("entrypoint") or "run")
    return WorkflowSource.from_directory(spec["dir"], main=main, entrypoint=entrypoint)


def to_wire(result: TestResult) -> dict[str, Any]:
    out = dataclasses.asdict(result)
    out["elapsedSeconds"] = result.elapsed.total_seconds()
    del out["elapsed"]
    out["waitingFor"], out["instanceId"] = out.pop("waiting_for"), out.pop("instance_id")
    out["children"] = {name: to_wire(child) for name, child in result.children.items()}
    return out


def serve(request: dict[str, Any]) -> dict[str, Any]:
    workflows = request.get("workflows") or {}
    if not isinstance(workflows, dict):
        raise ValueError("workflows: give {name: {'dir', 'main'}} for what step.child starts")
    env = WorkflowTestEnv(
        workflows={name: source(spec, f"workflows.{name}") for name, spec in workflows.items()},
        secrets=request.get("secrets") or {},
    )
    events = [tuple(e) for e in request.get("events") or []]
    if any(len(e) != 3 or not isinstance(e[0], int | float) for e in events):
        raise ValueError("events: give [[seconds after the start, type, payload], ...]")
    asked = request.get("queries") or []
    if not isinstance(asked, list) or not all(
        isinstance(q, list) and q and isinstance(q[0], str) for q in asked
    ):
        raise ValueError('queries: give [[name, ...args], ...], as [["progress"], ["item", 0]]')
    result = env.run_sync(
        source(request.get("workflow"), "workflow"),
        request.get("params"),
        events,
        instance_id=str(request.get("instanceId") or "test-instance"),
        terminate_after=request.get("terminateAfter"),
        rollback=bool(request.get("rollback")),
    )
    return {**to_wire(result), "queries": [answer(env, result, *q) for q in asked]}


def answer(env: WorkflowTestEnv, result: TestResult, name: str, *args: Any) -> dict[str, Any]:
    """One query of the instance just run, as of its journal at the end of the run."""
    asked = {"name": name, "args": list(args)}
    try:
        return {**asked, "value": env.query(result, name, *args)}
    except QueryError as exc:
        return {**asked, "error": {"name": exc.reason, "message": str(exc)}}


def main() -> int:
    try:
        request = json.loads(sys.stdin.read(MAX_REQUEST_BYTES))
        if not isinstance(request, dict):
            raise ValueError("the request must be a JSON object")
        answer, code = serve(request), 0
    except ValueError as exc:
        answer, code = {"error": str(exc)}, 2
    sys.stdout.write(json.dumps(answer, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
