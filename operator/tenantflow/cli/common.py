"""What every verb shares: the kube options (before or after the verb, kubectl style), the
session a verb runs in, the data it returns, and its printing, done here at the edge.

A verb is an `async def verb(env, **its_params) -> Output | None`: it acts through
`env.kube` in `env.namespace`, says what happens while it runs through `env.say`
(stderr), and returns its data (`Output.object`, printed by `-o json|yaml`), the text
view of that data (printed by default) and its exit code. It prints nothing itself, so
it is tested against the in-memory API (tenantflow_dev.fake_kube) as it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import click
import yaml

from tenantflow.cli.exits import Exit
from tenantflow.errors import TenantflowError
from tenantflow.kube.client import ApiException, Kube, message
from tenantflow.vocabulary import namespace_of

OUTPUTS = ("table", "json", "yaml")
POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class CliError(TenantflowError):
    """A user-facing failure: the message says what to do."""

    exit_code = Exit.FAILED


class TimedOut(CliError):
    """`--wait`/`--watch` gave up: `--timeout` ran out before it finished."""

    exit_code = Exit.TIMED_OUT


@dataclass(frozen=True)
class Output:
    """What a verb returns: its data, the text view of it, and the exit code it means."""

    object: Any  # printed by -o json / -o yaml
    text: str  # printed by -o table (the default)
    exit: Exit = Exit.OK
    note: str = ""  # said on stderr after it: why the exit code is not 0

    @classmethod
    def said(cls, text: str) -> Output:
        """A verb whose data is a sentence (what it did)."""
        return cls(text, text)


@dataclass(frozen=True)
class Env:
    """What a verb acts with: the API (as the user), the namespace, and where to say what
    happens while it runs (stderr: stdout is for the data it returns)."""

    kube: Kube
    namespace: str
    say: Callable[[str], None] = field(default=lambda line: None)
    tty: bool = False  # stderr is a terminal: progress may be redrawn in place
    # stdout, a line at a time, for a verb whose data arrives while it runs (`logs -f`)
    out: Callable[[str], None] = field(default=lambda line: None)


Verb = Callable[..., Awaitable[Output | None]]


# ---------------------------------------------------------------------- argument types
class Choice(click.Choice[str]):
    """click.Choice saying what argparse said ("invalid choice: 'xml'"), which scripts
    and tests match."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in self.choices:
            return value
        choices = ", ".join(repr(c) for c in self.choices)
        self.fail(f"invalid choice: {value!r} (choose from {choices})", param, ctx)


class Number(click.ParamType[Any, Any]):
    """An int or a float, refused as argparse refused it ("invalid int value: 'one'")."""

    def __init__(self, kind: type[int] | type[float]) -> None:
        self.kind = kind
        self.name = kind.__name__

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.kind):
            return value
        try:
            return self.kind(value)
        except ValueError:
            self.fail(f"invalid {self.name} value: {value!r}", param, ctx)


INT, FLOAT = Number(int), Number(float)


class Command(click.Command):
    """A missing argument said as argparse said it ("the following arguments are
    required: definition"), which scripts and tests match."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter as exc:
            if exc.param is None:
                raise
            name = exc.param.name if exc.param_type == "argument" else "/".join(exc.param.opts)
            raise click.UsageError(f"the following arguments are required: {name}", ctx) from None


class Group(click.Group):
    """Our errors said plainly (no traceback) with their exit codes; an unknown verb said
    as argparse said it ("invalid choice: 'frobnicate'")."""

    command_class = Command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TenantflowError as exc:  # the message says what to do: no traceback
            click.echo(f"tenantflow: error: {exc}", err=True)
            raise click.exceptions.Exit(getattr(exc, "exit_code", Exit.FAILED)) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(Exit.INTERRUPTED) from None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            verbs = ", ".join(self.list_commands(ctx))
            ctx.fail(f"argument command: invalid choice: {name!r} (choose from {verbs})")
        return super().resolve_command(ctx, args)


# ---------------------------------------------------------------------- shared options
@dataclass(frozen=True)
class Target:
    """The shared kube options, given before the verb (the group's) or after it (the
    verb's own, which win)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    tenant: str | None = None
    output: str = "table"

    def given(self, **options: Any) -> Target:
        """These options over the ones before the verb; a namespace named both ways must
        be the same one."""
        chosen = replace(self, **{k: v for k, v in options.items() if v is not None})
        if options.get("namespace") is not None and options.get("tenant") is None:
            chosen = replace(chosen, tenant=None)
        elif options.get("tenant") is not None and options.get("namespace") is None:
            chosen = replace(chosen, namespace=None)
        tenant_ns = namespace_of(chosen.tenant) if chosen.tenant else None
        if tenant_ns and chosen.namespace and chosen.namespace != tenant_ns:
            raise click.UsageError(
                f"--tenant {chosen.tenant} is namespace {tenant_ns}, not -n {chosen.namespace}"
            )
        return replace(chosen, namespace=chosen.namespace or tenant_ns)


KUBE_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)"),
    click.option("--context", help="kubeconfig context (default: the current one)"),
    click.option("-n", "--namespace", help="namespace (default: the context's)"),
    click.option("--tenant", help="the namespace of this tenant (tenant-NAME)"),
)
OUTPUT_OPTION = click.option("-o", "--output", type=Choice(OUTPUTS), help="table, json or yaml")
SHARED = ("kubeconfig", "context", "namespace", "tenant", "output")


def with_options(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def target(ctx: click.Context, options: dict[str, Any]) -> Target:
    """The shared options this command was given (taken out of `options`)."""
    before = ctx.find_object(Target) or Target()
    return before.given(**{k: options.pop(k) for k in SHARED if k in options})


# ---------------------------------------------------------------------- verbs
COMMANDS: list[click.Command] = []  # every verb, added to the group by main.py


def verb(
    name: str,
    help: str,
    *params: Callable[[Any], Any],
    check: Callable[[dict[str, Any]], None] = lambda params: None,
) -> Callable[[Verb], Verb]:
    """Make `fn` the verb `name` (its click params, then the shared ones); `check` refuses
    bad combinations of arguments as usage errors before anything is asked of the API."""

    def register(fn: Verb) -> Verb:
        @click.pass_context
        def callback(ctx: click.Context, /, **options: Any) -> None:
            chosen = target(ctx, options)
            check(options)
            ctx.exit(execute(chosen, fn, options))

        decorated = with_options(*params, *KUBE_OPTIONS, OUTPUT_OPTION)(callback)
        short = help.split(" (")[0]  # the listing of verbs: the help without its aside
        COMMANDS.append(click.command(name, cls=Command, help=help, short_help=short)(decorated))
        return fn

    return register


Connect = Callable[[str | None, str | None], Awaitable[Kube]]


async def _connect(kubeconfig: str | None, context: str | None) -> Kube:
    from kubernetes_asyncio.config import ConfigException

    try:
        return await Kube.connect(kubeconfig, context)
    except ConfigException as exc:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise CliError(f"cannot use the kubeconfig ({where}): {exc}") from None


connect: Connect = _connect  # the tests point it at the in-memory API


def execute(chosen: Target, fn: Verb, params: dict[str, Any]) -> int:
    """Run one verb against the cluster, print what it returns, and give its exit code."""

    def say(line: str) -> None:
        click.echo(line, err=True, nl=not line.startswith("\r"))

    async def session() -> Output | None:
        kube = await connect(chosen.kubeconfig, chosen.context)
        try:
            namespace = chosen.namespace or context_namespace(chosen.kubeconfig, chosen.context)
            env = Env(kube, namespace, say, sys.stderr.isatty(), out=click.echo)
            return await fn(env, **params)
        except ApiException as exc:
            raise CliError(message(exc)) from None
        except aiohttp.ClientConnectionError as exc:
            raise CliError(f"cannot reach the API server: {exc}") from None
        finally:
            await kube.close()

    out = asyncio.run(session())
    if out is None:
        return Exit.OK
    show(out, chosen.output)
    return out.exit


def show(out: Output, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(out.object, indent=2, default=str))
    elif output == "yaml":
        click.echo(yaml.safe_dump(out.object, sort_keys=False), nl=False)
    else:
        click.echo(out.text)
    if out.note:
        click.echo(f"tenantflow: {out.note}", err=True)


def in_cluster(kubeconfig: str | None, context: str | None) -> bool:
    """Kube.connect uses the pod's service account (no kubeconfig)."""
    return kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace kubectl would use: the kubeconfig context's (read by the client
    library's loader, which merges a $KUBECONFIG list as kubectl does), in a pod its
    service account's, else `default`."""
    from kubernetes_asyncio.config import kube_config

    if in_cluster(kubeconfig, context):
        try:
            return POD_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"
    try:
        contexts, current = kube_config.list_kube_config_contexts(kubeconfig)
    except Exception:  # no kubeconfig, or none the loader can read: kubectl's default
        return "default"
    named = (c for c in contexts if c.get("name") == context)
    chosen: dict[str, Any] = (current if context is None else next(named, {})) or {}
    return str((chosen.get("context") or {}).get("namespace") or "default")


def json_arg(value: str | None, what: str) -> Any:
    """A JSON argument, given inline or as @file.json."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as exc:
        raise CliError(f"{what}: cannot read {value[1:]} ({exc.strerror})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{what} is not valid JSON ({exc}); pass JSON or @file.json") from None


def one_of(*names: str) -> Callable[[dict[str, Any]], None]:
    """A check: exactly one of these options is given (argparse's required mutually
    exclusive group, said as it said it)."""
    flags = ["--" + n.replace("_", "-") for n in names]

    def check(params: dict[str, Any]) -> None:
        given = [f for n, f in zip(names, flags, strict=True) if params.get(n) not in (None, False)]
        if not given:
            raise click.UsageError(f"one of the arguments {' '.join(flags)} is required")
        if len(given) > 1:
            raise click.UsageError(f"argument {given[1]}: not allowed with argument {given[0]}")

    return check
