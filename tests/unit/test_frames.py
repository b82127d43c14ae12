"""The zygote's non-blocking frame reader: whole frames from what a socket has, a header
and its body in one call, bounded reads, and the two-frame advance request whose payload
the zygote leaves to the child."""

from __future__ import annotations

import socket

import pytest

from tenantflow.sandbox.protocol import frames
from tenantflow.sandbox.protocol.payload import advance_payload, advance_request, deadline_seconds


def _pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    return ours, theirs


def test_a_header_and_its_body_already_there_are_read_in_one_feed() -> None:
    ours, theirs = _pair()
    theirs.sendall(frames.encode({"op": "ping"}))
    assert frames.FrameReader(1024).feed(ours) == (True, {"op": "ping"})


def test_a_frame_sent_in_pieces_is_whole_only_at_its_end() -> None:
    ours, theirs = _pair()
    data = frames.encode({"op": "ping", "pad": "x" * 100})
    reader = frames.FrameReader(1024)
    theirs.sendall(data[:2])
    with pytest.raises(BlockingIOError):
        reader.feed(ours)
    theirs.sendall(data[2:50])
    with pytest.raises(BlockingIOError):
        reader.feed(ours)
    theirs.sendall(data[50:])
    assert reader.feed(ours) == (True, {"op": "ping", "pad": "x" * 100})


def test_one_feed_reads_a_bounded_number_of_times() -> None:
    """A peer that keeps sending small pieces cannot hold the zygote's loop in one call."""

    class Trickle:
        reads = 0

        def recv(self, n: int) -> bytes:
            self.reads += 1
            return data[self.reads - 1 : self.reads]

    data = frames.encode({"pad": "x" * 100})
    trickle = Trickle()
    assert frames.FrameReader(1024).feed(trickle) == (False, None)  # type: ignore[arg-type]
    assert trickle.reads == frames.FEED_READS


def test_the_advance_request_is_a_head_the_zygote_reads_and_the_payload_after_it() -> None:
    payload = advance_payload(source="x", instance_id="i", started_at="2030-01-01T00:00:00Z")
    ours, theirs = _pair()
    theirs.sendall(advance_request(payload))
    head = frames.FrameReader(frames.MAX_REQUEST).feed(ours)
    assert head == (True, {"op": "advance", "budget": deadline_seconds(payload)})
    ours.setblocking(True)
    assert frames.recv(ours, frames.MAX_REQUEST) == payload, "left for the child, whole"
