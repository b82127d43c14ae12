"""Turn workflow code — one module or several files — into a checked `run` callable, with
errors that say what to fix.

A multi-file workflow is a set of modules (`helpers.py` → `import helpers`) and a main
module holding the entrypoint. Its modules are served from memory by a finder that lives
only for one advance (`TenantModules`), so nothing of one revision or tenant stays in
`sys.modules` for the next.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import linecache
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any, cast

from tenantflow.engine.errors import (
    EntrypointMissingError,
    WorkflowDefinitionError,
    WorkflowImportError,
    WorkflowSignatureError,
    WorkflowSyntaxError,
)
from tenantflow.engine.typescript import EXTENSIONS, GuestCode, is_guest, typescript_workflow
from tenantflow.vocabulary import DEFAULT_ENTRYPOINT

WorkflowFn = Callable[..., Awaitable[Any]]
SINGLE_MODULE = "workflow"  # the module name of a one-module source (spec.source.inline)
FILE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*[.]py$")  # [.]: the CEL rule reuses it
# names a workflow module may not take: the worker's own imports would resolve to it
RESERVED = frozenset(sys.stdlib_module_names) | {"tenantflow", "__main__"}


def module_name(file: str) -> str:
    """`helpers.py` → `helpers`; a clear error for a name that cannot be a module."""
    if not FILE_NAME.match(file):
        raise WorkflowDefinitionError(
            f"file {file!r}: a workflow file is a Python module name ending in .py "
            "(letters, digits, '_'; e.g. helpers.py)"
        )
    name = file[:-3]
    if name in RESERVED:
        raise WorkflowDefinitionError(
            f"file {file!r} would hide the standard-library or tenantflow module {name!r}; "
            "rename it"
        )
    return name


class TenantModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a workflow's files as importable modules, from memory."""

    def __init__(self, files: Mapping[str, str], label: str) -> None:
        self.sources = {module_name(f): (f, text) for f, text in files.items()}
        self.label = label

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.sources:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin=self.origin(fullname))

    def origin(self, name: str) -> str:
        """The module's file name in tracebacks: `<label/file.py>`."""
        return f"<{self.label}/{self.sources[name][0]}>"

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        try:
            code = compile(self.sources[name][1], self.origin(name), "exec")
        except SyntaxError as exc:
            where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
            raise WorkflowSyntaxError(f"{self.origin(name)} {where}: {exc.msg}") from None
        module.__file__ = self.origin(name)
        exec(code, module.__dict__)


@contextmanager
def workflow_modules(files: Mapping[str, str], label: str = "workflow") -> Iterator[None]:
    """Make `files` importable for the duration of the block (one advance), then forget
    them: the finder goes, and so does every module it loaded. A module of the same name
    loaded before (a tenant's test importing its own `steps`) is set aside for the block
    and put back after. Their lines are in `linecache` meanwhile, so a traceback through
    them shows the code (as it does for a file on disk)."""
    finder = TenantModules(files, label)
    before = {name: sys.modules.pop(name) for name in finder.sources if name in sys.modules}
    lines = {finder.origin(name): text for name, (_, text) in finder.sources.items()}
    for origin, text in lines.items():
        # mtime None: linecache.checkcache keeps the entry (it cannot stat `<ci/x.py>`)
        linecache.cache[origin] = (len(text), None, text.splitlines(keepends=True), origin)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in finder.sources:
            sys.modules.pop(name, None)
        sys.modules.update(before)
        for origin in lines:
            linecache.cache.pop(origin, None)


def load_main(main: str, entrypoint: str = DEFAULT_ENTRYPOINT) -> WorkflowFn:
    """Import the main module (inside `workflow_modules`) and return its checked entrypoint."""
    try:
        module = importlib.import_module(main)
    except WorkflowDefinitionError:
        raise
    except Exception as exc:
        raise WorkflowImportError(
            f"importing the workflow module {main!r} raised {type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, entrypoint, None)
    if fn is None:
        defined = sorted(n for n, v in vars(module).items() if inspect.iscoroutinefunction(v))
        hint = f"; async functions defined: {', '.join(defined)}" if defined else ""
        raise EntrypointMissingError(
            f"{module.__file__}: no function {entrypoint!r} (spec.entrypoint){hint}. "
            f"Define `async def {entrypoint}(event, step, env)`."
        )
    return check(fn, entrypoint)


def main_file(files: Mapping[str, str], main: str) -> str:
    """The file holding the entrypoint: `main` with the first extension present (`.py`,
    then TypeScript's and JavaScript's); `main.py` when none is (the error names it)."""
    for ext in (".py", *EXTENSIONS):
        if f"{main}{ext}" in files:
            return f"{main}{ext}"
    return f"{main}.py"


@contextmanager
def revision(
    files: Mapping[str, str],
    main: str,
    entrypoint: str = DEFAULT_ENTRYPOINT,
    label: str = "workflow",
    heap_bytes: int | None = None,
    scratch: str | None = None,
) -> Iterator[WorkflowFn]:
    """A revision's checked entrypoint for the duration of the block, in its language:
    Python modules served from memory, or TypeScript/JavaScript run by Deno
    (engine/typescript.py; `heap_bytes` caps its heap, `scratch` keeps its sources and
    cache)."""
    found = main_file(files, main)
    if is_guest(found):
        yield typescript_workflow(GuestCode(files, found, entrypoint, label, heap_bytes, scratch))
        return
    with workflow_modules(files, label):
        yield load_main(main, entrypoint)


def load(source: str, entrypoint: str = DEFAULT_ENTRYPOINT, label: str = "workflow") -> WorkflowFn:
    """One module's source, loaded as the module `workflow` (tests and the local harness)."""
    with workflow_modules({f"{SINGLE_MODULE}.py": source}, label):
        return load_main(SINGLE_MODULE, entrypoint)


def check(fn: Any, name: str = DEFAULT_ENTRYPOINT) -> WorkflowFn:
    """`fn` must be `async def` taking (event, step) or (event, step, env)."""
    if not inspect.iscoroutinefunction(fn):
        raise WorkflowSignatureError(
            f"{name!r} must be an async function: `async def {name}(event, step, env)`"
        )
    if arity(fn) not in (2, 3):
        raise WorkflowSignatureError(
            f"{name!r} takes {arity(fn)} positional parameter(s); it must take "
            f"(event, step) or (event, step, env)"
        )
    return cast(WorkflowFn, fn)


def arity(fn: Any) -> int:
    """Positional parameters `fn` accepts (3 when it has *args)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 3
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in positional)
