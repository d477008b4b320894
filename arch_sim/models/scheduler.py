"""The kernel scheduler as a cost: CPUs, one run queue, and a price for every reschedule.

A *task* (a kHTTPd thread, a request thread, the acceptor) computes, blocks and is woken.
Each time a CPU switches tasks it runs ``schedule()``, which costs

    switch_us                          direct switch: save/restore, address space
  + per_runnable_us * runnable tasks   Linux 2.2: goodness() over the whole run queue
  + cache refill                       the incoming task's working set, unless it was the
                                       last task on this CPU (its cache is still warm)

That time is CPU time nobody's request gets: it is charged to ``sched_time`` and
``sched_overhead_frac`` is its share of all CPU time.

Every switch of a *counted* task (the server's own) is a reschedule:

* voluntary   - the task blocked (waiting for a connection, for data, for buffer space,
                a state-group worker with nothing to do) or exited;
* involuntary - it was preempted: its time slice ran out while others waited (timer tick),
                or a woken task asked for its CPU (wake-up preemption).

As in the 2.2 and 2.4 kernels, kernel code is not preemptible: a preemption request only
takes effect when the running task next reaches a checkpoint (the start of its next burst of
work).  That is also what keeps the model cheap: a burst of CPU work is a single SimPy timeout.

A task uses the scheduler in three ways::

    yield from sched.run(task, seconds)   # compute (on a CPU; may be preempted before)
    yield sched.block(task)               # sleep until someone calls sched.wake(task)
    sched.wake(task)                      # make a blocked task runnable
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

import simpy

from arch_sim.models.params import SchedulerParams

US = 1e-6


class Task:
    """A schedulable thread of control.

    ``counted`` tasks belong to the server: their switches are its reschedules.  ``pin`` ties a
    task to one CPU (the state-group worker is "one thread per CPU").
    """

    __slots__ = ("name", "counted", "pin", "cpu", "last_cpu", "lead", "used", "event", "state")

    def __init__(self, name: str, counted: bool = True, pin: Cpu | None = None) -> None:
        self.name = name
        self.counted = counted
        self.pin = pin
        self.cpu: Cpu | None = None  # the CPU it holds, if running
        self.last_cpu: Cpu | None = None
        self.lead = 0.0  # scheduler time to pay before its next burst starts
        self.used = 0.0  # CPU used since it was last dispatched (for the time slice)
        self.event: simpy.Event | None = None  # fires when it is dispatched
        self.state = "new"  # new | running | runnable | blocked | exited

    def __repr__(self) -> str:
        return f"<Task {self.name} {self.state}>"


class Cpu:
    """One processor: who runs on it, who ran last (cache warmth), when it is free."""

    __slots__ = ("index", "current", "last", "free_at", "need_resched", "burst_end", "burst")

    def __init__(self, index: int) -> None:
        self.index = index
        self.current: Task | None = None
        self.last: Task | None = None
        self.free_at = 0.0  # end of the switch into the idle task
        self.need_resched = False
        self.burst_end = 0.0  # when the current burst of work ends
        self.burst = 0.0  # its length (without the scheduler time before it)


class Scheduler:
    """CPUs sharing one run queue (Linux 2.2 had a single global run queue)."""

    def __init__(self, env: simpy.Environment, cpus: int, params: SchedulerParams) -> None:
        if cpus < 1:
            raise ValueError("need at least one CPU")
        self.env = env
        self.params = params
        self.cpus = [Cpu(i) for i in range(cpus)]
        self.idle: deque[Cpu] = deque(self.cpus)
        self.runqueue: deque[Task] = deque()
        self.any_pinned = False
        self._switch = params.switch_us * US
        self._per_runnable = params.per_runnable_us * US
        self._refill = params.cache_refill_us * US
        self._slice = params.timeslice_ms * 1e-3
        self._wake_latency = params.wakeup_latency_us * US
        # what the measurement window reads
        self.voluntary = 0
        self.involuntary = 0
        self.switches = 0  # every schedule() that switched, counted or not
        self.sched_time = 0.0
        self.busy_time = 0.0

    # -- what a task does ------------------------------------------------------------------

    def start(self, task: Task) -> simpy.Event:
        """A new task becomes runnable; the returned event fires when it first runs."""
        if task.pin is not None:
            self.any_pinned = True
        return self._make_runnable(task)

    def run(self, task: Task, seconds: float) -> Generator[simpy.Event, Any, None]:
        """Use ``seconds`` of CPU.  A pending preemption takes effect first (a checkpoint)."""
        cpu = task.cpu
        if cpu.need_resched or task.used >= self._slice:
            cpu.need_resched = False
            if self._someone_waits(cpu):
                yield self._preempt(task)
            else:  # nobody else wants this CPU: schedule() would pick us again
                task.used = 0.0
        dt = task.lead + seconds
        if dt > 0.0:
            task.lead = 0.0
            task.used += seconds
            self.busy_time += seconds
            cpu.burst_end = self.env.now + dt
            cpu.burst = seconds
            yield self.env.timeout(dt)

    def block(self, task: Task, after: float = 0.0) -> simpy.Event:
        """Give up the CPU until :meth:`wake`; the event fires once the task runs again.

        ``after`` seconds of work still to do before blocking are charged to this CPU without
        a SimPy event of their own: the CPU is busy with them before it runs anyone else.
        """
        if after > 0.0:
            cpu = task.cpu
            cpu.burst_end = self.env.now + task.lead + after
            cpu.burst = after
            task.lead += after
            task.used += after
            self.busy_time += after
        event = self.env.event()
        task.event = event
        task.state = "blocked"
        self._switch_out(task, voluntary=True)
        return event

    def wake(self, task: Task) -> bool:
        """Make a blocked task runnable (False if it was not blocked)."""
        if task.state != "blocked":
            return False
        self._make_runnable(task, task.event)
        return True

    def exit(self, task: Task) -> None:
        """The task ends; its last switch counts as voluntary (Linux's do_exit -> schedule)."""
        task.state = "exited"
        self._switch_out(task, voluntary=True)

    # -- the kernel's side -----------------------------------------------------------------

    def _make_runnable(self, task: Task, event: simpy.Event | None = None) -> simpy.Event:
        if event is None:
            event = self.env.event()
        task.event = event
        task.state = "runnable"
        cpu = self._idle_cpu_for(task)
        if cpu is not None:
            self._dispatch(cpu, task, from_idle=True)
            return event
        self.runqueue.append(task)
        if self.params.wakeup_preempt:
            victim = self._victim_for(task)
            if victim is not None:
                victim.need_resched = True
        return event

    def _idle_cpu_for(self, task: Task) -> Cpu | None:
        if not self.idle:
            return None
        if task.pin is not None:
            if task.pin.current is None and task.pin in self.idle:
                self.idle.remove(task.pin)
                return task.pin
            return None
        last = task.last_cpu
        if last is not None and last.current is None and last in self.idle:
            self.idle.remove(last)  # wake where its cache is
            return last
        return self.idle.popleft()

    def _victim_for(self, task: Task) -> Cpu | None:
        if task.pin is not None:
            cpu = task.pin
            return cpu if cpu.current is not None and not cpu.need_resched else None
        last = task.last_cpu
        if last is not None and last.current is not None and not last.need_resched:
            return last
        for cpu in self.cpus:
            if cpu.current is not None and not cpu.need_resched:
                return cpu
        return None

    def _someone_waits(self, cpu: Cpu) -> bool:
        if not self.any_pinned:
            return bool(self.runqueue)
        return any(t.pin is None or t.pin is cpu for t in self.runqueue)

    def _preempt(self, task: Task) -> simpy.Event:
        event = self.env.event()
        task.event = event
        task.state = "runnable"
        self._switch_out(task, voluntary=False, requeue=True)
        return event

    def _switch_out(self, task: Task, voluntary: bool, requeue: bool = False) -> None:
        cpu = task.cpu
        now = self.env.now
        if task.lead > 0.0:  # switched in, then out again before computing anything
            cpu.free_at = now + task.lead
            task.lead = 0.0
        task.cpu = None
        task.last_cpu = cpu
        cpu.current = None
        cpu.last = task
        cpu.need_resched = False
        if task.counted:
            if voluntary:
                self.voluntary += 1
            else:
                self.involuntary += 1
        if requeue:
            self.runqueue.append(task)
        nxt = self._pick(cpu)
        if nxt is not None:
            self._dispatch(cpu, nxt, from_idle=False)
        else:  # switch to the idle task
            self.switches += 1
            start = max(now, cpu.free_at)
            cpu.free_at = start + self._switch
            self.sched_time += self._switch
            self.busy_time += self._switch
            self.idle.append(cpu)

    def _pick(self, cpu: Cpu) -> Task | None:
        queue = self.runqueue
        if not queue:
            return None
        if not self.any_pinned:
            return queue.popleft()
        for i, t in enumerate(queue):
            if t.pin is None or t.pin is cpu:
                del queue[i]
                return t
        return None

    def _dispatch(self, cpu: Cpu, task: Task, from_idle: bool) -> None:
        """``schedule()`` on ``cpu`` picked ``task``: charge its cost, then let it run."""
        now = self.env.now
        cost = self._switch + self._per_runnable * (len(self.runqueue) + 1)
        if cpu.last is not task:
            cost += self._refill
        start = max(now + self._wake_latency if from_idle else now, cpu.free_at)
        self.switches += 1
        self.sched_time += cost
        self.busy_time += cost
        task.lead = (start - now) + cost
        task.used = 0.0
        task.cpu = cpu
        task.state = "running"
        cpu.current = task
        event = task.event
        task.event = None
        event.succeed()

    # -- what the measurement reads ---------------------------------------------------------

    def counters(self) -> dict[str, float]:
        """A snapshot of the cumulative counters (the window subtracts two snapshots).

        Work is charged when a burst starts; the part of a burst still in the future is taken
        off again, so a long burst across the window's edge is split correctly.
        """
        now = self.env.now
        ahead = sum(min(c.burst, c.burst_end - now) for c in self.cpus if c.burst_end > now)
        return {
            "voluntary": self.voluntary,
            "involuntary": self.involuntary,
            "switches": self.switches,
            "sched_time": self.sched_time,
            "busy_time": self.busy_time - ahead,
        }
