"""`tenantflow query INSTANCE NAME [--args JSON]` (issue 36.7): a value a running
workflow exposes (`step.query(NAME, handler)`), read without changing it.

The CLI reads the instance as the user (so the user must be allowed to), then asks the
tenant's sandbox through the API server's service proxy (`kube/queries.py`), which the
tenant's RBAC guards as it guards history reads. The sandbox replays the instance's
journal read-only and calls the handler; nothing is written anywhere.
"""

from __future__ import annotations

import json
from typing import Any

import click

from tenantflow.cli.common import CliError, Env, Output, json_arg, verb
from tenantflow.kube import instances, queries
from tenantflow.kube.client import ApiException
from tenantflow.vocabulary import HISTORY_PROXY


@verb(
    "query",
    "read a value the instance's code exposes (step.query), answered by a read-only "
    "replay of its journal in its sandbox; exits 1 if the query fails",
    click.argument("instance"),
    click.argument("name"),
    click.option(
        "--args",
        "args_",
        metavar="JSON",
        help="the handler's arguments: a JSON list (one other JSON value is one argument), "
        "or @file.json",
    ),
)
async def query(env: Env, instance: str, name: str, args_: str | None = None) -> Output:
    try:
        inst = await instances.get(env.kube, env.namespace, instance)  # as the user
    except instances.InstanceNotFound as exc:
        raise CliError(str(exc)) from None
    given = json_arg(args_, "--args")
    args = None if args_ is None else (given if isinstance(given, list) else [given])
    uid = inst["metadata"]["uid"]
    try:
        answer = await queries.ask(env.kube, env.namespace, uid, name, args)
    except queries.QueryFailed as exc:
        known = (inst.get("status") or {}).get("queries") or exc.registered
        hint = f" (its queries: {', '.join(known)})" if known and exc.name != "UnknownQuery" else ""
        trace = f"\n{exc.traceback}" if exc.traceback else ""
        raise CliError(f"query {name!r} of {instance} failed: {exc}{hint}{trace}") from None
    except ApiException as exc:
        if exc.status == 403:
            raise CliError(
                f"you may not query instances of {env.namespace}: it takes the tenant's "
                f"viewer or editor role (get services/{HISTORY_PROXY[0]}/proxy)"
            ) from None
        if exc.status in (404, 502, 503):
            raise CliError(
                f"the sandbox of {env.namespace} cannot answer now ({exc.status}): is it "
                f"running? (kubectl -n {env.namespace} get pods)"
            ) from None
        raise
    return Output(answer, _text(answer))


def _text(answer: dict[str, Any]) -> str:
    as_of = answer.get("asOf") or {}
    value = json.dumps(answer.get("value"), indent=2, ensure_ascii=False)
    when = f", {as_of['at']}" if as_of.get("at") else ""
    return f"{value}\n(as of {as_of.get('steps', '?')} journal entries, {as_of.get('phase')}{when})"
