"""Container images built on this machine, without a registry or a container engine.

An image is a stack of tar layers written into an OCI image-layout archive, which
containerd imports (`ctr images import`). What each image holds and how it runs is
`imagedefs.py`'s table, which the released images' Containerfiles are generated from too.
Each layer is cached under ~/.cache/tenantflow/images/ by the hash of its inputs, so a
rebuild only redoes what changed:

- `os`: a Debian minbase root filesystem with python3 and libseccomp2 (mmdebstrap, ~1 min),
  from this machine's Debian mirrors;
- `deps`: the operator's Python dependencies at the versions installed in this venv, as
  wheels for the image's Python (imagedefs.PYTHON_VERSION), not this venv's;
- `app`: the tenantflow package as the wheel ships it, byte-compiled (a read-only root
  filesystem cannot take __pycache__ files), plus /data for the sandbox;
- `typescript`: Deno, the sandbox's TypeScript/JavaScript runtime (pyproject.toml's
  `typescript` extra, ~92 MiB), only in the sandbox images;
- `example-libs`: the example sandbox image's libraries;
- `pause`: the node's pod-sandbox image, a static C program.

Every Python layer is byte-compiled by the image's own python3, run in a chroot of the `os`
layer (a pyc is only good for the interpreter version that wrote it). The operator and
sandbox images share the first three layers; no image holds a compiler, and every one
runs as a non-root user.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tenantflow.errors import DevClusterError
from tenantflow.observability.logging import get_logger
from tenantflow.paths import cache_dir
from tenantflow_dev.devcluster import imagedefs
from tenantflow_dev.devcluster.imagedefs import (
    DATA_DIR,
    DEBIAN_PACKAGES,
    DEBIAN_SUITE,
    NONROOT,
    PYTHON_GLIBC,
    PYTHON_VERSION,
    SITE,
)

log = get_logger("tenantflow_dev.devcluster.images")

REPOSITORY = "localhost/tenantflow"  # local images: never pulled, never pushed
PROJECT_ROOT = Path(__file__).resolve().parents[3]
PACKAGE_DIR = PROJECT_ROOT / "operator" / "tenantflow"
PAUSE_SOURCE = Path(__file__).with_name("pause.c")
EXAMPLE_REQUIREMENTS = PROJECT_ROOT / "examples" / "sandbox-image" / "requirements.txt"
_EPOCH = 946684800  # layer file times: fixed, so equal inputs give equal layers


@dataclass(frozen=True)
class Image:
    """One built image: its reference and the OCI archive containerd imports."""

    name: str
    ref: str
    archive: Path
    size: int  # bytes of its layers, uncompressed
    digest: str  # of its manifest: what the node's containerd must hold under `ref`


def images_dir() -> Path:
    return cache_dir() / "images"


def project_version() -> str:
    data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def ref(name: str) -> str:
    return f"{REPOSITORY}/{name}:{project_version()}"


# ---------------------------------------------------------------------------- layers
def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _cached_layer(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The layer tar for `kind` with input hash `key`, built once by `build(target)`."""
    layer = images_dir() / "layers" / f"{kind}-{key}.tar"
    if layer.is_file():
        return layer
    layer.parent.mkdir(parents=True, exist_ok=True)
    for stale in layer.parent.glob(f"{kind}-*.tar"):
        stale.unlink()  # one cached layer per kind: inputs changed, the old one is dead
    log.info("building image layer", layer=kind, key=key)
    tmp = layer.with_suffix(".tmp")
    build(tmp)
    tmp.rename(layer)
    return layer


def os_layer() -> Path:
    key = _digest(DEBIAN_SUITE, *DEBIAN_PACKAGES, _sources(), *_user_hooks())

    def build(target: Path) -> None:
        if shutil.which("mmdebstrap") is None:
            raise DevClusterError("mmdebstrap is missing: run `make sysdeps` (Debian package)")
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-exclude=/usr/share/info/*",
                '--aptopt=Acquire::Languages "none"',
                '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
                *(f"--customize-hook={hook}" for hook in _user_hooks()),
                "--format=tar",
                DEBIAN_SUITE,
                str(target),
                *_mirrors(),
            ],
            "building the Debian base with mmdebstrap",
        )

    return _cached_layer("os", key, build)


def _user_hooks() -> list[str]:
    """Named users for the image's uids (imagedefs.accounts)."""
    return [f'echo "{line}" >> "$1/etc/{file}"' for file, line in imagedefs.accounts()]


def _sources() -> str:
    return "\n".join(_mirrors())


def _mirrors(etc: Path = Path("/etc"), host: str | None = None) -> list[str]:
    """This machine's Debian apt sources (the only Debian mirrors it may reach) as one-line
    sources of DEBIAN_SUITE, mmdebstrap's mirror arguments: the host's own release's name
    in each suite becomes DEBIAN_SUITE's (bookworm-security: trixie-security), and sources
    of other suites (a vendor's repository) are left out. None found: mmdebstrap's default
    mirror. `host`: the host's release name (default: os-release's VERSION_CODENAME)."""
    if host is None:
        with contextlib.suppress(OSError):
            host = platform.freedesktop_os_release().get("VERSION_CODENAME")
    entries: list[tuple[str, list[str], list[str], str]] = []
    for path in sorted((etc / "apt" / "sources.list.d").glob("*.sources")):
        entries += _deb822_sources(path.read_text())
    legacy = etc / "apt" / "sources.list"
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 4 and words[0] == "deb" and not words[1].startswith("["):
                entries.append((words[1], [words[2]], words[3:], ""))
    lines = []
    for uri, suites, components, signed_by in entries:
        options = f"[signed-by={signed_by}] " if signed_by else ""
        for suite in suites:
            if host and (suite == host or suite.startswith(f"{host}-")):
                suite = DEBIAN_SUITE + suite.removeprefix(host)
                lines.append(f"deb {options}{uri} {suite} {' '.join(components)}")
    return lines


def _deb822_sources(text: str) -> list[tuple[str, list[str], list[str], str]]:
    """(URI, suites, components, signed-by keyring path) of each `deb` URI of a deb822
    .sources file; a key given inline (not a path) is left to apt's default keyrings."""
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in ("", "#", " ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        signed_by = fields.get("signed-by", "")
        keyring = signed_by if signed_by.startswith("/") else ""
        for uri in fields.get("uris", "").split():
            entry = (uri, fields.get("suites", "").split(), fields.get("components", "").split())
            out.append((*entry, keyring))
    return out


def deps_layer() -> Path:
    """The runtime dependencies, pinned to what this venv runs (what the tests ran)."""
    meta = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _pip_layer("deps", list(meta["dependencies"]), frozen)


def typescript_requirements() -> list[str]:
    """pyproject.toml's `typescript` extra: the Deno package, pinned."""
    meta = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return list(meta["optional-dependencies"]["typescript"])


def typescript_layer() -> Path:
    """Deno for TypeScript/JavaScript workflows, at the extra's pin. Its binary stays where
    `deno.find_deno_bin()` looks in a `pip install --target` tree: SITE/bin/deno."""
    return _pip_layer("typescript", typescript_requirements(), "", binaries=("deno",))


def example_libraries_layer() -> Path:
    """The libraries of the example sandbox image (examples/sandbox-image/requirements.txt),
    on top of the sandbox image: what a platform does to give a tenant its own libraries."""
    return _pip_layer("example-libs", ["-r", str(EXAMPLE_REQUIREMENTS)], "")


def _pip_layer(
    kind: str, requirements: list[str], constraints: str, binaries: tuple[str, ...] = ()
) -> Path:
    """`pip install --target` into the image's site-packages, byte-compiled, cached.

    Its bin/ goes (console scripts name a host path), but for `binaries`: executables a
    package runs from there (SITE/bin), kept, and made executable by every uid."""
    inputs = [Path(r).read_text() for r in requirements if Path(r).is_file()]
    key = _digest(*requirements, *inputs, constraints, *_image_python(), *binaries)

    def build(target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=f"tenantflow-{kind}-") as tmp:
            site = Path(tmp) / "site"
            pinned = Path(tmp) / "constraints.txt"
            pinned.write_text(constraints)
            _run(
                [
                    *(sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"),
                    *("--disable-pip-version-check", "--target", str(site)),
                    *_wheel_target(),
                    *("--constraint", str(pinned), *requirements),
                ],
                f"installing the Python packages of the image layer {kind!r}",
            )
            _keep_binaries(site / "bin", binaries, kind)
            _compile(site, f"/{SITE}")
            _write_tar(target, [(site, SITE)])

    return _cached_layer(kind, key, build)


def _image_python() -> tuple[str, str, str]:
    """What the Python layers are built for and compiled by: the image's Python version,
    its glibc and the `os` layer whose python3 byte-compiles them (part of each key)."""
    return PYTHON_VERSION, str(PYTHON_GLIBC), os_layer().name


def _wheel_target() -> list[str]:
    """pip's arguments for wheels the image's Python loads, whatever this venv's Python is:
    built wheels only (nothing compiles for another interpreter), for its version, ABI and
    every manylinux tag its glibc loads (pip takes only the --platform tags it is given:
    a wheel tagged manylinux_2_17 is not one for manylinux_2_41)."""
    abi = "cp" + PYTHON_VERSION.replace(".", "")
    legacy = ("manylinux2014", "manylinux2010", "manylinux1")
    tags = [f"manylinux_2_{minor}" for minor in range(PYTHON_GLIBC, 4, -1)] + list(legacy)
    platforms = [arg for tag in tags for arg in ("--platform", f"{tag}_x86_64")]
    return [
        *("--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", abi),
        *platforms,
        "--only-binary=:all:",
    ]


def _keep_binaries(bin_dir: Path, binaries: tuple[str, ...], kind: str) -> None:
    """Empty `bin_dir` but for `binaries` (each must be there), mode 755; no binaries: no
    bin_dir."""
    if not binaries:
        shutil.rmtree(bin_dir, ignore_errors=True)
        return
    for entry in bin_dir.iterdir() if bin_dir.is_dir() else ():
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name not in binaries:
            entry.unlink()
    for name in binaries:
        binary = bin_dir / name
        if not binary.is_file():
            raise DevClusterError(f"image layer {kind!r}: pip installed no bin/{name}")
        binary.chmod(0o755)


def shipped_files() -> list[Path]:
    """The package's files as its wheel ships them: every module, and pyproject.toml's
    package-data (the dev tooling is another package, tenantflow_dev, never shipped)."""
    setuptools = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    files = {p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    for pattern in setuptools["package-data"]["tenantflow"]:
        files.update(p for p in PACKAGE_DIR.glob(pattern) if p.is_file())
    return sorted(files)


def app_layer() -> Path:
    files = shipped_files()
    sums = (f"{p.relative_to(PACKAGE_DIR)}\0{file_sha256(p)}" for p in files)
    key = _digest(*sums, *_image_python())

    def build(target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="tenantflow-app-") as tmp:
            pkg = Path(tmp) / "tenantflow"
            for src in files:
                dst = pkg / src.relative_to(PACKAGE_DIR)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            _compile(pkg, f"/{SITE}/tenantflow")
            _write_tar(target, [(pkg, f"{SITE}/tenantflow")], dirs={DATA_DIR: NONROOT})

    return _cached_layer("app", key, build)


def pause_layer() -> Path:
    source = PAUSE_SOURCE.read_bytes()

    def build(target: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="tenantflow-pause-") as tmp:
            binary = Path(tmp) / "pause"
            _run(
                ["gcc", "-Os", "-static", "-s", "-o", str(binary), str(PAUSE_SOURCE)],
                "compiling the pause program (gcc, static glibc from libc6-dev)",
            )
            _write_tar(target, [(binary, "pause")])

    return _cached_layer("pause", _digest(source), build)


def file_sha256(path: Path) -> str:
    """A file's sha256, read in 1 MiB chunks (image layers are hundreds of MiB)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unpack(layers: Iterable[Path], root: Path) -> None:
    """Layer tars into `root`, bottom first (no layer of ours deletes a file below it)."""
    for layer in layers:
        _run(["tar", "-xf", str(layer), "-C", str(root)], f"unpacking the layer {layer.name}")


def _compile(tree: Path, image_path: str) -> None:
    """Byte-compile `tree` with the image's own python3 (a pyc written by another version is
    ignored, and the image's root filesystem is read-only): the `os` layer is unpacked, the
    tree moved into it and compiled there in a chroot (as root, as the rest of the dev node
    is built). Hash-checked pycs (independent of file times); tracebacks name the path
    inside the image. One process: a chroot without /dev/shm has no semaphores for a pool."""
    with tempfile.TemporaryDirectory(prefix="tenantflow-compile-") as tmp:
        root = Path(tmp)
        unpack([os_layer()], root)
        inside = root / "build"
        shutil.move(tree, inside)
        try:
            result = subprocess.run(
                [
                    *("chroot", str(root), "/usr/bin/python3", "-I", "-m", "compileall"),
                    *("-q", "-j", "1", "--invalidation-mode", "unchecked-hash"),
                    *("-d", image_path, "/build"),
                ],
                capture_output=True,
                text=True,
            )
        finally:
            shutil.move(inside, tree)
    if result.returncode not in (0, 1):  # 1: compileall's "some did not compile"
        raise DevClusterError(
            f"byte-compiling {image_path} in a chroot of the `os` layer failed (exit "
            f"{result.returncode}; it needs root): {(result.stderr or result.stdout)[-2000:]}"
        )
    if result.returncode == 1:
        log.warning(
            "some files did not byte-compile (they are shipped as source)",
            tree=image_path,
            output=(result.stdout + result.stderr)[-2000:],
        )


def _write_tar(
    target: Path, entries: Iterable[tuple[Path, str]], dirs: dict[str, int] | None = None
) -> None:
    """A reproducible layer: sorted entries, fixed times, root-owned, parents included."""

    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = _EPOCH
        info.mode = (info.mode & 0o755) | (0o755 if info.isdir() else 0)
        return info

    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        written: set[str] = set()
        for source, arcname in entries:
            parts = arcname.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent not in written:
                    info = tarfile.TarInfo(parent)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _EPOCH
                    tar.addfile(info)
                    written.add(parent)
            tar.add(source, arcname, filter=normalize, recursive=False)
            if source.is_dir():
                for path in sorted(source.rglob("*")):
                    name = f"{arcname}/{path.relative_to(source)}"
                    tar.add(path, name, recursive=False, filter=normalize)
        for name, uid in (dirs or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _EPOCH
            info.uid = info.gid = uid
            tar.addfile(info)


def chart_values() -> list[str]:
    """`helm --set` arguments that point the chart at the images built here (imported into
    the dev node, never pulled)."""
    repository, tag = ref("operator").rsplit(":", 1)
    return [
        *("--set", f"image.repository={repository}"),
        *("--set", f"image.tag={tag}"),
        *("--set", "image.pullPolicy=Never"),
        *("--set", f"sandbox.image={ref('sandbox')}"),
    ]


# ---------------------------------------------------------------------------- images
LAYERS: dict[str, Callable[[], Path]] = {
    "os": os_layer,
    "deps": deps_layer,
    "app": app_layer,
    "typescript": typescript_layer,
    "example-libs": example_libraries_layer,
    "pause": pause_layer,
}


def config(runtime: imagedefs.Runtime) -> dict[str, object]:
    """The OCI image config of an image as it runs (imagedefs.runtime)."""
    return {
        "User": f"{runtime.user}:{runtime.user}",
        "Entrypoint": list(runtime.entrypoint),
        "Cmd": list(runtime.cmd),
        "Env": [f"PATH={imagedefs.PATH}", *runtime.env],
        "WorkingDir": imagedefs.WORKDIR,
    }


def definitions() -> dict[str, tuple[list[Callable[[], Path]], dict[str, object]]]:
    """Each image of imagedefs.IMAGES: its layers (bottom first) and its runtime config."""
    out = {}
    for image in imagedefs.IMAGES:
        runtime = imagedefs.runtime(image.name)
        out[image.name] = ([LAYERS[kind] for kind in runtime.layers], config(runtime))
    return out


def build(names: Iterable[str] | None = None) -> list[Image]:
    """Build (or reuse) the named images; every one by default."""
    table = definitions()
    out = []
    for name in names or table:
        layer_fns, config = table[name]
        layers = [fn() for fn in layer_fns]
        out.append(_archive(name, layers, config))
    return out


def _archive(name: str, layers: list[Path], config: dict[str, object]) -> Image:
    image_ref = ref(name)
    diff_ids = [f"sha256:{file_sha256(p)}" for p in layers]
    config_blob = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"tenantflow devcluster/images.py ({name})"}],
        },
        sort_keys=True,
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _descriptor("application/vnd.oci.image.config.v1+json", config_blob),
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": diff,
                "size": path.stat().st_size,
            }
            for diff, path in zip(diff_ids, layers, strict=True)
        ],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True).encode()
    desc = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest_blob)
    # the reference is part of the key: the archive's index names it, and an image whose
    # layers did not change (pause) still gets a new tag with each version
    archive = images_dir() / f"{name}-{_digest(manifest_blob, image_ref)}.oci.tar"
    size = sum(p.stat().st_size for p in layers)
    if not archive.is_file():
        for stale in images_dir().glob(f"{name}-*.oci.tar"):
            stale.unlink()
        desc["annotations"] = {
            "io.containerd.image.name": image_ref,
            "org.opencontainers.image.ref.name": image_ref.rsplit(":", 1)[1],
        }
        index = {"schemaVersion": 2, "manifests": [desc]}
        tmp = archive.with_suffix(".tmp")
        with tarfile.open(tmp, "w") as tar:
            _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            _add_bytes(tar, "index.json", json.dumps(index).encode())
            _add_bytes(tar, _blob(desc["digest"]), manifest_blob)
            _add_bytes(tar, _blob(str(manifest["config"]["digest"])), config_blob)  # type: ignore[index]
            for diff, path in zip(diff_ids, layers, strict=True):
                tar.add(path, _blob(diff))
        tmp.rename(archive)
    log.info("image ready", image=image_ref, mib=round(size / 2**20, 1), archive=str(archive))
    return Image(name=name, ref=image_ref, archive=archive, size=size, digest=str(desc["digest"]))


def _descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}",
        "size": len(blob),
    }


def _blob(digest: object) -> str:
    return "blobs/sha256/" + str(digest).removeprefix("sha256:")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), _EPOCH, 0o644
    tar.addfile(info, io.BytesIO(data))


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    if result.returncode != 0:
        raise DevClusterError(
            f"{what} failed (exit {result.returncode}): `{' '.join(argv)}`\n"
            f"{(result.stderr or result.stdout)[-3000:]}"
        )
