"""Multi-file workflow code: every module importable by the others for one advance and
forgotten after it, a revision's digest over every file, checks that name the file, and
per-file diffs."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tenantflow.cli.workflow_cmds import code_diff
from tenantflow.engine.errors import (
    WorkflowDefinitionError,
    WorkflowImportError,
    WorkflowSyntaxError,
)
from tenantflow.engine.loader import load_main, workflow_modules
from tenantflow.lifecycle.source import Code, check, sha256

FILES = {
    "main.py": (
        "import helpers\n"
        "from steps import double\n"
        "async def run(event, step):\n"
        "    return helpers.greet(double(event['n']))\n"
    ),
    "helpers.py": "def greet(n):\n    import steps\n    return f'hello {steps.double(n)}'\n",
    "steps.py": "def double(n):\n    return 2 * n\n",
}


def test_modules_import_each_other_and_are_forgotten_after_the_advance() -> None:
    with workflow_modules(FILES, "ci"):
        fn = load_main("main")
        # a module imported lazily, inside a step, resolves while the advance runs
        assert asyncio.run(fn({"n": 3}, None)) == "hello 12"
        assert sys.modules["helpers"].__file__ == "<ci/helpers.py>"
    assert not {"main", "helpers", "steps"} & set(sys.modules)
    with pytest.raises(ModuleNotFoundError):
        __import__("helpers")


def test_a_file_named_like_a_standard_module_is_refused_before_it_can_hide_it() -> None:
    with (
        pytest.raises(WorkflowDefinitionError, match=r"'json\.py' would hide"),
        workflow_modules({"json.py": "x = 1\n"}),
    ):
        pass
    assert not check(Code({"json.py": "", "main.py": "async def run(e, s): pass\n"}, "main")).ok


def test_errors_name_the_file() -> None:
    broken = {**FILES, "steps.py": "def double(n)\n    return n\n"}
    result = check(Code(broken, "main"))
    assert (result.ok, result.reason) == (False, "SyntaxError")
    assert result.message.startswith("steps.py line 1"), result.message
    with workflow_modules(broken, "ci"), pytest.raises(WorkflowSyntaxError, match=r"steps\.py"):
        load_main("main")
    raising = {**FILES, "steps.py": "raise RuntimeError('no network here')\n"}
    with workflow_modules(raising, "ci"), pytest.raises(WorkflowImportError, match="no network"):
        load_main("main")
    missing = check(Code(FILES, "pipeline"))
    assert missing.reason == "MainModuleMissing" and "helpers.py, main.py, steps.py" in (
        missing.message
    )
    assert check(Code({"my-lib.py": "", **FILES}, "main")).reason == "InvalidFileName"
    assert check(Code(FILES, "main")).ok


def test_the_digest_covers_every_file_its_name_and_the_main_module() -> None:
    one = "async def run(event, step):\n    return 1\n"
    assert Code.single(one).sha256 == sha256(one)  # revisions made before multi-file code
    base = Code(FILES, "main").sha256
    assert Code(dict(reversed(FILES.items())), "main").sha256 == base  # order is not content
    changed = [
        Code({**FILES, "steps.py": FILES["steps.py"] + "\n"}, "main"),
        Code({**FILES, "extra.py": ""}, "main"),
        Code({"main.py": FILES["main.py"], "helpers2.py": FILES["helpers.py"]}, "main"),
        Code({**FILES, "run.py": FILES["main.py"]}, "run"),
    ]
    assert len({base, *(c.sha256 for c in changed)}) == 1 + len(changed)
    # moving bytes between a name and a content does not collide
    assert Code({"a.py": "bc"}, "a").sha256 != Code({"a.py": "b", "c.py": ""}, "a").sha256


def test_revision_data_round_trips_and_old_revisions_still_read() -> None:
    code = Code(FILES, "main")
    assert Code.from_revision(code.revision_data()) == code
    assert Code.from_revision({"source": "x = 1\n"}) == Code.single("x = 1\n")


def test_diff_is_per_file() -> None:
    old = Code(FILES, "main")
    new = Code(
        {**{k: v for k, v in FILES.items() if k != "steps.py"}, "util.py": "y = 2\n"}, "main"
    )
    new = Code({**new.files, "helpers.py": FILES["helpers.py"].replace("hello", "hi")}, "main")
    out = code_diff(old, new, "ci@1", "ci@2")
    assert "--- ci@1/helpers.py\n+++ ci@2/helpers.py" in out
    assert "-    return f'hello" in out and "+    return f'hi" in out
    assert "--- ci@1/steps.py\n+++ /dev/null" in out
    assert "--- /dev/null\n+++ ci@2/util.py" in out
    assert "main.py" not in out  # unchanged files are not shown


def test_a_one_module_diff_keeps_its_plain_labels() -> None:
    out = code_diff(Code.single("a = 1\n"), Code.single("a = 2\n"), "d@1", "d@2")
    assert out.startswith("--- d@1\n+++ d@2\n")
