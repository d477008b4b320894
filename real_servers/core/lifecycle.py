"""The lifecycle of a request - the one definition every part of arch-sim uses.

kHTTPd's Architecture page draws a request's life as states it moves through, serviced in
groups, one C file each (docs/SOURCES.md [KH-main-loop]).  The same names label the real
state-group server's modules, the SimPy model's stages, the harness's per-state columns and the
figures; they are spelled here and nowhere else (``tests/test_lifecycle.py`` checks that).

States are small integers, in pass order (a pass services them in this order), so a server's
hot path can index lists with them; :data:`NAMES` gives their names.  :data:`TRANSITIONS` is the
whole state machine: where a request may go from each state (``CLOSED``: the connection ends).
A state may also keep a request (queue it again for the next pass): that is not a move.
"""

from __future__ import annotations

ACCEPT = 0  # take the connection off the listener
WAIT_HEADERS = 1  # "decode header": read, parse, security check, MIME type, response head
SEND_DATA = 2  # send the response, a bounded amount per pass
USERSPACE = 3  # hand the request to the user-space server
LOGGING = 4  # log line, then keep the connection alive or close it
CLOSED = -1  # not a state: the connection is gone

#: state names in pass order (kHTTPd's MainDaemon: accept, headers, send, user space, logging)
NAMES: tuple[str, ...] = ("accept", "wait_headers", "send_data", "userspace", "logging")

#: state -> the states a request may move to from it
TRANSITIONS: dict[int, frozenset[int]] = {
    ACCEPT: frozenset({WAIT_HEADERS, SEND_DATA}),  # SEND_DATA: a refusal (503, too many)
    WAIT_HEADERS: frozenset({SEND_DATA, USERSPACE, LOGGING}),  # LOGGING: peer gone, bad bytes
    USERSPACE: frozenset({SEND_DATA, LOGGING}),
    SEND_DATA: frozenset({LOGGING}),
    LOGGING: frozenset({WAIT_HEADERS, CLOSED}),  # keep-alive: the next request; or close
}


def may_move(src: int, dst: int) -> bool:
    """Whether a request may move from state ``src`` to ``dst``."""
    return dst in TRANSITIONS.get(src, ())


def moved_column(state: int) -> str:
    """The per-request column counting moves out of ``state`` in measured and simulated rows
    (e.g. ``moved_wait_headers_per_request``)."""
    return f"moved_{NAMES[state]}_per_request"
