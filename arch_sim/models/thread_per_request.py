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
"""

from __future__ import annotations

from collections import deque

import simpy

from arch_sim.models.params import ModelParams
from arch_sim.models.scheduler import US, Scheduler, Task
from arch_sim.models.userspace import UserspaceServer
from arch_sim.models.workload import Recorder, Request


class PoolThread:
    """A pool thread and the request it was handed while it slept."""

    __slots__ = ("task", "req")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.req: Request | None = None


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
        self.userspace = UserspaceServer(env, sched, params, recorder)
        self.backlog: deque[Request] = deque()  # accepted by the kernel, no thread yet
        self.idle: deque[PoolThread] = deque()  # pool threads waiting for work
        self.created = 0
        if self.threads > 0:
            for i in range(self.threads):
                env.process(self.pool_thread(PoolThread(Task(f"pool/{i}"))))
        self.acceptor: Task | None = None

    # -- arrivals ------------------------------------------------------------------------

    def submit(self, req: Request) -> None:
        """A new connection (open) or the next request on a keep-alive connection (closed)."""
        if self.threads > 0:
            self._hand_to_pool(req)
        elif req.new_conn:
            self.backlog.append(req)
            if self.acceptor is None:
                self.acceptor = Task("acceptor")
                self.env.process(self.accept_forever(self.acceptor))
            else:
                self.sched.wake(self.acceptor)
        else:
            self._keepalive_request(req)

    def _hand_to_pool(self, req: Request) -> None:
        if self.idle:
            thread = self.idle.popleft()
            thread.req = req
            self.sched.wake(thread.task)
        else:
            self.backlog.append(req)

    def _keepalive_request(self, req: Request) -> None:
        conn = req.conn
        conn.pending.append(req)
        if conn.handler is None:
            conn.handler = Task(f"conn/{self.created}")
            self.created += 1
            self.env.process(self.connection_thread(conn.handler, conn))
        else:
            self.sched.wake(conn.handler)  # no-op unless it sleeps in recv()

    # -- the threads ---------------------------------------------------------------------

    def accept_forever(self, task: Task):
        """Thread per connection: accept, create a thread for the connection, repeat."""
        yield self.sched.start(task)
        while True:
            if not self.backlog:
                yield self.sched.block(task)  # in accept()
                continue
            req = self.backlog.popleft()
            yield from self.sched.run(task, self.accept_cost + self.create_cost)
            self.env.process(self.request_thread(req))

    def request_thread(self, req: Request):
        """Serve one connection's request, then exit."""
        task = Task(f"request/{req.id}")
        yield self.sched.start(task)
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

    def counters(self) -> dict[str, float]:
        return {}
