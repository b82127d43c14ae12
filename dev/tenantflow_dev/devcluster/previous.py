"""A previous release, built from its own code and put on the dev node (the upgrade test).

An upgrade test has to run the release users run now, not this tree with another version
string: the operator and sandbox images of `v0.1.0` are what 0.1.0's code builds. So the
release's tree is taken out of git at its commit (`git archive`: nothing is registered in
the repository, unlike a worktree, and a detached copy cannot be edited by mistake), and
its own `images.py` builds its images in a subprocess whose PYTHONPATH is that tree's
`operator/` and, from 0.2.0 on, its `dev/` (this process has the working tree's package
imported; the release's code must build the release's images, with its own layers and its
own tags). Up to 0.1.0 the builder was `tenantflow.testing.devcluster.images`, inside the
package; since then it is `tenantflow_dev.devcluster.images`, outside it (`_builder`).
The archives are imported into the node's containerd like the working tree's
(`node.import_archives`); images are tagged by their version, so both releases' images
sit on the node side by side.

What is returned is what `helm install` needs: the release's chart (from its tree) and
the `--set` values its own `images.chart_values()` gives.

Finding the commit: the tag (`git rev-parse vX.Y.Z`) when the clone has it; a CI checkout
may carry no tags, so `hack/releases.txt` also records each release's full commit.

Cached by commit under `~/.cache/tenantflow/releases/<commit>/`: the tree (`src/`), the
builder's own image cache (`cache/`, its TENANTFLOW_CACHE: the builder keeps one cached
layer per kind and one archive per image, so building into the shared cache would evict
the working tree's), and `built.json`; a second run only checks the archives are there
and that the node holds them. The shared cache's layers are hard-linked into the
builder's cache first, so the Debian base and the dependencies are built once for both
when their inputs did not change (the old builder keeps the ones whose keys it computes
and drops the rest, links only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenantflow.errors import DevClusterError
from tenantflow.observability.logging import get_logger
from tenantflow.paths import cache_dir
from tenantflow_dev.devcluster import images, node
from tenantflow_dev.devcluster.cluster import DevCluster
from tenantflow_dev.devcluster.release import RELEASED_IMAGES, ROOT

log = get_logger("tenantflow_dev.devcluster.previous")

DEFAULT_TAG = "v0.1.0"
RELEASES_FILE = "hack/releases.txt"  # "X.Y.Z <full commit>" per line
BUILD_TIMEOUT = 1800  # a cold build makes the Debian base (mmdebstrap) and the deps layer

# Run by the release's own interpreter path (its tree first on PYTHONPATH): build the
# released images, write what was built as JSON to argv[1].
_BUILDER = """
import json, sys
import tenantflow
from %s import images
built = images.build(%r)
json.dump(
    {
        "package": tenantflow.__file__,
        "version": images.project_version(),
        "values": images.chart_values(),
        "images": [
            {"name": i.name, "ref": i.ref, "archive": str(i.archive), "size": i.size,
             "digest": i.digest}
            for i in built
        ],
    },
    open(sys.argv[1], "w"),
)
"""


@dataclass(frozen=True)
class PreviousRelease:
    """A release built from its own tree, its images on the node."""

    version: str
    commit: str
    source: Path  # the release's tree
    chart: Path  # its chart directory
    values: list[str]  # its `helm --set` arguments for its images (pulled never)
    images: list[images.Image]


def releases_dir() -> Path:
    return cache_dir() / "releases"


def recorded_commits(root: Path = ROOT) -> dict[str, str]:
    """hack/releases.txt: version -> full commit."""
    path = root / RELEASES_FILE
    found: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                version, commit = line.split()
                found[version] = commit
    return found


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def resolve(tag: str = DEFAULT_TAG, root: Path = ROOT) -> str:
    """The full commit of release `tag` (vX.Y.Z): the tag's, else hack/releases.txt's."""
    tagged = _git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}")
    if tagged.returncode == 0 and tagged.stdout.strip():
        return tagged.stdout.strip()
    version = tag.removeprefix("v")
    commit = recorded_commits(root).get(version)
    if commit is None:
        raise DevClusterError(
            f"no tag {tag} in this clone and no line for {version} in {RELEASES_FILE}"
        )
    if _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise DevClusterError(
            f"{tag} is commit {commit} ({RELEASES_FILE}), which this clone does not hold "
            f"(a shallow clone?): `git fetch origin tag {tag}` or `git fetch --unshallow`"
        )
    return commit


def checkout(commit: str, root: Path = ROOT) -> Path:
    """The release's tree at `commit`, extracted once (`git archive`) and kept."""
    target = releases_dir() / commit / "src"
    if (target / "pyproject.toml").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="src-", dir=target.parent))
    archive = subprocess.Popen(
        ["git", "-C", str(root), "archive", "--format=tar", commit], stdout=subprocess.PIPE
    )
    extract = subprocess.run(
        ["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, capture_output=True, text=True
    )
    if archive.stdout is not None:
        archive.stdout.close()
    if archive.wait() != 0 or extract.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DevClusterError(f"git archive {commit} failed: {extract.stderr.strip()}")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _seed_layers(builder_cache: Path) -> None:
    """Hard-link the shared cache's layers into the builder's: the old builder reuses those
    whose input hash it computes too (the Debian base, the dependencies) and unlinks the
    others there (only its links)."""
    src = images.images_dir() / "layers"
    dst = builder_cache / "images" / "layers"
    dst.mkdir(parents=True, exist_ok=True)
    for layer in src.glob("*.tar"):
        kind = layer.name.rsplit("-", 1)[0]
        if any(dst.glob(f"{kind}-*.tar")):
            continue  # the builder has its own layer of this kind (its key may differ)
        try:
            os.link(layer, dst / layer.name)
        except OSError:
            continue  # another filesystem: the builder builds its own


def _load(record: Path) -> dict[str, Any] | None:
    if not record.is_file():
        return None
    data: dict[str, Any] = json.loads(record.read_text())
    built = data.get("images")
    if not isinstance(built, list) or not all(Path(i["archive"]).is_file() for i in built):
        return None
    return data


def _builder(source: Path) -> tuple[str, list[Path]]:
    """The release's image builder package and the PYTHONPATH that imports it from its tree:
    `dev/tenantflow_dev` (since 0.2.0), else the package's own `testing/devcluster` (0.1.0)."""
    package = source / "operator"
    if (source / "dev" / "tenantflow_dev" / "devcluster").is_dir():
        return "tenantflow_dev.devcluster", [package, source / "dev"]
    return "tenantflow.testing.devcluster", [package]


def build(commit: str, source: Path) -> dict[str, Any]:
    """Build the release's images with its own code (cached by commit)."""
    base = releases_dir() / commit
    record = base / "built.json"
    if (cached := _load(record)) is not None:
        return cached
    builder_cache = base / "cache"
    _seed_layers(builder_cache)
    out = base / "built.json.tmp"
    builder, path = _builder(source)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(str(p) for p in path),  # the release's code, not this one
        TENANTFLOW_CACHE=str(builder_cache),
        PYTHONDONTWRITEBYTECODE="1",
    )
    log.info("building a previous release's images", commit=commit[:12], tree=str(source))
    done = subprocess.run(
        [sys.executable, "-c", _BUILDER % (builder, RELEASED_IMAGES), str(out)],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if done.returncode != 0:
        raise DevClusterError(
            f"building the images of {commit[:12]} with its own code failed "
            f"(exit {done.returncode}):\n{(done.stderr or done.stdout)[-3000:]}"
        )
    data: dict[str, Any] = json.loads(out.read_text())
    package = Path(str(data["package"])).resolve()
    if source.resolve() not in package.parents:
        raise DevClusterError(f"the builder imported {package}, not the release's tree {source}")
    out.rename(record)
    return data


def prepare(tag: str = DEFAULT_TAG, paths: node.NodePaths | None = None) -> PreviousRelease:
    """Release `tag` built from its own tree, its images imported into the dev node (by
    `paths`, default the dev cluster's node): what `helm install` needs for it."""
    commit = resolve(tag)
    source = checkout(commit)
    data = build(commit, source)
    built = [
        images.Image(
            name=str(i["name"]),
            ref=str(i["ref"]),
            archive=Path(i["archive"]),
            size=int(i["size"]),
            digest=str(i["digest"]),
        )
        for i in data["images"]
    ]
    node.import_archives(paths or node.NodePaths(DevCluster().dir / "node"), built)
    return PreviousRelease(
        version=str(data["version"]),
        commit=commit,
        source=source,
        chart=source / "charts" / "tenantflow",
        values=[str(v) for v in data["values"]],
        images=built,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m tenantflow_dev.devcluster.previous [vX.Y.Z]`: build and import it."""
    args = sys.argv[1:] if argv is None else argv
    tag = args[0] if args else DEFAULT_TAG
    try:
        release = prepare(tag)
    except DevClusterError as exc:
        print(f"previous: {exc}", file=sys.stderr)
        return 1
    print(f"{release.version} ({release.commit[:12]}): chart {release.chart}")
    print("helm values:", " ".join(release.values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
