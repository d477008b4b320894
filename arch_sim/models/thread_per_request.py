"""kHTTPd <= 0.1.2, the old design: a thread handles one request at a time, with blocking calls.

Each request walks the lifecycle inside one thread:

    accept        take the connection            (the acceptor, or the pool thread itself)
    wait_headers  recv() - block until the request has arrived
    send_data     write() the file; block whenever the socket buffer is full until the
                  client has drained half of it
    logging       log line; close the connection unless it is kept alive
    (userspace    requests the static path cannot serve are handed to the user-space server)

Every block is a voluntary reschedule and every wake-up goes through the scheduler (and on a
busy machine may preempt someone: an involuntary one).  That is why this design reschedules in
proportion to load.

Threading, as in ``real_servers.threaded``:

* ``threads = 0`` - one thread per connection.  Open workload: an acceptor thread accepts
  each connection and creates a thread for it, which exits after the reply.  Closed workload:
  each keep-alive connection has its own thread, blocking in recv() between requests.
* ``threads = N`` - an Apache-like pool: idle threads wait (first come, first served) for
  the next connection or keep-alive request and serve it whole.
* ``threads = N`` with ``dispatcher`` - ``real_servers.threaded``'s pool: a dispatcher thread
  waits in epoll over the listener and the idle keep-alive connections (one-shot); when a
  request arrives it pops the most recently idle pool thread (LIFO) and wakes exactly that
  thread (each sleeps on its own lock) - or queues the connection when none is idle, for the
  next thread that finishes.  The pool thread recv()s, parses, sends with blocking calls,
  re-arms the connection in epoll and goes idle.

With ``gil`` (CPython) the threads also share the interpreter lock (:mod:`gil`): Python code
runs only under it, and every system call drops and retakes it.  A woken thread that preempts
a GIL holder - the dispatcher that just woke it, say - sleeps again until the holder drops it:
the extra voluntary switches a Python hand-off costs.
"""

from __future__ import annotations

from collections import deque

import simpy

from arch_sim.models.gil import Gil, NoGil
from arch_sim.models.params import ModelParams
from arch_sim.models.scheduler import US, Scheduler, Task
from arch_sim.models.userspace import UserspaceServer
from arch_sim.models.workload import Recorder, Request


class PoolThread:
    """A pool thread and the request it was handed while it slept."""

    __slots__ = ("task", "req", "asleep")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.req: Request | None = None
        self.asleep = False  # blocked on its own lock (dispatcher pool)


class ThreadPerRequest:
    """The old design on top of the scheduler model."""

    arch = "thread-per-request"
    model_name = "simpy:thread-per-request"

    def __init__(self, env: simpy.Environment, sched: Scheduler, params: ModelParams,
                 recorder: Recorder, threads: int | None = None) -> None:
        s, net = params.server, params.network
        self.env = env
        self.sched = sched
        self.recorder = recorder
        self.threads = s.threads if threads is None else threads
        self.accept_cost = s.accept_us * US
        self.create_cost = s.thread_create_us * US
        self.parse_cost = s.parse_us * US
        self.send_cost = s.send_us * US
        self.byte_cost = s.send_us_per_kb * US / 1024.0
        self.log_cost = s.log_us * US
        self.close_cost = s.close_us * US
        self.handoff_cost = s.userspace_handoff_us * US
        self.one_way = net.one_way_us * US
        self.refill = s.cold_refill_us * US  # its code's cache refill after an idle CPU
        self.userspace = UserspaceServer(env, sched, params, recorder)
        self.backlog: deque[Request] = deque()  # accepted by the kernel, no thread yet
        self.idle: deque[PoolThread] = deque()  # pool threads waiting for work
        self.created = 0
        self.acceptor: Task | None = None
        self.dispatch_cost = s.dispatch_us * US
        self.use_dispatcher = self.threads > 0 and s.dispatcher
        self.gil = Gil(env, sched, s.gil_interval_ms * 1e-3) if s.gil else NoGil(sched)
        # the Python paths model system calls one by one (GIL drops); the others batch work
        self.python = self.use_dispatcher or self.gil.enabled
        self.handoffs = 0
        self.dispatcher_wakeups = 0
        self.pool_wakeups = 0  # hand-offs that woke a pool thread asleep on its own lock
        if self.use_dispatcher:
            self.ready: deque[Request] = deque()  # epoll's ready list
            self.stack: list[PoolThread] = []  # idle pool threads, most recently idle last
            self.dispatcher_task = self.task("dispatcher")
            self.dispatcher_asleep = False
            env.process(self.py_dispatcher(self.dispatcher_task))
            for i in range(self.threads):
                env.process(self.py_pool_thread(PoolThread(self.task(f"pool/{i}"))))
        elif self.threads > 0:
            pool = self.py_pool_thread_fcfs if self.python else self.pool_thread
            for i in range(self.threads):
                env.process(pool(PoolThread(self.task(f"pool/{i}"))))

    def task(self, name: str) -> Task:
        """One of the server's threads ("pool/3": the code before the slash is what it runs)."""
        return Task(name, refill=self.refill)

    # -- arrivals ------------------------------------------------------------------------

    def submit(self, req: Request) -> None:
        """A new connection (open) or the next request on a keep-alive connection (closed)."""
        if self.use_dispatcher:
            self._dispatcher_event(req)
        elif self.threads > 0:
            self._hand_to_pool(req)
        elif req.new_conn:
            self.backlog.append(req)
            if self.acceptor is None:
                self.acceptor = self.task("acceptor")
                self.env.process(self.accept_forever(self.acceptor))
            else:
                self.sched.wake(self.acceptor)
        else:
            self._keepalive_request(req)

    def _hand_to_pool(self, req: Request) -> None:
        if self.idle:
            thread = self.idle.popleft()
            thread.req = req
            if self.python:
                if thread.asleep:
                    thread.asleep = False
                    self.pool_wakeups += 1
                    self.sched.wake(thread.task)
            else:
                self.pool_wakeups += 1
                self.sched.wake(thread.task)
        else:
            self.backlog.append(req)

    def _dispatcher_event(self, req: Request) -> None:
        """Readiness on the listener or an armed connection: epoll's ready list grows."""
        conn = req.conn
        if not req.new_conn and conn.handler is not None:  # fd not re-armed yet (one-shot)
            conn.pending.append(req)
            return
        self.ready.append(req)
        if self.dispatcher_asleep:
            self.dispatcher_asleep = False
            self.dispatcher_wakeups += 1
            self.sched.wake(self.dispatcher_task)

    def _keepalive_request(self, req: Request) -> None:
        conn = req.conn
        conn.pending.append(req)
        if conn.handler is None:
            conn.handler = self.task(f"conn/{self.created}")
            self.created += 1
            body = self.py_connection_thread if self.python else self.connection_thread
            self.env.process(body(conn.handler, conn))
        elif self.python:
            if conn.waiting:  # it sleeps in recv() (not on the GIL)
                conn.waiting = False
                self.sched.wake(conn.handler)
        else:
            self.sched.wake(conn.handler)  # no-op unless it sleeps in recv()

    # -- the threads ---------------------------------------------------------------------

    def accept_forever(self, task: Task):
        """Thread per connection: accept, create a thread for the connection, repeat."""
        gil, python = self.gil, self.python
        yield self.sched.start(task)
        yield from gil.take(task)
        while True:
            if not self.backlog:
                if python:
                    yield from gil.drop(task)
                    if not self.backlog:
                        yield self.sched.block(task)  # in accept()
                    yield from gil.take(task)
                else:
                    yield self.sched.block(task)  # in accept()
                continue
            req = self.backlog.popleft()
            if python:
                yield from gil.call(task, self.accept_cost)
                yield from gil.py(task, self.create_cost)
            else:
                yield from self.sched.run(task, self.accept_cost + self.create_cost)
            self.env.process(self.request_thread(req))

    def request_thread(self, req: Request):
        """Serve one connection's request, then exit."""
        task = self.task(f"request/{req.id}")
        yield self.sched.start(task)
        if self.python:
            yield from self.gil.take(task)
            yield from self.py_serve(task, req)
            yield from self.gil.drop(task)
        else:
            yield from self.serve(task, req)
        self.sched.exit(task)

    def connection_thread(self, task: Task, conn):
        """Keep-alive thread per connection: recv() the next request, serve it, repeat."""
        yield self.sched.start(task)
        while True:
            if not conn.pending:
                yield self.sched.block(task)  # in recv(), waiting for the client
                continue
            yield from self.serve(task, conn.pending.popleft())

    def pool_thread(self, thread: PoolThread):
        """Apache-like pool: take the next connection (sleep if none), serve it whole."""
        task = thread.task
        yield self.sched.start(task)
        while True:
            if self.backlog:
                req = self.backlog.popleft()
            else:
                self.idle.append(thread)
                yield self.sched.block(task)  # in accept()
                req, thread.req = thread.req, None
            yield from self.serve(task, req, accept=req.new_conn)

    # -- one request, start to finish ------------------------------------------------------

    def serve(self, task: Task, req: Request, accept: bool = False):
        """accept -> wait_headers -> send_data -> logging, blocking wherever the call would."""
        env, sched, conn = self.env, self.sched, req.conn
        work = self.accept_cost if accept else 0.0
        # wait_headers: recv() blocks until the request is here
        if req.data_at > env.now + work:
            if work:
                yield from sched.run(task, work)
                work = 0.0
            if req.data_at > env.now:
                yield from self.sleep_until(task, req.data_at)
        work += self.parse_cost
        if req.userspace:  # hand the connection to the user-space server
            yield from sched.run(task, work + self.handoff_cost + self.log_cost)
            self.userspace.submit(req)
            return
        log_work = self.log_cost + (self.close_cost if req.new_conn else 0.0)
        # send_data: write() as much as the socket buffer takes; block when it is full
        while True:
            n = conn.writable(env.now, req.left)
            if n <= 0.0:
                if work:
                    yield from sched.run(task, work)
                    work = 0.0
                yield from self.sleep_until(task, conn.space_at(env.now))
                continue
            req.left -= n
            work += self.send_cost + self.byte_cost * n
            if req.left <= 0.0:
                break
            yield from sched.run(task, work)
            work = 0.0
            conn.write(n, env.now)
        # logging: log line (and close, for a one-request connection) after the last write
        yield from sched.run(task, work + log_work)
        sent = env.now - log_work
        conn.write(n, sent)
        self.recorder.complete(req, conn.drained_at(sent) + self.one_way)

    def sleep_until(self, task: Task, t: float):
        """Block (a voluntary reschedule) until time t, when the awaited event happens."""
        woken = self.sched.block(task)
        timer = self.env.timeout(t - self.env.now)
        timer.callbacks.append(lambda _ev: self.sched.wake(task))
        yield woken

    # -- the Python server: system call by system call, under the GIL -------------------------

    def py_dispatcher(self, task: Task):
        """real_servers.threaded.pool's dispatcher: epoll, then hand each request to a thread."""
        sched, gil = self.sched, self.gil
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            yield from gil.drop(task)  # epoll.poll() drops the GIL around epoll_wait
            if not self.ready:
                self.dispatcher_asleep = True
                yield sched.block(task)  # nothing ready: epoll_wait sleeps
            yield from gil.take(task)
            events, self.ready = self.ready, deque()
            for req in events:
                yield from gil.py(task, self.dispatch_cost + (
                    self.accept_cost if req.new_conn else 0.0))
                self.handoffs += 1
                if self.stack:  # wake the most recently idle thread: release its lock
                    thread = self.stack.pop()
                    thread.req = req
                    if thread.asleep:
                        thread.asleep = False
                        self.pool_wakeups += 1
                        sched.wake(thread.task)
                        yield from sched.checkpoint(task)  # the futex wake's return
                else:
                    self.backlog.append(req)

    def py_pool_thread(self, thread: PoolThread):
        """A dispatcher pool thread: sleep on its own lock, serve, drain the backlog, idle."""
        return self._py_pool_loop(thread, self.stack,
                                  lambda task, req: self.py_serve(task, req, rearm=True))

    def py_pool_thread_fcfs(self, thread: PoolThread):
        """A pool thread without a dispatcher, under the GIL: takes new work itself."""
        return self._py_pool_loop(thread, self.idle,
                                  lambda task, req: self.py_serve(task, req, accept=req.new_conn))

    def _py_pool_loop(self, thread: PoolThread, idle, serve):
        """Under the GIL: take queued work or wait idle (blocked with the GIL dropped - on the
        thread's own lock, or in accept()); *serve* handles each request."""
        sched, gil, task = self.sched, self.gil, thread.task
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            if self.backlog:
                req = self.backlog.popleft()
            else:
                idle.append(thread)
                yield from gil.drop(task)
                if thread.req is None:
                    thread.asleep = True
                    yield sched.block(task)
                yield from gil.take(task)
                req, thread.req = thread.req, None
            yield from serve(task, req)

    def py_connection_thread(self, task: Task, conn):
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
            yield from self.py_serve(task, conn.pending.popleft())

    def py_serve(self, task: Task, req: Request, accept: bool = False, rearm: bool = False):
        """One request as the Python server does it: recv, parse, send, (re-arm,) log."""
        env, sched, gil, conn = self.env, self.sched, self.gil, req.conn
        if accept:
            yield from gil.call(task, self.accept_cost)
        if req.data_at > env.now:  # recv() blocks until the request is here
            yield from gil.drop(task)
            yield from self.sleep_until(task, req.data_at)
            yield from gil.take(task)
        yield from gil.call(task, 0.0)  # recv() returns the request
        if rearm:
            conn.handler = task  # busy: the connection is not armed in epoll
        yield from gil.py(task, self.parse_cost)
        if req.userspace:
            yield from gil.call(task, self.handoff_cost)
            yield from gil.py(task, self.log_cost)
            self.userspace.submit(req)
            if rearm:
                conn.handler = None
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
        if rearm:  # epoll.modify(): the connection may be dispatched again
            yield from gil.call(task, 0.0)
            conn.handler = None
            if conn.pending:
                self._dispatcher_event(conn.pending.popleft())
        yield from gil.py(task, self.log_cost + (self.close_cost if req.new_conn else 0.0))

    def counters(self) -> dict[str, float]:
        gil = self.gil
        return {
            "gil_cond_waits": gil.waits,
            "gil_mutex_waits": getattr(gil, "mutex_waits", 0),
            "pool_wakeups": self.pool_wakeups,
            "gil_forced": gil.forced,
            "handoffs": self.handoffs,
            "dispatcher_wakeups": self.dispatcher_wakeups,
        }
