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
work).  That is also what keeps the model cheap: a burst of CPU work is a single SimPy timeout -
or none, when the next scheduled event comes after the burst ends: nothing can happen
meanwhile, so the clock is moved to the burst's end at once (``Scheduler.compute_bursts``).

A :mod:`policy <arch_sim.models.policies>` object decides who runs next and whom a wake-up
preempts (``SchedulerParams.policy``: ``fifo``, ``linux-2.2``, ``linux-2.4``, ``eevdf``), the way
Linux's ``sched_class`` holds one scheduler's hooks; this module owns the CPUs, the run queue and
what every decision costs.  Besides the server's own reschedules it counts every switch of every
CPU (``switches``), switches to and from the idle task included: what ``vmstat``'s ``cs`` column
and ``perf stat -a -e context-switches`` on the server's CPUs report [CS-proc-stat].

With ``cpu_time_cv`` > 0 every burst of work takes its nominal time times a random factor (mean
1): the same code does not always cost the same, and EEVDF's decisions turn on such details.

A CPU's caches go cold while it idles: the first burst a task runs after an idle pays its code's
refill (``Task.refill``) times ``1 - exp(-idle / cold_decay_ms)`` extra, unless a task running
the same code (``Task.code``) already paid since.  With ``cold_slowdown`` K > 0 that refill is
not paid at once but becomes the CPU's debt, which every later burst (of a task with a refill)
pays off at K times its own length: cold code runs K + 1 times slower until the caches are full
again, whichever thread runs it - a woken thread's few microseconds of futex return and GIL
stay short, where a lump would make them hundreds.  So the first thread of a busy period
runs slower than the ones after it - which decides who leaves that period owed time (lag), and
so whose next wake-up preempts its waker.  A task whose code's warm CPU a request is known
(``Task.warm``: the pool server's dispatcher and pool threads) owes its refill to its code
instead, paid off over one run through that code, whatever its length: the first thread to
run the code pays it, a second one after it runs warm (docs/FIDELITY.md, "The pool's cycles").

With an ``observer`` (e.g. :class:`arch_sim.models.trace.SwitchTrace`) the scheduler also reports
every switch: ``observer.switched_in(cpu, task, start, cost)`` when ``schedule()`` hands a CPU to a
task (``start``: when the switch begins; ``cost``: the scheduler time before the task's own work)
and ``observer.switched_out(cpu, task, end, why)`` when it leaves (``why``: ``blocked``,
``exited``, ``wakeup`` - need_resched, set by a wake-up (or a 2.2/2.4 fork), preempted it - or
``slice``: its slice was used up), with the switch to
the idle task as ``switched_in(cpu, None, ...)``.  Without one (the default) nothing is reported.

A task uses the scheduler in three ways::

    yield sched.start(task)               # a new task (sched.start(child, parent) in a fork)
    yield from sched.run(task, seconds)   # compute (on a CPU; may be preempted before)
    yield sched.block(task)               # sleep until someone calls sched.wake(task)
    sched.wake(task)                      # make a blocked task runnable
    yield from sched.wake_from(task, other)   # ... from a system call of a running task
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Generator
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL

from arch_sim.models.clock import Call
from arch_sim.models.jitter import lognormal_draw
from arch_sim.models.params import SchedulerParams
from arch_sim.models.policies import make_policy
from arch_sim.models.switching import Switching
from arch_sim.models.tasks import US, Cpu, Steps, Task

__all__ = ["US", "Cpu", "Scheduler", "Steps", "Task"]


class Scheduler(Switching):
    """CPUs sharing one run queue (Linux 2.2 had a single global run queue)."""

    #: a burst that no event can interrupt moves the clock at once (see :meth:`_burst`);
    #: False schedules a timeout for every burst (the same run, one event per burst more)
    compute_bursts = True
    #: a task blocked with an ``on_dispatch`` hook is resumed through it (see :meth:`block`);
    #: False ignores the hooks and resumes every task's generator (the same run)
    dispatch_hooks = True

    def __init__(self, env: simpy.Environment, cpus: int, params: SchedulerParams,
                 rng: random.Random | None = None) -> None:
        if cpus < 1:
            raise ValueError("need at least one CPU")
        self.env = env
        self.rng = rng or random.Random(0)
        cv = params.cpu_time_cv
        self._jitter = math.sqrt(math.log1p(cv * cv)) if cv > 0 else 0.0
        # the lognormal factor, its mu set so that its mean is 1
        self._lognormal = lognormal_draw(self.rng, -0.5 * self._jitter * self._jitter,
                                         self._jitter)
        self.params = params
        self.cpus = [Cpu(i) for i in range(cpus)]
        self.idle: deque[Cpu] = deque(self.cpus)
        self.runqueue: deque[Task] = deque()
        self.tasks: set[Task] = set()  # every live task (2.2 recalculates all their counters)
        self.any_pinned = False
        self._switch = params.switch_us * US
        self._per_runnable = params.per_runnable_us * US
        self._refill = params.cache_refill_us * US
        self._wake_latency = params.wakeup_latency_us * US
        self._wake_cost = params.wake_us * US
        self._cold_decay = max(params.cold_decay_ms * 1e-3, 1e-12)
        self._slowdown = max(params.cold_slowdown, 0.0)
        self._mm_switch = params.mm_switch_us * US
        self._proc_task: dict[Any, Task] = {}  # SimPy process -> the task whose code it runs
        self.policy = make_policy(self)
        self.observer: Any = None  # gets every switch when set (see the module docstring)
        # what the measurement window reads
        self.voluntary = 0
        self.involuntary = 0
        self.switches = 0  # every schedule() that switched, counted or not, idle included
        self.recalculations = 0
        self.sched_time = 0.0
        self.busy_time = 0.0

    # -- what a task does ------------------------------------------------------------------

    def start(self, task: Task, parent: Task | None = None) -> simpy.Event:
        """A new task becomes runnable; the returned event fires when it first runs.

        ``parent``: the task that created it (a fork), which may be preempted by it.
        """
        if task.pin is not None:
            self.any_pinned = True
        if self.policy.needs_waker:  # the caller runs the parent's code, or the task's own
            self._proc_task[self.env.active_process] = parent if parent is not None else task
        self.tasks.add(task)
        self.policy.forked(parent, task)
        return self._make_runnable(task, None, initial=True, waker=parent)

    def run(self, task: Task, seconds: float) -> Steps:
        """Use ``seconds`` of CPU.  A pending preemption takes effect first (a checkpoint).

        Returns the steps to ``yield from``: none for a burst that no event can interrupt (the
        clock is moved to its end at once, see :meth:`_burst`), a burst's timeout, or - a
        preemption first - a generator.  (The models' hottest path: no generator when none
        is needed.)
        """
        cpu = task.cpu
        policy = self.policy
        if policy.needs_waker:
            self._proc_task[self.env.active_process] = task
        if (cpu.need_resched or policy.slice_over(task, cpu)) and task.preemptible:
            return self._preempted_run(task, seconds)
        return self._burst(task, seconds)

    def _preempted_run(self, task: Task, seconds: float) -> Generator[simpy.Event, Any, None]:
        """:meth:`run` at a checkpoint where the task's CPU is to reschedule."""
        cpu = task.cpu
        why = "wakeup" if cpu.need_resched else "slice"
        cpu.need_resched = False
        if not self.policy.keeps_cpu(task, cpu):
            yield self._preempt(task, why)
        yield from self._burst(task, seconds)

    def _burst(self, task: Task, seconds: float, then: Callable[..., Any] | None = None,
               args: tuple[Any, ...] = ()) -> Steps:
        """``seconds`` of CPU on the task's CPU, with no preemption point before them.

        A burst that no event can interrupt - the next scheduled event comes after it ends -
        moves the clock to its end at once instead of scheduling a timeout: nothing else can
        happen meanwhile, so the run is the same, event for event, with one event fewer.
        Returns the steps to ``yield from``: none, or the burst's timeout.  With ``then``
        (code outside a SimPy process) there are no steps: ``then(*args)`` is called at the
        burst's end - now if it was computed, else by a call queued in its timeout's place.
        """
        cpu = task.cpu
        if self._jitter and seconds > 0.0:  # the same work does not always take as long
            seconds *= self._lognormal()
        if task.refill:
            seconds += self._cold_extra(task, cpu, seconds)
        dt = task.lead + seconds
        if dt > 0.0:
            env = self.env
            task.lead = 0.0
            task.used += seconds
            self.busy_time += seconds
            end = env._now + dt  # where env.timeout(dt) would fire
            cpu.burst_end = end
            cpu.burst = seconds
            queue = env._queue  # no event comes before its end (env.peek(), inlined):
            if self.compute_bursts and (not queue or queue[0][0] > end):
                env._now = end  # the burst is computed, not scheduled
            elif then is None:
                return (env.timeout(dt),)
            else:  # env.timeout(dt)'s key: (now + dt, NORMAL, the next event number)
                heappush(queue, (end, NORMAL, next(env._eid), Call(then, args)))
                return ()
        if then is not None:
            then(*args)
        return ()

    def running(self, task: Task) -> Steps:
        """Until ``task``, just given its CPU, runs: the lead it has to pay first (the switch,
        a wake-up latency from an idle CPU), and no work of its own - no preemption point, no
        cache refill.  A SimPy process resumes when its task is woken, a lead before the task
        runs; what the task reads as it starts (epoll's ready list, a listen queue) is what is
        there when it runs, so it reads it after this."""
        lead = task.lead
        if lead <= 0.0:
            return ()
        task.lead = 0.0
        cpu = task.cpu
        cpu.burst_end = self.env._now + lead
        cpu.burst = 0.0
        return (self.env.timeout(lead),)

    def block(self, task: Task, after: float = 0.0,
              on_dispatch: Any = None) -> simpy.Event:
        """Give up the CPU until :meth:`wake`; the event fires once the task runs again.

        ``after`` seconds of work still to do before blocking are charged to this CPU without
        a SimPy event of their own: the CPU is busy with them before it runs anyone else.

        ``on_dispatch(event)``: when the task is next dispatched, a plain call
        (:class:`~arch_sim.models.clock.Call`) with the returned event is queued instead of
        the event itself - under the same (time, priority, sequence number) key, so it runs
        exactly when the task's generator would have resumed.  The hook may do what the
        generator would without resuming it (with :meth:`run_outside` and :meth:`reblock`),
        or resume it with :func:`~arch_sim.models.clock.fire`.  A pool thread woken with
        nothing to accept saves a generator resume this way.
        """
        task.on_dispatch = on_dispatch if self.dispatch_hooks else None
        if self.policy.needs_waker:
            self._proc_task[self.env.active_process] = task
        if after > 0.0:
            cpu = task.cpu
            if task.refill:
                after += self._cold_extra(task, cpu, after)
            cpu.burst_end = self.env._now + task.lead + after
            cpu.burst = after
            task.lead += after
            task.used += after
            self.busy_time += after
        event = self.env.event()
        task.event = event
        task.state = "blocked"
        self._switch_out(task, True)
        return event

    def run_outside(self, task: Task, seconds: float, then: Callable[..., Any],
                    *args: Any) -> None:
        """:meth:`run` for an ``on_dispatch`` hook of a task that is not preemptible, then
        ``then(*args)``: the same checkpoint (its policy still charges its time there) and
        burst.  A burst computed at once calls ``then`` now; a burst that must be scheduled
        queues the call under the key its timeout would get (its end, then the order of
        scheduling), so the run is the same without a Timeout and its callback.  The hook runs
        outside the task's SimPy process, so the process is not noted as the task's (the task
        noted it itself when it blocked: nothing else runs its code)."""
        if task.preemptible:
            raise ValueError(f"{task.name}: run_outside() is for tasks that are not preemptible")
        cpu = task.cpu
        if not cpu.need_resched:  # run()'s test, short-circuited the same way
            self.policy.slice_over(task, cpu)
        self._burst(task, seconds, then, args)

    def reblock(self, task: Task, event: simpy.Event, on_dispatch: Any) -> None:
        """:meth:`block` (nothing ``after``) from an ``on_dispatch`` hook: the task sleeps
        again, to be resumed by the same, still untriggered ``event`` its generator waits
        on."""
        task.on_dispatch = on_dispatch if self.dispatch_hooks else None
        task.event = event
        task.state = "blocked"
        self._switch_out(task, True)

    def wake(self, task: Task, waker: Task | None = None) -> bool:
        """Make a blocked task runnable (False if it was not blocked).

        ``waker``: the task doing it (default: the task whose code is running now, if the
        policy asks; None is an interrupt - a timer, the network).
        """
        if task.state != "blocked":
            return False
        if waker is None and self.policy.needs_waker:
            waker = self._proc_task.get(self.env.active_process)
        self._make_runnable(task, task.event, False, waker)
        return True

    def wake_from(self, task: Task, other: Task, checkpoint: bool = True) -> Steps:
        """``task`` wakes ``other`` with a system call (a futex wake): the call's CPU
        (``wake_us``) comes first - try_to_wake_up() runs inside it - then ``other`` is
        runnable, and (``checkpoint``) the return to user space is where a preemption the
        wake-up asked for takes effect.  Returns the steps to ``yield from``."""
        if self._wake_cost > 0.0:  # in the kernel: no preemption point before it
            if self.policy.needs_waker:
                self._proc_task[self.env.active_process] = task
            burst = self._burst(task, self._wake_cost)
            if burst:  # a timeout: the wake-up comes after it
                return self._wake_after(burst, task, other, checkpoint)
        self.wake(other, waker=task)
        return self.run(task, 0.0) if checkpoint else ()

    def _wake_after(self, burst: Steps, task: Task, other: Task,
                    checkpoint: bool) -> Generator[simpy.Event, Any, None]:
        yield from burst
        self.wake(other, waker=task)
        if checkpoint:
            yield from self.run(task, 0.0)

    def exit(self, task: Task) -> None:
        """The task ends: its CPU switches to the next task (do_exit -> schedule()).

        That last switch is a switch of the CPU (``switches``) but not one the server's own
        count sees: the kernel adds an exiting thread's switch counts to its process's totals
        (what getrusage reports) in __exit_signal(), before its final schedule() [CS-rusage].
        """
        task.state = "exited"
        self.tasks.discard(task)
        if self.policy.needs_waker:
            self._proc_task.pop(self.env.active_process, None)
        counted, task.counted = task.counted, False
        self._switch_out(task, voluntary=True)
        task.counted = counted

    def checkpoint(self, task: Task) -> Steps:
        """A point where a pending preemption takes effect (e.g. the return from the system
        call that woke someone): :meth:`run`'s steps for no work."""
        return self.run(task, 0.0)

    # -- what the measurement reads ---------------------------------------------------------

    def counters(self) -> dict[str, float]:
        """A snapshot of the cumulative counters (the window subtracts two snapshots).

        Work is charged when a burst starts; the part of a burst still in the future is taken
        off again, so a long burst across the window's edge is split correctly.
        """
        now = self.env._now
        ahead = sum(min(c.burst, c.burst_end - now) for c in self.cpus if c.burst_end > now)
        return {
            "voluntary": self.voluntary,
            "involuntary": self.involuntary,
            "switches": self.switches,
            "sched_time": self.sched_time,
            "busy_time": self.busy_time - ahead,
        }
