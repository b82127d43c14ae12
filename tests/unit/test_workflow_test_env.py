"""WorkflowTestEnv with code as a tenant ships it: several files (a directory, a
WorkflowDefinition manifest), the definition's step defaults, and `env.secrets`."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from tenantflow.testing import WorkflowSource, WorkflowTestEnv, definitions

pytestmark = pytest.mark.unit

MANIFEST = textwrap.dedent(
    """
    apiVersion: tenantflow.dev/v1beta1
    kind: WorkflowDefinition
    metadata: {name: build, namespace: tenant-acme}
    spec:
      source:
        main: pipeline
        files:
          pipeline.py: |
            import steps
            async def run(event, step, env):
                return await step.do("build", lambda: steps.build(event["payload"]))
          steps.py: |
            def build(svc):
                import naming  # imported lazily, inside the step
                return naming.image(svc)
          naming.py: |
            def image(svc):
                return f"registry.local/{svc}:1"
    ---
    apiVersion: tenantflow.dev/v1beta1
    kind: WorkflowDefinition
    metadata: {name: release, namespace: tenant-acme}
    spec:
      defaults: {retries: {limit: 0}}
      source:
        inline: |
          async def run(event, step, env):
              image = await step.child("build-api", "build", "api")
              await step.do("deploy", lambda: 1 / 0)
    ---
    apiVersion: tenantflow.dev/v1beta1
    kind: WorkflowInstance
    metadata: {name: release-1, namespace: tenant-acme}
    spec: {workflowRef: {name: release}}
    """
)


def test_a_manifests_definitions_run_with_their_files_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(MANIFEST)
    found = definitions(tmp_path / "release.yaml")
    assert sorted(found) == ["build", "release"]  # the instance is skipped
    env = WorkflowTestEnv(workflows=found)
    result = env.run_sync(WorkflowSource.from_manifest(tmp_path / "release.yaml", "release"))
    (child,) = result.children.values()
    assert child.phase == "Complete" and child.output == "registry.local/api:1", child.error
    # the definition's `retries: {limit: 0}`, not the default 5 retries
    assert result.phase == "Errored" and result.step("deploy")["attempts"] == 1


def test_a_manifest_with_several_definitions_asks_which(tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(MANIFEST)
    with pytest.raises(ValueError, match=r"build, release; pass name="):
        WorkflowSource.from_manifest(tmp_path / "release.yaml")


def test_a_directory_is_its_py_files_and_a_same_named_module_of_the_test_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "main.py").write_text(
        "import steps\nasync def run(event, step):\n"
        "    return await step.do('s', lambda: steps.VALUE)\n"
    )
    (tmp_path / "steps.py").write_text("VALUE = 'the workflow\\'s steps'\n")
    (tmp_path / "notes.txt").write_text("not code")
    own = types.ModuleType("steps")  # the test project's own module of that name
    monkeypatch.setitem(sys.modules, "steps", own)
    source = WorkflowSource.from_directory(tmp_path)
    assert sorted(source.files) == ["main.py", "steps.py"]
    result = WorkflowTestEnv().run_sync(source)
    assert (result.phase, result.output) == ("Complete", "the workflow's steps"), result.error
    assert sys.modules["steps"] is own


def test_code_that_cannot_start_errors_as_the_operator_would_refuse_it() -> None:
    source = WorkflowSource({"main.py": "import steps\n"})
    result = WorkflowTestEnv().run_sync(source)
    assert result.phase == "Errored" and result.error
    assert result.error["name"] == "EntrypointMissing"
    broken = WorkflowSource({"main.py": "import steps\nasync def run(e, s): pass\n"})
    result = WorkflowTestEnv().run_sync(broken)
    assert result.error and result.error["name"] == "ImportError"
    assert "No module named 'steps'" in result.error["message"]


SECRET_USER = """
async def run(event, step, env):
    token = env.secrets["registry"]["token"]
    await step.do("push", lambda: env.secrets[event["payload"]][token])
"""


def test_secrets_are_given_and_masked_and_a_missing_one_says_how_to_give_it() -> None:
    env = WorkflowTestEnv(secrets={"registry": {"token": "t0ken-abc"}})
    result = env.run_sync(SECRET_USER, params="registry")
    failure = result.step("push")["error"]
    assert failure["name"] == "SecretNotFound"
    assert "no key '***'" in failure["message"] and "t0ken" not in failure["message"]
    result = env.run_sync(SECRET_USER, params="db", instance_id="other")
    assert "WorkflowTestEnv(secrets={'db': {'key': 'value'}})" in str(result.step("push"))
    result = WorkflowTestEnv().run_sync(SECRET_USER)
    assert result.error and "WorkflowTestEnv(secrets={'registry'" in result.error["message"]
