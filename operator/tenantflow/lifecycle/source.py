"""A revision's code, and checking it without running it (the operator never executes
tenant code)."""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantflow.engine.errors import WorkflowDefinitionError
from tenantflow.engine.loader import SINGLE_MODULE, main_file, module_name
from tenantflow.engine.typescript import FILE_NAME as GUEST_FILE_NAME
from tenantflow.engine.typescript import is_guest
from tenantflow.vocabulary import DEFAULT_ENTRYPOINT, MAX_CODE_BYTES, MAX_FILES, Language


@dataclass(frozen=True)
class Code:
    """What a revision runs: its files (name → source) and the module that holds the
    entrypoint. A one-module source is the file `workflow.py` (`workflow.ts` or
    `workflow.js` in those languages). The main file's extension says the language."""

    files: Mapping[str, str]
    main: str = SINGLE_MODULE

    @classmethod
    def single(cls, source: str, language: Language | str = Language.PYTHON) -> Code:
        return cls({f"{SINGLE_MODULE}{Language(language).extension}": source})

    @classmethod
    def from_revision(cls, data: Mapping[str, Any]) -> Code:
        """From a ControllerRevision's data (revisions older than multi-file code hold
        only `source`)."""
        files = data.get("files")
        if isinstance(files, dict):
            return cls(dict(files), str(data.get("main") or SINGLE_MODULE))
        return cls.single(str(data["source"]))

    @property
    def main_file(self) -> str:
        return main_file(self.files, self.main)

    @property
    def main_source(self) -> str:
        return self.files.get(self.main_file, "")

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
    if is_guest(code.main_file):
        return _check_guest(code, entrypoint)
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


def _check_guest(code: Code, entrypoint: str) -> SourceCheck:
    """TypeScript/JavaScript: file names, and an exported entrypoint found by its shape
    (the operator has no TypeScript parser and runs no tenant code: a syntax error is the
    first advance's clear error, with the file and line, as an import error is)."""
    for file in sorted(code.files):
        if not GUEST_FILE_NAME.match(file):
            return SourceCheck(
                False,
                "InvalidFileName",
                f"file {file!r}: a TypeScript/JavaScript workflow's files are names like "
                "helpers.ts (letters, digits, '_'; .ts, .mts, .js or .mjs), none of another "
                "language",
            )
    text = code.main_source
    exported = re.compile(
        rf"export\s+(async\s+)?function\s*\*?\s*{re.escape(entrypoint)}\b"
        rf"|export\s+(const|let|var)\s+{re.escape(entrypoint)}\b"
        rf"|export\s*\{{[^}}]*\b{re.escape(entrypoint)}\b"
        r"|export\s+(default\s+)?(abstract\s+)?class\s+\w*\s*(<[^>]*>\s*)?extends\s+WorkflowEntrypoint"
    )
    if not exported.search(text):
        return SourceCheck(
            False,
            "EntrypointMissing",
            f"{code.main_file}: no exported function {entrypoint!r} (spec.entrypoint) and no "
            f"exported class extending WorkflowEntrypoint; add `export async function "
            f"{entrypoint}(event, step, env)`",
        )
    return SourceCheck(
        True, message="the entrypoint is exported (syntax is checked by the first advance)"
    )


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
