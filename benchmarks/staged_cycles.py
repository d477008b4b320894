"""Where the staged server's switches are, cycle by cycle: the real server and the host model.

    .venv/bin/python benchmarks/staged_cycles.py [--rate 100] [--seconds 5] [--requests 3000]
        [--top 8] [--model-only]

At a paced load the server's CPU idles between requests, so CPU 0's timeline splits into cycles
from one idle stretch to the next.  A cycle is written as the tasks that ran in it, in order,
each with how it stopped: ``wa`` wait_headers, ``se`` send_data, ``lo`` logging, ``ac`` accept,
``ma`` the main thread, ``ot`` any other task (a kernel thread; the model's RCU thread); ``!``
it was preempted, else it blocked.  So ``wa se! lo se lo`` is: wait_headers hands the request
to send_data and sleeps; send_data hands it to logging, which preempts it; logging finds the
GIL held and sleeps; send_data goes back to its queue and sleeps; logging logs and sleeps.

* real: the staged server on CPU 0 under wrk -c 64 keep-alive paced at ``--rate`` (CPU 1),
  after a 2-s warm-up; bpftrace's sched_switch on CPU 0 for ``--seconds`` (bpftrace itself
  pinned to CPU 1, so its own wake-ups are not on CPU 0);
* model: the host preset at the same rate, keep-alive, ``--requests`` requests in the steady
  state (:class:`~arch_sim.models.trace.SwitchTrace` on the scheduler).

For each: every group's switches per request (blocked, preempted), the commonest cycles with how
many there were, and each one's median run lengths in us.  The traced run lengths hold the
tracing's own cost (a probe at every switch), so compare their order and shape, not single
microseconds.  Needs root and bpftrace for the real side (Debian: apt-get install -y bpftrace).
"""

from __future__ import annotations

import collections
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arch_sim.argtypes import OneLineParser, positive_float, positive_int  # noqa: E402
from arch_sim.models.runner import simulate_point  # noqa: E402
from arch_sim.models.trace import switch_traces  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gil_audit import loaded_server, task_names, thread_groups  # noqa: E402

#: bpftrace: every switch on CPU 0 (time, the task leaving, its reported state, the task coming
#: in).  A task still runnable is reported as 0 (preempted on its way back to user space) or as
#: TASK_REPORT_MAX, 0x100 (preempted inside the kernel); a sleeper by its sleep state.
PROGRAM = r"""
tracepoint:sched:sched_switch /cpu == 0/ {
  printf("S %llu %d %d %d\n", nsecs, args->prev_pid, args->prev_state, args->next_pid);
}
"""
PREEMPTED = 0x100  # TASK_REPORT_MAX (docs/SOURCES.md [LX-switch-state])
SHORT = {"wait_headers": "wa", "send_data": "se", "logging": "lo", "accept": "ac",
         "main": "ma", "idle": "idle"}

#: one switch: (time s, the group leaving, whether it was preempted, the group coming in)
Switch = tuple[float, str, bool, str]
#: one run of a task inside a cycle: (group, preempted, microseconds)
Run = tuple[str, bool, float]


def short(group: str) -> str:
    return SHORT.get(group, "ot")


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
    return " ".join(short(g) + ("!" if pre else "") for g, pre, _ in cycle)


def summary(cycles: list[list[Run]], requests: float, top: int) -> dict:
    """Switches per request by (group, blocked/preempted); the ``top`` commonest cycles, each
    with its count and median run lengths (us)."""
    by_kind: collections.Counter[tuple[str, str]] = collections.Counter()
    runs: dict[str, list[list[float]]] = collections.defaultdict(list)
    for cycle in cycles:
        for group, pre, _ in cycle:
            by_kind[(group, "preempted" if pre else "blocked")] += 1
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


def real(rate: float, seconds: float) -> tuple[list[list[Run]], float]:
    """The real server's cycles on CPU 0 and the requests served meanwhile."""
    if shutil.which("bpftrace") is None:
        raise SystemExit("staged_cycles: bpftrace not found: apt-get install -y bpftrace (as "
                         "root), or give --model-only")
    args = SimpleNamespace(arch="staged", file_set="specweb99", threads=None, connections=64,
                           warmup=2.0, seconds=seconds, rate=rate)
    with tempfile.TemporaryDirectory(prefix="arch-sim-cycles-") as tmp:
        with loaded_server(args, Path(tmp)) as server:
            names = task_names(server.pid)
            groups = thread_groups("staged", server.pid, names, names)
            before = server.status()["requests"]
            out = subprocess.run(["taskset", "-c", "1", "timeout", "-s", "INT", str(seconds),
                                  "bpftrace", "-e", PROGRAM], capture_output=True, text=True)
            served = server.status()["requests"] - before
    switches = []
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) == 5 and f[0] == "S":
            prev, state, nxt = int(f[2]), int(f[3]), int(f[4])
            switches.append((int(f[1]) * 1e-9, _group(prev, groups), state in (0, PREEMPTED),
                             _group(nxt, groups)))
    if not switches:
        raise SystemExit(f"staged_cycles: bpftrace traced nothing: {out.stderr.strip()[:200]}")
    return cycles_from_switches(switches), served


def _group(pid: int, groups: dict[int, str]) -> str:
    return "idle" if pid == 0 else groups.get(pid, "other")


def model(rate: float, requests: int, seed: int = 1) -> tuple[list[list[Run]], float]:
    """The host model's cycles on CPU 0 at the same point, and the requests it completed."""
    with switch_traces() as traces:
        row = simulate_point("staged", "host", rate, workload="closed",
                             connection="keep-alive", requests=requests, seed=seed)
    stretches = [s for s in traces[0].finish(0.0) if s.cpu == 0]
    switches = [(a.end, a.task.split("/")[0], a.why in ("wakeup", "slice"),
                 b.task.split("/")[0]) for a, b in zip(stretches, stretches[1:], strict=False)]
    span = stretches[-1].end - stretches[0].start
    return cycles_from_switches(switches), row["rps"] * span


def show(title: str, s: dict) -> None:
    print(f"{title}: {s['requests']:.0f} requests, {s['cycles']} cycles")
    for kind, value in s["per_request"].items():
        print(f"  {kind:<24} {value:6.3f} a request")
    for p, count, medians in s["cycles_common"]:
        print(f"  {count:6d}  {p}\n          median us: {medians}")


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=positive_float, default=100.0, help="requests/s (100)")
    ap.add_argument("--seconds", type=positive_float, default=5.0, help="traced (5)")
    ap.add_argument("--requests", type=positive_int, default=3000, help="modelled (3000)")
    ap.add_argument("--top", type=positive_int, default=8, help="cycles shown (8)")
    ap.add_argument("--model-only", action="store_true", help="no real server, no bpftrace")
    args = ap.parse_args(argv)
    if not args.model_only:
        cycles, served = real(args.rate, args.seconds)
        show(f"real, {args.rate:g} requests/s", summary(cycles, served, args.top))
    cycles, served = model(args.rate, args.requests)
    show(f"model (host), {args.rate:g} requests/s", summary(cycles, served, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
