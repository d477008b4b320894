"""The lifecycle of a request, as kHTTPd's Architecture page draws it, and the epoll masks.

A connection is always in exactly one state.  It is either *queued* (in its state's queue, to be
serviced in the next pass) or *parked* (waiting for an epoll event; ``conn.wait`` holds the
events that queue it again).  States are small integers so the hot path indexes lists.
"""

from __future__ import annotations

import select

ACCEPT = 0
WAIT_HEADERS = 1  # "decode header"
SEND_DATA = 2
USERSPACE = 3
LOGGING = 4  # logging and cleanup

#: pass order (kHTTPd's MainDaemon: accept, wait for headers, send data, user space, logging)
NAMES: tuple[str, ...] = ("accept", "wait_headers", "send_data", "userspace", "logging")

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
