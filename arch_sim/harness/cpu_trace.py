"""Every switch on the server's CPUs over one window, without the switches other processes cause.

``perf stat -a -C CPUS -e context-switches`` counts every switch on the server's CPUs - the
server's, the idle task's, kernel threads' and those of any other process the kernel happens to
run there.  On a shared machine that last part is neither the load's nor steady: a process of
another user that wakes 80 times a second lands on the server's CPU in one second and on the
other CPU in the next, so an idle baseline of one second taken before the window does not take
it off (benchmarks/cpu0_switches.py measured 0.8 switches per request at 100 requests/s from
one such process, against a baseline of 12/s).

:class:`CpuSwitchTrace` records ``sched:sched_switch`` (and ``sched:sched_process_fork``, to
follow what the server starts) on the server's CPUs with ``perf record -C``, and counts the
switches as if every other process had run elsewhere (:func:`collapse`): a run of foreign tasks
between two of ours is cut out of the CPU's sequence, and the switch that remains counts only
if the tasks on either side differ.  Ours are the idle task, kernel threads (what the CPU
itself does for the load: softirq threads, RCU's grace-period thread, workqueues) and the
server's own processes and threads.  perf itself and the harness are foreign too: they run
around the window, not for the load.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: one ``perf script -F tid,cpu,time,event,trace`` line
LINE = re.compile(r"^\s*(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$")
SWITCH = re.compile(r"prev_comm=(.*) prev_pid=(\d+) prev_prio=\S+ prev_state=(\S+) ==> "
                    r"next_comm=(.*) next_pid=(\d+) next_prio=")
FORK = re.compile(r"pid=(\d+) child_comm=.* child_pid=(\d+)")
#: kernel threads by name, for a task that exited before /proc could be asked
KTHREAD_NAME = re.compile(r"^(kworker/|ksoftirqd/|migration/|cpuhp/|idle_inject/|rcu|irq/|"
                          r"kcompactd|kswapd|khugepaged|jbd2/|kthreadd$|watchdog)")


@dataclass(frozen=True)
class Switch:
    """One ``sched_switch``: on ``cpu`` at ``t`` (s, CLOCK_MONOTONIC), ``prev`` -> ``nxt``;
    ``preempted``: ``prev`` was still runnable (it did not block)."""

    cpu: int
    t: float
    prev: int
    nxt: int
    preempted: bool = False


def collapse(switches: Iterable[Switch], foreign: Callable[[int], bool]) -> tuple[int, int]:
    """(kept, all): the switches counted as if ``foreign`` tasks had run on other CPUs.

    Per CPU, a task of ours that a foreign one follows would have gone on running had it been
    preempted, and the CPU would have switched to the idle task (pid 0) had it blocked - one
    switch, unless it is the idle task itself; the switch into the next task of ours counts
    if that task differs from the one the CPU would be running.  So idle -> X -> idle counts
    nothing, server (blocked) -> X -> server counts two (server -> idle -> server), server
    (preempted) -> X -> server nothing.
    """
    last: dict[int, int | None] = {}  # per CPU: the task of ours it would be running
    kept = total = 0
    for s in switches:
        total += 1
        if s.cpu not in last:
            last[s.cpu] = None if foreign(s.prev) else s.prev
        if foreign(s.nxt):
            if not foreign(s.prev) and not s.preempted and s.prev != 0:
                kept += 1  # it blocked: the CPU would have gone idle
                last[s.cpu] = 0
            continue
        if last[s.cpu] != s.nxt:
            kept += 1
        last[s.cpu] = s.nxt
    return kept, total


def parse(text: str) -> tuple[list[Switch], dict[int, str], list[tuple[int, int]]]:
    """perf script lines: the switches in order, each tid's name, and (parent, child) forks."""
    switches: list[Switch] = []
    names: dict[int, str] = {}
    forks: list[tuple[int, int]] = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        event, fields = m.group(4).rstrip(":").split(":")[-1], m.group(5)
        if event == "sched_switch":
            s = SWITCH.search(fields)
            if s:
                prev, nxt = int(s.group(2)), int(s.group(5))
                names.setdefault(prev, s.group(1))
                names.setdefault(nxt, s.group(4))
                switches.append(Switch(int(m.group(2)), float(m.group(3)), prev, nxt,
                                       s.group(3).startswith("R")))
        elif event == "sched_process_fork":
            f = FORK.search(fields)
            if f:
                forks.append((int(f.group(1)), int(f.group(2))))
    return switches, names, forks


def is_kernel_thread(tid: int, name: str) -> bool:
    """A kernel thread: /proc says so (``Kthread: 1``, or a child of kthreadd), or, for one
    that has exited, its name is a kernel thread's."""
    try:
        status = Path(f"/proc/{tid}/status").read_text()
    except OSError:
        return bool(KTHREAD_NAME.match(name))
    for line in status.splitlines():
        if line.startswith("Kthread:"):
            return line.split()[1] == "1"
        if line.startswith("PPid:") and line.split()[1] == "2":
            return True
    return tid == 2


def threads_of(pids: Iterable[int]) -> set[int]:
    """The pids and every thread they have now."""
    tids = set(pids)
    for pid in list(tids):
        try:
            tids.update(int(p.name) for p in Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            pass
    return tids


@dataclass
class Count:
    """Switches on the CPUs between two instants: ``kept`` without other processes', ``all``
    every one, over ``seconds``."""

    kept: int
    all: int
    seconds: float


class CpuSwitchTrace:
    """``perf record -C CPUS`` of the scheduler's switches while the window runs.

    ``server_pids`` names the server's processes (their threads, and every task they fork while
    the trace runs, count as the server's).  :meth:`count` tallies any span of the trace.
    """

    EVENTS = ("sched:sched_switch", "sched:sched_process_fork")

    def __init__(self, cpus: Sequence[int], server_pids: Callable[[], Sequence[int]]) -> None:
        self.cpus = list(cpus)
        self.server_pids = server_pids
        self.proc: subprocess.Popen | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="arch-sim-cpu-trace-"))
        self.switches: list[Switch] = []
        self._foreign: dict[int, bool] = {}

    @staticmethod
    @functools.cache
    def available() -> bool:
        """perf is installed and may record the scheduler's tracepoints here (asked once a
        process: the answer costs a perf record session, about a second)."""
        perf = shutil.which("perf")
        if perf is None:
            return False
        try:
            out = subprocess.run([perf, "record", "-q", "-o", "/dev/null", "-e",
                                  "sched:sched_switch", "--", "true"],
                                 capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0

    def start(self) -> None:
        cmd = ["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-m", "8M",
               "-C", ",".join(map(str, self.cpus)), "-o", str(self._dir / "perf.data")]
        cmd += [f"-e{e}" for e in self.EVENTS]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=self._off_server_cpus)
        time.sleep(0.3)  # perf record opens its events on every traced CPU

    def _off_server_cpus(self) -> None:
        """perf runs on the other CPUs, if there are any: its own wake-ups are not the load's."""
        rest = set(range(os.cpu_count() or 1)) - set(self.cpus)
        if rest:
            os.sched_setaffinity(0, rest)

    def stop(self) -> None:
        """Stop recording and read the trace."""
        if self.proc is None:
            return
        server = threads_of(self.server_pids())
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None
        data = self._dir / "perf.data"
        try:
            text = subprocess.run(["perf", "script", "-i", str(data), "-F",
                                   "tid,cpu,time,event,trace"], capture_output=True, text=True,
                                  timeout=120).stdout
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        self.switches, names, forks = parse(text)
        for parent, child in forks:  # in time order: a server task's children are the server's
            if parent in server:
                server.add(child)
        self._foreign = {tid: not (tid == 0 or tid in server or is_kernel_thread(tid, name))
                         for tid, name in names.items()}

    def count(self, t0: float, t1: float) -> Count:
        """The switches in [t0, t1] (CLOCK_MONOTONIC seconds, as ``time.monotonic()``)."""
        span = [s for s in self.switches if t0 <= s.t <= t1]
        kept, total = collapse(span, lambda tid: self._foreign.get(tid, True))
        return Count(kept, total, t1 - t0)
