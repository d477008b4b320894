"""``arch-sim calibrate``: measure this host and write the ``host`` model preset.

The measurements, kept raw in ``<preset>.calibration.json`` beside the preset (the sixth in
``<preset>.rcu.json``):

1. the cost of one context switch between two processes pinned to one CPU (lmbench
   ``lat_ctx`` style pipe ping-pong, the one-process pipe cost subtracted);
2. the wake-up latency of a process blocked in ``read`` when another CPU writes to it;
3. each real server's CPU cost per request at saturation (its own getrusage over a wrk
   window) and its reschedules per request there - and the same at a paced load, where the
   CPU idles between requests and each costs more (cold caches) (:mod:`.calibrate_servers`);
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
import json
import sys
from pathlib import Path
from typing import Any

from . import ALL_ARCHS, calibrate_servers
from .argtypes import UsageError, positive_float
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
        found, skipped = calibrate_servers.at_saturation(
            args, server_archs() if archs is None else archs)
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
        "threads": calibrate_servers.THREADS,
    }


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
    found, skipped = calibrate_servers.at_saturation(args, archs)
    if skipped:
        raise UsageError(f"--arch: the servers could not be measured ({skipped})")
    return merge_measurements(previous, found, archs)


def merge_measurements(previous: dict[str, Any], found: dict[str, Any],
                       archs: list[str]) -> dict[str, Any]:
    """``previous`` (a calibration.json) with ``archs``' server measurements taken from
    ``found`` (what :func:`.calibrate_servers.at_saturation` returned) and nothing else changed."""
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
