"""``arch-sim calibrate``: measure this host and write the ``host`` model preset.

The measurements, kept raw in ``<preset>.calibration.json`` beside the preset (the sixth in
``<preset>.rcu.json``):

1. the cost of one context switch between two processes pinned to one CPU (lmbench
   ``lat_ctx`` style pipe ping-pong, the one-process pipe cost subtracted);
2. the wake-up latency of a process blocked in ``read`` when another CPU writes to it;
3. each real server's CPU cost per request at saturation (its own getrusage over a wrk
   window) and its reschedules per request there - and the same at a paced load
   (``PACED_RPS``), where the CPU idles between requests and each costs more (cold caches);
   then each unpaced with a new connection per request (the seed's HTTP/1.0 regime, both
   thread-per-request shapes), which prices a connection of its own; and for prefork, the
   share of its CPU per request spent after a reply's last send (:mod:`.aftersend`, traced with
   perf; without root or perf the preset keeps the estimated share), its ``log_us``;
4. how fast an idle CPU's caches go cold (``cold_cache``: short work after 0.3-10 ms of sleep);
5. what waking a sleeping thread costs the waker (``futex_wake_us``: a ``Lock.release()`` with a
   thread asleep on it, on the servers' CPU; that thread at ``SCHED_IDLE``, so that its wake-up
   does not preempt the releaser and add a switch the model charges on its own);
6. RCU's grace-period thread on the servers' CPU per closed connection (:mod:`.rcubench`: bare
   loopback connections closed at 25-1,600/s, traced with perf; needs root and perf), written to
   ``NAME.rcu.json`` beside the preset (``--no-rcu`` skips it; ``--arch`` does not redo it).

Without wrk, (3) is skipped and the preset keeps its server costs from the placeholder.

(3) runs every architecture of ``ALL_ARCHS`` that has a real server module
(``arch_sim.harness.servers.SERVER_MODULES``).  ``--arch NAME`` (repeatable) re-measures only
those architectures' servers: the other measurements are read back from the preset's
``calibration.json``, only the named architectures' are replaced, and the preset is written
again with every other value exactly as it was.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import ALL_ARCHS, statecpu, threadcpu
from .argtypes import UsageError, options, positive_float
from .hostbench import (
    RING_MEMBERS,
    cold_cache,
    cold_curve_text,
    context_switch_us,
    cpu_time_cv,
    decay_fitted,
    futex_wake_us,
    process_switch_us,
    wakeup_latency_us,
)
from .machine_state import drift_note, reference_us
from .runinfo import host_info, now_iso, write_atomic, write_json_atomic

DEFAULT_OUT = Path(__file__).parent / "models" / "presets" / "host.toml"
THREADS = 64  # the thread-per-request pool `arch-sim bench` runs by default
#: what calibrate measures of a design beside its saturation bench (a bench run's rows hold none
#: of it): the work after the last send (prefork), the CPU thread by thread (staged, the pool),
#: state by state (the state-group worker), each also with a connection per request (_close)
CALIBRATE_ONLY = ("after_send", "threads_cpu", "states_cpu", "after_send_close",
                  "threads_cpu_close", "states_cpu_close")
PACED_RPS = 1000  # the paced load the servers also run at: the CPU idles ~1 ms between requests


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="where to write the preset (default: the packaged host preset)")
    p.add_argument("--server-cpus", default="0", help="CPU the servers run on (0)")
    p.add_argument("--client-cpus", default="1", help="CPU wrk runs on (1)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds of saturation per server")
    p.add_argument("--file-set", default="specweb99", choices=("specweb99", "1k"))
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--no-servers", action="store_true", help="skip the real-server measurements")
    p.add_argument("--no-rcu", action="store_true",
                   help="skip the RCU grace-period measurement (the preset keeps the .rcu.json "
                        "beside it, if any)")
    p.add_argument("--rcu-seconds", type=positive_float, default=3.0,
                   help="seconds per close rate in the RCU grace-period measurement (3)")
    p.add_argument("--arch", action="append", choices=ALL_ARCHS, default=None,
                   help="re-measure only this architecture's server (repeatable); the preset's "
                        "other values stay as they were (needs its calibration.json)")


def server_archs() -> list[str]:
    """The architectures calibrate measures: those of ALL_ARCHS with a real server module."""
    from .harness.servers import SERVER_MODULES

    return [a for a in ALL_ARCHS if a in SERVER_MODULES]


def calibration_path(preset: Path) -> Path:
    return preset.with_name(preset.stem + ".calibration.json")


def measure(args: argparse.Namespace, archs: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement; returns the raw dict the preset is made from.  *archs*: the
    servers to measure (default :func:`server_archs`: every one there is)."""
    from .harness.plan import parse_cpus

    server_cpus = parse_cpus(args.server_cpus)
    client_cpus = parse_cpus(args.client_cpus)
    print("calibrate: context-switch cost (pipe ping-pong on one CPU)...", flush=True)
    switch = context_switch_us(cpu=server_cpus[0])
    print(f"  {switch.switch_us:.2f} us per switch", flush=True)
    print("calibrate: wake-up latency (write from one CPU, reader blocked on another)...")
    wakeup = wakeup_latency_us(waker_cpu=client_cpus[0], sleeper_cpu=server_cpus[0])
    print(f"  median {wakeup['median_us']:.1f} us, p99 {wakeup['p99_us']:.1f} us", flush=True)
    print("calibrate: a futex wake's cost to the waker (Lock.release, same CPU)...", flush=True)
    futex = futex_wake_us(cpu=server_cpus[0])
    print(f"  {futex['wake_us']:.2f} us", flush=True)
    print("calibrate: CPU-time jitter of fixed work...", flush=True)
    jitter = cpu_time_cv(cpu=server_cpus[0])
    print("calibrate: how fast an idle CPU's caches go cold...", flush=True)
    cold = cold_cache(cpu=server_cpus[0])
    if decay_fitted(cold["decay_ms"]):
        print(f"  decay {cold['decay_ms']:.1f} ms", flush=True)
    else:
        print(f"  no decay fits (more than warm: {cold_curve_text(cold)}): the preset keeps "
              "the development host's", flush=True)
    processes: dict[str, Any] | None = None
    # only the prefork model's workers pay a switch into another process: a calibration that
    # does not measure that design (`arch-sim reproduce --quick`: the seed's two) spares the
    # ring's seconds
    if archs is None or "prefork" in archs:
        print(f"calibrate: a switch to another of {RING_MEMBERS} processes (a ring of "
              "processes against one of threads)...", flush=True)
        try:
            processes = process_switch_us(cpu=server_cpus[0])
        except OSError as exc:  # no more processes or pipes allowed here, say
            print(f"  not measured ({exc}): the preset's mm_switch_us stays 0", flush=True)
        else:
            print(f"  {processes['extra_us']:.1f} us more a switch "
                  f"({processes['processes_us']:.1f} against {processes['threads_us']:.1f} us "
                  "a turn)", flush=True)
    found, skipped = {}, None
    if args.no_servers:
        skipped = "--no-servers given"
    else:
        found, skipped = _servers_at_saturation(args, archs)
    # the reference work again: the servers' numbers were taken between the two times
    start, end = float(cold.get("warm_us", 0.0)), reference_us(server_cpus[0])
    drift = drift_note(start, end)
    print(f"calibrate: the reference work took {start:.1f} us at the start and {end:.1f} us at "
          "the end", flush=True)
    if drift:
        print(f"warning: {drift}", file=sys.stderr, flush=True)
    return {
        "kind": "calibration",
        "time": now_iso(),
        "host": host_info(),
        "switch": vars(switch),
        "wakeup": wakeup,
        "servers": found.get("servers", {}),
        "client": found.get("client"),
        "close": found.get("close", {}),
        "cpu_jitter": jitter,
        "cold_cache": cold,
        "machine_state": {"reference_us_start": start, "reference_us_end": end},
        "futex": futex,
        "process_switch": processes,
        "servers_skipped": skipped,
        "server_cpus": server_cpus,
        "client_cpus": client_cpus,
        "file_set": args.file_set,
        "connections": args.connections,
        "threads": THREADS,
    }


def _servers_at_saturation(args: argparse.Namespace,
                           archs: list[str] | None = None) -> tuple[dict, str | None]:
    """Each real server (``archs``, default :func:`server_archs`) unpaced for one window:
    CPU and reschedules per request, and wrk's own CPU per request (the client's cost, which
    the model's closed workload needs); then paced at ``PACED_RPS`` (what a request costs when
    the CPU idles in between)."""
    from .harness import bench
    from .harness.wrk import WrkError, find_wrk

    try:
        find_wrk()
    except WrkError as exc:
        return {}, str(exc)
    archs = server_archs() if archs is None else archs
    print("calibrate: each real server at saturation (wrk unpaced)...", flush=True)
    with tempfile.TemporaryDirectory(prefix="arch-sim-calibrate-") as tmp:
        bench_args = options(bench.add_arguments, arch=list(archs), loads=f"{PACED_RPS},max",
                             duration=args.duration, warmup=1.0, reps=1,
                             server_cpus=args.server_cpus, client_cpus=args.client_cpus,
                             file_set=args.file_set, connections=args.connections,
                             threads=[THREADS], out=str(Path(tmp) / "run"), no_plots=True,
                             no_cpu_trace=True)  # no switch count is an input
        code = bench.Bench(bench.make_plan(bench_args), bench_args).run()
        if code != 0:
            return {}, f"the saturation run failed (exit {code}); see the messages above"
        df = pd.read_csv(Path(tmp) / "run" / "measurements.csv")
    close = _close_at_saturation(args, archs)
    servers, client = servers_from_rows(df, archs, PACED_RPS)
    if "prefork" in servers:
        servers["prefork"]["after_send"] = _prefork_after_send(args)
        servers["prefork"]["after_send_close"] = _prefork_after_send(args, keep_alive=False)
    # each twice: keep-alive splits the model's costs; beside a connection per request, what
    # the accepting and the closing code spend more splits a connection's cost
    # (connection_costs.accept_share)
    for arch in threadcpu.ARCHS:
        if arch in servers:
            servers[arch]["threads_cpu"] = _cpu_split(args, arch)
            servers[arch]["threads_cpu_close"] = _cpu_split(args, arch, keep_alive=False)
    if "staged" in servers:
        servers["staged"]["handoffs"] = _staged_handoffs(args)
    if statecpu.ARCH in servers:
        servers[statecpu.ARCH]["states_cpu"] = _cpu_split(args, statecpu.ARCH)
        servers[statecpu.ARCH]["states_cpu_close"] = _cpu_split(args, statecpu.ARCH,
                                                                keep_alive=False)
    if close.get("client_us") is not None:
        close["client_close_us"] = max(0.0, close.pop("client_us") - client)
    return {"servers": servers, "client": {"cpu_us_per_request": client}, "close": close}, None


def _beside(args: argparse.Namespace, title: str, measure: Callable[..., dict[str, Any]],
            seconds: float, errors: tuple[type[BaseException], ...], keeps: str,
            summary: Callable[[dict[str, Any]], str]) -> dict[str, Any] | None:
    """One of the measurements calibrate makes beside the saturation bench: ``measure`` run on
    the servers' and the client's CPUs for ``seconds``; None, said in one line, when it fails
    with one of ``errors`` (the preset then ``keeps`` its estimate)."""
    from .harness.plan import parse_cpus

    print(f"calibrate: {title}...", flush=True)
    try:
        found = measure(seconds=seconds, server_cpu=parse_cpus(args.server_cpus)[0],
                        client_cpu=parse_cpus(args.client_cpus)[0], file_set=args.file_set,
                        connections=args.connections)
    except errors as exc:
        print(f"  not measured ({exc}): the preset keeps {keeps}", flush=True)
        return None
    print(f"  {summary(found)}", flush=True)
    return found


def _prefork_after_send(args: argparse.Namespace,
                        keep_alive: bool = True) -> dict[str, Any] | None:
    """The prefork worker's work after its last send, as a share of its CPU per request
    (:mod:`arch_sim.aftersend`), with keep-alive or (not ``keep_alive``) a connection per
    request; None, said in one line, where perf or root is missing."""
    from . import aftersend

    title = "the prefork worker's work after a reply's last send (perf record)"
    return _beside(args, title if keep_alive else title + " with a connection per request",
                   functools.partial(aftersend.measure, keep_alive=keep_alive),
                   min(3.0, float(args.duration)),
                   (RuntimeError, OSError, subprocess.CalledProcessError),
                   "the estimated logging share",
                   lambda f: f"{f['after_send_us']:.1f} us of {f['cpu_us_per_request']:.1f} us "
                             f"a request: {f['share']:.0%}")


def _staged_handoffs(args: argparse.Namespace) -> dict[str, Any] | None:
    """What the staged server's hand-offs cost its threads (:mod:`arch_sim.handoffs`), or
    None, said in one line, where it cannot be timed."""
    from . import handoffs

    return _beside(args, "the staged server's hand-offs (each thread's CPU clock around its "
                   "queue calls)", handoffs.measure, min(2.0, float(args.duration)),
                   (RuntimeError, OSError, ValueError), "the hand-off costs timed once",
                   lambda f: f"{f['requests']} requests; a clock read "
                             f"{f['clock_read_us']:.2f} us")


def _cpu_split(args: argparse.Namespace, arch: str,
               keep_alive: bool = True) -> dict[str, Any] | None:
    """How ``arch``'s CPU divides over its threads (:mod:`arch_sim.threadcpu`) or, for the
    state-group worker, its states (:mod:`arch_sim.statecpu`), with keep-alive or (not
    ``keep_alive``) a connection per request; None, said in one line, where it cannot be
    read."""
    by_state = arch == statecpu.ARCH
    how = "state by state (--state-cpu)" if by_state else "thread by thread (schedstat)"
    if not keep_alive:
        how += " with a connection per request"
    measure = functools.partial(statecpu.measure, keep_alive=keep_alive) if by_state else (
        functools.partial(threadcpu.measure, arch, threads=THREADS, keep_alive=keep_alive))

    def summary(found: dict[str, Any]) -> str:
        return (", ".join(f"{k} {v:.0%}" for k, v in found["shares"].items())
                + (f"; {found['outside_us_per_request']:.2f} us a request outside the states"
                   if by_state else ""))

    return _beside(args, f"the {arch} server's CPU {how}", measure,
                   min(2.0, float(args.duration)), (RuntimeError, OSError, ValueError),
                   "the estimated split", summary)


def _point(rows: pd.DataFrame, fields: tuple[str, ...]) -> dict[str, float]:
    """A load point's measurements: the mean over its windows (one, in calibrate's own runs)."""
    return {k: float(rows[k].mean()) for k in fields}


def servers_from_rows(df: pd.DataFrame, archs: list[str],
                      paced_rps: float) -> tuple[dict[str, Any], float]:
    """Each design's measurements at saturation, and paced at ``paced_rps`` if ``df`` has that
    load, from ``arch-sim bench`` rows (keep-alive); and wrk's own CPU per request at saturation
    with the fastest of them.  ValueError names a design without an unpaced point."""
    unpaced = df[df["target_rps"].isna()]
    servers, clients = {}, []
    for arch in archs:
        rows = unpaced[unpaced["arch"] == arch]
        if rows.empty:
            raise ValueError(f"no {arch} rows unpaced")
        servers[arch] = _point(rows, ("cpu_us_per_request", "reschedules_per_request", "rps",
                                      "cpu_util"))
        clients.append(float(rows["client_cpu_us_per_request"].mean()))
        if arch == "thread-per-request":
            servers[arch]["threads"] = THREADS
        paced = df[(df["arch"] == arch) & (df["target_rps"] == paced_rps)]
        if len(paced):
            servers[arch]["paced"] = {"target_rps": float(paced_rps), **_point(
                paced, ("rps", "cpu_us_per_request", "reschedules_per_request"))}
    return servers, min(clients)  # wrk's, with the faster server


def close_from_rows(df: pd.DataFrame) -> dict[str, Any]:
    """Every server's measurements unpaced with a connection per request, from ``arch-sim
    bench`` rows (the pool with ``--threads 0`` as ``thread-per-connection``), and wrk's own
    CPU per request where it was busiest (``client_us``)."""
    out: dict[str, Any] = {}
    clients = []
    unpaced = df[df["target_rps"].isna()]
    for (arch, threads), rows in unpaced.groupby(["arch", unpaced["threads"].fillna(-1)],
                                                 sort=False):
        name = "thread-per-connection" if arch == "thread-per-request" and threads == 0 else arch
        out[name] = _point(rows, ("cpu_us_per_request", "reschedules_per_request", "rps"))
        clients.append(float(rows["client_cpu_us_per_request"].mean()))
    out["client_us"] = min(clients)
    return out


def _close_at_saturation(args: argparse.Namespace, archs: list[str]) -> dict[str, Any]:
    """Every server (``archs``) unpaced with a connection per request (HTTP/1.0): CPU per
    request, and wrk's own CPU per request where it was busiest."""
    from .harness import bench

    print("calibrate: each real server at saturation with a connection per request...",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="arch-sim-calibrate-") as tmp:
        bench_args = options(bench.add_arguments, arch=list(archs), loads="max",
                             duration=args.duration,
                             warmup=1.0, reps=1, server_cpus=args.server_cpus,
                             client_cpus=args.client_cpus, file_set=args.file_set,
                             connections=args.connections, connection="close",
                             threads=[0, THREADS], out=str(Path(tmp) / "run"), no_plots=True,
                             no_cpu_trace=True)
        if bench.Bench(bench.make_plan(bench_args), bench_args).run() != 0:
            return {}
        df = pd.read_csv(Path(tmp) / "run" / "measurements.csv")
    return close_from_rows(df)


def remeasure(args: argparse.Namespace) -> dict[str, Any]:
    """``--arch``: the preset's calibration.json with only the named architectures' server
    measurements replaced by new ones (saturation, paced, connection per request).  wrk's own
    costs and every host measurement stay as they were."""
    path = calibration_path(args.out)
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--arch re-measures some servers of an existing calibration, but "
                         f"{path} cannot be read ({exc}); run arch-sim calibrate without --arch "
                         "first") from None
    archs = list(dict.fromkeys(args.arch))
    missing = [a for a in archs if a not in server_archs()]
    if missing:
        raise UsageError(f"--arch {missing[0]}: no real server module for it in "
                         "arch_sim.harness.servers.SERVER_MODULES, so nothing to measure")
    found, skipped = _servers_at_saturation(args, archs)
    if skipped:
        raise UsageError(f"--arch: the servers could not be measured ({skipped})")
    return merge_measurements(previous, found, archs)


def merge_measurements(previous: dict[str, Any], found: dict[str, Any],
                       archs: list[str]) -> dict[str, Any]:
    """``previous`` (a calibration.json) with ``archs``' server measurements taken from
    ``found`` (what :func:`_servers_at_saturation` returned) and nothing else changed."""
    out = json.loads(json.dumps(previous))  # a deep copy
    servers = out.setdefault("servers", {})
    close = out.setdefault("close", {})
    for arch in archs:
        if arch in found.get("servers", {}):
            servers[arch] = found["servers"][arch]
        names = [arch] + (["thread-per-connection"] if arch == "thread-per-request" else [])
        for name in names:
            if name in found.get("close", {}):
                close[name] = found["close"][name]
    out["remeasured"] = {**out.get("remeasured", {}), **{a: now_iso() for a in archs}}
    return out


def write_preset(measurements: dict[str, Any], out: Path,
                 only: list[str] | None = None) -> Path:
    """Write the preset TOML (atomically) and its raw measurements beside it; ``only``:
    re-solve only these architectures' costs, keep the others' from the preset at ``out``."""
    from .models.calibration import host_preset_text

    previous = out if only is not None and out.is_file() else "host"
    text = host_preset_text(measurements, only=only, previous=previous)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: tmp.write_text(text))
    write_json_atomic(calibration_path(out), measurements)
    return out


def run(args: argparse.Namespace) -> int:
    if args.arch:
        measurements = remeasure(args)
        out = write_preset(measurements, args.out, only=list(dict.fromkeys(args.arch)))
        print(f"wrote {out} and {calibration_path(out).name} (re-measured: "
              f"{', '.join(dict.fromkeys(args.arch))})")
        return 0
    measurements = measure(args)
    out = write_preset(measurements, args.out)
    if measurements["servers_skipped"]:
        print(f"note: server costs not measured ({measurements['servers_skipped']}); "
              "the preset keeps the placeholder server costs", file=sys.stderr)
    print(f"wrote {out} and {calibration_path(out).name}")
    if not args.no_rcu:
        write_rcu(args, out)
    print(json.dumps({k: measurements[k] for k in ("switch", "wakeup", "servers")}, indent=1))
    return 0


def write_rcu(args: argparse.Namespace, out: Path,
              rates: tuple[float, ...] | None = None) -> Path | None:
    """Measure RCU's grace-period thread on the servers' CPU (:mod:`.rcubench`; at ``rates``
    closes a second, default ``RATES``) and write it beside the preset ``out`` (atomically);
    without root or perf say so and write nothing."""
    from .harness.plan import parse_cpus
    from .models.rcu import rcu_file, rcu_path
    from .rcubench import RATES, RcuUnavailable
    from .rcubench import measure as measure_rcu
    from .rcubench import record as rcu_record

    cpu, other = parse_cpus(args.server_cpus)[0], parse_cpus(args.client_cpus)[0]
    rates = RATES if rates is None else rates
    print(f"calibrate: RCU's grace-period thread on CPU {cpu} per closed connection "
          f"({len(rates) + 1} rates x {args.rcu_seconds:g} s)...", flush=True)
    try:
        rows = measure_rcu(list(rates), args.rcu_seconds, cpu=cpu, other_cpu=other,
                           progress=lambda rate: print(f"  {rate:g} closes/s", flush=True))
    except RcuUnavailable as exc:
        kept = rcu_file("host", str(out))
        print(f"note: RCU grace periods not measured ({exc}); simulations of this preset use "
              + (f"{kept}" if kept else "no grace-period thread"), file=sys.stderr)
        return None
    data = rcu_record(rows, f"arch-sim calibrate --rcu-seconds {args.rcu_seconds:g}",
                      "arch-sim calibrate")
    path = rcu_path(out)
    write_json_atomic(path, data)
    print(f"  runs per grace period {data['runs_per_gp']}, grace period {data['gp_ms']:g} ms, "
          f"{data['run_us']} us a run; wrote {path.name}", flush=True)
    return path
