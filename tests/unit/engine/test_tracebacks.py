"""Errors of tenant code as its author wants to read them: the traceback of its own frames
only (no engine, event loop or thread pool), with its source lines, secrets masked before
the cut, bounded; in the step's error, the instance's, the CRD and `tenantflow status`."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from tenantflow.api.instance import ErrorInfo, StepStatus
from tenantflow.cli.workflow_cmds import _status_view
from tenantflow.engine.state import MAX_TRACEBACK
from tenantflow.engine.tracebacks import CUT, HEADER, own_frame
from tenantflow.testing import WorkflowSource, WorkflowTestEnv

pytestmark = pytest.mark.unit

FILES = {
    "main.py": (
        "import steps\n"
        "async def run(event, step, env):\n"
        "    token = env.secrets['registry']['token']\n"
        "    await step.do('push', lambda: steps.push(token), retries={'limit': 0})\n"
    ),
    "steps.py": (
        "def push(token):\n"
        "    return check(token)\n"
        "def check(token):\n"
        "    raise PermissionError(f'registry refused {token}')\n"
    ),
}
SECRETS = {"registry": {"token": "t0ken-abc"}}


def _run(files: dict[str, str], **kwargs: Any) -> Any:
    env = WorkflowTestEnv(secrets=SECRETS)
    return env.run_sync(WorkflowSource(files, name="ci"), **kwargs)


def test_a_failed_steps_error_has_the_tenants_frames_only_with_their_lines() -> None:
    error = _run(FILES).step("push")["error"]
    trace = error["traceback"]
    assert trace.startswith(HEADER)
    lines = [line.strip() for line in trace.splitlines()[1:]]
    assert [line for line in lines if not set(line) <= {"^", "~"}] == [
        'File "<ci/main.py>", line 4, in <lambda>',
        "await step.do('push', lambda: steps.push(token), retries={'limit': 0})",
        'File "<ci/steps.py>", line 2, in push',
        "return check(token)",
        'File "<ci/steps.py>", line 4, in check',
        "raise PermissionError(f'registry refused {token}')",
        "PermissionError: registry refused ***",  # masked as the message is
    ]
    assert error["message"] == "registry refused ***"
    StepStatus.model_validate(_run(FILES).step("push"))  # the CRD's shape has room for it


def test_an_exception_out_of_run_keeps_its_traceback_in_the_instance_error() -> None:
    files = {"main.py": "async def run(event, step):\n    return {}['missing']\n"}
    error = _run(files).error
    assert error["name"] == "KeyError"
    assert 'File "<ci/main.py>", line 2, in run' in error["traceback"]
    assert "tenantflow" not in error["traceback"]


def test_an_error_the_engine_raises_of_its_own_accord_has_no_traceback() -> None:
    files = {"main.py": "async def run(event, step):\n    await step.sleep('s', 'soon')\n"}
    error = _run(files).error
    # the tenant's call is kept; the engine's own frames below it are not
    assert error["name"] == "InvalidStepOptions"
    assert "line 2, in run" in error["traceback"] and "state.py" not in error["traceback"]
    result = _run(FILES, params=None)
    assert "traceback" not in (result.error or {})  # a StepError: the step has the trace


def test_a_long_traceback_keeps_its_end_and_is_masked_before_the_cut() -> None:
    calls = "".join(f"def f{i}(token):\n    return f{i + 1}(token)\n" for i in range(80))
    deep = {
        "main.py": (
            "import steps\nasync def run(event, step, env):\n"
            "    token = env.secrets['registry']['token']\n"
            "    await step.do('dig', lambda: steps.f0(token), retries={'limit': 0})\n"
        ),
        "steps.py": calls + "def f80(token):\n    raise RuntimeError('bottom ' + token)\n",
    }
    trace = _run(deep).step("dig")["error"]["traceback"]
    assert len(trace) <= MAX_TRACEBACK and trace.startswith(HEADER + CUT)
    assert trace.splitlines()[2].lstrip().startswith('File "<ci/steps.py>"')  # a whole line
    assert trace.endswith("RuntimeError: bottom ***\n") and "t0ken" not in trace
    with pytest.raises(pydantic.ValidationError):
        ErrorInfo(name="E", traceback="x" * (MAX_TRACEBACK + 1))


def test_whose_frames_are_the_tenants() -> None:
    import asyncio

    import tenantflow.engine.step

    assert own_frame("<ci/steps.py>") and own_frame("/home/acme/ci/test_pipeline.py")
    assert not own_frame(tenantflow.engine.step.__file__)
    assert not own_frame(asyncio.__file__) and not own_frame(pydantic.__file__)
    assert not own_frame("<frozen importlib._bootstrap>")


def test_tenantflow_status_shows_the_failed_steps_traceback() -> None:
    result = _run(FILES)
    inst = {
        "metadata": {"namespace": "tenant-acme", "name": "ci-1"},
        "spec": {"workflowRef": {"name": "ci"}},
        "status": {"phase": "Errored", "revision": 1, "error": result.error, "steps": result.steps},
    }
    shown = _status_view(inst)["table"]
    assert "Error:     PermissionError: registry refused *** (step 'push')" in shown
    assert '             File "<ci/steps.py>", line 4, in check' in shown
