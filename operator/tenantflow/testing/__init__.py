"""Local testing for workflow authors: no cluster, a virtual clock, the real engine.

    env = WorkflowTestEnv(workflows={"build": build_source},  # what step.child may start
                          secrets={"git": {"token": "t0ken"}})  # env.secrets
    result = await env.run(WorkflowSource.from_directory("pipeline"), params={...},
                           events=[(3600, "approved", {"by": "bob"})])
    result.phase, result.output, result.error, result.steps, result.children,
    result.attributes  # the search attributes it would carry as labels

A workflow is one module's source, an `async def` callable, or a `WorkflowSource`: its
files (several modules), as a directory or a WorkflowDefinition manifest holds them.
Installing tenantflow registers a pytest plugin (`tenantflow.testing.pytest_plugin`) that
runs `async def test_...` functions, so a tenant's project needs no configuration.

Time skips: when every instance waits, the clock jumps to the next wake-up or scheduled
event, so a 30-day sleep takes milliseconds. Each wake-up is a fresh replay over the
journal, exactly as in the cluster. Children (`step.child`) run beside their parent on
the same clock, with the names, results and errors they get in the cluster; a parent
that finishes terminates the children it still awaited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from tenantflow.api.definition import DEFAULT_MAIN, WorkflowDefinition
from tenantflow.engine import Complete, EngineLimits, Errored, StepDefaults, Waiting, Yielded
from tenantflow.engine.children import ChildResult, ChildStart
from tenantflow.engine.compensation import TERMINATED, compensating_in, marker, owed_in
from tenantflow.engine.errors import EngineError
from tenantflow.engine.executor import advance, query
from tenantflow.engine.journal import StepRecord, dump, load
from tenantflow.engine.loader import SINGLE_MODULE, WorkflowFn, check, revision
from tenantflow.engine.outcome import Compensating, RollbackFailed, RolledBack
from tenantflow.engine.queries import QueryError
from tenantflow.engine.secrets import SecretNotFound
from tenantflow.engine.state import InboxEvent
from tenantflow.engine.typescript import EXTENSIONS
from tenantflow.lifecycle import source as code_check
from tenantflow.lifecycle.attributes import labels_for
from tenantflow.shapes import StepEntry
from tenantflow.storage.database import TenantDatabase
from tenantflow.vocabulary import Language

ScheduledEvent = tuple[float, str, Any]  # (seconds after start, type, payload)
_EPOCH = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class MemoryOutputStore:
    """Holds outputs over the inline cap, like the tenant store does in the cluster."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> str:
        ref = f"mem:{len(self.blobs)}:{key}"
        self.blobs[ref] = data
        return ref

    def get(self, ref: str) -> bytes:
        return self.blobs[ref]


@dataclass(frozen=True)
class WorkflowSource:
    """A workflow's code as a WorkflowDefinition holds it: its files (file name -> Python
    source; each importable by the others, `import steps`), the module with the
    entrypoint, the definition's step defaults (None: the env's) and its search
    attributes (spec.searchAttributes: name -> params field; None: not known, so
    `step.set_attributes` may set any name)."""

    files: Mapping[str, str]
    main: str = DEFAULT_MAIN
    entrypoint: str = "run"
    defaults: StepDefaults | None = None
    name: str = "workflow"  # tracebacks show its files as <name/file.py>
    search_attributes: Mapping[str, str] | None = None

    @classmethod
    def from_directory(
        cls, path: str | Path, *, main: str = DEFAULT_MAIN, entrypoint: str = "run"
    ) -> WorkflowSource:
        """Every `.py` file directly in `path` is a module (what a ConfigMap made with
        `kubectl create configmap --from-file=<path>` holds); in a directory without one,
        every TypeScript/JavaScript file (.ts, .mts, .js, .mjs)."""
        directory = Path(path)
        found = sorted(f for f in directory.glob("*") if f.is_file())
        files = {f.name: f.read_text() for f in found if f.suffix == ".py"} or {
            f.name: f.read_text() for f in found if f.suffix in EXTENSIONS
        }
        if not files:
            raise ValueError(
                f"WorkflowSource.from_directory: no .py (or .ts/.js) file in {directory}"
            )
        return cls(files, main, entrypoint, name=directory.resolve().name)

    @classmethod
    def from_manifest(cls, path: str | Path, name: str | None = None) -> WorkflowSource:
        """The WorkflowDefinition `name` of a YAML manifest (the only one if no name)."""
        found = definitions(path)
        if name is None and len(found) == 1:
            return next(iter(found.values()))
        if name in found:
            return found[name]
        raise ValueError(
            f"{path}: WorkflowDefinitions here: {', '.join(sorted(found)) or 'none'}; "
            "pass name= to choose one"
        )


def definitions(path: str | Path) -> dict[str, WorkflowSource]:
    """Every WorkflowDefinition of a YAML manifest, by name: `workflows=` for the
    definitions `step.child` starts. Other kinds in the file are skipped."""
    found: dict[str, WorkflowSource] = {}
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if not isinstance(doc, dict) or doc.get("kind") != "WorkflowDefinition":
            continue
        try:
            definition = WorkflowDefinition.model_validate(doc)
        except pydantic.ValidationError as exc:
            raise ValueError(f"{path}: not a valid WorkflowDefinition: {exc}") from None
        spec, name = definition.spec, definition.metadata.name
        if spec.source.config_map_ref is not None:
            raise ValueError(
                f"{path}: WorkflowDefinition {name}: spec.source.configMapRef needs the "
                "cluster's ConfigMap; test its files with WorkflowSource.from_directory"
            )
        inline, language = spec.source.inline, spec.source.language or Language.PYTHON
        files, main = (
            (dict(code_check.Code.single(inline, language).files), SINGLE_MODULE)
            if inline is not None
            else (dict(spec.source.files or {}), spec.source.main)
        )
        defaults = StepDefaults.from_spec(spec.defaults.wire())
        found[name] = WorkflowSource(
            files, main, spec.entrypoint, defaults, name, dict(spec.search_attributes)
        )
    return found


def _declared(code: WorkflowSource | WorkflowFn) -> frozenset[str] | None:
    """The search attribute names its code may set: a definition's (None: not known)."""
    declared = code.search_attributes if isinstance(code, WorkflowSource) else None
    return None if declared is None else frozenset(declared)


class _SecretValues(Mapping[str, str]):
    """One Secret given to the test env: key -> value, missing keys said clearly."""

    def __init__(self, name: str, values: Mapping[str, str]) -> None:
        self.name, self.data = name, dict(values)

    def __getitem__(self, key: str) -> str:
        if key not in self.data:
            raise SecretNotFound(
                f"Secret {self.name!r} has no key {key!r} (its keys: "
                f"{', '.join(self.data) or 'none'}); add it to WorkflowTestEnv(secrets=...)"
            )
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class _Secrets(Mapping[str, _SecretValues]):
    """`env.secrets` in the test env: what WorkflowTestEnv(secrets=...) gives, masked in
    errors and logs as the cluster's are."""

    def __init__(self, given: Mapping[str, Mapping[str, str]]) -> None:
        for name, values in given.items():
            if not all(isinstance(v, str) for v in values.values()):
                raise TypeError(
                    f"WorkflowTestEnv(secrets=...): Secret {name!r}: values must be str "
                    "(a Secret's data, decoded)"
                )
        self.given = {name: _SecretValues(name, values) for name, values in given.items()}

    def __getitem__(self, name: str) -> _SecretValues:
        if name not in self.given:
            raise SecretNotFound(
                f"Secret {name!r} is not given to this test; pass "
                f"WorkflowTestEnv(secrets={{{name!r}: {{'key': 'value'}}}})"
            )
        return self.given[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.given)

    def __len__(self) -> int:
        return len(self.given)


@dataclass
class TestResult:
    """Same shapes as WorkflowInstance.status: phase, output, error, steps (dicts)."""

    __test__ = False  # not a pytest test class

    phase: str
    output: Any = None
    error: dict[str, Any] | None = None
    steps: list[StepEntry] = field(default_factory=list)
    waiting_for: dict[str, Any] | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    advances: int = 0
    elapsed: dt.timedelta = dt.timedelta(0)
    children: dict[str, TestResult] = field(default_factory=dict)  # by child instance name
    instance_id: str = ""  # what WorkflowTestEnv.query takes (or this result)
    # its search attributes as its labels would be: read from params at the start (a
    # WorkflowSource that declares them), then as its code set them (step.set_attributes)
    attributes: dict[str, str] = field(default_factory=dict)

    def step(self, name: str) -> StepEntry:
        return next(s for s in self.steps if s["name"] == name)


class VirtualClock:
    def __init__(self, start: dt.datetime = _EPOCH) -> None:
        self.start = self.current = start

    def now(self) -> dt.datetime:
        return self.current

    def skip_to(self, when: dt.datetime) -> None:
        self.current = max(self.current, when)


Workflow = str | Callable[..., Any] | WorkflowSource
Schedule = list[tuple[dt.datetime, str, Any]]


@dataclass
class _Run:
    """One instance on the virtual clock: its journal and how its last advance ended."""

    code: WorkflowSource | WorkflowFn | None  # None: not loadable (`failure` says why)
    params: Any
    instance_id: str
    started: dt.datetime
    schedule: Schedule = field(default_factory=list)
    failure: dict[str, Any] | None = None
    journal: list[StepRecord] = field(default_factory=list)
    outcome: (
        Complete | Errored | Waiting | Yielded | Compensating | RolledBack | RollbackFailed | None
    ) = None
    terminated: bool = False
    terminate_at: dt.datetime | None = None  # run_sync(terminate_after=...)
    terminate_rollback: bool = False  # ... with rollback: the rollbacks run first
    advanced_at: dt.datetime | None = None
    awaits: dict[str, str] = field(default_factory=dict)  # child name -> its step here
    child_changed: bool = False
    result: TestResult = field(default_factory=lambda: TestResult(phase="Queued"))

    @property
    def finished(self) -> bool:
        return self.terminated or isinstance(
            self.outcome, Complete | Errored | RolledBack | RollbackFailed
        )

    def wake_times(self) -> list[dt.datetime]:
        """When it has something new: its wake-up, or an awaited event's arrival (or its
        termination, when the test asked for one)."""
        outcome = self.outcome
        end = [self.terminate_at] if self.terminate_at is not None else []
        if isinstance(outcome, Compensating):
            return [outcome.wake_at] if outcome.wake_at else []
        if not isinstance(outcome, Waiting):
            return end
        arrivals = [
            at
            for at, t, _ in self.schedule
            if t in outcome.event_types and (self.advanced_at is None or at > self.advanced_at)
        ]
        return [*arrivals, *([outcome.wake_at] if outcome.wake_at else []), *end]

    def ready(self, now: dt.datetime) -> bool:
        if self.finished:
            return False
        if self.outcome is None or isinstance(self.outcome, Yielded) or self.child_changed:
            return True
        if isinstance(self.outcome, Compensating) and self.outcome.wake_at is None:
            return True
        return any(at <= now for at in self.wake_times())


class WorkflowTestEnv:
    """Runs a workflow to completion (or until nothing more can happen) on a virtual clock."""

    __test__ = False

    def __init__(
        self,
        *,
        start: dt.datetime = _EPOCH,
        defaults: StepDefaults | None = None,
        limits: EngineLimits | None = None,
        tenant: str = "test",
        db: Any = None,
        max_advances: int = 10_000,
        workflows: Mapping[str, Workflow] | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """`workflows`: the definitions `step.child` may start, by name (e.g.
        `definitions("release.yaml")`). `secrets`: `env.secrets`, {secret: {key: value}}
        (the Secrets the Tenant's spec.sandbox.secrets would give)."""
        self.clock = VirtualClock(start)
        self.defaults = defaults or StepDefaults()
        self.limits = limits or EngineLimits()
        self.tenant = tenant
        self.db = db if db is not None else TenantDatabase()
        self.outputs = MemoryOutputStore()
        self.max_advances = max_advances
        self.workflows = dict(workflows or {})
        self.secrets = _Secrets(secrets or {})
        self._runs: dict[str, _Run] = {}  # every instance run here, by id: for `query`

    async def run(
        self,
        workflow: Workflow,
        params: Any = None,
        events: Sequence[ScheduledEvent] = (),
        **options: Any,
    ) -> TestResult:
        """Run to the end on the virtual clock (in a worker thread: each wake-up is a
        replay in an event loop of its own). Options: entrypoint (of a source or callable;
        a WorkflowSource names its own), instance_id."""
        return await asyncio.to_thread(self.run_sync, workflow, params, events, **options)

    def run_sync(
        self,
        workflow: Workflow,
        params: Any = None,
        events: Sequence[ScheduledEvent] = (),
        *,
        entrypoint: str = "run",
        instance_id: str = "test-instance",
        terminate_after: float | None = None,
        rollback: bool = False,
    ) -> TestResult:
        """`run` for code that is not async (or is already inside a running loop's thread).
        `terminate_after`: seconds after the start at which it is terminated, as
        `tenantflow terminate` would (`rollback`: `--rollback`, the rollbacks of its
        completed steps run first)."""
        started = self.clock.now()
        root = self._run_of(workflow, params, instance_id, entrypoint)
        if terminate_after is not None:
            root.terminate_at = started + dt.timedelta(seconds=terminate_after)
            root.terminate_rollback = rollback
        root.schedule = sorted(
            ((started + dt.timedelta(seconds=s), t, p) for s, t, p in events), key=lambda e: e[0]
        )
        runs = {instance_id: root}
        try:
            return self._settle(root, runs)
        finally:
            self._runs.update(runs)

    def query(self, instance: str | TestResult, name: str, *args: Any) -> Any:
        """The value of the query `name` (`step.query(name, handler)`) of an instance run
        here, as of its journal now: a read-only replay, then `handler(*args)`, as the
        sandbox answers `tenantflow query`. Raises QueryError (its `reason`: UnknownQuery,
        QueryFailed, QueryResultTooLarge, ...) when there is no value."""
        key = instance.instance_id if isinstance(instance, TestResult) else instance
        run = self._runs.get(key)
        if run is None:
            raise KeyError(f"no instance {key!r} ran in this WorkflowTestEnv")
        if run.code is None:
            raise QueryError(f"instance {key!r} never ran: {run.failure}", reason="QueryFailed")
        reading = getattr(self.db, "reading_only", None)
        with self._loaded(run.code) as fn, reading() if reading else nullcontext():
            answer = query(
                fn,
                name,
                list(args),
                journal=run.journal,
                params=run.params,
                instance_id=run.instance_id,
                started_at=run.started,
                now=self.clock.now,
                tenant=self.tenant,
                db=self.db,
                defaults=self._defaults(run.code),
                limits=self.limits,
                offload=self.outputs,
                secrets=self.secrets,
            )
        if answer.error is not None:
            raise QueryError(
                answer.error["message"], reason=answer.error["name"], registered=answer.registered
            )
        return answer.value

    def _settle(self, root: _Run, runs: dict[str, _Run]) -> TestResult:
        advances = 0
        while True:
            ready = [r for r in runs.values() if r.ready(self.clock.now())]
            for run in ready:
                advances += 1
                if advances > self.max_advances:
                    raise RuntimeError(
                        f"workflow did not settle within {self.max_advances} advances"
                    )
                self._advance(run, runs)
            if root.finished:
                return root.result
            if ready:
                continue
            wakes = [at for r in runs.values() if not r.finished for at in r.wake_times()]
            if not wakes:
                return root.result  # Waiting, and nothing scheduled can wake it
            self.clock.skip_to(min(wakes))

    def _run_of(
        self, workflow: Workflow | None, params: Any, instance_id: str, entrypoint: str = "run"
    ) -> _Run:
        run = _Run(code=None, params=params, instance_id=instance_id, started=self.clock.now())
        run.result.instance_id = instance_id
        if workflow is None:
            run.failure = {
                "name": "DefinitionNotFound",
                "message": "no such workflow in WorkflowTestEnv(workflows=...)",
            }
            return run
        if isinstance(workflow, str):
            workflow = WorkflowSource({f"{SINGLE_MODULE}.py": workflow}, SINGLE_MODULE, entrypoint)
        if isinstance(workflow, WorkflowSource):
            run.result.attributes = labels_for(params, dict(workflow.search_attributes or {}))
            # what the operator checks before a revision may start (it never imports it)
            checked = code_check.check(
                code_check.Code(workflow.files, workflow.main), workflow.entrypoint
            )
            run.code = workflow if checked.ok else None
            if not checked.ok:
                run.failure = {"name": checked.reason, "message": checked.message}
            return run
        try:
            run.code = check(workflow, entrypoint)
        except EngineError as exc:
            run.failure = {"name": exc.reason, "message": str(exc)}
        return run

    @contextmanager
    def _loaded(self, code: WorkflowSource | WorkflowFn) -> Iterator[WorkflowFn]:
        """The entrypoint for one advance: a source's modules are imported afresh and
        forgotten after it, as in the sandbox (module state does not outlive a replay)."""
        if not isinstance(code, WorkflowSource):
            yield code
            return
        with revision(code.files, code.main, code.entrypoint, code.name) as fn:
            yield fn

    def _advance(self, run: _Run, runs: dict[str, _Run]) -> None:
        """One advance of `run`; then its new children join, or its children are ended."""
        now = self.clock.now()
        result = run.result
        result.advances += 1
        if run.code is None:
            self._errored(run, runs, run.failure or {})
            return
        due = run.terminate_at is not None and now >= run.terminate_at
        if due and not self._terminating(run, runs, now):
            return
        finished = {
            step: ChildResult(r.phase, r.output, None, r.error)
            for name, step in run.awaits.items()
            if runs[name].finished
            for r in (runs[name].result,)
        }
        try:
            with self._loaded(run.code) as fn:
                out = advance(
                    fn,
                    journal=run.journal,
                    params=run.params,
                    instance_id=run.instance_id,
                    started_at=run.started,
                    inbox=[InboxEvent(t, p, at) for at, t, p in run.schedule if at <= now],
                    now=self.clock.now,
                    tenant=self.tenant,
                    db=self.db,
                    defaults=self._defaults(run.code),
                    limits=self.limits,
                    offload=self.outputs,
                    children=finished,
                    secrets=self.secrets,
                    declared_attributes=_declared(run.code),
                )
        except EngineError as exc:  # importing its modules failed: before any step ran
            self._errored(run, runs, {"name": exc.reason, "message": str(exc)})
            return
        run.journal, run.outcome, run.advanced_at, run.child_changed = (
            out.journal,
            out.outcome,
            now,
            False,
        )
        result.steps, result.elapsed = dump(out.journal), now - run.started
        result.logs.extend(out.logs)
        for name, value in out.attributes.items():  # as the operator labels the instance
            if value is None:
                result.attributes.pop(name, None)
            else:
                result.attributes[name] = value
        self._record(run, runs, now)
        if run.finished:
            self._finished(run, runs)

    def _record(self, run: _Run, runs: dict[str, _Run], now: dt.datetime) -> None:
        """Its result's phase (and what goes with it) from its last advance's outcome."""
        outcome, result = run.outcome, run.result
        if isinstance(outcome, RolledBack):
            if run.terminate_at is not None and now >= run.terminate_at:
                result.phase, result.waiting_for = "Terminated", None
            else:
                result.phase, result.error = "Errored", outcome.error
        elif isinstance(outcome, RollbackFailed):
            result.phase, result.error = "RollbackFailed", outcome.error
        elif isinstance(outcome, Compensating):
            result.phase, result.waiting_for = "Compensating", outcome.waiting_for
        elif isinstance(outcome, Complete):
            result.phase = "Complete"
            result.output = (
                outcome.output if outcome.output_ref is None else self._load(outcome.output_ref)
            )
        elif isinstance(outcome, Errored):
            result.phase, result.error = "Errored", outcome.error
        elif isinstance(outcome, Waiting):
            result.phase, result.waiting_for = "Waiting", outcome.waiting_for
            for start in outcome.children:
                self._start(run, start, runs)
        else:
            result.phase = "Running"

    def _terminating(self, run: _Run, runs: dict[str, _Run], now: dt.datetime) -> bool:
        """Its termination is due: True when it is to advance (compensating), else it is
        Terminated now."""
        steps = dump(run.journal)
        if compensating_in(steps):
            return True
        if run.terminate_rollback and owed_in(steps):
            trigger = {"name": TERMINATED, "message": "terminated with rollback by the test"}
            run.journal = [*run.journal, *load([marker(trigger, now)])]
            return True
        run.terminated, run.result.phase, run.result.waiting_for = True, "Terminated", None
        self._finished(run, runs)
        return False

    def _errored(self, run: _Run, runs: dict[str, _Run], error: dict[str, Any]) -> None:
        run.outcome = Errored(error)
        run.result.phase, run.result.error = "Errored", error
        self._finished(run, runs)

    def _defaults(self, code: WorkflowSource | WorkflowFn) -> StepDefaults:
        """A definition's own step defaults (from its manifest), else the env's."""
        own = code.defaults if isinstance(code, WorkflowSource) else None
        return own or self.defaults

    def _start(self, parent: _Run, start: ChildStart, runs: dict[str, _Run]) -> None:
        """A child of `parent`; one given a source (a plan written at runtime) runs that
        source as its definition, as the operator records it for the child (the size
        checks and the revision budget are the operator's, not the kit's)."""
        parent.awaits[start.name] = start.step
        if start.source is not None:
            files, main = dict(start.source.files), start.source.main
            self.workflows[start.definition] = WorkflowSource(files, main, name=start.definition)
        if start.name not in runs:
            child = self._run_of(self.workflows.get(start.definition), start.params, start.name)
            runs[start.name] = child
            parent.result.children[start.name] = child.result

    def _finished(self, run: _Run, runs: dict[str, _Run]) -> None:
        """Wake the parents that await `run`; terminate the children `run` still awaited."""
        for other in runs.values():
            if run.instance_id in other.awaits:
                other.child_changed = True
        for name in run.awaits:
            child = runs[name]
            if not child.finished:
                child.terminated, child.result.phase = True, "Terminated"
                self._finished(child, runs)

    def _load(self, ref: str) -> Any:
        import json

        return json.loads(self.outputs.get(ref))
