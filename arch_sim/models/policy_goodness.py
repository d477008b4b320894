"""Linux 2.2 and 2.4's goodness() scheduler as a policy (kernel/sched.c: schedule(), goodness(),
reschedule_idle()); the hooks are described in :mod:`arch_sim.models.policies`.
"""

from __future__ import annotations

from math import floor
from typing import TYPE_CHECKING

from arch_sim.models.policies import Policy

if TYPE_CHECKING:
    from arch_sim.models.scheduler import Cpu, Scheduler, Task

#: goodness() bonus for a task that last ran on this CPU (include/asm-i386/smp.h: 15 in 2.4;
#: the 2.2 value is taken to be the same) [K22-goodness] [K22-penalty]
PROC_CHANGE_PENALTY = 15
#: goodness()'s static part for a nice-0 task: 2.2's DEF_PRIORITY, 2.4's 20 - nice [K24-goodness]
STATIC_GOODNESS = 20


class Goodness(Policy):
    """Linux 2.2 / 2.4: goodness(), counters in timer ticks, reschedule_idle()."""

    def __init__(self, sched: Scheduler, version: str) -> None:
        super().__init__(sched)
        self.name = f"linux-{version}"
        self.version = version
        self.hz = sched.params.hz
        self.priority = sched.params.priority_ticks  # what a recalculation adds
        self._per_task = sched.params.per_runnable_us * 1e-6
        self._decision: Cpu | None = None  # 2.2: the waker's CPU to reschedule
        self.needs_waker = version == "2.2"
        self._v22 = version == "2.2"

    # -- counters ------------------------------------------------------------------------

    def _charge(self, task: Task, requeue: bool = False) -> None:
        """update_process_times(): the running task's counter loses a tick per timer tick
        since it last ran or was charged (ticks come every 1/HZ s on every CPU).  Every
        switch comes here: it is also the ``switched_out`` hook, and max() is written out."""
        if task.cpu is not None:
            now = self.sched.env._now
            hz = self.hz
            ticks = floor(now * hz) - floor(task.vstart * hz)
            left = task.counter - ticks if ticks > 0 else task.counter
            task.counter = left if left > 0 else 0
            task.vstart = now

    def goodness(self, task: Task, cpu: Cpu) -> int:
        if task.counter <= 0:
            return 0
        here = task.cpu if task.cpu is not None else task.last_cpu
        bonus = PROC_CHANGE_PENALTY if here is cpu else 0
        return task.counter + STATIC_GOODNESS + bonus

    def forked(self, parent: Task | None, child: Task) -> None:
        """do_fork(): the parent's remaining ticks are halved and the child gets half too (2.2:
        the same halved value; 2.4: rounded up) [K22-fork]; a parent left with none
        reschedules."""
        if parent is None:
            child.counter = self.priority
            return
        self._charge(parent)
        if self.version == "2.2":
            parent.counter >>= 1
            child.counter = parent.counter
        else:
            child.counter = (parent.counter + 1) >> 1
            parent.counter >>= 1
        if parent.counter == 0 and parent.cpu is not None:
            parent.cpu.need_resched = True

    # -- wake-ups ------------------------------------------------------------------------

    def wake_cpu(self, task: Task, waker: Task | None) -> Cpu | None:
        sched = self.sched
        self._decision = None
        if self._v22:
            current = waker if waker is not None and waker.cpu is not None else None
            if current is None:  # an interrupt: it lands on the task's last CPU
                cpu = task.last_cpu or sched.cpus[0]
                current = cpu.current
            if current is not None:
                self._charge(current)
                if task.counter > current.counter + 3:
                    self._decision = current.cpu  # the current CPU reschedules; no IPI
                    return None
            return sched.idle_cpu_for(task)
        return sched.idle_cpu_for(task)  # 2.4: last CPU if idle, else an idle one

    def wake_victim(self, task: Task, waker: Task | None) -> Cpu | None:
        if self._v22:
            cpu, self._decision = self._decision, None
            return cpu if cpu is not None and not cpu.need_resched else None
        best, best_prio = None, 1  # 2.4: preemption_goodness() above 1, over every CPU
        for cpu in self.sched.cpus:
            curr = cpu.current
            if curr is None or cpu.need_resched:
                continue
            if task.pin is not None and task.pin is not cpu:
                continue
            self._charge(curr)
            prio = self.goodness(task, cpu) - self.goodness(curr, cpu)
            if prio > best_prio:
                best, best_prio = cpu, prio
        return best

    # -- the tick and schedule() -----------------------------------------------------------

    def slice_over(self, task: Task, cpu: Cpu) -> bool:
        self._charge(task)
        return task.counter <= 0

    def keeps_cpu(self, task: Task, cpu: Cpu) -> bool:
        """schedule() with ``task`` still runnable: it keeps the CPU unless someone beats it."""
        mine = self.goodness(task, cpu)
        best = max((self.goodness(t, cpu) for t in self._candidates(cpu)), default=-1)
        if best > mine:
            return False
        if mine == 0 and best <= 0:  # everyone is out of ticks: recalculate, then compare
            self._recalculate(cpu)
            return self.keeps_cpu(task, cpu)
        return True

    switched_out = _charge  # the outgoing task is charged its ticks (no call in between)

    def _candidates(self, cpu: Cpu):
        return (t for t in self.sched.runqueue if t.pin is None or t.pin is cpu)

    def pick(self, cpu: Cpu) -> Task | None:
        """The run-queue loop: the highest goodness wins (the first of equals); all zero
        with someone runnable: recalculate every task's counter and look again.
        (:meth:`goodness` and :meth:`_candidates` written out: a switch's hot path.)"""
        best, best_g = None, -1
        for t in self.sched.runqueue:
            if t.pin is not None and t.pin is not cpu:
                continue
            g = t.counter
            if g > 0:  # goodness(t, cpu)
                here = t.cpu if t.cpu is not None else t.last_cpu
                g += STATIC_GOODNESS + PROC_CHANGE_PENALTY if here is cpu else STATIC_GOODNESS
            else:
                g = 0
            if g > best_g:
                best, best_g = t, g
        if best is None:
            return None
        if best_g == 0:
            self._recalculate(cpu)
            return self.pick(cpu)
        self.sched.runqueue.remove(best)
        return best

    def _recalculate(self, cpu: Cpu) -> None:
        """for_each_task: counter = counter / 2 + priority - a loop over every live task."""
        sched = self.sched
        for t in sched.tasks:
            t.counter = (t.counter >> 1) + self.priority
        cpu.extra_cost += self._per_task * len(sched.tasks)
        sched.recalculations += 1
