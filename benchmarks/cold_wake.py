"""Does a short idle cost less than a long one?  The extra CPU time of the same work after the
CPU idled, when the sleeper is woken by its own timer and when a packet from a process on the
other CPU wakes it, as a server is woken by wrk.

``arch_sim.hostbench.cold_cache`` (the preset's ``cold_decay_ms``) times a small piece of work
after ``time.sleep(gap)`` and finds the extra growing with the gap, ``1 - exp(-gap / decay)``.  A
server is not woken by a timer: wrk's send on the other CPU wakes it through loopback, an
inter-processor interrupt and, in a virtual machine, the hypervisor.  This script times the same
work both ways, interleaved round by round, at gaps from 0.1 to 30 ms, on the server's CPU:

* ``timer``: the thread sleeps ``gap`` in ``time.sleep`` and then runs the work;
* ``packet``: the thread blocks in ``recv()`` on a loopback TCP connection; a process pinned to
  the other CPU sends one byte ``gap`` after the thread last finished;

each time counted from just before the sleep or the blocking ``recv()`` to the work's end
(``time.thread_time_ns``: the thread's own CPU, the wake-up path into it included), less the same
span when nothing sleeps (the byte already queued).  Prints one line per mode and gap (median
extra us over ``--rounds``) and, with ``--json``, the numbers.

``--bench FOLDER`` instead reads an ``arch-sim bench`` run and prints, per design, workload and
paced load, the server's CPU per request above its own at saturation and the idle periods of its
CPU per request (every switch on the CPU less the server's own: each idle period is left once,
by a switch from the idle task), and their ratio: what one idle period costs the server.

    python benchmarks/cold_wake.py --cpu 0 --other-cpu 1 --rounds 200
    python benchmarks/cold_wake.py --bench results/archs-bench-2026-11-30-c
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arch_sim.hostbench import fit_cold_decay  # noqa: E402

GAPS_MS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
BLOB = os.urandom(2048)


def work(a: socket.socket, b: socket.socket) -> int:
    """hostbench.cold_cache's work: a 2 KB send and recv on a socket pair, a little Python."""
    a.send(BLOB)
    b.recv(65536)
    return len(json.dumps({i: str(i) for i in range(20)}))


def sender(port: int, cpu: int, gaps: list[float], ready: mp.Event) -> None:
    """Connect, then for each gap: wait for the sleeper's go byte, sleep ``gap``, send a byte."""
    os.sched_setaffinity(0, {cpu})
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ready.set()
    for gap in gaps:
        if not s.recv(1):  # the sleeper is about to block
            break
        if gap > 0:
            time.sleep(gap)
        s.send(b"x")
    s.close()


def run(cpu: int, other_cpu: int, rounds: int, gaps_ms: tuple[float, ...]) -> dict:
    os.sched_setaffinity(0, {cpu})
    pa, pb = socket.socketpair()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10.0)  # a sender that never connects ends the run, not hangs it
    # every packet round: one per (gap, round) and one warm (gap 0) per round
    plan = [g / 1e3 for _ in range(rounds) for g in (0.0, *gaps_ms)]
    ready = mp.Event()
    proc = mp.Process(target=sender, args=(listener.getsockname()[1], other_cpu, plan, ready))
    proc.start()
    conn, _ = listener.accept()
    conn.settimeout(None)  # recv() blocks as a server's does (the sender's exit is an EOF)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ready.wait(5)
    for _ in range(200):
        work(pa, pb)
    timer: dict[float, list[float]] = {g: [] for g in gaps_ms}
    packet: dict[float, list[float]] = {g: [] for g in gaps_ms}
    warm_timer: list[float] = []
    warm_packet: list[float] = []
    try:
        for _ in range(rounds):
            for gap in (0.0, *gaps_ms):
                # packet: tell the sender to go, then block in recv() until its byte comes
                conn.send(b"g")
                while gap == 0.0 and not select.select([conn], [], [], 0)[0]:
                    work(pa, pb)  # wait, warm, until the byte is queued: recv() won't sleep
                t0 = time.thread_time_ns()
                if not conn.recv(1):
                    raise RuntimeError("cold_wake: the sending process went away")
                work(pa, pb)
                took = (time.thread_time_ns() - t0) / 1e3
                (warm_packet if gap == 0.0 else packet[gap]).append(took)
                # timer: the same work after the thread's own sleep
                t0 = time.thread_time_ns()
                if gap > 0:
                    time.sleep(gap / 1e3)
                work(pa, pb)
                took = (time.thread_time_ns() - t0) / 1e3
                (warm_timer if gap == 0.0 else timer[gap]).append(took)
    finally:
        conn.close()
        listener.close()
        proc.join(5)
        pa.close()
        pb.close()
    out: dict = {"cpu": cpu, "other_cpu": other_cpu, "rounds": rounds, "gaps_ms": list(gaps_ms)}
    for name, series, warm in (("timer", timer, warm_timer), ("packet", packet, warm_packet)):
        base = statistics.median(warm)
        extra = [max(0.0, statistics.median(series[g]) - base) for g in gaps_ms]
        decay, refill = fit_cold_decay(gaps_ms, extra)
        out[name] = {"warm_us": base, "extra_us": extra, "decay_ms": decay, "refill_us": refill}
    return out


def per_idle(folder: str) -> list[str]:
    """Lines: per design, workload and paced load, the CPU per request above saturation's and
    the CPU's idle periods per request (``--bench``)."""
    import pandas as pd

    from arch_sim import ALL_ARCHS

    df = pd.read_csv(Path(folder) / "measurements.csv")
    df = df[df["arch"].isin(ALL_ARCHS)].assign(load=lambda d: d["target_rps"].fillna(-1.0))
    points = df.groupby(["connection_mode", "arch", "load"]).agg(
        cpu=("cpu_us_per_request", "mean"), own=("reschedules_per_request", "mean"),
        every=("cpu_switches_per_request", "mean")).reset_index()
    lines = ["workload   design              load  CPU us/req  above sat.  idles/req  us/idle"]
    for (mode, arch), group in points.groupby(["connection_mode", "arch"], sort=False):
        sat = group[group["load"] < 0]
        if sat.empty:
            continue
        base = float(sat["cpu"].iloc[0])
        for _, r in group[group["load"] > 0].iterrows():
            idles = r["every"] - r["own"]
            ratio = f"{(r['cpu'] - base) / idles:8.0f}" if idles > 0.05 else "       -"
            lines.append(f"{mode:<10} {arch:<18} {r['load']:>5.0f} {r['cpu']:11.0f} "
                         f"{r['cpu'] - base:11.0f} {idles:10.2f} {ratio}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", type=int, default=0, help="the sleeper's CPU (the server's)")
    ap.add_argument("--other-cpu", type=int, default=1, help="the sender's CPU (wrk's)")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    ap.add_argument("--bench", metavar="FOLDER",
                    help="an arch-sim bench run: print what an idle period costs its servers")
    args = ap.parse_args(argv)
    if args.bench:
        if not (Path(args.bench) / "measurements.csv").is_file():
            print(f"cold_wake: {args.bench}/measurements.csv not found: give an arch-sim bench "
                  "folder", file=sys.stderr)
            return 2
        print("\n".join(per_idle(args.bench)))
        return 0
    if args.rounds < 5:
        print("cold_wake: --rounds must be at least 5", file=sys.stderr)
        return 2
    out = run(args.cpu, args.other_cpu, args.rounds, GAPS_MS)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"extra CPU (us, median of {args.rounds}) after an idle of ... ms")
    print("mode    warm " + " ".join(f"{g:>7g}" for g in GAPS_MS) + "   fit: decay_ms refill_us")
    for name in ("timer", "packet"):
        m = out[name]
        print(f"{name:<7}{m['warm_us']:5.1f} " + " ".join(f"{e:7.1f}" for e in m["extra_us"])
              + f"   {m['decay_ms']:8.2f} {m['refill_us']:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
