"""A tenant's egress proxy: the only way out of its sandbox, by host name.

    python -I -m tenantflow.egress.proxy --tenant T --allow HOST:PORT[,PORT] ...
        [--pin HOST=ADDR] [--protect CIDR] [--port 3128] [--metrics-port 9090]

The sandbox's NetworkPolicy lets its pods reach this proxy and nothing else (besides DNS),
and the sandbox's proxy variables (HTTP_PROXY, HTTPS_PROXY) name it, as Cloudflare's
`globalOutbound` routes a Worker's fetches through the platform. Tenant code asks for a
host by name, with CONNECT (HTTPS and any TCP protocol) or an absolute-form HTTP request;
the proxy lets it through only when the host and port are on the Tenant's allow-list, and
only to addresses outside the protected ranges (the cluster's pods, services and nodes),
so neither a DNS answer nor a pinned address can lead a tenant into the cluster. Everything
else is refused with 403 and a reason that names the allow-list; each refusal is an audit
log line, and connections and bytes are counted per result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, start_http_server

from tenantflow.observability.logging import configure, get_logger

log = get_logger("tenantflow.egress")
CONNECTIONS = Counter(
    "tenantflow_egress_connections_total", "Egress requests, by result.", ["tenant", "result"]
)
BYTES = Counter(
    "tenantflow_egress_bytes_total", "Bytes relayed, by direction.", ["tenant", "direction"]
)
MAX_HEAD = 16 * 1024  # a request head larger than this is refused
HEAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
PORT = 3128
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# never reachable through the proxy, whatever the settings: the proxy pod itself, and the
# link-local range where clouds serve instance metadata (and credentials)
ALWAYS_PROTECTED = ("127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8")


class Refused(Exception):
    """Why a request does not go out (the 403's reason, the audit line's)."""


@dataclass(frozen=True)
class Allowed:
    """One allow-list entry: a host name (or `*.domain`, any subdomain) and its ports."""

    host: str
    ports: frozenset[int]

    def matches(self, host: str, port: int) -> bool:
        if port not in self.ports:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host


@dataclass
class Policy:
    tenant: str
    allowed: list[Allowed]
    pinned: dict[str, list[str]] = field(default_factory=dict)  # host -> addresses (no DNS)
    protected: list[Network] = field(default_factory=list)

    async def addresses(self, host: str, port: int) -> list[str]:
        """Where `host:port` may be reached; Refused when it may not."""
        host = host.lower().rstrip(".")
        if not any(a.matches(host, port) for a in self.allowed):
            raise Refused(
                f"{host}:{port} is not in the tenant's egress allow-list (the Tenant's "
                "spec.sandbox.egressHosts); ask the platform to add it"
            )
        if host in self.pinned:
            found = self.pinned[host]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise Refused(f"{host} does not resolve: {exc}") from None
            found = sorted({str(info[4][0]) for info in infos})
        blocked = [a for a in found if self._protected(a)]
        if blocked:  # every address, not just the first: no DNS rebinding into the cluster
            raise Refused(
                f"{host} resolves to {', '.join(blocked)}, inside the cluster's protected "
                "ranges (pods, services, nodes); egress never goes there"
            )
        return found

    def _protected(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return ip.is_unspecified or ip.is_multicast or any(ip in net for net in self.protected)


def parse_target(head: bytes) -> tuple[str, str, int, bytes]:
    """(method, host, port, the head to send upstream) of one request head."""
    try:
        text = head.decode("latin-1")
        request_line, _, rest = text.partition("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise Refused("not an HTTP proxy request") from None
    if method == "CONNECT":
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit():
            raise Refused(f"CONNECT needs host:port, got {target!r}")
        return method, host.strip("[]"), int(port), b""
    if not target.startswith("http://"):
        raise Refused("only CONNECT and absolute http:// requests go through the proxy")
    authority, _, path = target[len("http://") :].partition("/")
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit():
        host, port = authority, "80"
    origin = f"{method} /{path} {version}\r\n{rest}".encode("latin-1")
    return method, host.strip("[]"), int(port), origin


class Proxy:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        host, port = "?", 0
        try:
            method, host, port, upstream_head = parse_target(head)
            addresses = await self.policy.addresses(host, port)
            upstream = await self._connect(addresses, port)
        except Refused as exc:
            self._refuse(writer, host, port, str(exc), peer)
            return
        except OSError as exc:
            CONNECTIONS.labels(self.policy.tenant, "failed").inc()
            _answer(writer, 502, f"cannot reach {host}:{port}: {exc}")
            return
        CONNECTIONS.labels(self.policy.tenant, "allowed").inc()
        up_reader, up_writer = upstream
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(upstream_head)
        await asyncio.gather(
            self._pipe(reader, up_writer, "out"), self._pipe(up_reader, writer, "in")
        )

    async def _connect(
        self, addresses: Sequence[str], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        last: OSError | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    return await asyncio.open_connection(address, port)
            except (OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, OSError) else OSError(f"{address}: timed out")
        raise last or OSError("no address")

    def _refuse(
        self, writer: asyncio.StreamWriter, host: str, port: int, reason: str, peer: object
    ) -> None:
        CONNECTIONS.labels(self.policy.tenant, "denied").inc()
        log.warning(
            "egress denied",
            tenant=self.policy.tenant,
            host=host,
            port=port,
            reason=reason,
            client=str(peer),
        )
        _answer(writer, 403, f"Forbidden by tenantflow egress policy: {reason}")

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        counter = BYTES.labels(self.policy.tenant, direction)
        try:
            while data := await reader.read(65536):
                counter.inc(len(data))
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()


def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    """A one-line answer whose reason phrase says it all (clients show the phrase)."""
    phrase = reason.replace("\r", " ").replace("\n", " ")[:400]
    body = (phrase + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1", "replace")
        + body
    )
    writer.close()


def parse_allow(spec: str) -> Allowed:
    """HOST:PORT[,PORT...] → Allowed."""
    host, _, ports = spec.rpartition(":")
    if not host or not ports:
        raise ValueError(f"--allow {spec!r}: expected HOST:PORT[,PORT...]")
    return Allowed(host.lower(), frozenset(int(p) for p in ports.split(",")))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--allow", action="append", default=[], metavar="HOST:PORT[,PORT]")
    parser.add_argument("--pin", action="append", default=[], metavar="HOST=ADDR")
    parser.add_argument("--protect", action="append", default=[], metavar="CIDR")
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--metrics-port", type=int, default=9090)
    return parser


def policy_from(args: argparse.Namespace) -> Policy:
    """The policy the arguments describe, with the always-protected ranges added."""
    pinned: dict[str, list[str]] = {}
    for pin in args.pin:
        host, _, address = pin.partition("=")
        pinned.setdefault(host.lower(), []).append(str(ipaddress.ip_address(address)))
    return Policy(
        args.tenant,
        [parse_allow(a) for a in args.allow],
        pinned,
        [ipaddress.ip_network(c, strict=False) for c in (*ALWAYS_PROTECTED, *args.protect)],
    )


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    configure()
    policy = policy_from(args)
    start_http_server(args.metrics_port)
    log.info("egress proxy starting", tenant=args.tenant, allowed=args.allow, port=args.port)

    async def serve() -> None:
        server = await asyncio.start_server(Proxy(policy).handle, port=args.port, limit=MAX_HEAD)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
