# expect-output-without: ESCAPED
# next-advance-first-try
# class 19: seccomp is an allow-list. What the old blocklist let through (personality with
# ADDR_NO_RANDOMIZE, modify_ldt, NUMA placement, sysfs) and calls nobody allows (kexec,
# keyrings, bpf, userfaultfd, perf, io_uring, namespaces, ptrace, pidfd_getfd) are refused
# with EPERM; calls off the list (Linux AIO, SysV IPC, POSIX queues, splice, landlock,
# seccomp, clone3) answer ENOSYS, so the C library falls back and Python raises OSError.
# tests/sandbox/test_seccomp.py runs the same probes outside the jail and checks each errno
import ctypes
import errno
import os
import platform

# (x86_64, aarch64) numbers; None: the CPU has no such call
NUMBERS = {
    "personality": (135, 92),
    "modify_ldt": (154, None),
    "mbind": (237, 235),
    "set_mempolicy": (238, 237),
    "get_mempolicy": (239, 236),
    "migrate_pages": (256, 238),
    "move_pages": (279, 239),
    "sysfs": (139, None),
    "ustat": (136, None),
    "uselib": (134, None),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "add_key": (248, 217),
    "keyctl": (250, 219),
    "bpf": (321, 280),
    "userfaultfd": (323, 282),
    "perf_event_open": (298, 241),
    "io_uring_setup": (425, 425),
    "unshare": (272, 97),
    "setns": (308, 268),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "pidfd_getfd": (438, 438),
    "open_by_handle_at": (304, 265),
    "fanotify_init": (300, 262),
    "syslog": (103, 116),
    "io_setup": (206, 0),
    "msgctl": (71, 187),
    "mq_open": (240, 180),
    "splice": (275, 76),
    "vmsplice": (278, 75),
    "landlock_create_ruleset": (444, 444),
    "seccomp": (317, 277),
    "clone3": (435, 435),
}
PER_LINUX32, ADDR_NO_RANDOMIZE = 0x0008, 0x0040000
KEY_SPEC_SESSION_KEYRING, UFFD_USER_MODE_ONLY = -3, 1
CLONE_NEWUSER = 0x10000000


def calls():
    """(name, arguments, the errno the filter answers). The arguments are ones the kernel
    itself would accept or answer differently (EFAULT, EINVAL, EBADF), so the answer
    shows it was the filter."""
    buf = ctypes.create_string_buffer(256)
    pid = os.getpid()
    return [
        ("personality", (PER_LINUX32 | ADDR_NO_RANDOMIZE,), errno.ENOSYS),
        ("modify_ldt", (0, None, 0), errno.EPERM),
        ("mbind", (0, 0, 0, None, 0, 0), errno.EPERM),
        ("set_mempolicy", (0, None, 0), errno.EPERM),
        ("get_mempolicy", (None, None, 0, None, 0), errno.EPERM),
        ("migrate_pages", (pid, 64, None, None), errno.EPERM),
        ("move_pages", (pid, 0, None, None, None, 0), errno.EPERM),
        ("sysfs", (3,), errno.EPERM),
        ("ustat", (0, buf), errno.EPERM),
        ("uselib", (None,), errno.EPERM),
        ("kexec_load", (0, 0, None, 0), errno.EPERM),
        ("kexec_file_load", (-1, -1, 0, None, 0), errno.EPERM),
        ("init_module", (None, 0, b""), errno.EPERM),
        ("add_key", (b"user", b"c19", b"v", 1, KEY_SPEC_SESSION_KEYRING), errno.EPERM),
        ("keyctl", (0, KEY_SPEC_SESSION_KEYRING, 0), errno.EPERM),
        ("bpf", (0, buf, 0), errno.EPERM),
        ("userfaultfd", (UFFD_USER_MODE_ONLY | os.O_CLOEXEC,), errno.EPERM),
        ("perf_event_open", (buf, 0, -1, -1, 0), errno.EPERM),
        ("io_uring_setup", (8, buf), errno.EPERM),
        ("unshare", (CLONE_NEWUSER,), errno.EPERM),
        ("setns", (-1, 0), errno.EPERM),
        ("ptrace", (0x7777, pid, None, None), errno.EPERM),
        ("process_vm_readv", (pid, None, 0, None, 0, 0), errno.EPERM),
        ("pidfd_getfd", (-1, 0, 0), errno.EPERM),
        ("open_by_handle_at", (-1, None, 0), errno.EPERM),
        ("fanotify_init", (0, 0), errno.EPERM),
        ("syslog", (10, None, 0), errno.EPERM),
        ("io_setup", (1, buf), errno.ENOSYS),
        ("msgctl", (0, 3, buf), errno.ENOSYS),  # IPC_INFO: no queue made
        ("mq_open", (b"c19-none", 0, 0, None), errno.ENOSYS),
        ("splice", (-1, None, -1, None, 1, 0), errno.ENOSYS),
        ("vmsplice", (-1, None, 0, 0), errno.ENOSYS),
        ("landlock_create_ruleset", (None, 0, 1), errno.ENOSYS),
        ("seccomp", (2, 0, buf), errno.ENOSYS),
        ("clone3", (None, 0), errno.ENOSYS),
    ]


def answers(only=None):
    """{name: (what it returned or -errno, the errno the filter answers)} on this CPU."""
    column = {"x86_64": 0, "aarch64": 1}.get(platform.machine())
    if column is None:
        return {}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    out = {}
    for name, args, refused in calls():
        nr = NUMBERS[name][column]
        if nr is None or (only is not None and name not in only):
            continue
        conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
        ctypes.set_errno(0)
        rc = libc.syscall(ctypes.c_long(nr), *conv)
        out[name] = (rc if rc >= 0 else -ctypes.get_errno(), refused)
    return out


def escaped():
    if platform.machine() not in ("x86_64", "aarch64"):
        return ["ESCAPED: no probes for " + platform.machine()]
    return [
        f"ESCAPED: {name} answered {got}, not -{errno.errorcode[refused]}"
        for name, (got, refused) in answers().items()
        if got != -refused
    ] or ["contained"]


async def run(event, step):
    return await step.do("probe", escaped)
