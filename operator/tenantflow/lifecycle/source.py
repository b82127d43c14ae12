"""A revision's code, and checking it without running it (the operator never executes
tenant code)."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantflow.engine.errors import WorkflowDefinitionError
from tenantflow.engine.loader import MAX_CODE_BYTES, MAX_FILES, SINGLE_MODULE, module_name
from tenantflow.vocabulary import DEFAULT_ENTRYPOINT


@dataclass(frozen=True)
class Code:
    """What a revision runs: its files (name → Python source) and the module that holds
    the entrypoint. A one-module source is the file `workflow.py`."""

    files: Mapping[str, str]
    main: str = SINGLE_MODULE

    @classmethod
    def single(cls, source: str) -> Code:
        return cls({f"{SINGLE_MODULE}.py": source})

    @classmethod
    def from_revision(cls, data: Mapping[str, Any]) -> Code:
        """From a ControllerRevision's data (revisions older than multi-file code hold
        only `source`)."""
        files = data.get("files")
        if isinstance(files, dict):
            return cls(dict(files), str(data.get("main") or SINGLE_MODULE))
        return cls.single(str(data["source"]))

    @property
    def main_source(self) -> str:
        return self.files.get(f"{self.main}.py", "")

    @property
    def sha256(self) -> str:
        """Covers every file, its name and the main module. A one-module source keeps the
        digest of its text alone, as revisions had before multi-file code (so upgrading
        the operator creates no new revisions)."""
        if len(self.files) == 1 and self.main == SINGLE_MODULE:
            return sha256(next(iter(self.files.values())))
        digest = hashlib.sha256(b"tenantflow-code-v1\0" + self.main.encode() + b"\0")
        for name in sorted(self.files):
            text = self.files[name].encode()
            digest.update(f"{name}\0{len(text)}\0".encode() + text)
        return digest.hexdigest()

    def revision_data(self) -> dict[str, Any]:
        """What a ControllerRevision stores (`source`: the main module, for older readers)."""
        return {"files": dict(self.files), "main": self.main, "source": self.main_source}


def sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@dataclass(frozen=True)
class SourceCheck:
    ok: bool
    reason: str = "Valid"
    message: str = "the source compiles and defines its entrypoint"


def check(code: Code, entrypoint: str = DEFAULT_ENTRYPOINT) -> SourceCheck:
    """Parse (not execute) every module; the main one must define the entrypoint as a
    top-level `async def` taking (event, step) or (event, step, env)."""
    size = sum(len(text.encode()) for text in code.files.values())
    if size > MAX_CODE_BYTES or len(code.files) > MAX_FILES:
        return SourceCheck(
            False,
            "SourceTooLarge",
            f"{len(code.files)} file(s), {size} bytes: at most {MAX_FILES} files and "
            f"{MAX_CODE_BYTES} bytes together; move data out of the code (env.db, params)",
        )
    trees: dict[str, ast.Module] = {}
    for file, text in sorted(code.files.items()):
        try:
            name = module_name(file)
        except WorkflowDefinitionError as exc:
            return SourceCheck(False, "InvalidFileName", str(exc))
        label = file if len(code.files) > 1 else ""
        try:
            trees[name] = ast.parse(text, filename=file)
        except SyntaxError as exc:
            where = f"line {exc.lineno}, column {exc.offset}: {exc.msg}"
            return SourceCheck(False, "SyntaxError", f"{label} {where}".strip())
    tree = trees.get(code.main)
    if tree is None:
        return SourceCheck(
            False,
            "MainModuleMissing",
            f"no file {code.main}.py (spec.source.main); files: {', '.join(sorted(code.files))}",
        )
    return _check_entrypoint(tree, entrypoint)


def _check_entrypoint(tree: ast.Module, entrypoint: str) -> SourceCheck:
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    fn = funcs.get(entrypoint)
    if fn is None:
        defined = ", ".join(sorted(funcs)) or "none"
        return SourceCheck(
            False,
            "EntrypointMissing",
            f"no top-level function {entrypoint!r} (spec.entrypoint); functions defined: {defined}",
        )
    if not isinstance(fn, ast.AsyncFunctionDef):
        return SourceCheck(
            False,
            "EntrypointSignature",
            f"{entrypoint!r} must be `async def {entrypoint}(event, step, env)`",
        )
    positional = len(fn.args.posonlyargs) + len(fn.args.args)
    if fn.args.vararg is None and positional not in (2, 3):
        return SourceCheck(
            False,
            "EntrypointSignature",
            f"{entrypoint!r} takes {positional} positional parameter(s); it must "
            "take (event, step) or (event, step, env)",
        )
    return SourceCheck(True)
