"""What ``arch-sim calibrate`` measures of the real servers (:mod:`arch_sim.calibrate` item 3):
each at saturation and paced at ``PACED_RPS`` with keep-alive, each unpaced with a connection per
request, and beside those runs what a bench run's rows do not hold - the prefork worker's work
after its last send (:mod:`.aftersend`), the staged server's hand-offs (:mod:`.handoffs`), each
design's CPU thread by thread or state by state (:mod:`.threadcpu`, :mod:`.statecpu`).
:func:`servers_from_rows` and :func:`close_from_rows` read the same measurements from any
``arch-sim bench`` rows.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import statecpu, threadcpu
from .argtypes import options

THREADS = 64  # the thread-per-request pool `arch-sim bench` runs by default
#: what calibrate measures of a design beside its saturation bench (a bench run's rows hold none
#: of it): the work after the last send (prefork), the CPU thread by thread (staged, the pool),
#: state by state (the state-group worker), each also with a connection per request (_close)
CALIBRATE_ONLY = ("after_send", "threads_cpu", "states_cpu", "after_send_close",
                  "threads_cpu_close", "states_cpu_close")
PACED_RPS = 1000  # the paced load the servers also run at: the CPU idles ~1 ms between requests


def at_saturation(args: argparse.Namespace, archs: list[str]) -> tuple[dict, str | None]:
    """Each real server of ``archs`` unpaced for one window: CPU and reschedules per request,
    and wrk's own CPU per request (the client's cost, which the model's closed workload needs);
    then paced at ``PACED_RPS`` (what a request costs when the CPU idles in between); then
    each with a connection per request, and what calibrate measures beside those runs.
    ``({}, why)`` without wrk or when the run fails."""
    from .harness import bench
    from .harness.wrk import WrkError, find_wrk

    try:
        find_wrk()
    except WrkError as exc:
        return {}, str(exc)
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
    close = close_at_saturation(args, archs)
    servers, client = servers_from_rows(df, archs, PACED_RPS)
    if "prefork" in servers:
        servers["prefork"]["after_send"] = prefork_after_send(args)
        servers["prefork"]["after_send_close"] = prefork_after_send(args, keep_alive=False)
    # each twice: keep-alive splits the model's costs; beside a connection per request, what
    # the accepting and the closing code spend more splits a connection's cost
    # (connection_costs.accept_share)
    for arch in threadcpu.ARCHS:
        if arch in servers:
            servers[arch]["threads_cpu"] = cpu_split(args, arch)
            servers[arch]["threads_cpu_close"] = cpu_split(args, arch, keep_alive=False)
    if "staged" in servers:
        servers["staged"]["handoffs"] = staged_handoffs(args)
    if statecpu.ARCH in servers:
        servers[statecpu.ARCH]["states_cpu"] = cpu_split(args, statecpu.ARCH)
        servers[statecpu.ARCH]["states_cpu_close"] = cpu_split(args, statecpu.ARCH,
                                                                keep_alive=False)
    if close.get("client_us") is not None:
        close["client_close_us"] = max(0.0, close.pop("client_us") - client)
    return {"servers": servers, "client": {"cpu_us_per_request": client}, "close": close}, None


def beside(args: argparse.Namespace, title: str, measure: Callable[..., dict[str, Any]],
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


def prefork_after_send(args: argparse.Namespace,
                        keep_alive: bool = True) -> dict[str, Any] | None:
    """The prefork worker's work after its last send, as a share of its CPU per request
    (:mod:`arch_sim.aftersend`), with keep-alive or (not ``keep_alive``) a connection per
    request; None, said in one line, where perf or root is missing."""
    from . import aftersend

    title = "the prefork worker's work after a reply's last send (perf record)"
    return beside(args, title if keep_alive else title + " with a connection per request",
                   functools.partial(aftersend.measure, keep_alive=keep_alive),
                   min(3.0, float(args.duration)),
                   (RuntimeError, OSError, subprocess.CalledProcessError),
                   "the estimated logging share",
                   lambda f: f"{f['after_send_us']:.1f} us of {f['cpu_us_per_request']:.1f} us "
                             f"a request: {f['share']:.0%}")


def staged_handoffs(args: argparse.Namespace) -> dict[str, Any] | None:
    """What the staged server's hand-offs cost its threads (:mod:`arch_sim.handoffs`), or
    None, said in one line, where it cannot be timed."""
    from . import handoffs

    return beside(args, "the staged server's hand-offs (each thread's CPU clock around its "
                   "queue calls)", handoffs.measure, min(2.0, float(args.duration)),
                   (RuntimeError, OSError, ValueError), "the hand-off costs timed once",
                   lambda f: f"{f['requests']} requests; a clock read "
                             f"{f['clock_read_us']:.2f} us")


def cpu_split(args: argparse.Namespace, arch: str,
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

    return beside(args, f"the {arch} server's CPU {how}", measure,
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


def close_at_saturation(args: argparse.Namespace, archs: list[str]) -> dict[str, Any]:
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
