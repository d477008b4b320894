"""The lingering close both servers share (real_servers/core/closing.py), on a socket pair."""

from __future__ import annotations

import socket

import pytest

from real_servers.core.closing import DRAIN_READS, EMPTIED, EOF, MORE, NOTHING, done, drain


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    b.setblocking(True)  # drain must not block even on a blocking socket (the threaded servers')
    yield a, b
    a.close()
    b.close()


def test_drain_says_what_it_found(pair):
    client, server = pair
    assert drain(server) == NOTHING
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    assert drain(server) == EMPTIED
    assert drain(server) == NOTHING  # the bytes were dropped, not left for the next look
    client.close()
    assert drain(server) == EOF


def test_drain_reads_a_bounded_amount_per_look(pair):
    client, server = pair
    small = bytearray(16)
    client.send(b"x" * (16 * DRAIN_READS + 1))
    assert drain(server, small) == MORE
    assert drain(server, small) == EMPTIED


@pytest.mark.parametrize(("found", "wait", "close"), [
    (EOF, False, True), (EOF, True, True),
    (NOTHING, False, True), (NOTHING, True, False),  # a refused request may still be arriving
    (EMPTIED, False, False), (MORE, False, False),  # the client is still sending: linger
])
def test_done(found, wait, close):
    assert done(found, wait) is close
