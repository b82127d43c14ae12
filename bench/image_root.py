"""A benchmark's measuring process run on an image's own interpreter: the image's layers
unpacked into a directory, this `bench` package copied beside them, and the command run
there in a chroot (as root, as the dev node's images are built). What the sandbox pays
per advance depends on the image's Python, not this venv's (bench/README.md, "Cheaper
per instance").

    BENCH_IMAGE=sandbox python -m bench fork
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def image_name() -> str | None:
    """The image a benchmark measures in (`BENCH_IMAGE`), or None: this interpreter."""
    return os.environ.get("BENCH_IMAGE") or None


@contextlib.contextmanager
def unpacked(name: str) -> Iterator[Path]:
    """The image `name` (built or reused, `make images`) as a root directory holding /bench
    and a /proc, removed afterwards. (The dev tooling is imported here, not at the top:
    the measuring process imports this module inside the image, which has no such tooling.)"""
    from tenantflow_dev.devcluster import images

    layer_fns, _config = images.definitions()[name]
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        root = Path(tmp)
        images.unpack([fn() for fn in layer_fns], root)
        shutil.copytree(BENCH_DIR, root / "bench", ignore=shutil.ignore_patterns("results"))
        (root / "proc").mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        try:
            yield root
        finally:
            subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def python_argv(root: Path, *args: str) -> list[str]:
    """`python3 <args>` inside `root`, from its / (where `bench` is)."""
    return ["chroot", str(root), "/usr/bin/python3", *args]
