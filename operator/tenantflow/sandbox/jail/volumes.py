"""Sized volumes: a sparse ext4 image, loop-mounted, per tenant store (needs root).

A directory bounds nothing but each file (RLIMIT_FSIZE); a filesystem of the limit's size
bounds the total of every file in it, in the kernel: the write that would pass it fails
with ENOSPC, which SQLite reports as "database or disk is full" and rolls back. The dev
node's provisioner backs each PersistentVolume by one (its PVC's size); the local jail
backs a data dir by one (the tenant's storage limit) when the dir is not a volume already.

The image is sparse (blocks are allocated as they are written), formatted without blocks
reserved for root (the whole size is the tenant's, less ext4's own metadata, as on any
ext4 PVC: its journal, inode tables and the kernel's reserve leave 85 % of 64 MiB, 94 %
of 1 GiB) and mounted `nosuid,nodev` with a loop device that detaches itself
when the last mount of it goes away (`mount -o loop` sets autoclear). Volumes grow when
mounted with a bigger size (as a PVC expands), never shrink.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tenantflow.errors import TenantflowError

MIN_BYTES = 1 << 20  # mkfs.ext4 makes nothing usable below this
MOUNT_OPTIONS = "loop,nosuid,nodev"
TOOLS = ("mkfs.ext4", "e2fsck", "resize2fs", "losetup", "mount", "umount")


class VolumeError(TenantflowError):
    pass


@dataclass(frozen=True)
class Mounted:
    point: Path
    device: str  # /dev/loopN
    image: Path  # its backing file, as the kernel recorded its path


def available() -> str | None:
    """None when sized volumes can be made here, else why not."""
    if os.geteuid() != 0:
        return "sized volumes need root (loop devices and mounts)"
    missing = [t for t in TOOLS if _which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found: run `make sysdeps` (Debian: e2fsprogs, mount)"
    if not Path("/dev/loop-control").exists():
        return "this kernel has no loop devices (/dev/loop-control)"
    return None


def create(image: Path, size: int) -> None:
    """A sparse image of `size` bytes, formatted ext4; mode 0600 (root's alone)."""
    size = max(int(size), MIN_BYTES)
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    try:
        # -b 4096: a block per memory page (below 512 MiB mkfs picks 1 KiB blocks, and a
        # page SQLite maps for its WAL index would be allocated a block at a time: on a
        # full volume, writing to it is a SIGBUS instead of an error); -m 0: no blocks
        # kept for root; -E root_owner: the caller sets the owner anyway
        argv = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0", "-E", "root_owner=0:0"]
        _run([*argv, str(image)])
    except VolumeError:
        image.unlink(missing_ok=True)
        raise


def mount(image: Path, point: Path, mode: int = 0o777, size: int | None = None) -> bool:
    """Mount `image` at `point` (which must exist); its root gets `mode`, no lost+found.
    Grown to `size` first when it is smaller; True if it grew. (Offline: growing a
    mounted ext4 needs CAP_SYS_RESOURCE, which some VMs withhold even from root.)"""
    grown = bool(size and size > image.stat().st_size)
    if grown:
        # resize2fs wants a checked filesystem; 1 is "corrected" (the lost+found we remove)
        _run(["e2fsck", "-f", "-p", str(image)], ok=(0, 1))
        os.truncate(image, int(size or 0))
        _run(["resize2fs", str(image)])
    _run(["mount", "-o", MOUNT_OPTIONS, "-t", "ext4", str(image), str(point)])
    try:
        point.chmod(mode)
        with contextlib.suppress(OSError):  # e2fsck makes it again if it ever needs one
            (point / "lost+found").rmdir()
    except BaseException:
        unmount(point)
        raise
    return grown


def size_of(point: Path) -> int:
    """The size of the volume mounted at `point` (its loop device's), in bytes."""
    here = mounted_at(point)
    if here is None:
        raise VolumeError(f"{point} is not a mounted volume")
    sectors = Path("/sys/block", Path(here.device).name, "size").read_text()
    return int(sectors) * 512


def unmount(point: Path, *, within: float = 5.0) -> None:
    """Unmount, retrying while busy (a process of a killed jail not yet reaped), then
    lazily; the loop device detaches once no mount of it is left anywhere."""
    unmount_all([point], within=within)


UMOUNT_BATCH = 200  # mount points per umount(8) call


def unmount_all(points: list[Path], *, within: float = 5.0) -> None:
    """`unmount` for many at once: the mount table is read once per round, not once per
    volume (a dev cluster with 2,000 volumes took minutes to stop), and umount(8) is
    given them in batches; what is still busy at the deadline is unmounted lazily."""
    deadline = time.monotonic() + within
    left = {Path(os.path.realpath(p)) for p in points}
    while True:
        left &= {m.point for m in mounted()}
        if not left:
            return
        lazy = time.monotonic() > deadline
        ordered = sorted(left)
        for start in range(0, len(ordered), UMOUNT_BATCH):
            batch = [str(p) for p in ordered[start : start + UMOUNT_BATCH]]
            argv = ["umount", *(["-l"] if lazy else []), *batch]
            subprocess.run(argv, capture_output=True, check=False)
        if lazy:
            return
        time.sleep(0.05)


def remove(image: Path, point: Path) -> None:
    """Unmount and delete a volume: its image and its (empty) mount point."""
    unmount(point)
    image.unlink(missing_ok=True)
    shutil.rmtree(point, ignore_errors=True)


def mounted() -> list[Mounted]:
    """Every loop-mounted filesystem in this mount namespace, with its image."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        point, source = _unescape(fields[4]), fields[sep + 2]
        name = Path(source).name
        if not name.startswith("loop"):
            continue
        backing = Path("/sys/block") / name / "loop" / "backing_file"
        with contextlib.suppress(OSError):
            image = backing.read_text().strip().removesuffix(" (deleted)")
            found.append(Mounted(Path(point), source, Path(image)))
    return found


def mounted_at(point: Path) -> Mounted | None:
    point = Path(os.path.realpath(point))
    return next((m for m in mounted() if m.point == point), None)


def detach_images_under(root: Path) -> list[str]:
    """Detach any loop device still backed by an image below `root` (left by a lazy
    unmount whose last user has gone); returns the devices detached."""
    done = []
    prefix = f"{os.path.realpath(root)}/"
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().strip().startswith(prefix):
                device = f"/dev/{backing.parent.parent.name}"
                if subprocess.run(["losetup", "-d", device], check=False).returncode == 0:
                    done.append(device)
    return done


def _unescape(text: str) -> str:
    return text.encode().decode("unicode_escape")


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def _run(argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
    exe = _which(argv[0])
    if exe is None:
        raise VolumeError(f"{argv[0]} not found: run `make sysdeps` (Debian: e2fsprogs, mount)")
    done = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, check=False)
    if done.returncode not in ok:
        raise VolumeError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")
