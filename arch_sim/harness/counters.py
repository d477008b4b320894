"""Reschedule counters of a server over exactly one wrk window, from every source we have.

- ``/server-status``  the server's own getrusage (keeps exited threads' counts) - primary
- ``/proc/PID/task/*/status``  per-thread counts of live threads (an exited thread's are lost)
- ``perf stat -e context-switches -p PIDS``  the kernel's count for the pids, inherited: every
  process and thread they start later is counted too, and when one exits its count is added to
  its parent's counter, so a server that forks and reaps workers during the window loses none
  (docs/SOURCES.md [CS-perf-inherit]).  The primary count for a server without a
  ``/server-status`` (peers, bring-your-own servers).
- ``perf stat -a -C CPUS -e context-switches``  every switch on the server's CPUs, to and from
  the idle task included: what the seed's author most likely read (``vmstat``'s ``cs``,
  docs/SOURCES.md [CS-vmstat] [CS-perf]) - without wrk, which runs on another CPU, as the
  clients of 1999 ran on other machines.  The idle machine's rate on those CPUs (its
  background: kernel threads, other processes) is measured just before each load point.
- ``/proc/stat ctxt``  the whole system, wrk and everything else included
- ``/proc/stat cpuN``  each CPU's steal time: how much of the window the hypervisor gave the
  run's CPUs to someone else (:mod:`arch_sim.machine_state`)
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from arch_sim.machine_state import cpu_times, steal_fraction


@dataclass
class Snapshot:
    """Counter values at one instant."""

    status: dict | None  # the server's /server-status (None for peers without one)
    proc_voluntary: int
    proc_involuntary: int
    proc_cpu_s: float
    system_ctxt: int
    cpu_times: dict[int, tuple[int, int]] = field(default_factory=dict)  # per CPU: steal, total


@dataclass
class Delta:
    """Counter increments over a window."""

    voluntary: float | None
    involuntary: float | None
    proc_reschedules: int
    system_ctxt: int
    cpu_user_s: float | None
    cpu_system_s: float | None
    proc_cpu_s: float
    server_requests: int | None
    sleeps: int | None
    extra: dict = field(default_factory=dict)
    moved: dict[str, int] | None = None  # per lifecycle state: requests moved out of it
    steal_frac: float = math.nan  # the share of the run's CPUs' time stolen (machine_state)

    @property
    def reschedules(self) -> float | None:
        if self.voluntary is None or self.involuntary is None:
            return None
        return self.voluntary + self.involuntary


def proc_switches(pids: Iterable[int]) -> tuple[int, int]:
    """Sum of voluntary/nonvoluntary switches over every live thread of *pids*."""
    vol = invol = 0
    for pid in pids:
        for task in _tasks(pid):
            try:
                text = (task / "status").read_text()
            except OSError:
                continue  # the thread exited between listdir and read
            for line in text.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
    return vol, invol


def proc_cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of each process (the thread group, exited threads included) plus cutime +
    cstime, its reaped children's.  Summed over the same pids before and after a window, a
    child that exits and is reaped in between moves its time from its own fields to its
    parent's c-fields, so the difference keeps the time it ran in the window."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # proc(5): fields 14-17 (utime stime cutime cstime) are 11-14 after the ')'
        total += sum(int(f) for f in fields[11:15]) / tick
    return total


def system_ctxt() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("ctxt "):
            return int(line.split()[1])
    return 0


def snapshot(pids: Iterable[int], status: dict | None) -> Snapshot:
    pids = list(pids)
    vol, invol = proc_switches(pids)
    return Snapshot(status, vol, invol, proc_cpu_seconds(pids), system_ctxt(), cpu_times())


def delta(before: Snapshot, after: Snapshot, cpus: Iterable[int] = ()) -> Delta:
    """What changed between two snapshots; ``cpus``: the CPUs whose steal the window reports
    (none: nan)."""
    b, a = before.status, after.status
    have = b is not None and a is not None

    def diff(key: str) -> float | None:
        return (a[key] - b[key]) if have and key in a and key in b else None

    return Delta(
        voluntary=diff("voluntary_ctxt_switches"),
        involuntary=diff("involuntary_ctxt_switches"),
        proc_reschedules=(after.proc_voluntary + after.proc_involuntary)
        - (before.proc_voluntary + before.proc_involuntary),
        system_ctxt=after.system_ctxt - before.system_ctxt,
        cpu_user_s=diff("cpu_user_s"),
        cpu_system_s=diff("cpu_system_s"),
        proc_cpu_s=after.proc_cpu_s - before.proc_cpu_s,
        server_requests=diff("requests"),
        sleeps=_sleeps(b, a) if have else None,
        moved=_moved(b, a) if have else None,
        steal_frac=steal_fraction(before.cpu_times, after.cpu_times, cpus),
    )


def _moved(before: dict, after: dict) -> dict[str, int] | None:
    """Requests each state moved, summed over the state-group workers (None for others)."""
    def total(status: dict) -> dict[str, int] | None:
        workers = status.get("workers")
        if not workers or "per_state" not in workers[0]:
            return None
        out: dict[str, int] = {}
        for w in workers:
            for name, cell in w["per_state"].items():
                out[name] = out.get(name, 0) + int(cell.get("moved", 0))
        return out

    b, a = total(before), total(after)
    if b is None or a is None:
        return None
    return {name: max(0, a[name] - b.get(name, 0)) for name in a}


def _sleeps(before: dict, after: dict) -> int | None:
    """Blocking polls of the state-group workers (None for servers that do not count them)."""
    def total(status: dict) -> int | None:
        workers = status.get("workers")
        if not workers or not any("sleeps" in w for w in workers):
            return None  # a server whose workers do not count their sleeps
        return sum(int(w.get("sleeps", 0)) for w in workers)

    b, a = total(before), total(after)
    return None if b is None or a is None else max(0, a - b)


def _tasks(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []


class PerfCounter:
    """``perf stat -e context-switches`` for one window (if permitted): attached to ``pids``,
    or counting every switch on ``cpus`` (``-a -C``).

    Attached to pids, perf opens one counter per thread with ``inherit`` set (perf stat's
    default; ``--no-inherit`` would clear it): a task the counted ones fork or clone later gets
    a child counter, and when it exits the kernel adds its count into the parent counter
    (perf_event_exit_task), so the total holds every switch of the whole tree in the window,
    exited processes and threads included - tests/test_byo.py checks it with a forked pair that
    ping-pongs over pipes and exits inside the window.
    """

    def __init__(self, pids: Iterable[int] = (), cpus: Iterable[int] | None = None) -> None:
        self.pids = list(pids)
        self.cpus = list(cpus) if cpus is not None else None
        self.proc: subprocess.Popen | None = None
        self._out = Path(tempfile.mkstemp(prefix="arch-sim-perf-")[1])

    @staticmethod
    def available() -> tuple[bool, str]:
        """(usable, reason) - perf is installed and may count context switches here."""
        perf = shutil.which("perf")
        if perf is None:
            return False, "perf not installed (apt-get install linux-perf)"
        try:
            out = subprocess.run(
                [perf, "stat", "-x,", "-e", "context-switches", "--", "true"],
                capture_output=True, text=True, timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"perf failed: {exc}"
        if out.returncode != 0 or "context-switches" not in out.stderr or "<not" in out.stderr:
            return False, "perf stat not permitted (see /proc/sys/kernel/perf_event_paranoid)"
        return True, "ok"

    def start(self) -> None:
        cmd = ["perf", "stat", "-x,", "-e", "context-switches"]
        if self.cpus is not None:
            cmd += ["-a", "-C", ",".join(str(c) for c in self.cpus)]
        else:
            cmd += ["-p", ",".join(str(p) for p in self.pids)]
        cmd += ["-o", str(self._out)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> int | None:
        """Stop counting; the number of context switches, or None if perf gave none.
        :attr:`seconds` is how long perf counted."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        finally:
            self.proc = None
        try:
            text = self._out.read_text()
        finally:
            self._out.unlink(missing_ok=True)
        for line in text.splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2] == "context-switches":
                if len(parts) > 3 and parts[3].isdigit():
                    self.seconds = int(parts[3]) / 1e9  # the counter's running time (ns)
                return int(parts[0]) if parts[0].isdigit() else 0
        return None

    seconds: float | None = None


def idle_cpu_switches(cpus: Iterable[int], seconds: float = 1.0,
                      server_pids: Callable[[], Sequence[int]] | None = None) -> float | None:
    """Switches per second on ``cpus`` while the load is off: the background a CPU-wide count
    includes (None without perf).  With ``server_pids``, read from a trace of those CPUs as
    :func:`~arch_sim.harness.measure.measure` reads a window with ``trace``: other processes'
    switches left out (:mod:`~arch_sim.harness.cpu_trace`)."""
    import time

    from .cpu_trace import CpuSwitchTrace

    if server_pids is not None:
        trace = CpuSwitchTrace(list(cpus), server_pids)
        trace.start()
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        trace.stop()
        return trace.count(t0, t1).kept / (t1 - t0)
    counter = PerfCounter(cpus=cpus)
    counter.start()
    time.sleep(seconds)
    count = counter.stop()
    return None if count is None else count / seconds
