"""SEDA's staged design (``real_servers.staged``): one thread pool per lifecycle state, queues
between them [SEDA].

Every request crosses the pools in lifecycle order, each stage a pool of threads that takes
the next item off its queue, does its state's work and puts the item on the next queue:

    accept        thread(s) in accept(); a new connection is registered in the wait_headers
                  stage's epoll set (one-shot) - that epoll set is the queue into wait_headers
    wait_headers  thread(s) in epoll_wait(); a readable connection is read and parsed, and the
                  request goes onto the send_data queue (a ``queue.Queue``)
    send_data     pool threads: get(), send the reply with blocking calls (a thread blocks while
                  the socket buffer is full), put the request on the logging queue
    logging       thread(s): get(), log; close the connection, or re-arm it in the epoll set
                  (keep-alive: its next request comes through wait_headers again)

So every hand-off between states is a thread wake-up when the next stage's threads sleep: a
put onto a queue where one waits wakes it (``queue.Queue``'s condition variable [PY-queue]: a
futex wake, which costs the putter ``SchedulerParams.wake_us`` and may preempt it), epoll_wait
returns when a connection becomes readable.  A woken thread blocks again when its queue is empty - a
voluntary reschedule per hand-off at low load.  A thread that finds its queue non-empty takes
the next item without sleeping, so under load the stages run in batches and the wake-ups per
request fall (``wakeups_<state>``).

The stage threads are kernel threads in the kernel presets (no interpreter lock; preempted only
as ``kernel_threads`` allows) and, in the ``host`` preset, Python threads of one process under
the GIL (:mod:`~arch_sim.models.gil`): a thread drops it around every blocking call (accept,
epoll_wait, recv, send, a get() that waits) and a woken thread that finds it held sleeps again
on the GIL's condition variable, as the pool server's threads do (python_threads.py).

Where this model misses the real server, and what was measured about it (per-stage switches
and CPU, the send_data -> logging hand-off that preempts on the kernel and not here, the
connection cost's placement over the stages): docs/FIDELITY.md, "Staged".

Pool sizes are the real server's defaults (``ServerParams.stage_threads``,
``accept=1,wait_headers=1,send_data=4,logging=1``); the ``userspace`` state has no pool (static
files never reach it: a request that would is handed to the user-space server by wait_headers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

import simpy

from arch_sim.models.gil import Gil, NoGil
from arch_sim.models.network import Request
from arch_sim.models.params import DEFAULT_STAGE_THREADS, STAGE_THREADS, ModelParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import US, Scheduler, Task
from arch_sim.models.switching import refill_shares
from arch_sim.models.userspace import UserspaceServer
from real_servers.core.lifecycle import (
    ACCEPT,
    LOGGING,
    NAMES,
    SEND_DATA,
    USERSPACE,
    WAIT_HEADERS,
    may_move,
)

#: the states with a thread pool, in lifecycle order (their default sizes: the real server's)
POOLED = tuple(STAGE_THREADS)
#: the hand-offs between pools (checked once against the lifecycle's moves)
_MOVES = ((ACCEPT, WAIT_HEADERS), (WAIT_HEADERS, SEND_DATA), (SEND_DATA, LOGGING),
          (LOGGING, WAIT_HEADERS), (WAIT_HEADERS, USERSPACE))
assert all(may_move(a, b) for a, b in _MOVES)

Steps = Generator[simpy.Event, Any, None]


def parse_stage_threads(text: str) -> dict[int, int]:
    """``"send_data=8"`` or ``"accept=1,wait_headers=1,send_data=4,logging=1"`` -> threads per
    pooled state (states not named keep the real server's default).  ValueError naming the fix
    for an unknown state or a count below 1."""
    counts = {state: 0 for state in POOLED}
    items = (DEFAULT_STAGE_THREADS + "," + text).split(",")
    for item in (i.strip() for i in items if i.strip()):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in NAMES or NAMES.index(name) not in counts:
            raise ValueError(f"stage threads {text!r}: expected STATE=N items with STATE one of "
                             f"{', '.join(NAMES[s] for s in POOLED)}, e.g. "
                             f"{DEFAULT_STAGE_THREADS}")
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"stage threads {text!r}: {name} needs a whole number of threads "
                             ">= 1")
        counts[NAMES.index(name)] = n
    return counts


class Stage:
    """One state's pool: its queue, its threads asleep waiting on it, what it moved."""

    __slots__ = ("state", "queue", "sleepers", "wakeups", "moved")

    def __init__(self, state: int) -> None:
        self.state = state
        self.queue: deque[Request] = deque()
        self.sleepers: deque[Task] = deque()  # threads blocked on the queue, longest first
        self.wakeups = 0  # sleepers woken by a put
        self.moved = 0  # items that left this state


class Staged:
    """SEDA on the scheduler model: a pool of threads per state, a wake-up per hand-off."""

    arch = "staged"
    model_name = "simpy:staged"

    def __init__(self, env: simpy.Environment, sched: Scheduler, params: ModelParams,
                 recorder: Recorder, stage_threads: str | None = None) -> None:
        s, net = params.server, params.network
        self.env = env
        self.sched = sched
        self.recorder = recorder
        self.accept_cost = s.accept_us * US
        self.parse_cost = s.parse_us * US
        self.send_cost = s.send_us * US
        self.byte_cost = s.send_us_per_kb * US / 1024.0
        self.log_cost = s.log_us * US
        self.close_cost = s.close_us * US
        self.handoff_cost = s.userspace_handoff_us * US
        self.one_way = net.one_way_us * US
        self.refill = s.cold_refill_us * US
        # a hand-off's own CPU, around a sleep: halves before and after it
        self.queue_half = s.queue_wait_us * US / 2.0
        self.futex_half = s.futex_wait_us * US / 2.0
        self.poll_half = s.poll_wait_us * US / 2.0
        self.wake_extra = s.wake_extra_us * US
        self.preemptible = not s.kernel_threads
        self.gil = Gil(env, sched, s.gil_interval_ms * 1e-3) if s.gil else NoGil(sched)
        self.stage_threads = s.stage_threads if stage_threads is None else stage_threads
        counts = parse_stage_threads(self.stage_threads)
        self.stages = {state: Stage(state) for state in range(len(NAMES))}
        self.userspace = UserspaceServer(env, sched, params, recorder)
        body = {ACCEPT: self.acceptor, WAIT_HEADERS: self.poller, SEND_DATA: self.sender,
                LOGGING: self.logger}
        # each stage runs its own code (its module): a cold cache is refilled per stage, each
        # its share of the server's refill (switching.py)
        share = refill_shares({ACCEPT: s.accept_us, WAIT_HEADERS: s.parse_us,
                               SEND_DATA: s.send_us, LOGGING: s.log_us},
                              path=(WAIT_HEADERS, SEND_DATA, LOGGING))
        for state in POOLED:
            for i in range(counts[state]):
                task = Task(f"{NAMES[state]}/{i}", refill=self.refill * share[state],
                            preemptible=self.preemptible)
                env.process(body[state](task))

    # -- queues -----------------------------------------------------------------------------

    def _arrive(self, state: int, req: Request) -> None:
        """The network puts ``req`` on a stage's queue (a new connection on the listener, a
        readable connection in epoll's ready list): one sleeper is woken, by no thread."""
        stage = self.stages[state]
        stage.queue.append(req)
        if stage.sleepers:
            stage.wakeups += 1
            self.sched.wake(stage.sleepers.popleft())

    def _put(self, task: Task, state: int, req: Request) -> Steps:
        """``task`` hands ``req`` to a stage: queue it and wake one thread asleep on that queue
        (a futex wake from ``task``'s system call: its CPU first, then a preemption point)."""
        stage = self.stages[state]
        stage.queue.append(req)
        if stage.sleepers:
            stage.wakeups += 1
            yield from self.sched.wake_from(task, stage.sleepers.popleft())
            if self.wake_extra:  # the rest of put(): back through the condition and lock
                yield from self.gil.py(task, self.wake_extra)

    def _wait(self, task: Task, state: int) -> Steps:
        """Block until the stage's queue holds something (the GIL already dropped); a thread
        woken after another took the item sleeps again."""
        stage = self.stages[state]
        while not stage.queue:
            stage.sleepers.append(task)
            yield self.sched.block(task)

    def _get(self, task: Task, state: int) -> Generator[simpy.Event, Any, Request]:
        """``queue.Queue.get()``: the next item at once if there is one, else sleep (GIL
        dropped) until a put wakes this thread, then take the GIL back."""
        stage, gil, sched = self.stages[state], self.gil, self.sched
        queue_half, futex_half = self.queue_half, self.futex_half
        while not stage.queue:  # (again if a thread that held the GIL took it meanwhile)
            if queue_half:
                yield from gil.py(task, queue_half)  # Condition.wait's set-up
            yield from gil.drop(task)
            if futex_half:
                yield from sched.run(task, futex_half)  # into the futex wait
            yield from self._wait(task, state)
            if futex_half:
                yield from sched.run(task, futex_half)  # back out of it
            yield from gil.take(task)
            if queue_half:
                yield from gil.py(task, queue_half)  # re-lock the queue, take the item
        return stage.queue.popleft()

    # -- arrivals ---------------------------------------------------------------------------

    def submit(self, req: Request) -> None:
        """A new connection (the listener) or a keep-alive request on a registered one."""
        if req.opens:
            self._arrive(ACCEPT, req)
            return
        conn = req.conn
        if conn.handler is not None:  # its previous request is still in the stages: the
            conn.pending.append(req)  # one-shot fd reports it once logging re-arms it
            return
        conn.handler = req  # (a connection opened before the window was registered then)
        self._arrive(WAIT_HEADERS, req)

    def data_ready(self, req: Request) -> None:
        """A new connection's request arrived: readable in epoll if it was registered (else
        the accept stage finds it readable when it registers it)."""
        conn = req.conn
        if conn.armed:
            conn.armed = False
            self._arrive(WAIT_HEADERS, req)

    # -- the stages -------------------------------------------------------------------------

    def acceptor(self, task: Task):
        """accept stage: accept() (blocking, GIL dropped), register the connection in the
        wait_headers epoll set - readable already: that is a wake-up of a poller."""
        sched, gil, env = self.sched, self.gil, self.env
        stage = self.stages[ACCEPT]
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            yield from gil.drop(task)
            yield from self._wait(task, ACCEPT)
            req = stage.queue.popleft()
            yield from sched.run(task, self.accept_cost)  # accept4(), set-up, epoll_ctl(ADD)
            stage.moved += 1
            req.conn.handler = req
            if req.data_at <= env.now:
                yield from self._put(task, WAIT_HEADERS, req)
            else:
                req.conn.armed = True
            yield from gil.take(task)

    def poller(self, task: Task):
        """wait_headers stage: epoll_wait() for readable connections, then recv and parse
        each, handing every complete request to send_data."""
        sched, gil = self.sched, self.gil
        stage = self.stages[WAIT_HEADERS]
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            yield from gil.drop(task)  # epoll.poll() drops the GIL around epoll_wait
            if self.poll_half and not stage.queue:  # epoll_wait sleeps: its CPU around it
                yield from sched.run(task, self.poll_half)
                yield from self._wait(task, WAIT_HEADERS)
                yield from sched.run(task, self.poll_half)
            else:
                yield from self._wait(task, WAIT_HEADERS)
            events, stage.queue = stage.queue, deque()  # every ready event at once
            yield from gil.take(task)
            for req in events:
                yield from gil.call(task, 0.0)  # recv(): the request is here
                if req.eof:  # recv() returned 0: the client closed, so close our side
                    yield from gil.call(task, self.close_cost)
                    req.conn.handler = None
                    self.recorder.closed(req)
                    continue
                yield from gil.py(task, self.parse_cost)
                stage.moved += 1
                if req.userspace:  # (not for static files) hand the connection over
                    yield from gil.call(task, self.handoff_cost)
                    self.stages[USERSPACE].moved += 1
                    req.conn.handler = None
                    self.userspace.submit(req)
                    continue
                yield from self._put(task, SEND_DATA, req)

    def sender(self, task: Task):
        """send_data stage: get(), send the reply with blocking calls, put it on logging."""
        sched, gil = self.sched, self.gil
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            req = yield from self._get(task, SEND_DATA)
            yield from self.send(task, req)
            self.stages[SEND_DATA].moved += 1
            yield from self._put(task, LOGGING, req)

    def send(self, task: Task, req: Request) -> Steps:
        """Blocking send() calls, the GIL dropped around each; block while the buffer is full.
        The reply is complete when the client has drained its last byte."""
        env, sched, gil, conn = self.env, self.sched, self.gil, req.conn
        while True:
            n = conn.writable(env.now, req.left)
            yield from gil.drop(task)
            if n <= 0.0:
                yield from self._sleep_until(task, conn.space_at(env.now))
                yield from gil.take(task)
                continue
            req.left -= n
            yield from sched.run(task, self.send_cost + self.byte_cost * n)
            conn.write(n, env.now)
            if req.left <= 0.0:
                self.recorder.complete(req, conn.drained_at(env.now) + self.one_way)
                yield from gil.take(task)
                return
            yield from gil.take(task)

    def _sleep_until(self, task: Task, t: float) -> Steps:
        """Block (a voluntary reschedule) until time t, when the buffer has room again."""
        woken = self.sched.block(task)
        timer = self.env.timeout(t - self.env.now)
        timer.callbacks.append(lambda _ev: self.sched.wake(task))
        yield woken

    def logger(self, task: Task):
        """logging stage: get(), log; close, or re-arm the connection in epoll (a request
        that came meanwhile makes it readable at once: a poller is woken)."""
        gil = self.gil
        stage = self.stages[LOGGING]
        yield self.sched.start(task)
        yield from gil.take(task)
        while True:
            req = yield from self._get(task, LOGGING)
            conn = req.conn
            yield from gil.py(task, self.log_cost)
            stage.moved += 1
            if req.closes:  # unregister, shutdown, close: system calls
                yield from gil.call(task, self.close_cost)
                conn.handler = None
                continue
            yield from gil.drop(task)  # epoll.modify(): EPOLLIN | EPOLLONESHOT again
            conn.handler = None
            if conn.pending:
                nxt = conn.pending.popleft()
                conn.handler = nxt
                yield from self._put(task, WAIT_HEADERS, nxt)
            yield from gil.take(task)

    # -- what the measurement reads ---------------------------------------------------------

    def counters(self) -> dict[str, float]:
        """Moves and wake-ups per state, and the GIL's waits (0 without one)."""
        gil = self.gil
        out: dict[str, float] = {
            "gil_cond_waits": gil.waits,
            "gil_mutex_waits": getattr(gil, "mutex_waits", 0),
            "gil_forced": gil.forced,
        }
        for state, stage in self.stages.items():
            out[f"moved_{NAMES[state]}"] = stage.moved
            out[f"wakeups_{NAMES[state]}"] = stage.wakeups
        return out
