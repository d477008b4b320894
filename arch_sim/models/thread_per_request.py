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

This module models kernel threads (kHTTPd's own, no interpreter lock) in the two shapes the
seed's "a number of threads was handling one request each" allows [KHTTPD-old]:

* ``threads = 0`` - an acceptor thread accepts each connection and forks a thread for it
  (the scheduler splits the acceptor's time slice with the child [K22-fork]), which serves the
  connection and exits.  A keep-alive connection keeps its thread, blocked in recv() between
  requests.
* ``threads = N`` - a pool of N threads, each blocked in accept() on the listening socket,
  each serving a whole connection.  A connection arriving wakes one of them - or, with
  ``SchedulerParams.accept_wakes_all`` (Linux 2.2's wait queues [K22-wake-all]), every one
  asleep in accept(): the first to run takes it, the others find nothing and sleep again (the
  "thundering herd"; each is a reschedule).

:mod:`~arch_sim.models.python_threads` models the real Python server instead (a dispatcher
thread and the GIL); :func:`make` picks the family a preset describes.
"""

from __future__ import annotations

from collections import deque
from functools import partial

import simpy

from arch_sim.models.clock import call_after, fire
from arch_sim.models.network import Connection, Request
from arch_sim.models.params import ModelParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import US, Scheduler, Task
from arch_sim.models.userspace import UserspaceServer


class PoolThread:
    """A pool thread and the request it was handed while it slept."""

    __slots__ = ("task", "req", "asleep", "woken")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.req: Request | None = None
        self.asleep = False  # blocked on its own lock (dispatcher pool)
        self.woken = None  # its scheduler on_dispatch hook while asleep in accept(), if any


class ThreadPerRequest:
    """The old design on top of the scheduler model: kernel threads, no interpreter lock."""

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
        self.poll_cost = s.poll_item_us * US
        self.one_way = net.one_way_us * US
        self.wake_all = params.scheduler.accept_wakes_all
        self.refill = s.cold_refill_us * US  # its code's cache refill after an idle CPU
        self.preemptible = not s.kernel_threads
        self.userspace = UserspaceServer(env, sched, params, recorder)
        self.backlog: deque[Request] = deque()  # accepted by the kernel, no thread yet
        self.idle: deque[PoolThread] = deque()  # pool threads asleep in accept()
        self.created = 0
        self.acceptor: Task | None = None
        self.handoffs = 0
        self.dispatcher_wakeups = 0
        self.again_handoffs = 0  # (dispatcher pool) hand-offs by a thread done with a request
        self.pool_wakeups = 0  # threads woken to take a connection (or find none)
        self.spurious_wakeups = 0  # ... that found none (wake-all)
        self.start_threads()

    def start_threads(self) -> None:
        for i in range(self.threads):
            self.env.process(self.pool_thread(PoolThread(self.task(f"pool/{i}"))))

    def task(self, name: str) -> Task:
        """One of the server's threads ("pool/3": the code before the slash is what it runs)."""
        return Task(name, refill=self.refill, preemptible=self.preemptible)

    # -- arrivals ------------------------------------------------------------------------

    def submit(self, req: Request) -> None:
        """A new connection (open) or the next request on a keep-alive connection (closed)."""
        if self.threads > 0:
            self._to_pool(req)
        elif req.opens and req.closes:  # a connection per request: accept, a thread for it
            self.backlog.append(req)
            if self.acceptor is None:
                self.acceptor = self.task("acceptor")
                self.env.process(self.accept_forever(self.acceptor))
            else:
                self.sched.wake(self.acceptor)
        else:
            self._keepalive_request(req)

    def data_ready(self, req: Request) -> None:
        """The request's bytes arrived: wake the thread blocked in recv() for them."""
        reader, req.reader = req.reader, None
        if reader is not None:
            self.sched.wake(reader)

    def _to_pool(self, req: Request) -> None:
        """The connection joins the accept queue; sleepers in accept() are woken - one, or
        (wake-all) every one of them."""
        self.backlog.append(req)
        if not self.idle:
            return
        if self.wake_all and req.opens:
            woken, self.idle = self.idle, deque()
        else:
            woken = (self.idle.popleft(),)
        for thread in woken:
            thread.asleep = False
            self.pool_wakeups += 1
            self.sched.wake(thread.task)

    def _keepalive_request(self, req: Request) -> None:
        conn = req.conn
        conn.pending.append(req)
        if conn.handler is None:
            conn.handler = self.task(f"conn/{self.created}")
            self.created += 1
            self.env.process(self.connection_thread(conn.handler, conn))
        else:
            self._wake_handler(conn)

    def _wake_handler(self, conn: Connection) -> None:
        """A request arrived on a connection whose thread exists: wake it if it sleeps in
        recv() (the scheduler's wake is a no-op for a running thread)."""
        self.sched.wake(conn.handler)

    # -- the threads ---------------------------------------------------------------------

    def accept_forever(self, task: Task):
        """Thread per connection: accept, fork a thread for the connection, repeat."""
        yield self.sched.start(task)
        while True:
            if not self.backlog:
                yield self.sched.block(task)  # in accept()
                continue
            req = self.backlog.popleft()
            yield from self.sched.run(task, self.accept_cost + self.create_cost)
            child = self.task(f"request/{req.id}")
            started = self.sched.start(child, parent=task)
            self.env.process(self.request_thread(child, started, req))
            yield from self.sched.checkpoint(task)  # the fork's return

    def request_thread(self, task: Task, started: simpy.Event, req: Request):
        """Serve one connection's request, then exit."""
        yield started
        yield from self.serve(task, req)
        self.sched.exit(task)

    def connection_thread(self, task: Task, conn):
        """Keep-alive thread per connection: recv() the next request, serve it, repeat."""
        yield self.sched.start(task)
        while True:
            if not conn.pending:
                yield self.sched.block(task)  # in recv(), waiting for the client
                continue
            req = conn.pending.popleft()
            yield from self.serve(task, req, accept=req.opens)
            if req.eof:  # the client closed: the thread exits
                conn.handler = None
                self.sched.exit(task)
                return

    def pool_thread(self, thread: PoolThread):
        """A pool thread in accept(): take the next connection, serve it whole; woken with
        nothing to take (another thread got it first), look and sleep again."""
        task = thread.task
        if not task.preemptible:  # a kernel thread: a herd wake-up need not resume us
            thread.woken = partial(self._woken_in_accept, thread)
        yield self.sched.start(task)
        while True:
            if self.backlog:
                req = self.backlog.popleft()
                yield from self.serve(task, req, accept=req.opens)
                continue
            self.idle.append(thread)
            thread.asleep = True
            yield self.sched.block(task, on_dispatch=thread.woken)  # in accept()
            if not self.backlog:
                self.spurious_wakeups += 1
                yield from self.sched.run(task, self.poll_cost)

    def _woken_in_accept(self, thread: PoolThread, event: simpy.Event) -> None:
        """:meth:`pool_thread` woken in accept(), run by the scheduler in place of the resume
        (``on_dispatch``): with a connection to take, the generator resumes and takes it;
        with none (another thread took it first: the herd) this does what the generator
        would - count it, poll, sleep in accept() again on the same event - without it."""
        if self.backlog:
            fire(event)
            return
        self.spurious_wakeups += 1
        self.sched.run_outside(thread.task, self.poll_cost, self._polled, thread, event)

    def _polled(self, thread: PoolThread, event: simpy.Event) -> None:
        """After a herd wake-up's poll: a connection that came meanwhile resumes the generator
        (after its poll it would take it too), else the thread sleeps in accept() again."""
        if self.backlog:
            fire(event)
            return
        self.idle.append(thread)
        thread.asleep = True
        self.sched.reblock(thread.task, event, thread.woken)

    # -- one request, start to finish ------------------------------------------------------

    def recv(self, task: Task, req: Request):
        """wait_headers: recv() blocks (a voluntary reschedule) until the request is here."""
        if req.data_at > self.env.now:
            req.reader = task
            yield self.sched.block(task)

    def serve(self, task: Task, req: Request, accept: bool = False):
        """accept -> wait_headers -> send_data -> logging, blocking wherever the call would."""
        env, sched, conn = self.env, self.sched, req.conn
        work = self.accept_cost if accept else 0.0
        if req.data_at > env.now + work:  # recv() would block
            if work:
                yield from sched.run(task, work)
                work = 0.0
            yield from self.recv(task, req)
        if req.eof:  # recv() returned 0: the client closed, so close our side
            yield from sched.run(task, work + self.close_cost)
            self.recorder.closed(req)
            return
        work += self.parse_cost
        if req.userspace:  # hand the connection to the user-space server
            yield from sched.run(task, work + self.handoff_cost + self.log_cost)
            self.userspace.submit(req)
            return
        log_work = self.log_cost + (self.close_cost if req.closes else 0.0)
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
        sent = env.now - self.after_send(task, work + log_work, log_work)
        conn.write(n, sent)
        self.recorder.complete(req, conn.drained_at(sent) + self.one_way)

    def after_send(self, task: Task, work: float, log_work: float) -> float:
        """How long before the end of a request's last burst (``work`` of CPU, ``log_work`` of
        it after the last write) its reply left: the log work, as costed."""
        return log_work

    def sleep_until(self, task: Task, t: float):
        """Block (a voluntary reschedule) until time t, when the awaited event happens."""
        woken = self.sched.block(task)
        call_after(self.env, t - self.env.now, self.sched.wake, task)
        yield woken

    def counters(self) -> dict[str, float]:
        return {
            "gil_cond_waits": 0,
            "gil_mutex_waits": 0,
            "pool_wakeups": self.pool_wakeups,
            "spurious_wakeups": self.spurious_wakeups,
            "gil_forced": 0,
            "handoffs": self.handoffs,
            "dispatcher_wakeups": self.dispatcher_wakeups,
            "again_handoffs": self.again_handoffs,
        }


def make(env: simpy.Environment, sched: Scheduler, params: ModelParams, recorder: Recorder,
         threads: int | None = None) -> ThreadPerRequest:
    """The thread-per-request model a preset describes: kernel threads, or the real Python
    server (a dispatcher and pool threads, or a thread per connection, under the GIL)."""
    s = params.server
    n = s.threads if threads is None else threads
    if s.gil or (n > 0 and s.dispatcher):
        from arch_sim.models.python_threads import PythonThreads

        return PythonThreads(env, sched, params, recorder, threads=threads)
    return ThreadPerRequest(env, sched, params, recorder, threads=threads)
