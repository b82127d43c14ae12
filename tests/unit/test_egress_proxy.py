"""The egress proxy, with real sockets on loopback: allowed host names pass (CONNECT and
plain HTTP), everything else gets a 403 that names the allow-list, no host name leads into
a protected range, and every result is counted."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import REGISTRY

from tenantflow.egress.proxy import (
    Allowed,
    Policy,
    Proxy,
    Refused,
    parse_allow,
    parser,
    policy_from,
)


def counted(result: str) -> float:
    labels = {"tenant": "acme", "result": result}
    return REGISTRY.get_sample_value("tenantflow_egress_connections_total", labels) or 0.0


async def upstream() -> tuple[asyncio.Server, int, list[bytes]]:
    """A server on loopback that records the first line it gets and answers `hello`."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


Ask = Callable[[bytes], Awaitable[bytes]]


@pytest.fixture
async def through_proxy() -> AsyncIterator[tuple[Ask, int, list[bytes]]]:
    server, port, seen = await upstream()
    policy = Policy(
        "acme",
        [parse_allow(f"git.test:{port}"), parse_allow(f"*.corp.test:{port}")],
        pinned={"git.test": ["127.0.0.1"], "a.corp.test": ["127.0.0.1"], "in.corp.test": []},
    )
    proxy = await asyncio.start_server(Proxy(policy).handle, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]

    async def ask(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        writer.write(request)
        if request.startswith(b"CONNECT"):
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in head:
                return head + await reader.read()
            writer.write(b"GET /through HTTP/1.0\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    yield ask, port, seen
    proxy.close()
    server.close()


async def test_an_allowed_host_passes_by_connect_and_by_plain_http(
    through_proxy: tuple[Ask, int, list[bytes]],
) -> None:
    ask, port, seen = through_proxy
    before = counted("allowed")
    answer = await ask(f"CONNECT git.test:{port} HTTP/1.1\r\nHost: git.test\r\n\r\n".encode())
    assert answer.endswith(b"hello") and seen[-1] == b"GET /through HTTP/1.0\r\n"
    answer = await ask(f"GET http://a.corp.test:{port}/repo.git HTTP/1.1\r\n\r\n".encode())
    assert answer.endswith(b"hello") and seen[-1] == b"GET /repo.git HTTP/1.1\r\n"
    assert counted("allowed") == before + 2


@pytest.mark.parametrize(
    ("request_line", "says"),
    [
        ("CONNECT evil.test:{port} HTTP/1.1", b"spec.sandbox.egressHosts"),
        ("CONNECT git.test:22 HTTP/1.1", b"git.test:22 is not in the tenant's egress allow-list"),
        ("GET http://corp.test:{port}/ HTTP/1.1", b"not in the tenant's egress allow-list"),
        ("GET http://x.evilcorp.test:{port}/ HTTP/1.1", b"not in the tenant's egress allow-list"),
        ("GET /relative HTTP/1.1", b"only CONNECT and absolute http://"),
        # an attacker's spellings of a way past the list: userinfo, an address for a name,
        # a wildcard's suffix after junk the resolver would have to make sense of
        ("GET http://git.test:{port}@127.0.0.1:{port}/ HTTP/1.1", b"egress allow-list"),
        ("CONNECT 127.0.0.1:{port} HTTP/1.1", b"127.0.0.1:{port} is not in"),
        ("CONNECT git.test@127.0.0.1:{port} HTTP/1.1", b"egress allow-list"),
        ("CONNECT 127.0.0.1#.corp.test:{port} HTTP/1.1", b"does not resolve"),
        ("BREW", b"not an HTTP proxy request"),
    ],
)
async def test_everything_else_is_refused_with_a_reason(
    through_proxy: tuple[Ask, int, list[bytes]], request_line: str, says: bytes
) -> None:
    ask, port, seen = through_proxy
    before, requests = counted("denied"), len(seen)
    answer = await ask(request_line.format(port=port).encode() + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden by tenantflow egress policy")
    assert says.replace(b"{port}", str(port).encode()) in answer, answer
    assert counted("denied") == before + 1 and len(seen) == requests


async def test_no_host_name_leads_into_a_protected_range() -> None:
    pins = ["--pin", "git.test=10.245.0.7", "--pin", "git.test=93.184.215.14"]
    args = parser().parse_args(
        ["--tenant", "acme", "--allow", "git.test:80", "--protect", "10.245.0.0/16", *pins]
    )
    policy = policy_from(args)
    with pytest.raises(Refused, match=r"10\.245\.0\.7, inside the cluster's protected"):
        await policy.addresses("git.test", 80)  # one bad address of several is enough
    for address in ("127.0.0.1", "169.254.169.254", "::1", "0.0.0.0"):  # always protected
        policy.pinned["git.test"] = [address]
        with pytest.raises(Refused, match="protected"):
            await policy.addresses("GIT.test.", 80)
    policy.pinned["git.test"] = ["93.184.215.14"]
    assert await policy.addresses("git.test", 80) == ["93.184.215.14"]
    assert ipaddress.ip_network("10.245.0.0/16") in policy.protected


def test_wildcards_match_subdomains_only() -> None:
    rule = Allowed("*.corp.test", frozenset({443}))
    assert rule.matches("a.corp.test", 443) and rule.matches("a.b.corp.test", 443)
    assert not rule.matches("corp.test", 443) and not rule.matches("xcorp.test", 443)
    assert not rule.matches("a.corp.test", 80)
