"""A tenant's own project tests its workflow as the docs say, with nothing but tenantflow
installed: a workflow in two modules, a test file with `async def test_...` using
WorkflowTestEnv with its files and a secret; no conftest, no pytest.ini, run by
`python -m pytest` in a directory outside this repository."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

MAIN = """
import steps

async def run(event, step, env):
    image = await step.do("build", lambda: steps.build(event["payload"]["svc"]))
    await step.wait_for_event("approval", type="approved", timeout="1d")
    token = env.secrets["registry"]["token"]
    return await step.do("push", lambda: steps.push(image, token))
"""
STEPS = """
def build(svc):
    return f"registry.local/{svc}:1"

def push(image, token):
    return {"pushed": image, "authenticated": token == "t0ken-abc"}
"""
TEST = """
from pathlib import Path

from tenantflow.testing import WorkflowSource, WorkflowTestEnv


async def test_it_pushes_once_approved():
    env = WorkflowTestEnv(secrets={"registry": {"token": "t0ken-abc"}})
    result = await env.run(
        WorkflowSource.from_directory(Path(__file__).parent / "pipeline"),
        params={"svc": "api"},
        events=[(3600, "approved", {"by": "bob"})],
    )
    assert result.phase == "Complete", result.error
    assert result.output == EXPECTED
"""


def _project(root: Path, expected: object) -> Path:
    (root / "pipeline").mkdir(parents=True)
    (root / "pipeline" / "main.py").write_text(MAIN)
    (root / "pipeline" / "steps.py").write_text(STEPS)
    (root / "test_pipeline.py").write_text(textwrap.dedent(TEST) + f"\n\nEXPECTED = {expected!r}\n")
    return root


def _pytest(project: Path) -> subprocess.CompletedProcess[str]:
    """`python -m pytest` in the project, as its owner runs it: this venv's Python, none
    of this repository's pytest settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_tenants_async_workflow_test_runs_with_no_configuration(tmp_path: Path) -> None:
    project = _project(
        tmp_path / "acme-ci", {"pushed": "registry.local/api:1", "authenticated": True}
    )
    assert not list(project.rglob("conftest.py")) and not list(project.rglob("*.ini"))
    done = _pytest(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout  # run, not skipped as unsupported


def test_a_failing_assertion_in_a_tenants_test_fails_the_run(tmp_path: Path) -> None:
    project = _project(tmp_path / "acme-ci", {"pushed": "elsewhere"})
    done = _pytest(project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout and "assert" in done.stdout, done.stdout
