"""Scheduler policies: who runs next, and whom a wake-up preempts.

Each policy is an object with the same hooks, the way Linux's ``struct sched_class`` holds one
scheduler's functions; :class:`~arch_sim.models.scheduler.Scheduler` owns the CPUs, the run queue
and the costs, and asks its policy at each decision:

    enqueue(task, initial)        a task becomes runnable (woken, or new when ``initial``)
    wake_cpu(task, waker)         an idle CPU to run a just-woken task on at once, or None
    wake_victim(task, waker)      a running CPU the wake-up preempts (need_resched), or None
    slice_over(task, cpu)         at a checkpoint: has the running task used up its slice?
    keeps_cpu(task, cpu)          ...then: does schedule() pick it again (no switch)?
    switched_out(task, requeue)   it stopped running (blocked, exited or preempted)
    pick(cpu)                     the next task for a CPU (removed from the run queue), or None
    forked(parent, child)         a task created another

Four policies (``SchedulerParams.policy``, sources in docs/SOURCES.md):

* ``fifo`` - one FIFO run queue, a woken task preempts someone (``wakeup_preempt``), a task is
  preempted after ``timeslice_ms`` if others wait.  Stands for Linux 2.6's O(1) scheduler with
  equal priorities: a sleeper's interactivity bonus makes a woken task preempt the running one
  [K26-o1].
* ``linux-2.2`` and ``linux-2.4`` - the goodness() scheduler [K22-goodness]: every task has a
  ``counter`` of timer ticks left (``priority_ticks`` when refilled); schedule() runs the runnable
  task with the highest goodness = counter + 20 (+ PROC_CHANGE_PENALTY if it last ran on
  this CPU); when every runnable task's counter is 0 all tasks, asleep or not, get
  ``counter / 2 + priority_ticks`` (the second loop, over every task) [K22-recalc].  A fork
  splits the parent's counter with the child [K22-fork].  What a wake-up does differs:

  - 2.2's reschedule_idle() [K22-reschedule-idle]: if the woken task's counter exceeds the
    waker's by more than 3, the waker's CPU reschedules (and no idle CPU is used); otherwise an
    idle CPU - the task's last one if idle - takes it; a busy CPU other than the waker's is
    never preempted.
  - 2.4's reschedule_idle() [K24-reschedule-idle]: the task's last CPU if idle, else the CPU
    idle longest, else the CPU whose running task's goodness it beats by the most (by more
    than 1).

  Kernel code was not preemptible in 2.2 and 2.4 [K22-nonpreempt]: a task marked not
  ``preemptible`` (a kernel thread) keeps its CPU until it blocks, whatever need_resched says.

* ``eevdf`` - Linux >= 6.6 [EEVDF]: virtual runtime, lag kept across sleeps, virtual deadlines
  ``timeslice_ms`` apart, eligibility, RUN_TO_PARITY, DELAY_DEQUEUE, half a slice for a new task
  (PLACE_DEADLINE_INITIAL); WAKEUP_PREEMPTION and RUN_TO_PARITY can be switched off
  [EEVDF-wakeup-preempt].  See :class:`~arch_sim.models.policy_eevdf.Eevdf`.

This module holds the interface (:class:`Policy`, which is also ``fifo``) and
:func:`make_policy`; each other policy has a module of its own, as each Linux scheduling class
has its own file: :mod:`arch_sim.models.policy_goodness` and :mod:`arch_sim.models.policy_eevdf`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arch_sim.models.scheduler import Cpu, Scheduler, Task


class Policy:
    """Hooks with the FIFO behaviour; the other policies override what differs."""

    name = "fifo"
    needs_waker = False  # wake_cpu/wake_victim look at who does the waking

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.params = sched.params
        self._slice = sched.params.timeslice_ms * 1e-3

    def enqueue(self, task: Task, initial: bool) -> None:
        """``task`` becomes runnable (it is not on the run queue yet)."""

    def wake_cpu(self, task: Task, waker: Task | None) -> Cpu | None:
        return self.sched.idle_cpu_for(task)

    def wake_victim(self, task: Task, waker: Task | None) -> Cpu | None:
        if not self.params.wakeup_preempt:
            return None
        if task.pin is not None:
            cpu = task.pin
            return cpu if cpu.current is not None and not cpu.need_resched else None
        last = task.last_cpu
        if last is not None and last.current is not None and not last.need_resched:
            return last
        for cpu in self.sched.cpus:
            if cpu.current is not None and not cpu.need_resched:
                return cpu
        return None

    def slice_over(self, task: Task, cpu: Cpu) -> bool:
        return task.used >= self._slice

    def keeps_cpu(self, task: Task, cpu: Cpu) -> bool:
        if self.sched.someone_waits(cpu):
            return False
        task.used = 0.0  # nobody else wants this CPU: schedule() would pick us again
        return True

    def switched_out(self, task: Task, requeue: bool) -> None:
        """``task`` stopped running: blocked or exited (``requeue`` False) or preempted."""

    def pick(self, cpu: Cpu) -> Task | None:
        sched = self.sched
        queue = sched.runqueue
        if not queue:
            return None
        if not sched.any_pinned:
            return queue.popleft()
        for i, t in enumerate(queue):
            if t.pin is None or t.pin is cpu:
                del queue[i]
                return t
        return None

    def forked(self, parent: Task | None, child: Task) -> None:
        """``parent`` (None: created from outside any task) created ``child``."""


def make_policy(sched: Scheduler) -> Policy:
    """The policy object ``sched.params.policy`` names."""
    from arch_sim.models.policy_eevdf import Eevdf
    from arch_sim.models.policy_goodness import Goodness

    name = sched.params.policy
    if name == "eevdf":
        params = sched.params
        return Eevdf(sched, params.eevdf_wakeup_preemption, params.eevdf_run_to_parity)
    if name in ("linux-2.2", "linux-2.4"):
        return Goodness(sched, name.split("-", 1)[1])
    if name == "fifo":
        return Policy(sched)
    raise ValueError(f"unknown scheduler policy {name!r}")
