"""Length-prefixed JSON frames: the only thing that crosses runner <-> worker sockets.

A frame is a 4-byte big-endian length and that many bytes of JSON. Sizes are capped on
read before anything is allocated, and the JSON is checked by `jsonsafe.loads`; no
pickle, no Python object ever crosses.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from tenantflow import jsonsafe
from tenantflow.errors import TenantflowError

HEADER = struct.Struct(">I")
MAX_REQUEST = 32 * 1024 * 1024  # runner -> worker: journal + inbox + source
FEED_READS = 8  # reads of one FrameReader.feed call at most
MAX_RESULT = 8 * 1024 * 1024  # worker -> runner: the CR status cannot hold more anyway

# An advance's answer is one frame, which may follow any number of small frames of these:
PROGRESS = "progress"  # child -> runner: {"step": name, "attempt": n} starts now
LOST = "lost"  # zygote -> runner: the child died without answering, and how
LINES = "lines"  # child -> runner: a batch of the advance's log lines, in order
# how (the `name` of a LOST frame): the kernel's memory limit, the advance's deadline, else
OUT_OF_MEMORY, STEP_TIMEOUT, WORKER_KILLED = "OutOfMemory", "StepTimeout", "WorkerKilled"
TOO_MANY_PROCESSES = "TooManyProcesses"  # the advance held more processes than allowed
LOST_CAUSES = frozenset({OUT_OF_MEMORY, STEP_TIMEOUT, WORKER_KILLED, TOO_MANY_PROCESSES})
MAX_RUNNING = 64  # step attempts one advance may report as started (tenant-controlled)


def abstract_address(name: str) -> str:
    """`@name` as the kernel's abstract unix socket address (a leading NUL byte)."""
    if not name.startswith("@") or len(name) < 2:
        raise ValueError(
            f"{name!r} is not an abstract socket name (@name): a socket file in a directory "
            "the worker container can write could be replaced by tenant code"
        )
    return "\0" + name[1:]


class FrameError(TenantflowError):
    """The peer closed early, sent too much, or sent something that is not safe JSON."""


class PeerClosed(FrameError):
    """The connection ended before a whole frame arrived (the peer died or gave up)."""


def encode(value: Any) -> bytes:
    data = jsonsafe.dumps(value)
    return HEADER.pack(len(data)) + data


def _length(header: bytes, limit: int) -> int:
    n: int = HEADER.unpack(header)[0]
    if n > limit:
        raise FrameError(f"frame of {n} bytes is over the {limit}-byte limit")
    return n


def send(sock: socket.socket, value: Any) -> None:
    sock.sendall(encode(value))


def recv(sock: socket.socket, limit: int) -> Any:
    """One frame from a blocking socket (FrameError on EOF, oversize or bad JSON)."""
    n = _length(_recv_exact(sock, HEADER.size), limit)
    return _decode(_recv_exact(sock, n))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise PeerClosed("the peer closed the connection")
        buf += chunk
    return bytes(buf)


class FrameReader:
    """One frame read piece by piece from a non-blocking socket, so that a peer that sends
    half a frame and stops holds only its own connection, never the reader."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._size: int | None = None

    def feed(self, sock: socket.socket) -> tuple[bool, Any]:
        """Read what `sock` has now: (True, the frame) once whole, else (False, None);
        BlockingIOError when it has nothing more yet. FrameError on EOF before the end,
        an oversize header or bad JSON. A header and its body already there are read in
        one call (a bounded number of reads: a peer that keeps sending cannot hold it)."""
        for _ in range(FEED_READS):
            want = HEADER.size if self._size is None else self._size
            chunk = sock.recv(min(want - len(self._buf), 1 << 20))
            if not chunk:
                raise PeerClosed("the peer closed the connection")
            self._buf += chunk
            if len(self._buf) < want:
                continue
            if self._size is None:
                self._size, self._buf = _length(bytes(self._buf), self.limit), bytearray()
                if self._size:
                    continue
            return True, _decode(bytes(self._buf))
        return False, None


async def read(reader: asyncio.StreamReader, limit: int) -> Any:
    try:
        n = _length(await reader.readexactly(HEADER.size), limit)
        return _decode(await reader.readexactly(n))
    except asyncio.IncompleteReadError:
        raise PeerClosed("the peer closed the connection") from None


def _decode(data: bytes) -> Any:
    try:
        return jsonsafe.loads(data)
    except jsonsafe.UnsafeJSON as exc:
        raise FrameError(f"the peer sent unsafe JSON: {exc}") from None
