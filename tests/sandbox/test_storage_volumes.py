"""Sized volumes (loop-mounted ext4 images) bound the total of a tenant's files: filled
until ENOSPC, env.db fails with an error naming the limit and stays whole. The dev
node's provisioner and the local jail both make them; neither leaves a mount or a loop
device behind. Needs root and loop devices (no cluster)."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenantflow.sandbox.client.transport import HttpTransport
from tenantflow.sandbox.jail import local, volumes
from tenantflow.sandbox.protocol.payload import advance_payload
from tenantflow.storage.database import StorageQuotaExceeded, TenantDatabase
from tenantflow_dev.devcluster import provisioner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(volumes.available() is not None, reason=str(volumes.available())),
]
MiB = 1 << 20


def loops_under(root: Path) -> list[str]:
    """Loop devices still backed by an image below `root` (detached ones drop out)."""
    prefix = f"{os.path.realpath(root)}/"
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing.read_text().strip().startswith(prefix):
                found.append(backing.parent.parent.name)
        except OSError:
            continue
    return found


def clean(root: Path) -> bool:
    deadline = time.monotonic() + 5
    while loops_under(root) and time.monotonic() < deadline:
        time.sleep(0.05)  # autoclear detaches once the last reference is dropped
    return not loops_under(root) and not any(
        str(m.point).startswith(f"{os.path.realpath(root)}/") for m in volumes.mounted()
    )


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for m in volumes.mounted():  # whatever a failed test left: only our own mounts
        if str(m.point).startswith(f"{os.path.realpath(tmp_path)}/"):
            volumes.unmount(m.point)
    volumes.detach_images_under(tmp_path)


def fill_with_files(where: Path) -> int:
    """Write 1 MiB files until the volume refuses; the bytes written."""
    written = 0
    for i in range(1000):
        try:
            with open(where / f"fill-{i}", "wb") as f:
                f.write(b"x" * MiB)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            break
        written += MiB
    else:
        raise AssertionError("the volume never filled")
    try:  # the last blocks, one at a time
        with open(where / "fill-last", "wb", buffering=0) as f:
            while True:
                f.write(b"x" * 1024)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    assert os.statvfs(where).f_bavail < 8  # blocks of 1 KiB: what ext4 keeps back
    return written


def test_a_volume_bounds_the_total_and_env_db_stays_whole(root: Path) -> None:
    image, point = root / "v.img", root / "v"
    point.mkdir()
    volumes.create(image, 16 * MiB)
    assert image.stat().st_blocks * 512 < 8 * MiB  # sparse (ext4 writes its journal)
    volumes.mount(image, point)
    assert volumes.size_of(point) == 16 * MiB
    assert not (point / "lost+found").exists() and point.stat().st_mode & 0o777 == 0o777
    # env.db's own page cap is far off (1 GiB): the volume is what stops it
    db = TenantDatabase(point / "tenant.sqlite3", max_bytes=16 * MiB)
    db.execute("CREATE TABLE t (n INTEGER, b BLOB)")
    written = fill_with_files(point)
    assert 8 * MiB <= written <= 16 * MiB
    for i in range(written // MiB - 4):  # room for the database again: 4 MiB of it
        (point / f"fill-{i}").unlink()
    committed = 0
    with pytest.raises(StorageQuotaExceeded) as failed:
        for n in range(100):
            db.execute("BEGIN")
            db.execute("INSERT INTO t VALUES (?, zeroblob(?))", (n, 256 * 1024))
            db.execute("INSERT INTO t VALUES (?, zeroblob(?))", (n, 256 * 1024))
            db.execute("COMMIT")
            committed += 2
    message = str(failed.value)
    assert "16 MiB" in message and "spec.limits.storage" in message, message
    assert committed > 0
    with pytest.raises(StorageQuotaExceeded):  # still full: still the clear error
        db.execute("INSERT INTO t VALUES (-1, zeroblob(1048576))")
    db.close()
    used = sum(f.stat().st_blocks * 512 for f in point.iterdir())
    assert used <= 16 * MiB
    # the database is whole and holds exactly what was committed
    check = sqlite3.connect(point / "tenant.sqlite3")
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert check.execute("SELECT count(*) FROM t").fetchone()[0] == committed
    check.close()
    volumes.remove(image, point)
    assert not image.exists() and not point.exists()
    assert clean(root)


def test_a_new_database_on_a_full_volume_is_the_clear_error(root: Path) -> None:
    image, point = root / "v.img", root / "v"
    point.mkdir()
    volumes.create(image, 4 * MiB)
    volumes.mount(image, point)
    fill_with_files(point)
    with pytest.raises(StorageQuotaExceeded, match=r"4 MiB \(Tenant spec.limits.storage\)"):
        db = TenantDatabase(point / "tenant.sqlite3", max_bytes=4 * MiB)
        db.execute("CREATE TABLE t (b BLOB)")
    volumes.unmount(point)
    assert clean(root)


def test_the_local_jail_moves_a_data_dir_into_a_volume_that_grows(root: Path) -> None:
    data = root / "data"
    (data / "scratch").mkdir(parents=True)
    (data / "scratch" / "kept.txt").write_text("kept")
    (data / "link").symlink_to("/etc/shadow")  # moved as a link, never followed
    os.mkfifo(data / "fifo")  # not data: left behind, never opened
    assert local.mount_volume(str(data), 8 * MiB)
    assert (data / "scratch" / "kept.txt").read_text() == "kept"
    assert os.readlink(data / "link") == "/etc/shadow"
    assert not (data / "fifo").exists() and not (data / local.VOLUME_IMAGE).exists()
    assert volumes.size_of(data) == 8 * MiB
    local.unmount_volume(str(data))
    assert sorted(os.listdir(data)) == [local.VOLUME_IMAGE]  # the files live in the image
    assert (data / local.VOLUME_IMAGE).stat().st_mode & 0o777 == 0o600
    assert local.mount_volume(str(data), 16 * MiB)  # the limit went up: the volume grows
    assert volumes.size_of(data) == 16 * MiB
    assert (data / "scratch" / "kept.txt").read_text() == "kept"
    with open(data / "big", "wb") as f:  # the new room is usable
        f.write(b"x" * 9 * MiB)
    local.unmount_volume(str(data))
    assert local.mount_volume(str(data), None)  # an image is always mounted: its data
    assert volumes.size_of(data) == 16 * MiB and (data / "big").exists()
    assert local.mount_volume(str(data), 16 * MiB)  # left mounted by a killed operator
    local.unmount_volume(str(data))
    assert clean(root)


def test_the_local_jail_uses_a_volume_of_its_own_as_it_is(root: Path) -> None:
    plain = root / "plain"
    assert not local.mount_volume(str(plain), None)  # no size: a plain directory
    pv, image = root / "pvc-1", root / "pvc-1.img"
    pv.mkdir()
    volumes.create(image, 4 * MiB)
    volumes.mount(image, pv)
    assert not local.mount_volume(str(pv), 64 * MiB)  # the provisioner's volume
    assert volumes.size_of(pv) == 4 * MiB and not (pv / local.VOLUME_IMAGE).exists()
    volumes.unmount(pv)
    assert clean(root)


def test_the_provisioner_sizes_volumes_mounts_them_again_and_cleans_up(root: Path) -> None:
    claim = {
        "metadata": {"uid": "u1", "namespace": "tenant-a", "name": "data"},
        "spec": {"resources": {"requests": {"storage": "8Mi"}}},
    }
    pv = provisioner.volume_for(claim, root)
    path = Path(pv["spec"]["hostPath"]["path"])
    provisioner._make_volume(path, provisioner.size_bytes(pv["spec"]["capacity"]["storage"]))
    provisioner._make_volume(path, 8 * MiB)  # a claim seen twice: the same volume
    assert volumes.size_of(path) == 8 * MiB and path.stat().st_mode & 0o777 == 0o777
    assert provisioner.image_of(path).stat().st_mode & 0o777 == 0o600
    (path / "kept").write_text("kept")
    assert fill_with_files(path) <= 8 * MiB
    volumes.unmount(path)  # as after a reboot: the image is there, not mounted
    assert provisioner.remount_all(root) == 1 and provisioner.remount_all(root) == 0
    assert (path / "kept").read_text() == "kept"
    other = provisioner.volume_for({**claim, "metadata": {**claim["metadata"], "uid": "u2"}}, root)
    other_path = Path(other["spec"]["hostPath"]["path"])
    provisioner._make_volume(other_path, 4 * MiB)
    provisioner._delete_volume(other_path)  # the claim is gone
    assert not other_path.exists() and not provisioner.image_of(other_path).exists()
    assert provisioner.unmount_all(root) == [path]  # dev-cluster down
    assert clean(root)


def test_a_jail_pins_no_other_tenants_volume_and_stop_all_leaves_nothing(root: Path) -> None:
    """Each jail stages its files in a copy of the host's mount namespace: another
    tenant's volume, unmounted on the host, must not stay attached because of it."""
    sandboxes = local.LocalSandboxes(root / "sockets")
    loop = asyncio.new_event_loop()
    transport = HttpTransport()
    source = "async def run(event, step):\n    return await step.do('ok', lambda: 'fine')\n"

    def advance(tenant: str) -> Any:
        async def call() -> Any:
            data = root / "data" / tenant
            data.mkdir(parents=True, exist_ok=True)
            ep = await sandboxes.endpoint(tenant, str(data), b"k", storage_bytes=8 * MiB)
            payload = advance_payload(
                source=source, instance_id="i", started_at="2030-01-01T00:00:00Z"
            )
            return await transport.advance(ep, payload)

        return loop.run_until_complete(call())

    try:
        assert advance("vol-b")["outcome"]["output"] == "fine"
        assert advance("vol-a")["outcome"]["output"] == "fine"  # its jail saw b's volume
        sandboxes._stop(sandboxes._runners.pop("vol-b"))
        assert clean(root / "data" / "vol-b")  # detached although a's jail still runs
        assert volumes.mounted_at(root / "data" / "vol-a") is not None
    finally:
        loop.run_until_complete(transport.close())
        sandboxes.stop_all()
        loop.close()
    assert clean(root)
