"""kHTTPd >= 0.1.3, the new design: one thread per CPU that services requests grouped by state.

Each worker is pinned to its CPU and loops over passes.  A pass runs every state group in the
lifecycle order (real_servers/core/lifecycle.py, the one definition) as a batch:

    accept        take every pending connection off the shared listen queue
    wait_headers  parse the requests whose bytes have arrived (peek at the others)
    send_data     send up to 16 KB to every connection whose socket buffer has room
    userspace     hand unservable requests to the user-space server
    logging       log the finished ones; close those not kept alive

Nothing in a pass blocks.  A pass that moved nothing puts the worker to sleep (one voluntary
reschedule) until the next arrival, the next request bytes, buffer space - or, as in kHTTPd's
main.c, at most ``sleep_timeout_jiffies`` timer ticks.  Under load every pass finds work, so the
worker polls and hardly schedules at all: interrupt-driven at low load, polling at high load.

Within a batch the first item pays the full cost of its state and the following ones
``cohort_factor`` of it (the same code and data are still in the cache).

A pass is computed on a virtual clock from its start, then its CPU time is used as one burst:
one SimPy timeout per pass, however many requests it moved.  Each state is one stage function
(:mod:`~arch_sim.models.stategroup_pass`, ``STAGES``) with one interface to this main loop, as
each is one module of the real server: a stage can be replaced without touching the others.
"""

from __future__ import annotations

import math
from collections import deque

import simpy

from arch_sim.models.clock import call_after
from arch_sim.models.network import KB, Request
from arch_sim.models.params import ModelParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import US, Scheduler, Task
from arch_sim.models.stategroup_pass import STAGES, Pass
from arch_sim.models.userspace import UserspaceServer
from real_servers.core.lifecycle import NAMES


class Worker:
    """One kHTTPd thread, pinned to one CPU, with its own per-state queues."""

    def __init__(self, model: StateGroup, index: int) -> None:
        self.model = model
        self.index = index
        self.task = Task(f"khttpd/{index}", pin=model.sched.cpus[index],
                         refill=model.refill, preemptible=model.preemptible)
        self.wait_headers: list[Request] = []
        self.send_data: list[Request] = []
        self.sleeping = False
        self.passing = False  # running an empty pass, about to sleep
        self.early = False  # an event came during that pass
        self.generation = 0  # which sleep a timer belongs to
        self.passes = 0
        self.sleeps = 0
        self.moved = [0] * len(NAMES)  # items moved out of each state
        self.batches = [0] * len(NAMES)  # non-empty batches per state

    # -- the main loop ---------------------------------------------------------------------

    def main_loop(self):
        """MainDaemon: run the state groups in turn; sleep when a pass changed nothing.

        A pass that sent replies runs as two bursts split at its last send: its replies are
        out (and the clients act on them) while the worker still logs and closes.  A pass
        after an idle CPU is slowed throughout by its cold caches (:meth:`_cold_stretch`), so
        the work after the last send - logging, close, the next pass - is slowed too.
        """
        sched, env, task = self.model.sched, self.model.env, self.task
        yield sched.start(task)
        while True:
            # the pass looks at its queues - the listen queue, epoll's ready list - when the
            # worker runs, not when it was woken: what came meanwhile is in this pass
            yield from sched.running(task)
            start = env.now
            p = self.one_pass(start)
            cost = p.t - start
            if p.moved == 0:  # the pass found nothing to do: pay for it, then sleep
                yield from self.sleep(cost)
                continue
            stretch = self._cold_stretch(cost)
            recorder = self.model.recorder
            if p.finished:
                yield from sched.run(task, (p.replied - start) * stretch)
                out = env.now  # the last reply has left: the head burst ends with its send
                for req, sent, t in p.finished:
                    recorder.complete(req, out - (p.replied - sent) * stretch + (t - sent))
                cost = p.t - p.replied
            yield from sched.run(task, cost * stretch)
            for req in p.handed:
                self.model.userspace.submit(req)
            for req in p.closed:
                recorder.closed(req)

    def _cold_stretch(self, cost: float) -> float:
        """How much slower than warm this pass runs: the first burst after the CPU idled pays
        the worker's cache refill (the scheduler's cold start, taken here so that the
        scheduler does not add it again); the misses fall all through the pass's code, not
        before it, so every part of the pass is slowed by the same factor."""
        if cost <= 0.0:
            return 1.0
        return 1.0 + self.model.sched.cold_start(self.task) / cost

    def one_pass(self, t: float) -> Pass:
        """One pass over all state groups starting at time t (its clock ends at ``p.t``).

        The stages run in the lifecycle's order, one function per state (``STAGES``), each
        servicing its group as a batch and handing requests on along the lifecycle's moves.
        """
        p = Pass(t + self.model.pass_cost)
        if self.wait_headers or self.send_data or self.model.backlog:  # else none has work
            for stage in STAGES:
                stage(self, p)
        self.passes += 1
        return p

    def count_batch(self, state: int, k: int) -> None:
        """A stage moved ``k`` items out of ``state`` in this pass (a batch, if any)."""
        if k:
            self.moved[state] += k
            self.batches[state] += 1

    # -- sleeping and waking ---------------------------------------------------------------

    def sleep(self, pass_cost: float):
        """Nothing moved: sleep until an arrival, a socket event or the jiffy timeout.

        The empty pass's CPU time (``pass_cost``) is used up first.  An event that comes
        meanwhile meets a worker that is not asleep yet, and what becomes of it depends on how
        the worker waits:

        * readiness events (``readiness_events``: the real server's ``epoll_wait``) - the event
          is pending when the worker asks, so the call returns at once: no sleep, another pass;
        * kHTTPd's ``interruptible_sleep_on_timeout()`` - the wake-up finds the task still
          running and is lost; the worker sleeps until the next event or the jiffy timeout
          (docs/SOURCES.md [KH-sleep]).
        """
        m = self.model
        sched, env = m.sched, m.env
        self.early = False
        self.passing = True  # kick() meanwhile only notes the event
        yield from sched.run(self.task, pass_cost)
        self.passing = False
        if m.readiness and self.early:
            return
        asleep_at = env.now
        wake_at = self.next_socket_event()
        if m.tick:  # interruptible_sleep_on_timeout(): until the next timer tick(s)
            wake_at = min(wake_at, (math.floor(asleep_at / m.tick + 1e-9) + m.jiffies) * m.tick)
        self.sleeping = True
        self.sleeps += 1
        m.sleepers.append(self)
        woken = sched.block(self.task)
        if wake_at < math.inf:
            call_after(env, max(0.0, wake_at - env.now), self._timer, self.generation)
        yield woken
        self.generation += 1

    def next_socket_event(self) -> float:
        """When the earliest full send buffer has room again (request bytes that arrive wake
        the worker themselves: :meth:`StateGroup.data_ready`)."""
        if not self.send_data:
            return math.inf
        now = self.model.env.now
        # a request's ready_at is at or before its space_at() (it bounds a higher level of
        # the same draining buffer): only those whose bound is below the earliest found so far
        # need the exact time, and the one with the lowest bound is the likeliest earliest
        sending = self.send_data
        bounds = [req.ready_at for req in sending]
        first = bounds.index(min(bounds))
        t = sending[first].conn.space_at(now)
        for i, bound in enumerate(bounds):
            if bound < t and i != first:
                t = min(t, sending[i].conn.space_at(now))
            else:  # what the exact computation would have forgotten
                sending[i].conn.drop_drained(now)
        return t

    def kick(self) -> None:
        """Work arrived for this worker: wake it if it sleeps (a busy one finds it next pass;
        one finishing an empty pass notes it - see :meth:`sleep`)."""
        if self.sleeping:
            self.sleeping = False
            self.model.sleepers.remove(self)
            self.model.sched.wake(self.task)
        elif self.passing:
            self.early = True

    def _timer(self, generation: int) -> None:
        if self.sleeping and generation == self.generation:
            self.kick()


class StateGroup:
    """The new design: one :class:`Worker` per CPU sharing one listen queue."""

    arch = "state-group"
    model_name = "simpy:state-group"

    def __init__(self, env: simpy.Environment, sched: Scheduler, params: ModelParams,
                 recorder: Recorder) -> None:
        s, net = params.server, params.network
        self.env = env
        self.sched = sched
        self.recorder = recorder
        self.accept_cost = s.accept_us * US
        self.parse_cost = s.parse_us * US
        self.send_cost = s.send_us * US
        self.byte_cost = s.send_us_per_kb * US / KB
        self.log_cost = s.log_us * US
        self.close_cost = s.close_us * US
        self.handoff_cost = s.userspace_handoff_us * US
        self.pass_cost = s.pass_us * US
        self.poll_cost = s.poll_item_us * US
        self.readiness = s.readiness_events
        self.accept_empty = self.poll_cost if self.readiness else 0.0  # the batch's last accept
        self.cohort = s.cohort_factor
        self.max_send = s.max_send_kb_per_pass * KB
        self.one_way = net.one_way_us * US
        self.refill = s.cold_refill_us * US  # its code's cache refill after an idle CPU
        self.preemptible = not s.kernel_threads
        self.jiffies = s.sleep_timeout_jiffies
        self.tick = 1.0 / params.scheduler.hz if self.jiffies > 0 else 0.0
        self.backlog: deque[Request] = deque()  # the shared listen queue
        self.sleepers: deque[Worker] = deque()  # sleeping workers, longest asleep first
        self.userspace = UserspaceServer(env, sched, params, recorder)
        self.workers = [Worker(self, i) for i in range(len(sched.cpus))]
        self._next_owner = 0
        for worker in self.workers:
            env.process(worker.main_loop())

    def submit(self, req: Request) -> None:
        """A new connection (listen queue) or a keep-alive request (its worker's queue)."""
        if req.opens:
            self.backlog.append(req)
            if self.sleepers:
                self.sleepers[0].kick()  # wake-one, longest sleeper first
            else:  # nobody asleep: a worker finishing an empty pass may be about to
                for worker in self.workers:
                    if worker.passing:
                        worker.kick()
                        break
            return
        conn = req.conn
        if conn.owner is None:  # connections spread over the workers as they are opened
            conn.owner = self.workers[self._next_owner % len(self.workers)]
            self._next_owner += 1
        conn.owner.wait_headers.append(req)
        conn.owner.kick()

    def data_ready(self, req: Request) -> None:
        """A new connection's request arrived: its worker finds it in wait_headers."""
        worker = req.conn.owner
        if worker is not None:
            worker.kick()

    def counters(self) -> dict[str, float]:
        """Passes, sleeps and batch sizes summed over the workers."""
        out: dict[str, float] = {
            "passes": sum(w.passes for w in self.workers),
            "sleeps": sum(w.sleeps for w in self.workers),
        }
        for i, name in enumerate(NAMES):
            out[f"moved_{name}"] = sum(w.moved[i] for w in self.workers)
            out[f"batches_{name}"] = sum(w.batches[i] for w in self.workers)
        return out
