"""The dev node's volume provisioner: hostPath PersistentVolumes that pods can write.

The controller-manager's built-in hostpath provisioner makes each volume root-owned with
mode 0750, which no pod under PSA `restricted` (non-root, no fsGroup support for hostPath)
can write. This one makes mode-0777 directories under a root-owned, traversable but not listable
directory (no other host user can find a volume's name), binds them to their claim,
and deletes them once the claim is gone, the way an external provisioner does.

A directory bounds nothing, so each volume is a filesystem of its claim's size: a sparse
ext4 image (`<root>/pvc-<uid>.img`, root's alone) loop-mounted at the volume's directory
(`sandbox/jail/volumes.py`), so the total of a tenant's files is bounded in the kernel (a write
past it fails with ENOSPC). Mounts outlive this process; when it starts it mounts again
any image that is not (after a reboot), and `dev-cluster down` unmounts every one
(`unmount_all`), which detaches their loop devices. Without root or the tools (e2fsprogs)
a volume is a plain directory and says so in the log.
Run as a dev-cluster component: `python -m tenantflow_dev.devcluster.provisioner`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from tenantflow.kube.client import ApiException, Kube
from tenantflow.observability.logging import configure, get_logger
from tenantflow.quantity import parse_quantity
from tenantflow.sandbox.jail import volumes

log = get_logger("tenantflow_dev.devcluster.provisioner")

NAME = "tenantflow.dev/hostpath"
STORAGE_CLASS = "standard"
POLL_SECONDS = 0.2  # a new claim waits at most this long (a tenant's first pod waits on it)
IMAGE_SUFFIX = ".img"


def volume_for(claim: dict[str, Any], root: Path) -> dict[str, Any]:
    """The PersistentVolume pre-bound to `claim` (pure)."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    name = f"pvc-{meta['uid']}"
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": NAME}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": str(root / name), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def wants_volume(claim: dict[str, Any]) -> bool:
    spec = claim.get("spec") or {}
    phase = (claim.get("status") or {}).get("phase")
    return bool(
        phase == "Pending"
        and not spec.get("volumeName")
        and spec.get("storageClassName") in (None, STORAGE_CLASS)
        and not (claim.get("metadata") or {}).get("deletionTimestamp")
    )


async def sync_once(kube: Kube, root: Path) -> None:
    for claim in await kube.list("v1", "PersistentVolumeClaim"):
        if wants_volume(claim):
            pv = volume_for(claim, root)
            size = size_bytes(pv["spec"]["capacity"]["storage"])
            await asyncio.to_thread(_make_volume, Path(pv["spec"]["hostPath"]["path"]), size)
            try:
                await kube.create(pv)
                log.info(
                    "volume provisioned", pv=pv["metadata"]["name"], claim=claim["metadata"]["name"]
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
    for pv in await kube.list("v1", "PersistentVolume"):
        annotations = pv["metadata"].get("annotations") or {}
        phase = (pv.get("status") or {}).get("phase")
        if annotations.get("pv.kubernetes.io/provisioned-by") == NAME and phase in (
            "Released",
            "Failed",
        ):
            await asyncio.to_thread(_delete_volume, root / pv["metadata"]["name"])
            await kube.delete("v1", "PersistentVolume", pv["metadata"]["name"])
            log.info("volume deleted", pv=pv["metadata"]["name"])


def size_bytes(quantity: str) -> int:
    return int(parse_quantity(quantity))


def image_of(path: Path) -> Path:
    return path.with_name(path.name + IMAGE_SUFFIX)


def _make_volume(path: Path, size: int) -> None:
    """The volume's directory, backed by an image of `size` bytes (idempotent: a pass
    that failed halfway, or a claim seen twice, finishes the same volume)."""
    path.mkdir(parents=True, exist_ok=True)
    why_not = volumes.available()
    image = image_of(path)
    if why_not is not None:
        log.warning("volume size not enforced", volume=path.name, reason=why_not)
    elif volumes.mounted_at(path) is None:
        if not image.exists():
            volumes.create(image, size)
        volumes.mount(image, path)
    path.chmod(0o777)  # the pod's uid is unknown here; the parent is not listable


def _delete_volume(path: Path) -> None:
    volumes.remove(image_of(path), path)


def remount_all(root: Path) -> int:
    """Mount every volume's image that is not mounted (after a reboot); how many."""
    if volumes.available() is not None:
        return 0
    done = 0
    for image in sorted(root.glob(f"pvc-*{IMAGE_SUFFIX}")):
        path = image.with_name(image.name.removesuffix(IMAGE_SUFFIX))
        if volumes.mounted_at(path) is None:
            path.mkdir(exist_ok=True)
            volumes.mount(image, path)
            done += 1
    return done


def unmount_all(root: Path) -> list[Path]:
    """Unmount every volume under `root` and detach its loop device (`dev-cluster
    down`, after the pods are gone); returns the mount points."""
    prefix = f"{root.resolve() if root.exists() else root}/"
    points = [m.point for m in volumes.mounted() if str(m.image).startswith(prefix)]
    volumes.unmount_all(points)
    volumes.detach_images_under(root)
    return points


def _make_root(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for d in (root, *root.parents):  # traversable (not listable) down to the volumes
        if d == Path("/") or d.stat().st_mode & 0o111 == 0o111:
            break
        d.chmod(d.stat().st_mode | 0o111)
    root.chmod(0o711)


async def run(kubeconfig: str, root: Path) -> None:
    kube = await Kube.connect(kubeconfig)
    await asyncio.to_thread(_make_root, root)
    try:
        remounted = await asyncio.to_thread(remount_all, root)
        if remounted:
            log.info("volumes mounted again", count=remounted)
    except (OSError, volumes.VolumeError) as exc:
        log.warning("could not mount the existing volumes", error=str(exc))
    try:
        while True:
            try:
                await sync_once(kube, root)
            except (ApiException, OSError, volumes.VolumeError) as exc:
                log.warning("provisioner pass failed; retrying", error=str(exc))
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", required=True, type=Path, help="where volumes are made")
    args = parser.parse_args()
    configure()
    asyncio.run(run(args.kubeconfig, args.root))


if __name__ == "__main__":
    main()
