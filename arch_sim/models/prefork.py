"""Apache 1.3's prefork design (``real_servers.prefork``): N single-threaded worker processes.

(Apache's own pool grows and shrinks between its spare-server limits [APACHE-13-pool]; the
real server and this model keep ``workers`` processes, 64 by default.)

A master process opens the listening socket and forks the workers; each worker's life is

    accept        block in accept() on the shared listener until a connection is there
    wait_headers  recv() - block until the request has arrived
    send_data     send the reply; block whenever the socket buffer is full
    logging       log line; on keep-alive recv() the next request on the same connection,
                  else close it and go back to accept()

so a worker holds its connection for as long as the connection lives, and the kernel, not the
server, decides which worker runs: every block is a voluntary reschedule and every wake-up goes
through the scheduler, as in the thread pool of :mod:`~arch_sim.models.thread_per_request`
(whose lifecycle code this model reuses).  What makes the workers processes:

* **no interpreter lock**, in every preset: each worker has its own interpreter and one thread,
  so nothing is shared to wait for (the real server runs Python, but a worker never waits for
  another worker's GIL);
* **an address space each**: a switch between two workers loads the other worker's page tables
  (``SchedulerParams.mm_switch_us`` [LX-switch-mm]: in a ``host`` preset what calibrate
  measures a switch into another of 64 processes to add - a cold address space and working
  set - and 0 where it did not measure it, or in the period presets, whose ``switch_us`` was
  measured between processes already);
* **user processes**: the scheduler may preempt them (``kernel_threads`` false in the presets'
  ``[server.prefork]``), unlike kHTTPd's kernel threads.

A new connection wakes one worker asleep in accept() (Linux >= 2.3: an exclusive wait,
[K24-accept-exclusive]) - or, with ``SchedulerParams.accept_wakes_all`` (Linux 2.2
[K22-accept-wake-all]), every one of them: the first to run takes it, the others find the
listen queue empty and sleep again (the thundering herd: ``spurious_wakeups``).

Each repetition of ``arch-sim bench`` starts a new wrk, whose 64 connections are accepted and
then closed inside the measured window: a worker asleep in accept() is woken for each, and each
one's end is a recv() that returns end of file - two switches per connection beyond the one per
request.  ``simulate --like`` models those windows (:mod:`~arch_sim.models.bench_window`); a
plain run keeps its connections open throughout (the steady state, about 1.00 per request at
100 requests/s, as a window in the middle of one wrk run measures: 1.04-1.09).

At saturation a real worker's recv() finds its next request already there when wrk, on the
other CPU, answered the reply while the worker was still busy after its last send; the clients
answer a reply as of its own time (:class:`~arch_sim.models.wrk_clients.ClosedClients`), so this
model does too whenever the work after the send outlasts the client's turnaround (what was
traced: docs/FIDELITY.md, "Prefork").

The work after a worker's last send (shutdown, drain, close, the way back to accept()) runs as
slowly as the burst it ends (:meth:`Prefork.after_send`): a cold refill or a slow jitter slows
every part of the code, not just its start.  Where this model's count with a connection per
request still differs from the real workers' (they sleep less in accept() as the load rises):
docs/FIDELITY.md, "Prefork, a connection per request".

A keep-alive connection is held by its worker, so at most ``workers`` connections are served at
once; the model's keep-alive clients close theirs only at a bench window's end, if at all, so a
closed keep-alive workload needs ``workers >= connections`` (:func:`check_workload`).
"""

from __future__ import annotations

import simpy

from arch_sim.models.network import Connection, Request
from arch_sim.models.params import ModelParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import Scheduler, Task
from arch_sim.models.thread_per_request import PoolThread, ThreadPerRequest


def check_workload(workers: int, workload: str, connection: str, connections: int) -> None:
    """Refuse a workload the prefork model cannot finish: keep-alive connections that never
    close, more of them than workers to hold them (the rest would wait in the listen queue
    forever).  Raises ValueError naming the fix."""
    if workers < 1:
        raise ValueError(f"prefork needs at least one worker, not {workers}")
    if workload == "closed" and connection == "keep-alive" and connections > workers:
        raise ValueError(
            f"prefork with {workers} workers cannot serve {connections} keep-alive connections: "
            "a worker holds its connection until it closes; give --workers >= --connections "
            "or --connection close")


class Prefork(ThreadPerRequest):
    """Worker processes on top of the scheduler model: no lock shared between them."""

    arch = "prefork"
    model_name = "simpy:prefork"

    def __init__(self, env: simpy.Environment, sched: Scheduler, params: ModelParams,
                 recorder: Recorder, workers: int | None = None) -> None:
        self.workers = params.server.workers if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"prefork needs at least one worker, not {self.workers}")
        super().__init__(env, sched, params, recorder, threads=self.workers)

    def start_threads(self) -> None:
        for i in range(self.workers):
            task = self.task(f"worker/{i}")  # one executable: the workers share its code
            task.mm = task  # ... but each has an address space of its own
            self.env.process(self.worker(PoolThread(task)))

    # -- arrivals ------------------------------------------------------------------------

    def submit(self, req: Request) -> None:
        """A new connection joins the listen queue; a request on a connection a worker holds
        goes to that worker (waking it if it sleeps in recv())."""
        conn = req.conn
        if req.opens or conn.handler is None:
            # a connection no worker holds yet (keep-alive: opened before the window) is
            # taken off the listen queue like a new one
            self._to_pool(req)
        else:
            conn.pending.append(req)
            self._wake_handler(conn)

    def _wake_handler(self, conn: Connection) -> None:
        """Only a worker asleep in recv() is woken (not one blocked on a full buffer)."""
        if conn.waiting:
            conn.waiting = False
            self.sched.wake(conn.handler)

    def after_send(self, task: Task, work: float, log_work: float) -> float:
        """The work after the last write runs as slowly as the whole burst did: a burst that
        paid a cold refill (or drew a slow jitter) ran every part of its code slower, the
        lingering close and the way back to accept() included, not just its start."""
        ran = task.cpu.burst  # the CPU the burst took: its work, refill and jitter included
        return log_work * ran / work if work > 0.0 else log_work

    # -- a worker process ------------------------------------------------------------------

    def worker(self, proc: PoolThread):
        """accept() a connection, serve it until it closes, accept() again.  Woken with
        nothing to take (another worker got it first: the herd), look and sleep again."""
        sched, task = self.sched, proc.task
        yield sched.start(task)
        while True:
            if not self.backlog:
                self.idle.append(proc)
                proc.asleep = True
                yield sched.block(task)  # in accept()
                if not self.backlog:
                    self.spurious_wakeups += 1
                    yield from sched.run(task, self.poll_cost)
                continue
            yield from self.connection(task, self.backlog.popleft())

    def connection(self, task: Task, req: Request):
        """One connection, start to close: its first request (accepting it if it is new),
        then - kept alive - each next one, blocked in recv() between them."""
        conn = req.conn
        conn.handler = task
        yield from self.serve(task, req, accept=req.opens)
        while not req.closes:  # keep-alive: the connection stays with this worker
            while not conn.pending:
                conn.waiting = True
                yield self.sched.block(task)  # in recv(), waiting for the client
            req = conn.pending.popleft()
            yield from self.serve(task, req)
        conn.handler = None  # closed (serve() charged the close)
