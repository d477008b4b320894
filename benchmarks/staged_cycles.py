"""Where a Python server's switches are, cycle by cycle: the real server and the host model.

    .venv/bin/python benchmarks/staged_cycles.py [--arch thread-per-request] [--rate 100]
        [--connection close] [--seconds 5] [--requests 3000] [--top 8] [--preset P]
        [--model-only]

At a paced load the server's CPU idles between requests, so CPU 0's timeline splits into cycles
from one idle stretch to the next.  A cycle is written as the tasks that ran in it, in order,
each with how it stopped: ``wa`` wait_headers, ``se`` send_data, ``lo`` logging, ``ac`` accept,
``ma`` the main thread (the pool server's dispatcher), ``po`` a pool thread, ``wk`` the
state-group worker or a prefork worker process, ``ot`` any other task (a kernel thread; the
model's RCU thread); ``!`` it was preempted, else it blocked.
Threads of a group seen with more than one thread are numbered in the order they first run in
the cycle.  So ``wa se! lo se lo`` is: wait_headers hands the request to send_data and sleeps;
send_data hands it to logging, which preempts it; logging finds the GIL held and sleeps;
send_data goes back to its queue and sleeps; logging logs and sleeps.  And ``ma! po1 ma po2
po1``: the dispatcher wakes a pool thread, which preempts it; the dispatcher wakes a second
one and sleeps in epoll; the two serve their requests in turn.

* real: the server (``--arch``: staged, the default, the thread-per-request pool of 64,
  state-group or prefork, whose worker processes are ``wk``) on CPU 0 under wrk -c 64 paced
  at ``--rate`` (CPU 1), keep-alive or (``--connection close``) a connection per request,
  after a 2-s warm-up; ``perf record`` of sched_switch on CPU 0 for ``--seconds`` (perf itself
  and this script off CPU 0).
  Not bpftrace: a bpftrace probe that prints every switch costs CPU 0 enough to change what it
  measures - the pool server at 2,000 requests/s had its dispatcher preempted 0.43 times a
  request under it against 0.98 under perf and 1.09 (involuntary switches) untraced;
* model: the host preset (or ``--preset``) at the same rate and connection mode,
  ``--requests`` requests in the steady state (:class:`~arch_sim.models.trace.SwitchTrace` on
  the scheduler).

For each: every group's switches per request (blocked, preempted), the commonest cycles with how
many there were, and each one's median run lengths in us.  The traced run lengths hold the
tracing's own cost (an event at every switch), so compare their order and shape, not single
microseconds.  Needs root and perf for the real side (Debian: apt-get install -y linux-perf).
"""

from __future__ import annotations

import collections
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arch_sim.argtypes import OneLineParser, positive_float, positive_int  # noqa: E402
from arch_sim.harness.cpu_trace import CpuSwitchTrace  # noqa: E402
from arch_sim.models.runner import simulate_point  # noqa: E402
from arch_sim.models.trace import switch_traces  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gil_audit import loaded_server, task_names, thread_groups  # noqa: E402

SHORT = {"wait_headers": "wa", "send_data": "se", "logging": "lo", "accept": "ac",
         "main": "ma", "dispatcher": "ma", "pool": "po", "worker": "wk", "khttpd": "wk",
         "idle": "idle"}

#: one switch: (time s, the group leaving, whether it was preempted, the group coming in)
Switch = tuple[float, str, bool, str]
#: one run of a task inside a cycle: (group, preempted, microseconds)
Run = tuple[str, bool, float]


def short(group: str) -> str:
    return SHORT.get(group.partition("#")[0], "ot")


def cycles_from_switches(switches: Iterable[Switch]) -> list[list[Run]]:
    """Split a CPU's switches into idle-to-idle cycles of runs.  A run lasts from the switch
    that started it to the one that ended it; what comes before the first idle stretch (a cycle
    seen only in part) is left out, and so is an unfinished last one."""
    cycles: list[list[Run]] = []
    current: list[Run] | None = None
    last = None
    for t, prev, preempted, nxt in switches:
        if current is not None and prev != "idle" and last is not None:
            current.append((prev, preempted, (t - last) * 1e6))
        if nxt == "idle":
            if current:
                cycles.append(current)
            current = []
        last = t
    return cycles


def pattern(cycle: list[Run]) -> str:
    """The cycle's runs in order; threads of one group (``pool#TID``) are told apart by a
    number, in the order they first run in the cycle (``po1 po2 po1``)."""
    seen: dict[str, int] = {}
    out = []
    for g, pre, _ in cycle:
        name = short(g)
        if "#" in g:
            base = g.partition("#")[0]
            number = seen.setdefault(g, sum(k.partition("#")[0] == base for k in seen) + 1)
            name += str(number)
        out.append(name + ("!" if pre else ""))
    return " ".join(out)


def summary(cycles: list[list[Run]], requests: float, top: int) -> dict:
    """Switches per request by (group, blocked/preempted); the ``top`` commonest cycles, each
    with its count and median run lengths (us)."""
    by_kind: collections.Counter[tuple[str, str]] = collections.Counter()
    runs: dict[str, list[list[float]]] = collections.defaultdict(list)
    for cycle in cycles:
        for group, pre, _ in cycle:
            by_kind[(group.partition("#")[0], "preempted" if pre else "blocked")] += 1
        runs[pattern(cycle)].append([us for _, _, us in cycle])
    n = max(requests, 1.0)
    common = sorted(runs.items(), key=lambda kv: -len(kv[1]))[:top]
    return {
        "requests": requests, "cycles": len(cycles),
        "per_request": {f"{g} {why}": count / n for (g, why), count in sorted(by_kind.items())},
        "cycles_common": [(p, len(lens), [round(statistics.median(col), 1)
                                          for col in zip(*lens, strict=True)])
                          for p, lens in common],
    }


def real(arch: str, rate: float, seconds: float, connection: str = "keep-alive"
         ) -> tuple[list[list[Run]], float]:
    """The real server's cycles on CPU 0 and the requests served meanwhile."""
    if not CpuSwitchTrace.available():
        raise SystemExit("staged_cycles: perf cannot record sched:sched_switch here: apt-get "
                         "install -y linux-perf (as root), or give --model-only")
    args = SimpleNamespace(arch=arch, file_set="specweb99", connections=64, connection=connection,
                           threads=64 if arch == "thread-per-request" else None,
                           warmup=2.0, seconds=seconds, rate=rate)
    # this process stays off CPU 0 too (the server and wrk pin themselves; perf runs off it)
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="arch-sim-cycles-") as tmp:
        with loaded_server(args, Path(tmp)) as server:
            names = task_names(server.pid)
            groups = thread_groups(arch, server.pid, names, names)
            for child in children(server.pid):  # the state-group server's worker processes
                groups.update(dict.fromkeys(task_names(child), "worker"))
            trace = CpuSwitchTrace([0], lambda: [server.pid])
            before = server.status()["requests"]
            trace.start()
            time.sleep(seconds)
            served = server.status()["requests"] - before
            trace.stop()
    switches = [(s.t, _group(s.prev, groups), s.preempted, _group(s.nxt, groups))
                for s in trace.switches if s.cpu == 0]
    if not switches:
        raise SystemExit("staged_cycles: perf traced no switch on CPU 0")
    return cycles_from_switches(numbered(switches)), served


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (/proc's ``children`` of each of its threads)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def numbered(switches: list[Switch]) -> list[Switch]:
    """Each task as ``group#id``, or as its group alone where the trace saw only one thread of
    that group."""
    ids: dict[str, set[str]] = collections.defaultdict(set)
    for _, prev, _, nxt in switches:
        for task in (prev, nxt):
            group, _, ident = task.partition("#")
            ids[group].add(ident)

    def name(task: str) -> str:
        group = task.partition("#")[0]
        return task if len(ids[group]) > 1 else group

    return [(t, name(prev), pre, name(nxt)) for t, prev, pre, nxt in switches]


def _group(pid: int, groups: dict[int, str]) -> str:
    return "idle" if pid == 0 else f"{groups[pid]}#{pid}" if pid in groups else "other"


def model(arch: str, rate: float, requests: int, seed: int = 1, preset: Any = "host",
          connection: str = "keep-alive") -> tuple[list[list[Run]], float]:
    """The host model's cycles on CPU 0 at the same point, and the requests it completed."""
    with switch_traces() as traces:
        row = simulate_point(arch, preset, rate, workload="closed",
                             connection=connection, requests=requests, seed=seed)
    stretches = [s for s in traces[0].finish(0.0) if s.cpu == 0]
    switches = [(a.end, a.task.replace("/", "#"), a.why in ("wakeup", "slice"),
                 b.task.replace("/", "#"))
                for a, b in zip(stretches, stretches[1:], strict=False)]
    span = stretches[-1].end - stretches[0].start
    return cycles_from_switches(numbered(switches)), row["rps"] * span


def show(title: str, s: dict) -> None:
    print(f"{title}: {s['requests']:.0f} requests, {s['cycles']} cycles")
    for kind, value in s["per_request"].items():
        print(f"  {kind:<24} {value:6.3f} a request")
    for p, count, medians in s["cycles_common"]:
        print(f"  {count:6d}  {p}\n          median us: {medians}")


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="staged",
                    choices=("staged", "thread-per-request", "state-group", "prefork"))
    ap.add_argument("--connection", default="keep-alive", choices=("keep-alive", "close"),
                    help="keep-alive (default), or close: a connection per request")
    ap.add_argument("--rate", type=positive_float, default=100.0, help="requests/s (100)")
    ap.add_argument("--seconds", type=positive_float, default=5.0, help="traced (5)")
    ap.add_argument("--requests", type=positive_int, default=3000, help="modelled (3000)")
    ap.add_argument("--top", type=positive_int, default=8, help="cycles shown (8)")
    ap.add_argument("--preset", default="host", help="the model's preset (host), or a file")
    ap.add_argument("--model-only", action="store_true", help="no real server, no perf")
    args = ap.parse_args(argv)
    if not args.model_only:
        cycles, served = real(args.arch, args.rate, args.seconds, args.connection)
        show(f"real, {args.rate:g} requests/s", summary(cycles, served, args.top))
    cycles, served = model(args.arch, args.rate, args.requests, preset=args.preset,
                           connection=args.connection)
    show(f"model ({args.preset}), {args.rate:g} requests/s", summary(cycles, served, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
