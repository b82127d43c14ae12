"""Releases: one version, written in one place, and what `make release` builds for it.

pyproject.toml's `[project] version` is the version. Everything else that names it is
derived from it and checked against it (`check`; tests/unit/test_release.py fails on any
drift): the package's `__version__` (the images carry no package metadata to read it
from), the chart's `version` and `appVersion`, the chart's default sandbox image tag (and
its operator image tag, when set), the image references the builder gives its archives,
and a CHANGELOG.md section. `set-version X.Y.Z` rewrites them all.

Between releases the tree carries the next version with `-dev` (`0.2.0-dev`): its images
and chart are then told apart from the last release's (images are tagged by the version,
so both can sit on one node: the upgrade test, tests/integration/test_upgrade.py, needs
that), and CHANGELOG.md's `## [Unreleased]` section describes it. A `-dev` version is
never released: `make release` refuses it until `set-version X.Y.Z` names the release.

`make release` (hack/release.py) then checks the tree is committed and the version not
tagged yet, builds the operator and sandbox images as OCI archives (images.py: no
registry, no container engine), packages the chart with the pinned helm, bundles the
CRDs and writes dist/SHA256SUMS. Only with `--tag` (RELEASE_TAG=1) does it create the
annotated tag vX.Y.Z; it never pushes anything.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tenantflow.api.generate import main as generate_crds
from tenantflow.errors import DevClusterError
from tenantflow_dev.devcluster import images, versions

ROOT = images.PROJECT_ROOT
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
DEV_SUFFIX = "-dev"  # the working tree between releases: 0.2.0-dev, described by [Unreleased]
UNRELEASED = "Unreleased"
RELEASED_IMAGES = ("operator", "sandbox")  # pause and sandbox-example are the dev node's


@dataclass(frozen=True)
class Site:
    """One place that names the version: a file and the line pattern that holds it (the
    version is the group `v`; `optional`: an empty value there is fine)."""

    what: str
    path: str
    pattern: str
    optional: bool = False

    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.MULTILINE)


SOURCE = Site("pyproject.toml [project] version", "pyproject.toml", r'^version = "(?P<v>[^"]*)"')
IMAGE_TAG = r"tenantflow/(?:operator|sandbox|sandbox-example):(?P<v>[0-9][^\s\"]*)"
DERIVED = (
    Site(
        "tenantflow.__version__",
        "operator/tenantflow/__init__.py",
        r'^__version__ = "(?P<v>[^"]*)"',
    ),
    Site("Chart.yaml version", "charts/tenantflow/Chart.yaml", r"^version: (?P<v>\S*)"),
    Site("Chart.yaml appVersion", "charts/tenantflow/Chart.yaml", r'^appVersion: "(?P<v>[^"]*)"'),
    Site(
        "values.yaml image.tag",
        "charts/tenantflow/values.yaml",
        r'^  tag: "(?P<v>[^"]*)"',
        optional=True,  # "": the chart's appVersion
    ),
    Site("values.yaml sandbox.image tag", "charts/tenantflow/values.yaml", IMAGE_TAG),
    Site(
        "the operator's default sandbox image",
        "operator/tenantflow/tenancy/manifests.py",
        IMAGE_TAG,
    ),
    Site("the operator image's tag", "operator/Containerfile", IMAGE_TAG),
    Site("the sandbox image's base and tag", "sandbox-image/Containerfile", IMAGE_TAG),
    Site("the example sandbox image's base", "examples/sandbox-image/Containerfile", IMAGE_TAG),
    # images.ref(): the dev node's image of the example tenant
    Site("the example tenant's image", "examples/ci-pipeline-git/tenant.yaml", IMAGE_TAG),
)


def project_version(root: Path = ROOT) -> str:
    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def _find(root: Path, site: Site) -> list[str]:
    """Every version `site` names (each match of its pattern)."""
    return [m.group("v") for m in site.regex().finditer((root / site.path).read_text())]


def is_dev(version: str) -> bool:
    """A development version (`X.Y.Z-dev`): the tree between two releases, never released."""
    return version.endswith(DEV_SUFFIX)


def _section_heading(version: str) -> str:
    return f"## [{UNRELEASED}]" if is_dev(version) else f"## [{version}] - YYYY-MM-DD"


def drift(root: Path = ROOT) -> list[str]:
    """Each place that does not name pyproject's version, said; [] when all agree."""
    version = project_version(root)
    problems = []
    if not SEMVER.match(version):
        problems.append(
            f"pyproject.toml: {version!r} is not a semantic version (X.Y.Z or X.Y.Z-dev)"
        )
    for site in DERIVED:
        found = _find(root, site)
        if not found:
            problems.append(f"{site.path}: no {site.what} found (pattern {site.pattern!r})")
        others = {v for v in found if v != version and not (site.optional and v == "")}
        problems += [
            f"{site.path}: {site.what} is {other!r}, pyproject.toml says {version!r}"
            for other in sorted(others)
        ]
    if changelog_section(version, root) is None:
        problems.append(f"CHANGELOG.md: no '{_section_heading(version)}' section")
    return problems


def set_version(new: str, root: Path = ROOT) -> list[str]:
    """Write `new` everywhere the version is named; the files changed."""
    if not SEMVER.match(new):
        raise DevClusterError(f"{new!r} is not a semantic version (X.Y.Z or X.Y.Z-dev)")
    changed = []
    for site in (SOURCE, *DERIVED):
        path = root / site.path
        text = path.read_text()

        def put(match: re.Match[str], site: Site = site) -> str:
            if site.optional and match.group("v") == "":
                return match.group(0)
            start, end = match.span("v")
            base = match.start()
            return match.group(0)[: start - base] + new + match.group(0)[end - base :]

        updated = site.regex().sub(put, text)
        if updated != text:
            path.write_text(updated)
            changed.append(site.path)
    return sorted(set(changed))


def changelog_section(version: str, root: Path = ROOT) -> str | None:
    """The text of CHANGELOG.md's section for `version`: a dated release heading, or for a
    development version (`X.Y.Z-dev`) the `## [Unreleased]` section ("" while it is empty);
    None when there is no such section."""
    path = root / "CHANGELOG.md"
    if not path.is_file():
        return None
    text = path.read_text()
    if is_dev(version):
        heading = rf"^## \[{UNRELEASED}\][^\n]*\n"
    else:
        heading = rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}[^\n]*\n"
    head = re.search(heading, text, re.MULTILINE)
    if head is None:
        return None
    rest = text[head.end() :]
    end = re.search(r"^## \[|^\[[^\]]+\]: ", rest, re.MULTILINE)
    return rest[: end.start() if end else len(rest)].strip()


# ---------------------------------------------------------------------------- git
def _git(root: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise DevClusterError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.rstrip()  # a porcelain line may start with a space


def uncommitted(root: Path = ROOT) -> list[str]:
    """`git status --porcelain` lines: changed or untracked files (ignored ones excepted)."""
    return [line for line in _git(root, "status", "--porcelain").splitlines() if line]


def tagged_commit(tag: str, root: Path = ROOT) -> str | None:
    out = _git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
    return out or None


# ---------------------------------------------------------------------------- build
def _link_or_copy(src: Path, dst: Path) -> None:
    """Archives are never rewritten in place (written aside, then renamed): a hard link
    is as good as a copy, and 270 MiB cheaper."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def crds_bundle(root: Path = ROOT) -> str:
    """crds/*.yaml as one multi-document file (`kubectl apply --server-side -f`)."""
    parts = [p.read_text() for p in sorted((root / "crds").glob("*.yaml"))]
    return "---\n" + "---\n".join(parts)


def helm() -> Path:
    binary = versions.bin_dir() / "helm"
    if not binary.is_file():
        raise DevClusterError(f"no pinned helm ({versions.HELM}) at {binary}: run `make binaries`")
    return binary


def package_chart(dist: Path, root: Path = ROOT) -> Path:
    chart = root / "charts" / "tenantflow"
    for args in (["lint", str(chart)], ["package", str(chart), "--destination", str(dist)]):
        result = subprocess.run([str(helm()), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise DevClusterError(f"helm {args[0]} failed:\n{result.stdout}{result.stderr}")
    return dist / f"tenantflow-{project_version(root)}.tgz"


def preflight(*, tag: bool, allow_dirty: bool, root: Path = ROOT) -> list[str]:
    """Why this tree cannot be released as it is ([] if it can)."""
    version = project_version(root)
    problems = drift(root)
    if is_dev(version):
        problems.insert(
            0,
            f"{version} is a development version, never released: set a release version "
            f"first (`hack/release.py set-version {version.removesuffix(DEV_SUFFIX)}`) and "
            "move CHANGELOG.md's [Unreleased] notes under its '## [X.Y.Z] - YYYY-MM-DD' "
            "section",
        )
    if generate_crds([str(root / "crds"), str(root / "charts/tenantflow/crds"), "--check"]):
        problems.append("crds/ drifted from the models: run `make crds`")
    dirty = uncommitted(root)
    if dirty and (tag or not allow_dirty):
        problems.append(
            f"the tree is not clean ({len(dirty)} changed or untracked: "
            f"{', '.join(line[3:] for line in dirty[:5])}): commit first"
            + ("" if tag else " (ALLOW_DIRTY=1 rehearses anyway; never with RELEASE_TAG=1)")
        )
    at = tagged_commit(f"v{version}", root)
    if at is not None and (tag or at != _git(root, "rev-parse", "HEAD")):
        problems.append(
            f"v{version} is tagged already (at {at[:12]}): `hack/release.py set-version` the "
            "next one and add its CHANGELOG.md section"
        )
    return problems


def build(dist: Path, *, tag: bool = False, allow_dirty: bool = False) -> list[Path]:
    """The release artifacts of this tree in `dist` (emptied first), then the tag if asked."""
    version = project_version()
    if problems := preflight(tag=tag, allow_dirty=allow_dirty):
        raise DevClusterError("not releasable:\n  - " + "\n  - ".join(problems))
    shutil.rmtree(dist, ignore_errors=True)
    dist.mkdir(parents=True)
    out = []
    for image in images.build(RELEASED_IMAGES):
        target = dist / f"tenantflow-{image.name}-{version}.oci.tar"
        _link_or_copy(image.archive, target)
        out.append(target)
    out.append(package_chart(dist))
    crds = dist / f"tenantflow-crds-{version}.yaml"
    crds.write_text(crds_bundle())
    out.append(crds)
    sums = dist / "SHA256SUMS"
    sums.write_text("".join(f"{images.file_sha256(p)}  {p.name}\n" for p in sorted(out)))
    out.append(sums)
    if tag:
        section = changelog_section(version) or ""
        message = f"tenantflow {version}\n\n{section}\n"
        subprocess.run(
            ["git", "-C", str(ROOT), "tag", "-a", f"v{version}", "-F", "-"],
            input=message,
            text=True,
            check=True,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/release.py", description="releases: check the version, build, tag"
    )
    sub = parser.add_subparsers(dest="command")
    b = sub.add_parser("build", help="build dist/ (the default); --tag also tags it")
    b.add_argument("--tag", action="store_true", help="create the annotated tag vX.Y.Z")
    b.add_argument("--allow-dirty", action="store_true", help="rehearse on uncommitted work")
    b.add_argument("--dist", type=Path, default=ROOT / "dist")
    sub.add_parser("check", help="fail if any place names another version than pyproject")
    s = sub.add_parser("set-version", help="write a new version everywhere it is named")
    s.add_argument("version")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            problems = drift()
            for problem in problems:
                print(problem, file=sys.stderr)
            if not problems:
                print(project_version())
            return 1 if problems else 0
        if args.command == "set-version":
            for path in set_version(args.version):
                print(f"wrote {path}")
            if changelog_section(args.version) is None:
                print(f"now add a '{_section_heading(args.version)}' section to CHANGELOG.md")
            return 0
        tag = bool(getattr(args, "tag", False))
        dist = getattr(args, "dist", ROOT / "dist")
        files = build(dist, tag=tag, allow_dirty=bool(getattr(args, "allow_dirty", False)))
    except DevClusterError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    version = project_version()
    for file in files:
        print(f"{file.stat().st_size / 2**20:9.1f} MiB  {file}")
    if tag:
        print(f"tagged v{version} (not pushed): git push origin v{version}")
    else:
        print(f"dry run: nothing tagged; RELEASE_TAG=1 make release tags v{version}")
    print(
        "push the images with any OCI tool, e.g. skopeo copy "
        f"oci-archive:dist/tenantflow-operator-{version}.oci.tar "
        f"docker://REGISTRY/tenantflow/operator:{version}"
    )
    return 0
