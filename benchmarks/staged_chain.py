"""Does the staged model keep a preemption chain going once it has started?

    .venv/bin/python benchmarks/staged_chain.py [--force N] [--rate 100] [--requests 4000]

On the kernel, at 100 requests/s with keep-alive, the logging thread woken by a send_data
thread's put() preempts it about half the time, and once it has, the next hand-off tends to
preempt too: the logging thread went to sleep behind the send_data thread it preempted, so it
wakes owed time (docs/FIDELITY.md, Staged).  The host model almost never starts that chain.
This script starts it by hand: the first ``--force`` wake-ups of a logging thread while a
send_data thread runs preempt it whatever EEVDF says (the model's
``Eevdf.wake_victim`` wrapped for the run), the rest follow the model's rules.  It prints the
server's switches per request and, per (running, woken) pair of thread groups in each half of
the run, the wake-up checks, the share that preempted and the share whose woken thread was owed
time: a chain that keeps itself going keeps the second half's send_data -> logging share up.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arch_sim.argtypes import positive_float  # noqa: E402
from arch_sim.models import policy_eevdf  # noqa: E402
from arch_sim.models.policy_eevdf import WakeCheck, watch_wake_checks  # noqa: E402
from arch_sim.models.runner import simulate_point  # noqa: E402


@contextmanager
def forced(count: int, waker: str = "send_data", woken: str = "logging") -> Iterator[dict]:
    """The first ``count`` wake-ups of a ``woken`` thread that EEVDF lets a running ``waker``
    thread keep its CPU preempt it instead; yields ``{"forced": how many}``."""
    original = policy_eevdf.Eevdf.wake_victim
    done = {"forced": 0}

    def wake_victim(self, task, by):
        cpu = original(self, task, by)
        if cpu is not None or done["forced"] >= count or not task.name.startswith(woken):
            return cpu
        for other in self.sched.cpus:
            curr = other.current
            if curr is not None and curr.name.startswith(waker) and not other.need_resched:
                done["forced"] += 1
                return other
        return None

    policy_eevdf.Eevdf.wake_victim = wake_victim
    try:
        yield done
    finally:
        policy_eevdf.Eevdf.wake_victim = original


def pairs(checks: list[WakeCheck]) -> dict[tuple[str, str], tuple[int, float, float]]:
    """Per (running group, woken group): checks, share preempted, share woken owed time."""
    tally: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for c in checks:
        t = tally[(c.curr.split("/")[0], c.woken.split("/")[0])]
        t[0] += 1
        t[1] += c.preempted
        t[2] += c.woken_lag > 0
    return {k: (n, p / n, o / n) for k, (n, p, o) in sorted(tally.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", type=int, default=500,
                    help="send_data -> logging wake-ups made to preempt (default 500)")
    ap.add_argument("--rate", type=positive_float, default=100.0, help="requests/s (100)")
    ap.add_argument("--requests", type=int, default=4000)
    args = ap.parse_args(argv)
    if args.force < 0 or args.requests < 100:
        print("staged_chain: --force must be >= 0 and --requests >= 100", file=sys.stderr)
        return 2
    checks: list[WakeCheck] = []
    with forced(args.force) as done, watch_wake_checks(checks.append):
        row = simulate_point("staged", "host", args.rate, workload="closed",
                             requests=args.requests, seed=1, connection="keep-alive")
    print(f"forced {done['forced']}: {row['reschedules_per_request']:.3f} switches a request")
    half = len(checks) // 2
    for name, part in (("first half", checks[:half]), ("second half", checks[half:])):
        print(name)
        for (curr, woken), (n, share, owed) in pairs(part).items():
            print(f"  {curr:>12} -> {woken:<12} {n:6d} checks, {share:4.0%} preempted, "
                  f"{owed:4.0%} woken owed time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
