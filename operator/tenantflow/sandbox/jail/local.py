"""Local sandboxes: a runner process per tenant on the host, its worker host in a jail.

Used by the demo and tests when there is no kubelet node, and by anyone running the
operator outside a cluster. The split mirrors the sandbox pod: the runner (holding the
key) stays on the host, in a directory only the operator can reach; the zygote and every
tenant process run in a bubblewrap jail as an unprivileged host uid of the tenant's own,
with new user, pid, ipc, uts and network namespaces (no network at all), no nested user
namespaces, a read-only view of only what Python needs, sized tmpfs for /tmp and
/dev/shm, the tenant's data dir as the one writable directory, and pids and memory
cgroups around all of it (the cpu one gives every tenant the same weight).
The runner reaches the zygote only through descriptors passed over an inherited socket:
no path is shared between the jail and the host.

Storage: a data dir given a size (`storage_bytes`, the tenant's `spec.limits.storage`) is
a filesystem of that size (`sandbox/jail/volumes.py`: a sparse ext4 image inside the dir,
`.tenantflow-volume.img`, loop-mounted over it while the runner lives), so the total of
the tenant's files is bounded in the kernel, not only each file (RLIMIT_FSIZE). A data dir
that is a mount point already (the dev provisioner's volume) is used as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tenantflow
from tenantflow.errors import TenantflowError
from tenantflow.observability.logging import get_logger
from tenantflow.paths import cache_dir
from tenantflow.sandbox.client.transport import Endpoint
from tenantflow.sandbox.jail import volumes
from tenantflow.sandbox.pod.link import Streams, ZygoteLink
from tenantflow.sandbox.protocol import frames

log = get_logger("tenantflow.sandbox.jail.local")
JAIL_UID = 10001  # the uid inside the jail (as in the sandbox pod)
HOST_UID_BASE, HOST_UID_SPAN = 200_000, 800_000  # each tenant's own unprivileged host uid
MAX_PIDS = 256
CPU_SHARES, CPU_WEIGHT = 1024, 100  # every jail the same (cgroup v1 default, v2 default)
TMPFS_BYTES = 64 * 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "tenantflow-"
MEMORY_OVERHEAD = 256 * 1024 * 1024  # the zygote, and the page cache of the tenant's files


STAGE = Path("/run/tenantflow-jail")  # a mount point, only inside each jail's mount namespace
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x00020000, 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2


class LocalSandboxError(TenantflowError):
    pass


def _python_roots() -> list[str]:
    """Read-only paths the jailed interpreter needs: stdlib, venv, our package."""
    roots = {sys.base_prefix, sys.prefix, str(Path(tenantflow.__file__).resolve().parents[1])}
    return sorted(r for r in roots if os.path.exists(r))


def jail_argv(data_dir: str) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise LocalSandboxError(
            "bubblewrap (bwrap) is not installed: run `make sysdeps` or "
            "`apt-get install bubblewrap`"
        )
    argv = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    argv += ["--unshare-uts", "--unshare-cgroup-try", "--disable-userns", "--die-with-parent"]
    argv += ["--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin"]
    argv += ["--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    argv += ["--uid", str(JAIL_UID), "--gid", str(JAIL_UID), "--dev", "/dev", "--proc", "/proc"]
    for tmp in ("/tmp", "/dev/shm"):
        argv += ["--size", str(TMPFS_BYTES), "--tmpfs", tmp]
    for ro in (
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/etc/ssl/certs",
        "/etc/localtime",
        "/etc/alternatives",
    ):
        if os.path.exists(ro):
            argv += ["--ro-bind", ro, ro]
    for i, ro in enumerate(_python_roots()):  # staged: their parents may be root-only
        argv += ["--ro-bind", str(STAGE / str(i)), ro]
    argv += ["--bind", str(STAGE / "data"), data_dir, "--remount-ro", "/", "--chdir", "/"]
    return argv


def host_uid(tenant: str) -> int:
    """The tenant's unprivileged host uid: stable, and different per tenant (so no
    signal, ptrace or per-uid limit ever reaches across tenants even outside the jail)."""
    digest = hashlib.sha256(tenant.encode()).digest()
    return HOST_UID_BASE + int.from_bytes(digest[:8], "big") % HOST_UID_SPAN


def _stage_and_drop(data_dir: str, cgroup_procs: list[Path], uid: int) -> Callable[[], None]:
    """What the jail's first process does before exec'ing bwrap (runs in the child).

    Joins the cgroups, then, in a mount namespace of its own, binds the interpreter's
    roots and the data dir under STAGE (mode 0755), so that bwrap, run as the tenant's
    unprivileged host uid, can see them even where a parent such as /root is closed; then
    drops to that uid. The host's mount table never changes.
    """
    roots = [*_python_roots()]

    def run() -> None:
        for procs in cgroup_procs:
            procs.write_text(str(os.getpid()))
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        for point in _other_volumes(data_dir):  # held here, they would pin loop devices
            _libc.umount2(point, MNT_DETACH)
        _check(_libc.mount(b"tmpfs", bytes(STAGE), b"tmpfs", 0, b"mode=0755"), "stage tmpfs")
        for name, src in [*((str(i), r) for i, r in enumerate(roots)), ("data", data_dir)]:
            target = STAGE / name
            target.mkdir()
            _check(_libc.mount(src.encode(), bytes(target), None, MS_BIND | MS_REC, None), src)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)

    return run


def _other_volumes(data_dir: str) -> list[bytes]:
    """The loop-mounted filesystems in this mount namespace but the jail's own (other
    tenants' volumes, the dev node's PVs), deepest first. The jail's staging namespace
    is a copy of the host's: a volume another tenant's runner unmounts on the host would
    stay in use here, its loop device attached, for as long as this jail lives."""
    own = os.path.realpath(data_dir)
    points = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            source = fields[fields.index(b"-") + 2]
            point = fields[4].decode("unicode_escape").encode("latin-1")
            if source.startswith(b"/dev/loop") and point != os.fsencode(own):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _stage_dir() -> None:
    """STAGE exists as a root-owned real directory (never a symlink someone planted)."""
    STAGE.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = os.lstat(STAGE)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
        raise LocalSandboxError(f"{STAGE} must be a directory owned by root")
    os.chmod(STAGE, 0o755)


@dataclass
class Cgroups:
    """The jail's pids, memory and cpu cgroups: fork bombs, memory beyond the rlimits and
    tmpfs, and CPU — every tenant's jail has the same weight, however many processes it
    runs (outside a cgroup of their own, each session of a fork bomb was an autogroup as
    heavy as another tenant's whole jail)."""

    procs: list[Path]

    @classmethod
    def create(cls, tenant: str, memory_bytes: int) -> Cgroups:
        name = f"{CGROUP_PREFIX}{tenant}"
        v1 = (CGROUP_ROOT / "pids" / "cgroup.procs").exists()
        settings = (
            {
                "pids": {"pids.max": MAX_PIDS},
                "memory": {"memory.limit_in_bytes": memory_bytes},
                "cpu": {"cpu.shares": CPU_SHARES},
            }
            if v1
            else {"": {"pids.max": MAX_PIDS, "memory.max": memory_bytes, "cpu.weight": CPU_WEIGHT}}
        )
        procs = []
        for controller, values in settings.items():
            group = CGROUP_ROOT / controller / name if controller else CGROUP_ROOT / name
            try:
                group.mkdir(exist_ok=True)
                for file, value in values.items():
                    (group / file).write_text(str(value))
            except OSError as exc:
                raise LocalSandboxError(
                    f"cannot set up cgroup {group} ({exc}): the local sandbox needs writable "
                    "pids, memory and cpu cgroups (run the operator as root), or use the "
                    "cluster transport"
                ) from None
            procs.append(group / "cgroup.procs")
        return cls(procs)

    @classmethod
    def existing(cls, tenant: str) -> Cgroups:
        """The tenant's groups as they are (to clean up after a runner that was killed)."""
        return cls(sorted(CGROUP_ROOT.glob(f"*/{CGROUP_PREFIX}{tenant}/cgroup.procs")))

    def kill_all(self, within: float = 2.0) -> None:
        """SIGKILL every process of the jail, however it detached itself; a killed process
        stays listed until it is reaped, which a loaded machine takes a while to do."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            pids: set[int] = set()
            for f in self.procs:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in f.read_text().split())
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left, then remove the (now empty) groups: nothing stays behind."""
        self.kill_all()
        for procs in self.procs:
            with contextlib.suppress(OSError):
                procs.parent.rmdir()


def remove_stale_cgroups() -> int:
    """Remove the empty cgroups of jails whose runner died without cleaning up (a killed
    operator); `tenantflow-dev-cluster down` calls this. Groups still holding processes stay."""
    removed = 0
    for group in CGROUP_ROOT.glob(f"*/{CGROUP_PREFIX}*"):
        with contextlib.suppress(OSError):
            group.rmdir()
            removed += 1
    return removed


class JailLink(ZygoteLink):
    """The runner's side of a jailed zygote: started, pinged, killed and restarted here."""

    def __init__(self, tenant: str, data_dir: str, memory_bytes: int) -> None:
        super().__init__("")
        self.tenant, self.data_dir, self.memory = tenant, data_dir, memory_bytes
        self.uid = host_uid(tenant)
        self.cgroups = Cgroups.create(tenant, 2 * memory_bytes + MEMORY_OVERHEAD)
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None
        self._start()

    def _start(self) -> None:
        _own_tree(self.data_dir, self.uid)
        ours, theirs = socket.socketpair()
        zygote = [sys.executable, "-I", "-m", "tenantflow.sandbox.pod.zygote", "--data"]
        zygote += [self.data_dir, "--tenant", self.tenant, "--memory-bytes", str(self.memory)]
        zygote += ["--fd", str(theirs.fileno())]
        _stage_dir()
        self.proc = subprocess.Popen(
            [*jail_argv(self.data_dir), *zygote],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_stage_and_drop(self.data_dir, self.cgroups.procs, self.uid),
        )
        theirs.close()
        ours.setblocking(False)
        self.control = ours
        log.info("jail started", tenant=self.tenant, pid=self.proc.pid, data=self.data_dir)

    async def connect(self) -> Streams:
        if self.proc is None or self.proc.poll() is not None:
            await self.restart("the worker host exited")
        try:
            return await self._pass_connection()
        except ConnectionError:  # it died since: one fresh start, then the caller's error
            await self.restart("the worker host closed its control socket")
            return await self._pass_connection()

    async def _pass_connection(self) -> Streams:
        """A new socketpair; one end goes to the zygote over the control socket."""
        if self.control is None:
            raise OSError("the jail is not running")
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [b"c"], [theirs.fileno()])
        except BlockingIOError:
            ours.close()
            raise OSError("the worker host is not taking connections") from None
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        return await asyncio.open_unix_connection(sock=ours, limit=frames.MAX_RESULT)

    async def restart(self, reason: str) -> bool:
        log.warning("replacing the jailed worker host", tenant=self.tenant, reason=reason)
        self._stop()
        self._start()
        return True

    def _stop(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        self.cgroups.kill_all()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)

    def close(self) -> None:
        self._stop()
        self.cgroups.remove()


def _own_tree(data_dir: str, uid: int) -> None:
    """The data dir belongs to the tenant's host uid: once, when it does not yet (a new
    volume, or files left by versions that jailed as root); never again after that."""
    os.makedirs(data_dir, exist_ok=True)
    if os.lstat(data_dir).st_uid == uid:
        return
    for dirpath, dirnames, filenames in os.walk(data_dir):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_uid != uid:
                    os.lchown(path, uid, uid)


VOLUME_IMAGE = ".tenantflow-volume.img"  # in the data dir, under the volume's own mount
MIGRATION_SLACK = 1.25  # an image for files already there: room for them, and a quarter


def mount_volume(data_dir: str, storage_bytes: int | None) -> bool:
    """Make `data_dir` a filesystem of `storage_bytes` (root; the operator's side, before
    the runner starts). True when this mounted it (the caller unmounts it again with
    `unmount_volume`); False when the dir is a mount point already or has no size.

    A data dir with an image is always mounted (its files are in there), grown when the
    size went up, never shrunk (as a PVC); files of a plain data dir move into a new
    image, which is made big enough for them if they already pass the size."""
    path = Path(os.path.realpath(data_dir))
    path.mkdir(parents=True, exist_ok=True)
    image = path / VOLUME_IMAGE
    here = volumes.mounted_at(path)
    if here is not None and here.image != image:
        return False  # a volume of its own (the dev provisioner's)
    if here is None and not image.exists() and not storage_bytes:
        return False
    why_not = volumes.available()
    if why_not is not None:
        raise LocalSandboxError(f"cannot bound the tenant's storage in {data_dir}: {why_not}")
    try:
        if here is None:  # else ours, left mounted by an operator that was killed
            if not image.exists():
                _new_volume(path, image, int(storage_bytes or 0))
            if volumes.mount(image, path, mode=0o700, size=storage_bytes):
                log.info("tenant volume grown", data=data_dir, bytes=storage_bytes)
        size = volumes.size_of(path)
    except volumes.VolumeError as exc:
        raise LocalSandboxError(f"cannot mount the tenant's volume in {data_dir}: {exc}") from None
    if storage_bytes and size > storage_bytes:
        log.warning(
            "the tenant's volume is bigger than its limit (volumes never shrink)",
            data=data_dir,
            volume_bytes=size,
            limit_bytes=storage_bytes,
        )
    return True


def unmount_volume(data_dir: str) -> None:
    """Unmount a data dir `mount_volume` mounted (its jail's processes are gone); its
    loop device detaches with it."""
    if volumes.mounted_at(Path(data_dir)) is not None:
        volumes.unmount(Path(data_dir))


def _new_volume(path: Path, image: Path, size: int) -> None:
    """A new image in `path`; files already in `path` move into it (never following a
    link the tenant made, nor opening anything but regular files)."""
    entries = [e for e in os.listdir(path) if e != VOLUME_IMAGE]
    used = _bytes_under(path)
    volumes.create(image, max(size, int(used * MIGRATION_SLACK) + (4 << 20)) if entries else size)
    os.chown(path, 0, 0)  # under the mount: the image, root's alone
    path.chmod(0o700)
    if not entries:
        return
    staging = Path(f"{path}.tenantflow-staging")
    staging.mkdir(mode=0o700)
    try:
        volumes.mount(image, staging, mode=0o700)
        try:
            _copy_tree(path, staging, skip={VOLUME_IMAGE})
        finally:
            volumes.unmount(staging)
    except BaseException:
        image.unlink(missing_ok=True)
        raise
    finally:
        staging.rmdir()
    for name in entries:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    log.info("tenant files moved into a volume", data=str(path), bytes=used, entries=len(entries))


def _bytes_under(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def _copy_tree(src: Path, dst: Path, skip: set[str]) -> None:
    for name in sorted(os.listdir(src)):
        if name in skip:
            continue
        s, d = src / name, dst / name
        st = os.lstat(s)
        if stat.S_ISDIR(st.st_mode):
            d.mkdir(mode=stat.S_IMODE(st.st_mode))
            _copy_tree(s, d, set())
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(s, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fin, open(d, "xb") as fout:
                shutil.copyfileobj(fin, fout)
            os.chmod(d, stat.S_IMODE(st.st_mode) & 0o777)  # no setuid bits
        # fifos, sockets, devices: not data; left behind


@dataclass
class _Runner:
    tenant: str
    proc: subprocess.Popen[bytes]
    socket: Path
    data_dir: str
    key: bytes
    secrets_dir: str | None
    storage_bytes: int | None = None
    mounted: bool = False  # its data dir's volume, mounted for it (unmounted with it)


class LocalSandboxes:
    """Operator side: one runner process per tenant, (re)started on demand."""

    def __init__(self, root: Path | None = None, *, memory_bytes: int = 1 << 30) -> None:
        self.root = root or cache_dir() / "sandboxes"
        self.memory = memory_bytes
        self._runners: dict[str, _Runner] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def endpoint(
        self,
        tenant: str,
        data_dir: str,
        key: bytes,
        secrets_dir: str | None = None,
        storage_bytes: int | None = None,
    ) -> Endpoint:
        """The tenant's runner endpoint, (re)starting the runner when needed.
        `secrets_dir` (`<secret>/<key>` files): values the runner masks in every answer;
        the jail itself is not given them (no `env.secrets` in the local jail).
        `storage_bytes` (the tenant's storage limit): the total of its files, as a volume
        of that size (`mount_volume`); without it a data dir that is not a volume already
        bounds only each file."""
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        async with lock:
            r = self._runners.get(tenant)
            wanted = (data_dir, key, secrets_dir, storage_bytes)
            if (
                r is None
                or r.proc.poll() is not None
                or (r.data_dir, r.key, r.secrets_dir, r.storage_bytes) != wanted
            ):
                if r is not None:
                    self._runners.pop(tenant)
                    await asyncio.to_thread(self._stop, r)  # waits up to 5 s: off the loop
                mounted = await asyncio.to_thread(mount_volume, data_dir, storage_bytes)
                try:
                    r = await self._start(tenant, data_dir, key, secrets_dir)
                except BaseException:
                    if mounted:
                        await asyncio.to_thread(unmount_volume, data_dir)
                    raise
                r.storage_bytes, r.mounted = storage_bytes, mounted
                self._runners[tenant] = r
            return Endpoint(key=key, socket=str(r.socket))

    async def _start(
        self, tenant: str, data_dir: str, key: bytes, secrets_dir: str | None
    ) -> _Runner:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # runner sockets and logs: the operator's alone
        sock = self.root / f"{tenant}.sock"
        sock.unlink(missing_ok=True)
        argv = [sys.executable, "-I", "-m", "tenantflow.sandbox.pod.runner", "--tenant", tenant]
        argv += ["--socket", str(sock), "--jail-data", data_dir, "--key-stdin"]
        argv += ["--memory-bytes", str(self.memory), "--die-with-parent"]
        argv += ["--secrets", secrets_dir] if secrets_dir else []
        # the people's read-only port (history reads, queries) as a socket beside it
        argv += ["--people-socket", str(self.people_socket(tenant))]
        env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "TENANTFLOW_LOG_FORMAT": "json"}
        log_path = self.root / f"{tenant}.log"
        proc = await asyncio.to_thread(_spawn, argv, env, log_path, key)
        for _ in range(300):
            if sock.exists():
                log.info("sandbox started", tenant=tenant, pid=proc.pid, data=data_dir)
                return _Runner(tenant, proc, sock, data_dir, key, secrets_dir)
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        stopped = _Runner(tenant, proc, sock, data_dir, key, secrets_dir)
        await asyncio.to_thread(self._stop, stopped)
        raise LocalSandboxError(
            f"the sandbox runner for {tenant} did not start; its log is {log_path}"
        )

    def people_socket(self, tenant: str) -> Path:
        """Where the tenant's runner serves what a cluster's serves on its history port
        (`history_api.read_app`: history reads, queries), in the operator-only directory."""
        return self.root / f"{tenant}.people.sock"

    @staticmethod
    def _stop(r: _Runner) -> None:
        if r.proc.poll() is None:
            r.proc.terminate()
            try:
                r.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
        Cgroups.existing(r.tenant).remove()  # what a runner killed before its cleanup left
        if r.mounted:  # no process of its jail is left to use it
            unmount_volume(r.data_dir)

    def stop_all(self) -> None:
        for r in self._runners.values():
            self._stop(r)
        self._runners.clear()


def _spawn(
    argv: list[str], env: dict[str, str], log_path: Path, key: bytes
) -> subprocess.Popen[bytes]:
    """Start a runner, its key on stdin (never in an environment: /proc/*/environ is
    readable), its output appended to `log_path` (never following a link)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "ab") as log_file:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT
        )
    assert proc.stdin is not None
    proc.stdin.write(key + b"\n")
    proc.stdin.close()
    return proc
