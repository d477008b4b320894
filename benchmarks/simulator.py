"""Simulator speed: the models against a bare SimPy M/M/1 and ciw's, side by side.

    .venv/bin/python benchmarks/simulator.py [--rounds 5] [--requests 20000] [--out DIR]

Cases, each at 50% utilisation of one simulated CPU, ``--requests`` measured requests (plus the
models' warm-up; the queues get the same number of customers):

* the models - host thread-per-request and state-group (and linux-2.2-1999's, for information),
  at the rate that loads the CPU to 50% with the preset's own workload;
* a bare SimPy M/M/1 - one ``simpy.Resource`` and one process per customer;
* ciw's M/M/1 (https://ciw.readthedocs.io), if ciw is installed.

The machine is shared and its speed drifts within seconds, so every round runs every case once
(the order rotated from round to round) with a bare SimPy M/M/1 run right before and right
after it, and a case's speed counts as its ratio to those two neighbours (their geometric
mean): the table shows the median ratio and its range over the rounds.  SimPy events
per request are the events a run scheduled (``Environment._eid``: every timeout, process start
and triggered event takes one id) per request offered.  ``--out DIR`` writes ``speed.json`` and
``meta.json`` there.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simpy

from arch_sim.models import load_preset
from arch_sim.models.recorder import Recorder
from arch_sim.models.runner import default_warmup, rate_for_utilisation, simulate_point
from arch_sim.runinfo import git_commit, host_info, now_iso, write_json_atomic

UTILISATION = 0.5
#: (preset, arch) of the models measured; the host ones carry the floor
MODELS = (("host", "thread-per-request"), ("host", "state-group"),
          ("linux-2.2-1999", "thread-per-request"), ("linux-2.2-1999", "state-group"))
BASE = "simpy M/M/1"
CIW = "ciw M/M/1"


def events_scheduled(env: simpy.Environment) -> int:
    """Events ``env`` has scheduled so far (it numbers each one it schedules)."""
    return next(env._eid)


def run_model(preset: str, arch: str, rate: float, requests: int,
              seed: int) -> tuple[float, float, float]:
    """One model run: (simulated requests per wall-second, SimPy events per request, util)."""
    envs: list[simpy.Environment] = []

    def recorder(env: simpy.Environment, *args: Any) -> Recorder:
        envs.append(env)
        return Recorder(env, *args)

    row = simulate_point(arch, load_preset(preset), rate, cpus=1, requests=requests,
                         seed=seed, recorder_factory=recorder)
    offered = row["sim_requests_per_wall_s"] * row["wall_s"]
    return (row["sim_requests_per_wall_s"], events_scheduled(envs[0]) / offered,
            row["cpu_util"])


def run_simpy_mm1(customers: int, seed: int) -> tuple[float, float]:
    """A bare SimPy M/M/1 at 50% load: (customers per wall-second, events per customer)."""
    rng = random.Random(seed)
    lam, mu = UTILISATION, 1.0
    wall = time.perf_counter()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits: list[float] = []

    def customer(arrived: float):
        with server.request() as req:
            yield req
            yield env.timeout(rng.expovariate(mu))
        waits.append(env.now - arrived)

    def arrivals():
        for _ in range(customers):
            yield env.timeout(rng.expovariate(lam))
            env.process(customer(env.now))

    env.process(arrivals())
    env.run()
    wall = time.perf_counter() - wall
    assert len(waits) == customers
    return customers / wall, events_scheduled(env) / customers


def run_ciw_mm1(customers: int, seed: int) -> tuple[float, float]:
    """ciw's M/M/1 at 50% load: (customers per wall-second, nan: ciw has no SimPy events)."""
    import ciw

    ciw.seed(seed)
    wall = time.perf_counter()
    network = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(UTILISATION)],
                                 service_distributions=[ciw.dists.Exponential(1.0)],
                                 number_of_servers=[1])
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(customers, method="Finish")
    wall = time.perf_counter() - wall
    return customers / wall, float("nan")


def have_ciw() -> bool:
    try:
        import ciw  # noqa: F401
    except ImportError:
        return False
    return True


def measure(rounds: int, requests: int, models: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Every case once per round, in rotated order; per-case speeds and per-round ratios."""
    customers = requests + default_warmup(requests, "open", 0)
    rates = {m: rate_for_utilisation(m[1], m[0], UTILISATION, cpus=1) for m in models}
    cases: list[tuple[str, Callable[[int], tuple[float, ...]]]] = [
        (f"{p} {a}", lambda seed, p=p, a=a: run_model(p, a, rates[(p, a)], requests, seed))
        for p, a in models]
    if have_ciw():
        cases.append((CIW, lambda seed: run_ciw_mm1(customers, seed)))
    runs: dict[str, list[tuple[float, ...]]] = {name: [] for name, _ in cases}
    ratios: dict[str, list[float]] = {name: [] for name, _ in cases}
    runs[BASE], ratios[BASE] = [], []
    for r in range(rounds):
        k = r % len(cases)
        before = run_simpy_mm1(customers, r + 1)
        runs[BASE].append(before)
        for name, fn in cases[k:] + cases[:k]:
            run = fn(r + 1)
            after = run_simpy_mm1(customers, r + 1)
            runs[name].append(run)
            runs[BASE].append(after)
            ratios[name].append(run[0] / math.sqrt(before[0] * after[0]))
            before = after
        ratios[BASE].append(1.0)
    rows = []
    for name in [*(n for n, _ in cases[:len(models)]), BASE, *(n for n, _ in cases[len(models):])]:
        speeds = [run[0] for run in runs[name]]
        row: dict[str, Any] = {
            "case": name, "speeds": speeds, "ratios": ratios[name],
            "median_speed": statistics.median(speeds),
            "median_ratio": statistics.median(ratios[name]),
            "min_ratio": min(ratios[name]), "max_ratio": max(ratios[name]),
            "events_per_request": statistics.median(run[1] for run in runs[name]),
        }
        for (p, a), rate in rates.items():
            if name == f"{p} {a}":
                row.update(preset=p, arch=a, offered_rps=rate,
                           cpu_util=statistics.median(run[2] for run in runs[name]))
        rows.append(row)
    return {"rounds": rounds, "requests": requests, "customers": customers,
            "utilisation": UTILISATION, "rows": rows}


def floors_hold(result: dict[str, Any]) -> bool:
    """Both host models at least as fast as the bare SimPy M/M/1 (median over rounds)."""
    host = [r for r in result["rows"] if r.get("preset") == "host"]
    return bool(host) and all(r["median_ratio"] >= 1.0 for r in host)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--host-only", action="store_true", help="skip the 1999 preset")
    parser.add_argument("--out", type=Path, help="write speed.json and meta.json here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be positive")
    models = tuple(m for m in MODELS if not (args.host_only and m[0] != "host"))
    started = now_iso()
    wall = time.perf_counter()
    result = measure(args.rounds, args.requests, models)
    wall = time.perf_counter() - wall
    print(f"{'case':34s} {'req/wall-s':>11s} {'vs simpy M/M/1 (median, range)':>32s} "
          f"{'events/req':>10s}")
    for r in result["rows"]:
        span = f"{r['median_ratio']:.2f}x ({r['min_ratio']:.2f}-{r['max_ratio']:.2f})"
        print(f"{r['case']:34s} {r['median_speed']:11,.0f} {span:>32s} "
              f"{r['events_per_request']:10.2f}")
    ok = floors_hold(result)
    print(f"floor (both host models >= 1.0x the bare SimPy M/M/1): {'holds' if ok else 'missed'}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out / "speed.json", {"kind": "simulator-speed", **result,
                                                   "floor_holds": ok})
        write_json_atomic(args.out / "meta.json", {
            "kind": "simulator-speed", **host_info(), "git": git_commit(), "start": started,
            "end": now_iso(), "wall_s": wall,
            "command": "benchmarks/simulator.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
