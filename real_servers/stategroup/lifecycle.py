"""The worker's side of the lifecycle: the states (from real_servers.core.lifecycle, the one
definition), the epoll masks and how logging ends a connection.

A connection is always in exactly one state.  It is either *queued* (in its state's queue, to be
serviced in the next pass) or *parked* (waiting for an epoll event; ``conn.wait`` holds the
events that queue it again).  It changes state only through ``Worker.move``, which checks the
transition table.
"""

from __future__ import annotations

import select

from ..core.lifecycle import (  # noqa: F401  (re-exported for the state modules)
    ACCEPT,
    CLOSED,
    LOGGING,
    NAMES,
    SEND_DATA,
    TRANSITIONS,
    USERSPACE,
    WAIT_HEADERS,
    may_move,
)

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLET = select.EPOLLET
EPOLLRDHUP = select.EPOLLRDHUP
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP

#: every socket is registered once, edge-triggered, for both directions
REGISTER = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET
#: events that make a socket readable (EOF and errors are read as such) / writable
READ = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR
WRITE = EPOLLOUT | EPOLLHUP | EPOLLERR
ANY = READ | WRITE
#: events that say the peer will send nothing more: reads return data, then EOF
SHUT = EPOLLRDHUP | EPOLLHUP | EPOLLERR

# How logging ends a connection after its request (``conn.ending``)
KEEP = 0  # keep it alive if the response allows
GRACEFUL = 1  # shut down our side; close now unless the client sent more (then linger)
LINGER = 2  # shut down our side and wait for the client's EOF (its request was never read)
ABORT = 3  # close at once (peer gone, error, timeout)
CUT = 4  # a response that cannot be finished: close with a reset, so the client can tell

RECV_BYTES = 65536  # bytes asked of one recv(): a read shorter than this drained the socket
