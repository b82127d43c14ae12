"""A seccomp allow-list for tenant code: only the kernel calls a workflow needs.

Applied in every worker child right before tenant code runs, in every transport (the
container runtime's default profile is the outer layer in a pod; this is the inner one,
and the only one in the local jail). Built with libseccomp through ctypes, so there is no
compiler and no extra package: `libseccomp2` is part of every Debian base system.

The anchor is Docker's default profile (moby/profiles `seccomp/default.json`): its
unconditional list, less what needs a capability tenant code never has, and less what
neither the engine, SQLite, the C library, Python's standard library, subprocesses
(Debian's python3, a shell, git) nor network SDKs call (SysV IPC and POSIX message
queues, Linux AIO, splice/tee/vmsplice, fanotify_mark, landlock, seccomp, sync, the
32-bit TLS and LDT calls, mount listings, NUMA placement). Every call is one of:

- `ALLOWED`: allowed as it is (names a CPU does not have are skipped: the same list
  serves x86_64 and aarch64).
- `REFUSED`: EPERM, as Docker answers — namespaces, mounts, ptrace and every other
  cross-process access (pidfd_getfd, process_madvise, kcmp), NUMA placement (mbind,
  set_mempolicy, migrate_pages, move_pages), keyrings, io_uring, bpf, perf, userfaultfd,
  modify_ldt, module and kexec loading, clock and swap changes, sysfs and the other
  obsolete calls.
- allowed only with some arguments (`_conditional`): clone without a CLONE_NEW* flag
  (EPERM; clone3 is not allowed, so the C library falls back to clone, whose flags can
  be inspected); socket only for AF_UNIX, and TCP or UDP over AF_INET/AF_INET6 (other
  families: EAFNOSUPPORT, as a kernel without them; MPTCP and SCTP: EPROTONOSUPPORT),
  socketpair only AF_UNIX; prlimit64 may read any process's limits but set only its own
  (pid 0); setpriority, ioprio_set and sched_set* act only on the caller (tenant code
  shares its uid with the zygote and the next advance's spare); personality may only
  be read or reset to PER_LINUX (no ADDR_NO_RANDOMIZE for what it executes).
- anything else: ENOSYS, "this kernel does not have it", as gVisor answers for what it
  does not implement and runc for calls newer than its profile: the C library and
  Python fall back from a new call on ENOSYS only, so a newer image keeps working and
  tenant code gets an OSError, never a kill.

Only the native ABI is in the filter: a call through another (x86_64's x32 and i386
`int 0x80`, aarch64's 32-bit ARM) kills the process (SIGSYS), whose calls could
otherwise go around the rules above.

An argument that the kernel reads as a 32-bit int is compared on its low 32 bits where a
match refuses (`_LOW32`), and on all 64 where a match allows: the upper half, which the
kernel ignores, cannot turn a refused value into an allowed one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

from tenantflow.errors import TenantflowError

ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000
ATTR_ACT_BADARCH = 2  # SCMP_FLTATR_ACT_BADARCH
ATTR_CTL_OPTIMIZE = 8  # SCMP_FLTATR_CTL_OPTIMIZE
OPTIMIZE_BINARY_TREE = 2
CMP_NE = 1
CMP_EQ = 4
CMP_MASKED_EQ = 7
_LOW32 = 0xFFFFFFFF
AF_UNIX, AF_INET, AF_INET6, AF_MAX = 1, 2, 10, 46
AF_PACKET, AF_VSOCK = 17, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_TYPE_MASK = 1, 2, 0xF
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_MPTCP = 6, 17, 132, 262
PRIO_PROCESS, IOPRIO_WHO_PROCESS = 0, 1
PER_LINUX, PER_QUERY = 0, 0xFFFFFFFF
SELF_ONLY = ["sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr"]
CLONE_NEW_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME (clone3 only: in clone it is a bit of the exit signal)
)
# TCP and UDP: (socket type, protocol) over AF_INET and AF_INET6; protocol 0 picks them
SOCKET_KINDS = (
    (SOCK_STREAM, 0),
    (SOCK_STREAM, IPPROTO_TCP),
    (SOCK_DGRAM, 0),
    (SOCK_DGRAM, IPPROTO_UDP),
)

ALLOWED = (
    # memory
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "msync",
    "mincore",
    "mlock",
    "mlock2",
    "munlock",
    "mlockall",
    "munlockall",
    "membarrier",
    "memfd_create",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "map_shadow_stack",
    "mseal",
    # files and descriptors
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "lseek",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "flock",
    "ioctl",
    "pipe",
    "pipe2",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "statfs",
    "fstatfs",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getdents",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "fchownat",
    "lchown",
    "umask",
    "truncate",
    "ftruncate",
    "fallocate",
    "fadvise64",
    "readahead",
    "fsync",
    "fdatasync",
    "sync_file_range",
    "syncfs",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "sendfile",
    "copy_file_range",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "getxattrat",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "listxattrat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "setxattrat",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "removexattrat",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    # waiting on descriptors
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    # sockets (socket and socketpair: see _conditional)
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",  # the C library's resolver asks for A and AAAA at once
    "recvmmsg",
    "shutdown",
    # time
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "time",
    "alarm",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "times",
    # threads and signals
    "futex",
    "futex_waitv",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "sched_yield",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "pause",
    "kill",
    "tkill",
    "tgkill",
    "pidfd_open",
    "pidfd_send_signal",
    "restart_syscall",
    # processes (clone: see _conditional)
    "fork",
    "vfork",
    "execve",
    "execveat",
    "wait4",
    "waitid",
    "exit",
    "exit_group",
    "prctl",
    "arch_prctl",  # x86_64: every new program sets its thread pointer with it
    "setsid",
    "setpgid",
    "getsid",
    "getpgid",
    "getpgrp",
    # identity: without capabilities a process can only move among the ids it has
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "setfsuid",
    "setfsgid",
    "capget",
    "capset",
    # the system as seen from here, limits, scheduling (setters: see _conditional)
    "uname",
    "sysinfo",
    "getcpu",
    "getrandom",
    "getrlimit",
    "setrlimit",  # its own only; hard limits cannot be raised (no CAP_SYS_RESOURCE)
    "getrusage",
    "getpriority",
    "ioprio_get",
    "sched_getaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "sched_getattr",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
)

REFUSED = (
    # namespaces and mounts
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # other processes: their memory, descriptors and pages
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "process_mrelease",
    # NUMA placement (Docker: CAP_SYS_NICE); migrate_pages/move_pages act on other pids
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "set_mempolicy_home_node",
    "migrate_pages",
    "move_pages",
    # kernel attack surface no workflow needs
    "add_key",
    "request_key",
    "keyctl",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "modify_ldt",
    "lookup_dcookie",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    # the machine's: modules, reboot, swap, accounting, quotas, clocks, ports, names
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
    "quotactl_fd",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    # obsolete
    "sysfs",
    "ustat",
    "uselib",
    "_sysctl",
    "nfsservctl",
)


class SeccompUnavailable(TenantflowError):
    """libseccomp is missing: tenant code must not run without the filter."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


Cmp = tuple[int, int, int, int]
Rule = tuple[int, str, tuple[Cmp, ...]]


def _errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def _eq(arg: int, value: int) -> Cmp:
    return (arg, CMP_EQ, value, 0)


def _ne(arg: int, value: int) -> Cmp:
    return (arg, CMP_NE, value, 0)


def _low32_is(arg: int, value: int) -> Cmp:
    return (arg, CMP_MASKED_EQ, _LOW32, value)


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
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_pfc.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


class _Fprog(ctypes.Structure):
    """struct sock_fprog: a compiled filter as the kernel takes it."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_INSTRUCTION = 8  # bytes of one struct sock_filter


class Filter:
    """The filter, built and compiled to BPF once (in the zygote), and loaded in each child
    as that program: libseccomp's own load compiles its ~400 rules again each time, which
    cost each advance ~3 ms; handing the kernel the compiled program costs microseconds."""

    def __init__(self) -> None:
        self._lib = _lib()
        self._ctx = self._lib.seccomp_init(_errno(errno.ENOSYS))
        if not self._ctx:
            raise SeccompUnavailable("seccomp_init failed")
        # a call through another ABI (x32, i386, arm32) is not one the rules saw: kill
        if self._lib.seccomp_attr_set(self._ctx, ATTR_ACT_BADARCH, KILL_PROCESS) < 0:
            raise SeccompUnavailable("libseccomp cannot kill on a foreign ABI")
        # a binary tree over the call numbers (libseccomp >= 2.5), not a list walked by
        # every syscall: the list cost each advance ~3 ms of its thousands of calls
        if self._lib.seccomp_attr_set(self._ctx, ATTR_CTL_OPTIMIZE, OPTIMIZE_BINARY_TREE) < 0:
            raise SeccompUnavailable("libseccomp cannot build a binary-tree filter (< 2.5)")
        _add_rules(self._lib, self._ctx)
        program = self._compiled()
        count, rest = divmod(len(program), BPF_INSTRUCTION)
        if not count or rest or count > 0xFFFF:
            raise SeccompUnavailable(f"libseccomp compiled a program of {len(program)} bytes")
        self._program = ctypes.create_string_buffer(program, len(program))
        self._fprog = _Fprog(count, ctypes.addressof(self._program))
        self._libc = ctypes.CDLL(None, use_errno=True)

    def _compiled(self) -> bytes:
        fd = os.memfd_create("tenantflow-seccomp")
        try:
            rc = self._lib.seccomp_export_bpf(self._ctx, fd)
            if rc < 0:
                raise SeccompUnavailable(f"seccomp_export_bpf failed ({rc})")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def load(self) -> None:
        """Apply it to this process (and everything it forks); irreversible. As libseccomp
        loads it: no_new_privs first (a filter needs it without CAP_SYS_ADMIN), then the
        program for this thread (a worker child has one)."""
        if self._libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SeccompUnavailable(f"no_new_privs refused ({ctypes.get_errno()})")
        if self._libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self._fprog), 0, 0):
            raise SeccompUnavailable(f"the seccomp filter was refused ({ctypes.get_errno()})")

    def export(self, fd: int) -> None:
        """Write the filter as libseccomp's pseudo-code to a descriptor (for reading)."""
        rc = self._lib.seccomp_export_pfc(self._ctx, fd)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_export_pfc failed ({rc})")


def _add_rules(lib: ctypes.CDLL, ctx: int) -> None:
    def rule(action: int, name: str, *cmps: Cmp) -> None:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return  # not a syscall on this architecture (or newer than this libseccomp)
        arr = (_ArgCmp * max(len(cmps), 1))(*[_ArgCmp(*c) for c in cmps])
        rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp rule for {name} failed ({rc})")

    for name in REFUSED:
        rule(_errno(errno.EPERM), name)
    for action, name, cmps in _conditional():
        rule(action, name, *cmps)
    for name in ALLOWED:
        rule(ALLOW, name)


def _conditional() -> list[Rule]:
    """The calls allowed only with some arguments. For one call, the rules that refuse
    come before those that allow (libseccomp 2.5 drops a refusal added after an
    overlapping allow); the tests check every answer."""
    perm = _errno(errno.EPERM)
    out: list[Rule] = []
    # clone: no new namespace
    out += [(perm, "clone", ((0, CMP_MASKED_EQ, flag, flag),)) for flag in CLONE_NEW_FLAGS]
    any_new = sum(CLONE_NEW_FLAGS)
    out.append((ALLOW, "clone", ((0, CMP_MASKED_EQ, any_new, 0),)))
    # socket: AF_UNIX; TCP and UDP over IPv4 and IPv6; no other family or protocol
    out += [
        (_errno(errno.EAFNOSUPPORT), call, (_low32_is(0, family),))
        for call in ("socket", "socketpair")
        for family in range(AF_MAX)
        if family not in (AF_UNIX, AF_INET, AF_INET6)
    ]
    out += [
        (_errno(errno.EPROTONOSUPPORT), "socket", (_eq(0, family), _low32_is(2, protocol)))
        for family in (AF_INET, AF_INET6)
        for protocol in (IPPROTO_MPTCP, IPPROTO_SCTP)
    ]
    out += [(ALLOW, call, (_eq(0, AF_UNIX),)) for call in ("socket", "socketpair")]
    out += [
        (ALLOW, "socket", (_eq(0, family), (1, CMP_MASKED_EQ, SOCK_TYPE_MASK, kind), _eq(2, proto)))
        for family in (AF_INET, AF_INET6)
        for kind, proto in SOCKET_KINDS
    ]
    # another process's limits: reading them (no new limit) is allowed, setting needs pid 0
    out.append((perm, "prlimit64", (_ne(0, 0), _ne(2, 0))))
    out += [(ALLOW, "prlimit64", (_eq(0, 0),)), (ALLOW, "prlimit64", (_eq(2, 0),))]
    # (which, who): only PRIO_PROCESS / IOPRIO_WHO_PROCESS of the caller (who 0)
    for name, which in (("setpriority", PRIO_PROCESS), ("ioprio_set", IOPRIO_WHO_PROCESS)):
        out += [(perm, name, (_ne(0, which),)), (perm, name, (_ne(1, 0),))]
        out.append((ALLOW, name, (_eq(0, which), _eq(1, 0))))
    for name in SELF_ONLY:  # (pid, ...): 0 is the caller
        out += [(perm, name, (_ne(0, 0),)), (ALLOW, name, (_eq(0, 0),))]
    # personality: read it or reset it to PER_LINUX; no ADDR_NO_RANDOMIZE,
    # READ_IMPLIES_EXEC or 32-bit layouts for what it runs
    out += [(ALLOW, "personality", (_low32_is(0, p),)) for p in (PER_QUERY, PER_LINUX)]
    return out
