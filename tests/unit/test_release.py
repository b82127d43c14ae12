"""One version, in one place: pyproject.toml's, which the package, the chart and the
images follow (hack/release.py check; set-version rewrites them all)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import tenantflow
from tenantflow.errors import DevClusterError
from tenantflow_dev.devcluster import images, previous, release

ROOT = Path(__file__).resolve().parents[2]
VERSIONED = [
    "pyproject.toml",
    "CHANGELOG.md",
    "operator/tenantflow/__init__.py",
    "charts/tenantflow/Chart.yaml",
    "charts/tenantflow/values.yaml",
    "operator/tenantflow/tenancy/manifests.py",
    "operator/Containerfile",
    "sandbox-image/Containerfile",
    "examples/sandbox-image/Containerfile",
    "examples/ci-pipeline-git/tenant.yaml",
]


def test_every_place_names_pyprojects_version() -> None:
    assert release.drift() == [], "run `hack/release.py set-version X.Y.Z` (see CHANGELOG.md)"


def test_the_chart_and_package_agree_with_pyproject() -> None:
    """Read as their consumers read them (helm, Python), not by the patterns of `drift`."""
    version = release.project_version()
    chart = yaml.safe_load((ROOT / "charts/tenantflow/Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts/tenantflow/values.yaml").read_text())
    assert tenantflow.__version__ == version
    assert chart["version"] == version
    assert chart["appVersion"] == version
    assert values["image"]["tag"] in ("", version)  # "": the chart's appVersion
    assert values["sandbox"]["image"].rsplit(":", 1)[1] == version
    assert images.ref("operator").endswith(f":{version}")


def test_the_changelog_has_a_section_for_it() -> None:
    section = release.changelog_section(release.project_version())
    assert section, (
        "CHANGELOG.md needs a '## [X.Y.Z] - YYYY-MM-DD' section for this version "
        "('## [Unreleased]', with notes, for an X.Y.Z-dev one)"
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in VERSIONED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("charts/tenantflow/Chart.yaml", "\nversion: ", "\nversion: 9"),
        ("charts/tenantflow/Chart.yaml", 'appVersion: "', 'appVersion: "9'),
        ("charts/tenantflow/values.yaml", "/sandbox:", "/sandbox:9"),
        ("charts/tenantflow/values.yaml", 'tag: ""', 'tag: "9.9.9"'),
        ("operator/tenantflow/__init__.py", '__version__ = "', '__version__ = "9'),
        ("operator/tenantflow/tenancy/manifests.py", "/sandbox:", "/sandbox:9"),
        (
            "sandbox-image/Containerfile",
            "BASE=ghcr.io/tenantflow/operator:",
            "BASE=x/tenantflow/operator:9",
        ),
        ("examples/ci-pipeline-git/tenant.yaml", "sandbox-example:", "sandbox-example:9"),
    ],
)
def test_drift_is_caught(tree: Path, path: str, old: str, new: str) -> None:
    file = tree / path
    file.write_text(file.read_text().replace(old, new, 1))
    problems = release.drift(tree)
    assert len(problems) == 1 and problems[0].startswith(path), problems


def test_set_version_rewrites_every_place(tree: Path) -> None:
    changed = release.set_version("0.2.0", tree)
    assert "pyproject.toml" in changed and "charts/tenantflow/Chart.yaml" in changed
    assert release.project_version(tree) == "0.2.0"
    # only the changelog is left to the person releasing
    assert release.drift(tree) == ["CHANGELOG.md: no '## [0.2.0] - YYYY-MM-DD' section"]
    chart = yaml.safe_load((tree / "charts/tenantflow/Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == ("0.2.0", "0.2.0")
    values = yaml.safe_load((tree / "charts/tenantflow/values.yaml").read_text())
    assert values["image"]["tag"] == ""  # still follows appVersion
    assert values["sandbox"]["image"].endswith(":0.2.0")
    containerfile = (tree / "sandbox-image/Containerfile").read_text()
    assert "0.1.0" not in containerfile and containerfile.count(":0.2.0") == 3


def test_set_version_refuses_what_is_not_semver(tree: Path) -> None:
    with pytest.raises(DevClusterError):
        release.set_version("v0.2", tree)


def test_a_dev_version_is_described_by_the_unreleased_section(tree: Path) -> None:
    """Between releases the tree is X.Y.Z-dev: told apart from the last release (its images
    are tagged by the version), described by CHANGELOG.md's [Unreleased] section."""
    release.set_version("0.3.0-dev", tree)
    assert release.project_version(tree) == "0.3.0-dev"
    values = yaml.safe_load((tree / "charts/tenantflow/values.yaml").read_text())
    assert values["sandbox"]["image"].endswith(":0.3.0-dev")
    changelog = tree / "CHANGELOG.md"
    changelog.write_text(
        "# Changelog\n\n## [Unreleased]\n\n- a note\n\n## [0.2.0] - 2027-01-01\n\n- old\n"
    )
    assert release.changelog_section("0.3.0-dev", tree) == "- a note"
    assert release.drift(tree) == []
    changelog.write_text(changelog.read_text().replace("## [Unreleased]", "## Next", 1))
    assert release.drift(tree) == ["CHANGELOG.md: no '## [Unreleased]' section"]
    # a release version still wants its own dated section, never [Unreleased]
    assert release.changelog_section("0.3.0", tree) is None


def test_a_dev_version_is_never_released(tree: Path) -> None:
    for crds in ("crds", "charts/tenantflow/crds"):
        shutil.copytree(ROOT / crds, tree / crds)
    release.set_version("0.3.0-dev", tree)
    _git(tree, "init", "-q")
    _git(tree, "add", ".")
    _git(tree, "commit", "-qm", "one")
    for tag in (False, True):
        problems = release.preflight(tag=tag, allow_dirty=False, root=tree)
        assert "0.3.0-dev is a development version" in problems[0], problems
        assert "set a release version first (`hack/release.py set-version 0.3.0`)" in problems[0]


def test_the_crds_bundle_holds_every_crd() -> None:
    docs = [d for d in yaml.safe_load_all(release.crds_bundle()) if d]
    kinds = {d["spec"]["names"]["kind"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert kinds == {"Tenant", "WorkflowDefinition", "WorkflowInstance", "WorkflowSchedule"}


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_preflight_wants_a_committed_tree_and_an_untagged_version(tree: Path) -> None:
    for crds in ("crds", "charts/tenantflow/crds"):
        shutil.copytree(ROOT / crds, tree / crds)
    release.set_version("0.1.0", tree)  # a release version (this tree may be X.Y.Z-dev)
    _git(tree, "init", "-q")
    _git(tree, "add", ".")
    _git(tree, "commit", "-qm", "one")
    assert release.preflight(tag=True, allow_dirty=False, root=tree) == []
    (tree / "new.txt").write_text("x")
    dirty = release.preflight(tag=False, allow_dirty=False, root=tree)
    assert len(dirty) == 1 and "not clean" in dirty[0] and "new.txt" in dirty[0]
    assert release.preflight(tag=False, allow_dirty=True, root=tree) == []  # a rehearsal
    refused = release.preflight(tag=True, allow_dirty=True, root=tree)  # never for a tag
    assert len(refused) == 1 and "not clean" in refused[0]
    (tree / "new.txt").unlink()
    _git(tree, "tag", "-a", "v0.1.0", "-m", "0.1.0")
    # the tagged commit itself may be rebuilt, never tagged again
    assert release.preflight(tag=False, allow_dirty=False, root=tree) == []
    assert "tagged already" in release.preflight(tag=True, allow_dirty=False, root=tree)[0]
    _git(tree, "commit", "-q", "--allow-empty", "-m", "two")
    assert "tagged already" in release.preflight(tag=False, allow_dirty=False, root=tree)[0]


def test_each_tagged_release_is_recorded_with_its_commit() -> None:
    """hack/releases.txt gives the upgrade test a release's commit in a clone without tags
    (previous.py); every tag this clone has must be on record there, with its commit."""
    recorded = previous.recorded_commits()
    assert previous.DEFAULT_TAG.removeprefix("v") in recorded
    tags = subprocess.run(
        ["git", "-C", str(ROOT), "tag", "--list", "v*"], capture_output=True, text=True
    ).stdout.split()
    for tag in tags:
        assert recorded.get(tag.removeprefix("v")) == release.tagged_commit(tag), tag


def test_a_release_is_found_by_its_tag_else_by_its_recorded_commit(tree: Path) -> None:
    _git(tree, "init", "-q")
    _git(tree, "add", ".")
    _git(tree, "commit", "-qm", "one")
    head = release._git(tree, "rev-parse", "HEAD")
    (tree / "hack").mkdir()
    (tree / "hack/releases.txt").write_text(f"# comment\n9.9.9 {head}\n")
    assert previous.resolve("v9.9.9", tree) == head  # no such tag: the record
    _git(tree, "commit", "-q", "--allow-empty", "-m", "two")
    _git(tree, "tag", "-a", "v9.9.9", "-m", "9.9.9")
    assert previous.resolve("v9.9.9", tree) == release._git(tree, "rev-parse", "HEAD")
    with pytest.raises(DevClusterError, match=r"no tag v8\.0\.0"):
        previous.resolve("v8.0.0", tree)
    (tree / "hack/releases.txt").write_text(f"8.0.0 {'0' * 40}\n")
    with pytest.raises(DevClusterError, match="does not hold"):
        previous.resolve("v8.0.0", tree)
