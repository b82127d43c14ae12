"""The released images' Containerfiles, generated from imagedefs.py (what the dev node's
builder builds from too), so that both say the same: Debian's python3 and libseccomp2, the
same users, the package as the wheel ships it in the same site-packages, /data, the same
user, env, entrypoint and command.

    python -m tenantflow_dev.devcluster.containerfiles          # write them (make containerfiles)
    python -m tenantflow_dev.devcluster.containerfiles --check  # exit 1 on drift

One difference is left, by necessity: the builder pins the dependencies to this venv's
versions (what the tests ran), a Containerfile resolves pyproject.toml's ranges.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from tenantflow_dev.devcluster import imagedefs, images
from tenantflow_dev.devcluster.imagedefs import PYTHON_LAYERS, SITE, ImageDef

DEBIAN_IMAGE = f"docker.io/library/debian:{imagedefs.DEBIAN_SUITE}-slim"
GENERATED = """\
Generated from dev/tenantflow_dev/devcluster/imagedefs.py by `make containerfiles`; the
dev node's image builder (`make images`) reads the same definitions. Edit those, not this."""


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def _run(*commands: str) -> str:
    return "RUN " + " \\\n && ".join(commands)


def _python_base() -> list[str]:
    """The `os`, `deps` and `app` layers: Debian with python3, the package and its deps."""
    accounts = [f'echo "{line}" >> /etc/{file}' for file, line in imagedefs.accounts()]
    data = f"/{imagedefs.DATA_DIR}"
    return [
        f"FROM {DEBIAN_IMAGE} AS build",
        _run(
            "apt-get update",
            "apt-get install -y --no-install-recommends python3-pip",
        ),
        "WORKDIR /src",
        "COPY pyproject.toml README.md ./",
        "COPY operator ./operator",
        _run(
            "python3 -m pip install --no-cache-dir --no-compile --break-system-packages"
            " --target /site .",
            "rm -rf /site/bin",
            f"python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash -d /{SITE} /site",
        ),
        "",
        f"FROM {DEBIAN_IMAGE}",
        _run(
            "apt-get update",
            "apt-get install -y --no-install-recommends " + " ".join(imagedefs.DEBIAN_PACKAGES),
            "rm -rf /var/lib/apt/lists/* /var/cache/apt/*",
            *accounts,
            f"mkdir {data}",
            f"chown {imagedefs.NONROOT}:{imagedefs.NONROOT} {data}",
        ),
        f"COPY --from=build /site /{SITE}",
    ]


def _typescript_stage() -> list[str]:
    """The `typescript` layer's build stage: the base image has no pip, so Deno (the
    `typescript` extra's pin) is installed into /site here, its binary in /site/bin where
    `deno.find_deno_bin()` looks in a `--target` tree, and copied onto SITE."""
    return [
        f"FROM {DEBIAN_IMAGE} AS typescript",
        _run(
            "apt-get update",
            "apt-get install -y --no-install-recommends python3-pip",
        ),
        _run(
            "python3 -m pip install --no-cache-dir --no-compile --break-system-packages"
            " --target /site " + shlex.join(images.typescript_requirements()),
            "test -x /site/bin/deno",
            f"python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash -d /{SITE} /site",
        ),
        "",
    ]


# layers a derived image adds: (its build stage's instructions, before the image's FROM;
# the instructions after it)
_ADDED: dict[str, tuple[Callable[[], list[str]] | None, str]] = {
    "typescript": (_typescript_stage, f"COPY --from=typescript /site /{SITE}/"),
    "example-libs": (None, f"COPY site/ /{SITE}/"),
}


def _derived(image: ImageDef, version: str) -> list[str]:
    """`FROM` the base image (its build stages first), then what each layer adds."""
    if image.base is None:
        raise ValueError(f"{image.name}: no base")
    stages, added = [], []
    for kind in image.layers:
        if kind not in _ADDED:
            raise ValueError(f"{image.name}: no Containerfile form for layer {kind!r}")
        stage, instruction = _ADDED[kind]
        if stage is not None:
            stages += stage()
        added.append(instruction)
    base = f"ARG BASE={imagedefs.PUBLISHED}/{image.base}:{version}"
    return [base, *stages, "FROM ${BASE}", *added]


def render(image: ImageDef, version: str) -> str:
    """The Containerfile of `image` (one with a `containerfile`)."""
    about = image.about.format(version=version, python=imagedefs.PYTHON_VERSION)
    lines = [*_comment(about), "#", *_comment(GENERATED)]
    if image.base is None:
        if image.layers != PYTHON_LAYERS:
            raise ValueError(f"{image.name}: no Containerfile form for layers {image.layers}")
        lines += _python_base()
    else:
        lines += _derived(image, version)
    if image.user is not None:
        lines.append(f"USER {image.user}:{image.user}")
    if image.env:
        lines.append("ENV " + " ".join(image.env))
    if image.base is None:
        lines.append(f"WORKDIR {imagedefs.WORKDIR}")
    if image.entrypoint is not None:  # resets the base's command: say this image's
        lines.append(f"ENTRYPOINT {json.dumps(list(image.entrypoint))}")
        lines.append(f"CMD {json.dumps(list(image.cmd))}")
    return "\n".join(lines) + "\n"


def generated(version: str) -> dict[str, str]:
    """Each Containerfile's path (relative to the project root) and its text."""
    return {
        image.containerfile: render(image, version)
        for image in imagedefs.IMAGES
        if image.containerfile is not None
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tenantflow_dev.devcluster.containerfiles")
    parser.add_argument("--root", type=Path, default=images.PROJECT_ROOT)
    parser.add_argument("--check", action="store_true", help="exit 1 if any file differs")
    args = parser.parse_args(argv)
    drifted = []
    for path, text in generated(images.project_version()).items():
        target = args.root / path
        if args.check:
            if not target.is_file() or target.read_text() != text:
                drifted.append(path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target}")
    for path in drifted:
        print(f"{path} differs from imagedefs.py: run `make containerfiles`", file=sys.stderr)
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
