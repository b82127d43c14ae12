"""A seccomp filter for tenant code: the kernel calls a workflow never needs are refused.

Applied in every worker child right before tenant code runs, in every transport (the
container runtime's default profile is the outer layer in a pod; this is the inner one,
and the only one in the local jail). Built with libseccomp through ctypes, so there is no
compiler and no extra package: `libseccomp2` is part of every Debian base system.

Refused with EPERM: new namespaces (unshare, setns, clone with CLONE_NEW*), mounts,
ptrace and cross-process memory access, keyrings, io_uring, bpf, perf, userfaultfd,
module and kexec loading, clock and swap changes. clone3 answers ENOSYS so the C library
falls back to clone, whose flags can be inspected. Sockets of the AF_VSOCK and AF_PACKET
families are refused (host-VM channels and raw frames). Limits and scheduling are a
process's own: prlimit64 may read any process's limits but set only its own (pid 0), and
setpriority, ioprio_set and sched_set* act only on the caller — tenant code shares its uid
with the zygote and the next advance's spare, and must not lower their limits or priority.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno

from tenantflow.errors import TenantflowError

ALLOW = 0x7FFF0000
CMP_NE = 1
CMP_EQ = 4
CMP_MASKED_EQ = 7
AF_PACKET, AF_VSOCK = 17, 40
PRIO_PROCESS, IOPRIO_WHO_PROCESS = 0, 1
SELF_ONLY = ["sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr"]
CLONE_NEW_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
DENIED = [
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "add_key",
    "request_key",
    "keyctl",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "fanotify_init",
]


class SeccompUnavailable(TenantflowError):
    """libseccomp is missing: tenant code must not run without the filter."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SeccompUnavailable(
            f"libseccomp cannot be loaded ({exc}); install the Debian package libseccomp2"
        ) from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


class Filter:
    """The filter, built once (in the zygote) and loaded in each child: loading is cheap."""

    def __init__(self) -> None:
        self._lib = _lib()
        self._ctx = self._lib.seccomp_init(ALLOW)
        if not self._ctx:
            raise SeccompUnavailable("seccomp_init failed")
        _add_rules(self._lib, self._ctx)

    def load(self) -> None:
        """Apply it to this process (and everything it forks); irreversible."""
        rc = self._lib.seccomp_load(self._ctx)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_load failed ({rc})")


def _add_rules(lib: ctypes.CDLL, ctx: int) -> None:
    def rule(action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return  # not a syscall on this architecture
        arr = (_ArgCmp * max(len(cmps), 1))(*[_ArgCmp(*c) for c in cmps])
        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp rule for {name} failed ({rc})")

    for name in DENIED:
        rule(_errno(errno.EPERM), name)
    rule(_errno(errno.ENOSYS), "clone3")
    for flag in CLONE_NEW_FLAGS:
        rule(_errno(errno.EPERM), "clone", (0, CMP_MASKED_EQ, flag, flag))
    for family in (AF_PACKET, AF_VSOCK):
        rule(_errno(errno.EAFNOSUPPORT), "socket", (0, CMP_EQ, family, 0))
    # another process's limits: setting them (a new limit given) needs pid 0, the caller
    rule(_errno(errno.EPERM), "prlimit64", (0, CMP_NE, 0, 0), (2, CMP_NE, 0, 0))
    # (which, who): only PRIO_PROCESS / IOPRIO_WHO_PROCESS (1) of the caller (who 0)
    rule(_errno(errno.EPERM), "setpriority", (0, CMP_NE, PRIO_PROCESS, 0))
    rule(_errno(errno.EPERM), "ioprio_set", (0, CMP_NE, IOPRIO_WHO_PROCESS, 0))
    for name in ("setpriority", "ioprio_set"):
        rule(_errno(errno.EPERM), name, (1, CMP_NE, 0, 0))
    for name in SELF_ONLY:  # (pid, ...): 0 is the caller
        rule(_errno(errno.EPERM), name, (0, CMP_NE, 0, 0))
