# expect-output-without: ESCAPED
# next-advance-first-try
# class 19: sockets are AF_UNIX, and TCP or UDP over IPv4 and IPv6: nothing else. Netlink
# in every family (route, audit, uevents, sock_diag, netfilter, xfrm, generic...),
# AF_PACKET, AF_VSOCK, AF_ALG, AF_KEY, AF_XDP and the rest answer EAFNOSUPPORT; MPTCP and
# SCTP EPROTONOSUPPORT; raw, ping and SEQPACKET inet sockets ENOSYS; a family hidden in the
# upper half of the argument (the kernel reads an int) is refused as the family it is
import ctypes
import errno
import platform
import socket

NUMBERS = {"socket": (41, 198), "socketpair": (53, 199)}  # (x86_64, aarch64)
AF_NETLINK, AF_PACKET, AF_KEY, AF_ALG, AF_VSOCK, AF_XDP = 16, 17, 15, 38, 40, 44
NETLINK = {"route": 0, "usersock": 2, "sock_diag": 4, "nflog": 5, "xfrm": 6, "selinux": 7,
           "iscsi": 8, "audit": 9, "fib_lookup": 10, "connector": 11, "netfilter": 12,
           "kobject_uevent": 15, "generic": 16, "scsitransport": 18, "rdma": 20, "crypto": 21}
STREAM, DGRAM, RAW, SEQPACKET = 1, 2, 3, 5
FLAGS = 0x80000 | 0x800  # SOCK_CLOEXEC | SOCK_NONBLOCK
INET, INET6, UNIX = 2, 10, 1
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_MPTCP = 1, 6, 17, 132, 262


def probes():
    """(what, call, (family, type, protocol), the errno the filter answers or 0: allowed)."""
    out = [(f"netlink {name}", "socket", (AF_NETLINK, RAW, proto), errno.EAFNOSUPPORT)
           for name, proto in NETLINK.items()]
    out += [(f"netlink {name} dgram", "socket", (AF_NETLINK, DGRAM, proto), errno.EAFNOSUPPORT)
            for name, proto in (("route", 0), ("kobject_uevent", 15))]
    out += [
        ("packet", "socket", (AF_PACKET, RAW, 0x0300), errno.EAFNOSUPPORT),
        ("key", "socket", (AF_KEY, RAW, 2), errno.EAFNOSUPPORT),
        ("alg", "socket", (AF_ALG, SEQPACKET, 0), errno.EAFNOSUPPORT),
        ("vsock", "socket", (AF_VSOCK, STREAM, 0), errno.EAFNOSUPPORT),
        ("xdp", "socket", (AF_XDP, RAW, 0), errno.EAFNOSUPPORT),
        ("family 0", "socket", (0, STREAM, 0), errno.EAFNOSUPPORT),
        ("netlink in the upper half", "socket", ((1 << 32) | AF_NETLINK, RAW, 0),
         errno.EAFNOSUPPORT),
        ("inet in the upper half", "socket", ((1 << 32) | INET, STREAM, 0), errno.ENOSYS),
        ("netlink socketpair", "socketpair", (AF_NETLINK, RAW, 0), errno.EAFNOSUPPORT),
        ("inet socketpair", "socketpair", (INET, STREAM, 0), errno.ENOSYS),
        ("mptcp", "socket", (INET, STREAM, IPPROTO_MPTCP), errno.EPROTONOSUPPORT),
        ("mptcp6", "socket", (INET6, STREAM, IPPROTO_MPTCP), errno.EPROTONOSUPPORT),
        ("mptcp, upper half", "socket", (INET, STREAM, (1 << 32) | IPPROTO_MPTCP),
         errno.EPROTONOSUPPORT),
        ("sctp", "socket", (INET, SEQPACKET, IPPROTO_SCTP), errno.EPROTONOSUPPORT),
        ("sctp stream", "socket", (INET6, STREAM, IPPROTO_SCTP), errno.EPROTONOSUPPORT),
        ("seqpacket", "socket", (INET, SEQPACKET, 0), errno.ENOSYS),
        ("raw", "socket", (INET, RAW, IPPROTO_ICMP), errno.ENOSYS),
        ("ping", "socket", (INET, DGRAM, IPPROTO_ICMP), errno.ENOSYS),
        ("udp over stream", "socket", (INET, STREAM, IPPROTO_UDP), errno.ENOSYS),
        # allowed
        ("tcp", "socket", (INET, STREAM | FLAGS, 0), 0),
        ("tcp by name", "socket", (INET, STREAM, IPPROTO_TCP), 0),
        ("udp", "socket", (INET, DGRAM | FLAGS, 0), 0),
        ("udp by name", "socket", (INET, DGRAM, IPPROTO_UDP), 0),
        ("tcp6", "socket", (INET6, STREAM | FLAGS, 0), 0),
        ("udp6", "socket", (INET6, DGRAM, IPPROTO_UDP), 0),
        ("unix stream", "socket", (UNIX, STREAM | FLAGS, 0), 0),
        ("unix dgram", "socket", (UNIX, DGRAM, 0), 0),
        ("unix seqpacket", "socket", (UNIX, SEQPACKET, 0), 0),
        ("unix socketpair", "socketpair", (UNIX, STREAM, 0), 0),
    ]
    return out


def answers():
    """{what: (0 or -errno, the errno the filter answers or 0)} on this CPU."""
    column = {"x86_64": 0, "aarch64": 1}.get(platform.machine())
    if column is None:
        return {}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    out = {}
    for what, call, (family, kind, proto), refused in probes():
        pair = (ctypes.c_int * 2)()
        extra = [pair] if call == "socketpair" else []
        ctypes.set_errno(0)
        rc = libc.syscall(ctypes.c_long(NUMBERS[call][column]), ctypes.c_long(family),
                          ctypes.c_long(kind), ctypes.c_long(proto), *extra)
        if rc >= 0:
            for fd in (pair[0], pair[1]) if call == "socketpair" else (rc,):
                socket.close(fd)
            out[what] = (0, refused)
        else:
            out[what] = (-ctypes.get_errno(), refused)
    return out


def escaped():
    if platform.machine() not in ("x86_64", "aarch64"):
        return ["ESCAPED: no probes for " + platform.machine()]
    out, broken = [], []
    for what, (got, refused) in answers().items():
        if refused and got != -refused:
            out.append(f"ESCAPED: {what} answered {got}, not -{errno.errorcode[refused]}")
        elif not refused and got in (-errno.EPERM, -errno.ENOSYS, -errno.EPROTONOSUPPORT):
            broken.append(f"{what} answered {got}")  # (a host without IPv6: EAFNOSUPPORT)
    if broken:  # the step fails: the advance does not complete
        raise AssertionError(f"allowed sockets refused: {broken}")
    return out or ["contained"]


async def run(event, step):
    return await step.do("probe", escaped)
