"""A sandbox's Deno scratch, kept bounded (engine/typescript.py's `prepared`).

Each TypeScript revision an advance runs gets a source directory named by its files'
digest, and Deno keeps a transpiled copy of each module under its cache's `gen/file/`
mirror of that path. Both outlive the advance on purpose (transpiling again cost each
advance ~15 ms), but they live on the tenant's own volume (`/data/scratch`), where every
revision ever run — and a plan written at runtime is a new one for each child — would
stay and count against the tenant's storage for ever. So, at most once per PRUNE_EVERY,
an advance removes the source directories no advance used for KEEP_UNUSED (each use
touches its directory), all but the MAX_SOURCES most recently used, with their
transpiled copies, and Deno's own analysis caches once they pass MAX_CACHE_BYTES (Deno
rebuilds them; it never shrinks them itself).

An advance running a revision touched its directory when it began, so a pruning
advance beside it never takes a directory in use: advances end within their deadline,
far below KEEP_UNUSED.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

PRUNE_EVERY = 3600.0  # seconds between two prunings of one sandbox's scratch
KEEP_UNUSED = 24 * 3600.0  # a revision's sources unused this long go
MAX_SOURCES = 256  # revisions kept at most, the most recently used
MAX_CACHE_BYTES = 64 << 20  # Deno's SQLite caches (module analysis, V8 code), in all
MARKER = ".pruned"  # its modification time: the last pruning


def used(sources: Path) -> None:
    """Mark a revision's source directory as used now (what pruning goes by)."""
    with contextlib.suppress(OSError):
        os.utime(sources)


def prune(home: Path, now: float | None = None) -> list[str]:
    """Prune `home` (sources under src/, Deno's cache under cache/) if it is due; the
    digests of the source directories removed."""
    now = time.time() if now is None else now
    marker = home / MARKER
    with contextlib.suppress(FileNotFoundError):
        if now - marker.stat().st_mtime < PRUNE_EVERY:
            return []
    marker.touch()
    os.utime(marker, (now, now))
    found = []
    for entry in (home / "src").iterdir() if (home / "src").is_dir() else ():
        with contextlib.suppress(OSError):
            if entry.is_dir():
                found.append((entry.stat().st_mtime, entry.name, entry))
    found.sort(reverse=True)  # the most recently used first
    removed = []
    for rank, (mtime, name, entry) in enumerate(found):
        if rank >= MAX_SOURCES or now - mtime > KEEP_UNUSED:
            shutil.rmtree(entry, ignore_errors=True)
            transpiled = home / "cache" / "gen" / "file" / entry.absolute().relative_to("/")
            shutil.rmtree(transpiled, ignore_errors=True)
            removed.append(name)
    _bound_caches(home / "cache")
    return removed


def _bound_caches(cache: Path) -> None:
    """Deno's SQLite caches (and their -wal, -shm), removed together once they hold more
    than MAX_CACHE_BYTES: a Deno that has them open keeps its own copy until it ends."""
    files = [p for p in cache.glob("*_cache_v*") if p.is_file()] if cache.is_dir() else []
    total = 0
    for path in files:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    if total > MAX_CACHE_BYTES:
        for path in files:
            with contextlib.suppress(OSError):
                path.unlink()
