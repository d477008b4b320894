"""One pass of a state-group worker (:mod:`arch_sim.models.state_group`): its running totals,
and one function per lifecycle state - the stage that services that state's group as a batch.

As in kHTTPd (a C file per state, one interface to the main loop) and the real server
(real_servers/stategroup/states/), every stage has the same interface, ``stage(worker, pass)``:
it moves what it can out of its state on the pass's clock (``p.t``), hands requests on along the
lifecycle's moves and counts them (``Worker.count_batch``).  :data:`STAGES` is the order a pass
runs them in; a stage can be replaced without touching the others.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from arch_sim.models.network import Request
from real_servers.core.lifecycle import (
    ACCEPT,
    LOGGING,
    NAMES,
    SEND_DATA,
    USERSPACE,
    WAIT_HEADERS,
    may_move,
)

if TYPE_CHECKING:
    from arch_sim.models.state_group import Worker


class Pass:
    """One pass's running totals: its clock, what moved, what finished, what was handed on."""

    __slots__ = ("t", "moved", "finished", "replied", "handed", "logging", "closed")

    def __init__(self, t: float) -> None:
        self.t = t  # the pass's own clock: when its next piece of work would end
        self.moved = 0
        #: (request, when its last bytes were sent, when its reply is in), on the pass's clock
        self.finished: list[tuple[Request, float, float]] = []
        self.replied = t  # when the pass's last reply was sent, on its clock
        self.handed: list[Request] = []  # to the user-space server
        self.logging: list[Request] = []  # replies done (or handed over): to log and close
        self.closed: list[Request] = []  # connections closed on their client's end of file


def accept(w: Worker, p: Pass) -> None:
    """accept: every connection waiting in the shared listen queue -> wait_headers.

    With readiness events the worker tries accept() once the listener is reported
    readable and accepts until a call finds the queue empty (real_servers/stategroup/
    states/accept.py; a pass stops after 64 without that call, which the model does not
    follow), so a batch ends with a failed accept, a call that finds nothing
    (``poll_cost``).  kHTTPd looks at its listen queue on every pass; that look is in
    ``pass_cost``."""
    m, backlog = w.model, w.model.backlog
    if not backlog:
        return
    k, t, cohort = 0, p.t, m.cohort
    while backlog:
        req = backlog.popleft()
        t += m.accept_cost * (cohort if k else 1.0)
        k += 1
        req.conn.owner = w  # its request's arrival wakes this worker
        w.wait_headers.append(req)
    p.t = t + m.accept_empty
    w.count_batch(ACCEPT, k)
    p.moved += k


def decode(w: Worker, p: Pass) -> None:
    """wait_headers: parse what has arrived (-> send_data, or userspace), peek at the rest."""
    if not w.wait_headers:
        return
    m, cohort = w.model, w.model.cohort
    waiting: list[Request] = []
    k, t = 0, p.t
    for req in w.wait_headers:
        if req.data_at <= t:
            if req.eof:  # end of file: the client closed, so close our side
                t += m.close_cost
                p.closed.append(req)
                p.moved += 1
                continue
            t += m.parse_cost * (cohort if k else 1.0)
            k += 1
            if req.userspace:
                p.handed.append(req)
            else:
                w.send_data.append(req)
        else:
            if not (m.readiness and req.looked):  # epoll: only the first try costs
                t += m.poll_cost
                req.looked = True
            waiting.append(req)
    p.t = t
    w.wait_headers = waiting
    w.count_batch(WAIT_HEADERS, k)
    p.moved += k


def send(w: Worker, p: Pass) -> None:
    """send_data: up to max_send bytes to every connection with room in its buffer; a
    finished reply -> logging."""
    if not w.send_data:
        return
    m, cohort = w.model, w.model.cohort
    poll, done = m.poll_cost, 0
    k, t = 0, p.t
    for req in w.send_data:
        if t < req.ready_at:  # its buffer cannot have room yet: the check finds none
            req.conn.drop_drained(t)  # but forgets what drained, as the check would
            t += poll
            continue
        conn = req.conn
        n, req.ready_at = conn.write_room(t, req.left)
        n = min(n, m.max_send)
        if n <= 0.0:
            t += poll
            continue
        t += m.send_cost * (cohort if k else 1.0) + m.byte_cost * n
        k += 1
        conn.write(n, t)
        req.left -= n
        if req.left <= 0.0:
            req.ready_at = math.inf  # finished: leaves send_data below
            done += 1
            p.logging.append(req)
            p.finished.append((req, t, conn.drained_at(t) + m.one_way))
            p.replied = t
    p.t = t
    if done:  # the rest stay in their order
        w.send_data = [req for req in w.send_data if req.ready_at != math.inf]
    w.count_batch(SEND_DATA, k)
    p.moved += k


def userspace(w: Worker, p: Pass) -> None:
    """userspace: hand the connection over (the user-space server starts after the pass)
    -> logging."""
    handed = p.handed
    if not handed:
        return
    m = w.model
    p.t += m.handoff_cost * (1.0 + m.cohort * (len(handed) - 1))
    w.count_batch(USERSPACE, len(handed))
    p.moved += len(handed)
    p.logging.extend(handed)


def log(w: Worker, p: Pass) -> None:
    """logging: log line, close (a keep-alive connection's next request is a new one)."""
    batch = p.logging
    if not batch:
        return
    m, cohort, t = w.model, w.model.cohort, p.t
    for k, req in enumerate(batch):
        t += (m.log_cost + (m.close_cost if req.closes else 0.0)) * (cohort if k else 1.0)
    p.t = t
    w.count_batch(LOGGING, len(batch))
    p.moved += len(batch)


#: the stages of a pass, one per lifecycle state, in the lifecycle's order; each hands requests
#: on only along the lifecycle's moves (checked once, here)
STAGES = (accept, decode, send, userspace, log)
_STAGE_MOVES = ((ACCEPT, WAIT_HEADERS), (WAIT_HEADERS, SEND_DATA), (WAIT_HEADERS, USERSPACE),
                (SEND_DATA, LOGGING), (USERSPACE, LOGGING))
assert len(STAGES) == len(NAMES) and all(may_move(a, b) for a, b in _STAGE_MOVES)
