"""The real thread-per-request server (``real_servers.threaded``): Python threads, one GIL.

The same lifecycle as :mod:`~arch_sim.models.thread_per_request`, system call by system call,
with CPython's interpreter lock (:mod:`~arch_sim.models.gil`): Python code runs only under it,
and every blocking system call drops it and takes it back.  A woken thread that preempts a GIL
holder - the dispatcher that just woke it, say - sleeps again until the holder drops it: the
extra voluntary switches a Python hand-off costs.  Two shapes, as in the real server:

* ``threads = N`` with ``dispatcher`` (``--threads N``, real_servers/threaded/pool.py): a
  dispatcher thread waits in epoll over the listener and every connection, each registered
  once, edge-triggered.  A new connection is accepted and registered; when a request's bytes
  arrive on a connection no thread has, the dispatcher marks it busy, pops the most recently
  idle pool thread (LIFO) and wakes exactly that thread (each sleeps on its own lock) - or
  queues the connection when none is idle, for the next thread that finishes.  The pool thread
  recv()s, parses, sends with blocking calls, then (keep-alive) lets the connection go - no
  system call - or unregisters and closes it.  Bytes that arrive while a thread has the
  connection still wake the dispatcher (every edge is reported); it only marks the connection
  (``again``), and the thread, done with its request, hands it off the dispatcher's way: it
  wakes another idle thread for it (or queues it) and goes idle itself.
* ``threads = 0`` (``--threads 0``, per_connection.py): an acceptor polls the listener,
  accepts and starts a ``threading.Thread`` for the connection.  ``Thread.start()`` waits until
  the new thread has run and set its ``_started`` event [PY-thread-start]: the acceptor blocks
  on that event's lock (dropping the GIL), the new thread takes the GIL, sets the event (waking
  the acceptor) and goes on to recv() the request, serve it, close and exit.  Between clone()
  and that block the acceptor still runs Thread.start()'s tail (``_started.wait()``: the
  Condition's lock, a new waiter lock), so it blocks having overrun the new thread, which was
  placed at its vruntime: it stays queued (DELAY_DEQUEUE), and once the new thread has run
  longer than that overrun, waking the acceptor preempts it (see the ``eevdf`` policy).
  Whether it does turns on where the set-up's CPU falls around clone() and set(): measured on
  the real server (perf, 6.18 VM, 200 and 1000 req/s: ``THREAD_START_SPLIT``), the tail after
  clone() is short (5-8 us) and the new thread runs 26-36 us before set().  An acceptor that
  slept in poll() blocks there owing almost nothing - the new thread's wake-up preempts it,
  and the GIL hand-offs that follow ping-pong (2.3-2.6 preemptions per new thread, measured).
  An acceptor that found the next connection already pending has run its whole accept and
  set-up while the previous new thread waited in the run queue: it blocks owing half of that,
  more than the new thread runs before set(), and is woken without preempting (0.6-0.8).  More
  such back-to-back accepts as the load rises: fewer switches per request.

(``threads = N`` without a dispatcher: N Python threads in accept() on the shared listener.)
"""

from __future__ import annotations

from collections import deque

import simpy

from arch_sim.models.gil import Gil, NoGil
from arch_sim.models.network import Connection, Request
from arch_sim.models.params import ModelParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import US, Scheduler, Task
from arch_sim.models.switching import refill_shares
from arch_sim.models.thread_per_request import PoolThread, ThreadPerRequest

#: where ``thread_create_us`` falls, as shares: the acceptor's Connection(), Thread() and the
#: start up to clone(); its Thread.start() tail after clone() up to the waiter lock's blocking
#: acquire; the new thread up to ``_started.set()`` (its first futex); the new thread from set()
#: to its first recv().  Medians of those four stretches (no switch inside) in perf traces of
#: per_connection.py pinned to CPU 0 at 1000 req/s on the 6.18 VM: 53, 6, 28 and 13 us
#: (sys_exit of accept4 -> sys_enter of clone3; clone3's return -> futex; the child's clone3
#: return -> its first futex; that futex's return -> recvfrom).  At 200 req/s, colder: 92, 8, 36,
#: 17 us - the same shares within 6 points [MEAS-thread-start-split].
THREAD_START_SPLIT = (0.54, 0.06, 0.27, 0.13)

#: ``Connection.handler`` of a connection some pool thread has (the dispatcher design)
BUSY = "busy"


class Starter:
    """``Thread.start()``'s hand-shake: the ``_started`` event the acceptor waits on."""

    __slots__ = ("started", "waiter")

    def __init__(self) -> None:
        self.started = False
        self.waiter: Task | None = None  # the acceptor, blocked on the event's lock


class PythonThreads(ThreadPerRequest):
    """The real Python server's threads under the GIL."""

    def __init__(self, env: simpy.Environment, sched: Scheduler, params: ModelParams,
                 recorder: Recorder, threads: int | None = None) -> None:
        s = params.server
        self.gil = Gil(env, sched, s.gil_interval_ms * 1e-3) if s.gil else NoGil(sched)
        self.dispatch_cost = s.dispatch_us * US
        n = s.threads if threads is None else threads
        self.use_dispatcher = n > 0 and s.dispatcher
        # the dispatcher's code and the pool's split the server's refill (switching.py)
        self.code_work = {"dispatcher": s.dispatch_us * US,
                          "pool": (s.parse_us + s.send_us + s.log_us) * US}
        self.refill_share = refill_shares(self.code_work) if self.use_dispatcher else {}
        super().__init__(env, sched, params, recorder, threads=threads)

    def task(self, name: str) -> Task:
        task = super().task(name)
        code = task.code
        if code in self.refill_share:  # (with a dispatcher: its code's share, its own debt)
            task.refill *= self.refill_share[code]
            task.warm = self.code_work[code]
        return task

    def start_threads(self) -> None:
        if self.use_dispatcher:
            self.ready: deque[Request] = deque()  # epoll's ready list
            self.stack: list[PoolThread] = []  # idle pool threads, most recently idle last
            self.dispatcher_task = self.task("dispatcher")
            self.dispatcher_asleep = False
            self.env.process(self.dispatcher(self.dispatcher_task))
            body = self.dispatched_pool_thread
        else:
            body = self.accepting_pool_thread
        for i in range(self.threads):
            self.env.process(body(PoolThread(self.task(f"pool/{i}"))))

    # -- arrivals ------------------------------------------------------------------------

    def submit(self, req: Request) -> None:
        if self.use_dispatcher:
            self._dispatcher_event(req)
        else:
            super().submit(req)

    def data_ready(self, req: Request) -> None:
        conn = req.conn
        if self.use_dispatcher and conn.armed:  # registered in epoll: it reports readable
            conn.armed = False
            self._dispatcher_event(req)
            return
        reader, req.reader = req.reader, None
        if reader is not None:
            self.sched.wake(reader)

    def _dispatcher_event(self, req: Request) -> None:
        """Readiness on the listener or a registered connection (edge-triggered: every arrival,
        whether a thread has the connection or not): epoll's ready list grows."""
        self.ready.append(req)
        if self.dispatcher_asleep:
            self.dispatcher_asleep = False
            self.dispatcher_wakeups += 1
            self.sched.wake(self.dispatcher_task)

    def _wake_handler(self, conn: Connection) -> None:
        """Only a thread asleep in recv() is woken; one waiting for the GIL is the GIL's."""
        if conn.waiting:
            conn.waiting = False
            self.sched.wake(conn.handler)

    # -- the dispatcher pool -------------------------------------------------------------

    def dispatcher(self, task: Task):
        """pool.py's dispatcher: epoll; accept and register new connections; hand each
        request that arrived to a pool thread."""
        sched, gil = self.sched, self.gil
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            yield from gil.drop(task)  # epoll.poll() drops the GIL around epoll_wait
            if not self.ready:
                self.dispatcher_asleep = True
                yield sched.block(task)  # nothing ready: epoll_wait sleeps
                # epoll_wait collects the ready list once the woken task runs - after its
                # wake-up latency (Scheduler.running), so what arrived meanwhile comes with it
                # (wrk's burst)
                yield from sched.running(task)
            yield from gil.take(task)
            events, self.ready = self.ready, deque()
            for req in events:
                conn = req.conn
                if req.opens and not conn.accepted:  # the listener: accept, register
                    conn.accepted = True
                    yield from gil.call(task, self.accept_cost)
                    if req.data_at <= self.env.now:
                        self.ready.append(req)  # readable already: the next epoll_wait says so
                    else:
                        conn.armed = True
                    continue
                yield from gil.py(task, self.dispatch_cost)
                if conn.handler is not None:  # a thread has it: hand it off again when done
                    conn.pending.append(req)
                    continue
                conn.handler = BUSY
                yield from self._hand_off(task, req)

    def _hand_off(self, task: Task, req: Request):
        """Give ``req`` to the most recently idle pool thread - wake it: release its lock, a
        futex wake - or queue it for the next thread that finishes."""
        self.handoffs += 1
        if not self.stack:
            self.backlog.append(req)
            return
        thread = self.stack.pop()
        thread.req = req
        if thread.asleep:
            thread.asleep = False
            self.pool_wakeups += 1
            yield from self.sched.wake_from(task, thread.task)

    def dispatched_pool_thread(self, thread: PoolThread):
        """Sleep on its own lock until handed a request, serve it, drain the backlog, idle."""
        sched, gil, task = self.sched, self.gil, thread.task
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            if self.backlog:
                req = self.backlog.popleft()
            else:
                self.stack.append(thread)
                yield from gil.drop(task)
                if thread.req is None:
                    thread.asleep = True
                    yield sched.block(task)
                yield from gil.take(task)
                req, thread.req = thread.req, None
            yield from self.py_serve(task, req, dispatched=True)

    def accepting_pool_thread(self, thread: PoolThread):
        """A Python thread in accept() on the shared listener (no dispatcher)."""
        sched, gil, task = self.sched, self.gil, thread.task
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            if self.backlog:
                req = self.backlog.popleft()
                yield from self.py_serve(task, req, accept=req.opens)
                continue
            self.idle.append(thread)
            thread.asleep = True
            yield from gil.drop(task)
            if thread.asleep:
                yield sched.block(task)  # in accept()
            yield from gil.take(task)
            if not self.backlog:
                self.spurious_wakeups += 1

    # -- a thread per connection -----------------------------------------------------------

    def accept_forever(self, task: Task):
        """per_connection.py's acceptor: poll, accept, start a thread, wait until it runs."""
        sched, gil = self.sched, self.gil
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            if not self.backlog:
                yield from gil.drop(task)
                if not self.backlog:
                    yield sched.block(task)  # in poll() on the listener
                yield from gil.take(task)
                continue
            req = self.backlog.popleft()
            yield from gil.call(task, self.accept_cost)  # accept4()
            before, after, _, _ = THREAD_START_SPLIT  # (measured shares, see above)
            yield from gil.py(task, self.create_cost * before)  # Connection(), Thread(), clone()
            child = self.task(f"request/{req.id}")
            starter = Starter()
            started = sched.start(child, parent=task)  # clone(): the new thread is runnable
            self.env.process(self.request_thread(child, started, req, starter))
            yield from sched.checkpoint(task)  # the clone's return: it may preempt us
            # Thread.start() after _start_new_thread(): self._started.wait() - Event.wait()
            # takes the Condition's lock, Condition.wait() allocates a waiter lock, takes it
            # and releases the Condition - until the second acquire of the waiter lock blocks
            yield from gil.py(task, self.create_cost * after)
            if not starter.started:  # the waiter lock's acquire blocks, GIL dropped
                yield from gil.drop(task)
                if not starter.started:
                    starter.waiter = task
                    yield sched.block(task)
                yield from gil.take(task)

    def request_thread(self, task: Task, started: simpy.Event, req: Request,
                       starter: Starter | None = None):
        """The new thread: take the GIL, tell the acceptor it runs, serve, close, exit."""
        gil = self.gil
        yield started
        yield from gil.take(task)
        _, _, to_set, to_recv = THREAD_START_SPLIT
        yield from gil.py(task, self.create_cost * to_set)  # _bootstrap_inner up to set()
        if starter is not None:  # self._started.set(): release the acceptor's lock
            starter.started = True
            waiter, starter.waiter = starter.waiter, None
            if waiter is not None:  # a futex wake
                yield from self.sched.wake_from(task, waiter)
        yield from gil.py(task, self.create_cost * to_recv)  # set()'s return, run(), _serve()
        yield from self.py_serve(task, req)
        yield from gil.drop(task)
        self.sched.exit(task)

    def connection_thread(self, task: Task, conn):
        """Keep-alive thread per connection under the GIL: recv(), serve, repeat."""
        sched, gil = self.sched, self.gil
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            if not conn.pending:
                yield from gil.drop(task)  # recv() blocks with the GIL dropped
                if not conn.pending:
                    conn.waiting = True
                    yield sched.block(task)
                yield from gil.take(task)
                continue
            req = conn.pending.popleft()
            yield from self.py_serve(task, req, accept=req.opens)
            if req.eof:  # the client closed: the thread exits
                conn.handler = None
                yield from gil.drop(task)
                sched.exit(task)
                return

    # -- one request, as the Python server does it ----------------------------------------

    def py_recv(self, task: Task, req: Request):
        """recv() with the GIL dropped; it blocks until the request's bytes are here."""
        gil = self.gil
        if req.data_at > self.env.now:
            yield from gil.drop(task)
            if req.data_at > self.env.now:
                req.reader = task
                yield self.sched.block(task)
            yield from gil.take(task)
        yield from gil.call(task, 0.0)  # recv() returns the request

    def py_serve(self, task: Task, req: Request, accept: bool = False, dispatched: bool = False):
        """recv, parse, send, close (a connection per request), log; then, a keep-alive
        connection the dispatcher gave it (``dispatched``), let it go or hand it off again."""
        env, sched, gil, conn = self.env, self.sched, self.gil, req.conn
        if accept:
            yield from gil.call(task, self.accept_cost)
        yield from self.py_recv(task, req)
        if req.eof:  # recv() returned 0: the client closed, so close our side
            yield from gil.call(task, self.close_cost)
            self.recorder.closed(req)
            return
        dispatched = dispatched and not req.closes
        yield from gil.py(task, self.parse_cost)
        if req.userspace:
            yield from gil.call(task, self.handoff_cost)
            yield from gil.py(task, self.log_cost)
            self.userspace.submit(req)
            if dispatched:
                yield from self._let_go(task, conn)
            return
        # send_data: blocking send() calls, the GIL dropped around each
        while True:
            n = conn.writable(env.now, req.left)
            if n <= 0.0:
                yield from gil.drop(task)
                yield from self.sleep_until(task, conn.space_at(env.now))
                yield from gil.take(task)
                continue
            req.left -= n
            yield from gil.drop(task)
            yield from sched.run(task, self.send_cost + self.byte_cost * n)
            conn.write(n, env.now)
            if req.left <= 0.0:
                self.recorder.complete(req, conn.drained_at(env.now) + self.one_way)
                yield from gil.take(task)
                break
            yield from gil.take(task)
        if req.closes:  # unregister, shutdown, close: system calls
            yield from gil.call(task, self.close_cost)
        yield from gil.py(task, self.log_cost)
        if dispatched:
            yield from self._let_go(task, conn)

    def _let_go(self, task: Task, conn: Connection):
        """pool.py's finished(): the thread is done with a keep-alive connection - it lets it go
        (registered, nothing to re-arm), or hands it off again if bytes came meanwhile."""
        if conn.pending:
            self.again_handoffs += 1
            yield from self._hand_off(task, conn.pending.popleft())
        else:
            conn.handler = None

    def counters(self) -> dict[str, float]:
        gil = self.gil
        return {
            **super().counters(),
            "gil_cond_waits": gil.waits,
            "gil_mutex_waits": getattr(gil, "mutex_waits", 0),
            "gil_forced": gil.forced,
        }
