"""Closing a connection without destroying the response it has not read yet.

Closing a socket that still holds unread bytes makes the kernel send a reset instead of a FIN,
and a reset can discard data the client has not read: the end of our last response.  So every
server closes gracefully the same way (Apache's "lingering close"; kHTTPd's logging.c closes
after its last send as well): shut down our side - the client reads our FIN after the response -
and read and drop whatever the client still sends (the rest of a refused request, pipelined
requests it will never get answers to) until its EOF, for at most ``LINGER_S``.  When nothing
unread is waiting (the usual case) the close itself sends that FIN: the state-group and threaded
servers look first and then close in one call, shutting down and lingering only when the client
did send more; the prefork worker shuts down first (docs/SOURCES.md [TCP-close-unread]).

:func:`drain` does the reading without blocking and says what it found; :func:`done` says
whether a socket may be closed now.  The threaded servers keep lingering sockets in one table
swept by one thread, the state-group worker in its ``logging`` queue.
"""

from __future__ import annotations

import socket

LINGER_S = 2.0  # a gracefully closing connection waits this long at most for the client's EOF
DRAIN_READS = 4  # reads per lingering connection per look, so one chatty client cannot hog it

# What draining found:
EOF = 0  # the client closed (or the socket failed): close now, no reset can follow
MORE = 1  # read DRAIN_READS times without running dry: there may be more
EMPTIED = 2  # read what was waiting, then nothing was left
NOTHING = 3  # nothing was waiting

#: Bytes are dropped into one shared buffer: its contents are never looked at, so threads may
#: overwrite each other's, and no buffer is allocated per close.
_DISCARD = bytearray(65536)


def drain(sock: socket.socket, buf: bytearray | memoryview = _DISCARD) -> int:
    """Read and drop what the client has sent, without blocking; returns what it found."""
    got = False
    for _ in range(DRAIN_READS):
        try:
            n = sock.recv_into(buf, 0, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return EMPTIED if got else NOTHING
        except OSError:
            return EOF
        if n == 0:
            return EOF
        got = True
    return MORE


def done(found: int, wait_for_eof: bool) -> bool:
    """May the socket be closed now?  After the client's EOF, always; if it had sent nothing
    unread, unless we must wait for its EOF (a request we refused unread may still be on its
    way, and the reset its arrival would cause could destroy our refusal)."""
    return found == EOF or (found == NOTHING and not wait_for_eof)
