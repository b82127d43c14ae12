"""What ships in each image, said once.

The dev node's builder (`images.py`, no container engine) builds every image from this
table, and the Containerfiles a platform builds the released images with are generated
from it (`containerfiles.py`, `make containerfiles`; tests/unit/test_containerfiles.py
fails when a checked-in Containerfile or the builder's runtime config drifts from it).

An image is its base (another image of this table, or none: Debian), the layers it adds
on top, and its runtime config. A derived image keeps its base's config, as a
Containerfile's `FROM` does: its env is added to the base's, its user replaces the base's,
and an entrypoint of its own resets the command (`cmd`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantflow.tenancy.manifests import RUNNER_UID, WORKER_UID

# Debian 13: its python3 is 3.13, whose forked children fault fewer pages than 3.11's
# (immortal objects, smaller frames), and warm dispatch through a pod was faster alternated
# against 3.11 (bench/README.md, "Cheaper per instance"). The isolation e2e failures once
# blamed on 3.13 were the advance's child dying of SIGPIPE (fixed; seen on 3.11 too). The
# image's Python is not the host's: images.py installs the Python layers for PYTHON_VERSION and
# byte-compiles them with the image's own interpreter.
DEBIAN_SUITE = "trixie"
DEBIAN_PACKAGES = ("python3", "libseccomp2")  # the seccomp filter of the sandbox needs the lib
PYTHON_VERSION = "3.13"  # DEBIAN_SUITE's python3
PYTHON_GLIBC = 41  # DEBIAN_SUITE's glibc is 2.41: it loads manylinux wheels up to 2_41
SITE = f"usr/local/lib/python{PYTHON_VERSION}/dist-packages"  # on python3's path, also under -I
NONROOT = WORKER_UID  # the operator and the sandbox worker run as this uid
USERS = {NONROOT: "tenantflow", RUNNER_UID: "runner"}  # named in /etc/passwd and /etc/group
DATA_DIR = "data"  # /data, owned by NONROOT: the sandbox worker's volume mount point
WORKDIR = "/"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's images'
PYTHON_ENV = ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
PUBLISHED = "ghcr.io/tenantflow"  # where the released images are pushed (the chart's default)

# Layers (images.py builds each; containerfiles.py says each in a Containerfile):
# - `os`: Debian minbase with DEBIAN_PACKAGES and the USERS;
# - `deps`: the project's runtime dependencies (pyproject.toml), in SITE;
# - `app`: the tenantflow package as the wheel ships it (its modules and package-data),
#   byte-compiled (a read-only root filesystem takes no __pycache__), plus /DATA_DIR;
# - `typescript`: Deno, the runtime of TypeScript/JavaScript workflows (pyproject.toml's
#   `typescript` extra, its pinned `deno` package), in SITE with its binary in SITE/bin,
#   where `deno.find_deno_bin()` finds a `pip install --target` tree's;
# - `example-libs`: examples/sandbox-image/requirements.txt, in SITE;
# - `pause`: the node's pod-sandbox program (dev node only).
PYTHON_LAYERS = ("os", "deps", "app")


@dataclass(frozen=True)
class ImageDef:
    """One image: its base, the layers it adds (bottom first) and its runtime config."""

    name: str
    layers: tuple[str, ...]
    base: str | None = None  # an image of this table; None: Debian (`os` is its first layer)
    user: int | None = None  # None: the base's
    env: tuple[str, ...] = ()  # added to the base's
    entrypoint: tuple[str, ...] | None = None  # None: the base's, with its cmd
    cmd: tuple[str, ...] = ()
    containerfile: str | None = None  # generated recipe, relative to the project root
    # the Containerfile's opening comment; {version}: the project's, {python}: PYTHON_VERSION
    about: str = ""


@dataclass(frozen=True)
class Runtime:
    """An image as it runs: all its layers and its whole config, its bases' included."""

    layers: tuple[str, ...]
    user: int
    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]


IMAGES = (
    ImageDef(
        name="operator",
        layers=PYTHON_LAYERS,
        user=NONROOT,
        env=(*PYTHON_ENV, "TENANTFLOW_LOG_FORMAT=json"),
        entrypoint=("python3", "-m", "tenantflow"),
        cmd=("operator",),
        containerfile="operator/Containerfile",
        about="""\
The tenantflow operator image (the chart's `image`):
  buildah bud -t ghcr.io/tenantflow/operator:{version} -f operator/Containerfile .""",
    ),
    ImageDef(
        name="sandbox",
        layers=("typescript",),
        base="operator",
        # one image, two containers (runner and worker); `-I`: nothing from the working
        # directory or the environment is ever imported
        entrypoint=("python3", "-I"),
        containerfile="sandbox-image/Containerfile",
        about="""\
The per-tenant sandbox runner: tenant code runs here and nowhere else. It is the operator
image (same package, built by operator/Containerfile) with Deno, the runtime of
TypeScript/JavaScript workflows (pyproject.toml's `typescript` extra, installed from PyPI
by a build stage: the operator image has no pip), and a runner entrypoint:
  buildah bud -t ghcr.io/tenantflow/operator:{version} -f operator/Containerfile .
  buildah bud -t ghcr.io/tenantflow/sandbox:{version} -f sandbox-image/Containerfile .
One image, two containers per sandbox pod (tenancy/manifests.py): `runner` (the key, as
a file, port 8080) and `worker` (the zygote and tenant code, /data); the pod spec gives
each its args, uid, read-only root filesystem and no capabilities. `-I`: nothing from
the working directory or the environment is ever imported.""",
    ),
    ImageDef(
        name="sandbox-example",
        layers=("example-libs",),
        base="sandbox",
        containerfile="examples/sandbox-image/Containerfile",
        about="""\
A platform's own sandbox image: the tenantflow sandbox plus the libraries its tenants may
import. Install the packages on the build host into a directory, then copy them onto the
image's site-packages (the sandbox image has no pip and no compiler, on purpose; the
wheels must be for the image's Python, {python}, whatever the build host's is):

  pip install --target site --python-version {python} --only-binary=:all: \\
      -r examples/sandbox-image/requirements.txt
  buildah bud -t registry.example.com/sandboxes/ci:1 -f examples/sandbox-image/Containerfile .

then allow it in the chart (sandbox.allowedImages: ["registry.example.com/sandboxes/*"])
and give it to a tenant (Tenant spec.sandbox.image). `make images` builds this one on the
dev cluster as localhost/tenantflow/sandbox-example.""",
    ),
    # the dev node's pod-sandbox image: a cluster's runtime brings its own
    ImageDef(name="pause", layers=("pause",), user=65535, entrypoint=("/pause",)),
)


def accounts() -> list[tuple[str, str]]:
    """The lines naming USERS, as (file under /etc, line): some libraries (kopf's peering id
    via getpass) look the uid up in /etc/passwd and fail without an entry."""
    lines = []
    for uid, name in USERS.items():
        lines.append(("passwd", f"{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin"))
        lines.append(("group", f"{name}:x:{uid}:"))
    return lines


def image(name: str) -> ImageDef:
    for found in IMAGES:
        if found.name == name:
            return found
    raise KeyError(name)


def runtime(name: str) -> Runtime:
    """`name` as it runs: its bases' layers under its own, its config merged onto theirs."""
    own = image(name)
    if own.base is None:
        if own.user is None or own.entrypoint is None:
            raise ValueError(f"image {name!r} has no base: it needs a user and an entrypoint")
        return Runtime(own.layers, own.user, own.env, own.entrypoint, own.cmd)
    base = runtime(own.base)
    return Runtime(
        layers=(*base.layers, *own.layers),
        user=base.user if own.user is None else own.user,
        env=(*base.env, *own.env),
        entrypoint=base.entrypoint if own.entrypoint is None else own.entrypoint,
        cmd=base.cmd if own.entrypoint is None else own.cmd,
    )
