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

Window and steady state (``benchmarks/midrun.py --arch staged``, keep-alive, 64 connections,
3 s windows, 3 interleaved rounds): the server's reschedules per request counted around a
whole wrk run, as ``arch-sim bench`` counts them, and in the middle of a longer run agree
within 3% at 100, 2000, 5000/s and unpaced (7.77 / 7.67, 5.68 / 5.69, 4.78 / 4.74, 1.40 /
1.40), and with a connection per request within 2% up to 5000/s (8.81 / 8.64 at 100/s;
unpaced 1.62 / 1.77, rounds spread over 1.36-2.02): wrk's 64 connects and closes at a
window's edges arrive in bursts and cost this server next to nothing per request.  So its
gap to this model is all steady state.

Where the steady state's switches are (mid-run, per request, real / this model; each
thread's voluntary and involuntary switches from /proc): wait_headers sleeps 0.95 / 0.95,
0.43 / 0.44, 0.24 / 0.21 times at 100, 2000, 5000/s and is preempted 1.07 / 0.35, 1.17 /
1.10, 1.11 / 1.04; send_data sleeps 1.74 / 1.24, 2.05 / 1.90, 1.91 / 1.83 and is preempted
1.75 / 0.02, 0.82 / 0.07, 0.58 / 0.15; logging sleeps 2.12 / 0.97, 1.18 / 0.57, 0.87 / 0.50
and is never preempted in either.  The wait_headers -> send_data hand-off matches from 2000/s
on (at 100/s wait_headers is preempted 0.7 times a request more); the rest of the gap is one
hand-off, send_data -> logging: the woken logging thread preempts its
putter (``benchmarks/gil_audit.py --rate 100``: send_data preempted by logging 1.55 a request,
all of it) and, since send_data still holds the GIL, sleeps on gil->cond, is signalled when
send_data drops it, preempts it again inside drop_gil and sleeps on gil->mutex - logging's
extra sleeps, 1.15, 0.61 and 0.37 a request.  Here that first preemption is rare
(``benchmarks/wake_audit.py --rate 100``: 2% of send_data's wake-ups of logging preempt,
against 49% on the kernel) because the logging thread wakes owed time 3% of the time against
61%: on the kernel it last went to sleep while a thread that had run more was still queued
(most likely the send_data it preempted, so that every preempting hand-off hands the owed time
on to the next one); in this model send_data blocks the moment its put() returns and
logging goes to sleep alone with lag 0, so the chain never starts.  The kernel's rules are
this model's (policy_eevdf.py: a waker still eligible is never preempted, an ineligible one
nearly always is); the state they meet differs.  Putting wait_headers' CPU after its put (the
real thread runs on 16-32 us before epoll_wait) does not start the chain (100/s: 3.54 ->
3.32-3.46), nor does 8-16 us more of send_data's after its put (3.54-3.55).

Where the CPU is, which decides those lags: at 100/s the real threads spend 220 (wait_headers),
89 (send_data) and 31 us (logging) a request - the first thread after an idle pays most of the
cold caches, since the stages share the interpreter and the kernel's network path - and this
model 202, 202 and 193 us, each stage paying ``cold_refill_us`` for its own code (606 us a
request against the 365 measured).  One code for all stages (the refill paid once, by the
first stage after an idle, re-solved from the 1000/s CPU: 915 us) moves 2000 and 5000/s to
5.05 and 4.95 (measured 5.69, 4.74) but 100/s only to 3.81, and puts all the refill on
wait_headers (send_data's 89 us are a real share); the refill per stage is not measured here.

Unpaced (keep-alive) this model makes 2.14 switches a request against 1.40: every stage
sleeps and is preempted 1.3-1.8 times as often (send_data 0.64 + 0.39 against 0.49 + 0.22,
logging 0.46 against 0.29, wait_headers preempted 0.55 against 0.37) - its queues run dry
more often, with a CPU per request (28 us) below the real 32.  With a connection per request
it makes 0.28 against 1.77: no stage of this model ever finds its queue empty, while the real
accept thread sleeps 0.27 times a request, send_data 0.68 and logging 0.17, and wait_headers
is preempted 0.54 times.  The CPU is placed differently: the real threads spend 20 (accept),
14 (wait_headers), 20 (send_data) and 20 us (logging) a request, this model's costs are 28
(``accept_us``), 9, 10 and 31 (``log_us`` + ``close_us``; the preset halves a connection's
cost between accept and close).  So the one logging thread here needs 41% of the CPU at
13,000 requests/s, does not get it, and falls behind for good: its queue grows through the
run (4,000 requests: 50, 156, 248, 337 on average in each quarter) while wrk, which reconnects
once a reply is in, keeps the rate up - the model never reaches a steady state there, and
accept, never idle either, keeps its queue full (22 on average, never empty).  Placing the
connection's cost as the real threads do (the extra CPU per request over keep-alive, unpaced:
accept 20, logging 15, wait_headers 4, send_data 4 us) is a calibration change not made here.

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
        self.preemptible = not s.kernel_threads
        self.gil = Gil(env, sched, s.gil_interval_ms * 1e-3) if s.gil else NoGil(sched)
        self.stage_threads = s.stage_threads if stage_threads is None else stage_threads
        counts = parse_stage_threads(self.stage_threads)
        self.stages = {state: Stage(state) for state in range(len(NAMES))}
        self.userspace = UserspaceServer(env, sched, params, recorder)
        body = {ACCEPT: self.acceptor, WAIT_HEADERS: self.poller, SEND_DATA: self.sender,
                LOGGING: self.logger}
        for state in POOLED:
            for i in range(counts[state]):
                # each stage runs its own code (its module): a cold cache is refilled per stage
                task = Task(f"{NAMES[state]}/{i}", refill=self.refill,
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
        stage = self.stages[state]
        while not stage.queue:  # (again if a thread that held the GIL took it meanwhile)
            yield from self.gil.drop(task)
            yield from self._wait(task, state)
            yield from self.gil.take(task)
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
