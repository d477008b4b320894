"""``arch-sim simulate``: sweep the SimPy models over load, with repetitions, into a run folder.

    arch-sim simulate --preset linux-2.2-1999 --load-range 100:3000:25 --reps 5 --out runs/sim
    arch-sim simulate --quick          # a short sweep: 6 loads, 3 repetitions, 3,000 requests

Every (arch, load, repetition) is one :func:`arch_sim.models.simulate_point` run with its own
seed, derived from ``--seed``, the load and the repetition (the same for both archs: common
random numbers).  Runs go to a process pool with a progress bar - or, with ``--dask
tcp://HOST:8786``, to the workers of a Dask cluster (``pip install 'arch-sim[dask]'``; the
workers need arch-sim installed too); rows come back in a fixed order, so a parallel or
distributed sweep writes the same ``simulated.csv`` as a serial one, and the same arguments
write it again bit for bit.  The folder gets ``simulated.csv``, ``meta.json`` and the
figures of ``arch-sim plot``; they are written into a hidden folder beside it and moved in at
the end (:func:`arch_sim.runinfo.staged_dir`), so a sweep that fails leaves no folder behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arch_sim import ALL_ARCHS, ARCHS, claims, compare, plotstyle, runinfo, schema
from arch_sim.argtypes import (
    LIST_HELP,
    ListAction,
    UsageError,
    check_out_dir,
    checked_by,
    non_negative_int,
    one_of,
    positive_float,
    positive_int,
)
from arch_sim.models import ModelParams, load_preset, preset_names
from arch_sim.models.params import DEFAULT_STAGE_THREADS, preset_path
from arch_sim.models.prefork import check_workload
from arch_sim.models.staged import parse_stage_threads
from arch_sim.models.workload import CONNECTION_MODES, FileSizes
from arch_sim.plots import draw_all
from arch_sim.stats import summarize
from arch_sim.sweep import (  # noqa: F401  (DaskError, DASK_*: the command's own errors)
    DASK_CONNECT_TIMEOUT_S,
    DASK_INSTALL_HINT,
    WALL_FIELDS,
    DaskError,
    connect_dask,
    default_load_range,
    executor_name,
    over_link_note,
    parse_load_range,
    plan_options,
    run_jobs,
)

DEFAULT_LOAD_RANGE = "100:20000:25"
DEFAULT_REPS = 5
DEFAULT_REQUESTS = 20000
#: ``--quick``: a short sweep (each value still overridable by its own option)
QUICK = {"points": 6, "reps": 3, "requests": 3000}


# -- what to run ------------------------------------------------------------------------------

#: ``--file-sizes`` and ``--stage-threads``: checked by the model's own parsers before the sweep
file_sizes = checked_by(FileSizes)
stage_threads = checked_by(parse_stage_threads)


def check_shapes(args: argparse.Namespace, params: ModelParams) -> None:
    """A design's shape that cannot serve the workload (prefork: fewer workers than
    keep-alive connections) is a ValueError naming the fix, before anything runs."""
    if "prefork" in args.arch:
        mine = params.for_arch("prefork")
        check_workload(mine.server.workers if args.workers is None else args.workers,
                       args.workload or mine.workload.kind,
                       args.connection or mine.workload.connection,
                       args.connections or mine.workload.connections)


def resolve_defaults(args: argparse.Namespace, params: ModelParams) -> None:
    """Fill ``--reps``, ``--requests`` and (``--quick``, open workload) ``--load-range`` in
    *args* when not given, so meta.json records the values the sweep used and
    :func:`~arch_sim.sweep.plan_options` replays it from them alone."""
    quick = bool(getattr(args, "quick", False))
    if args.reps is None:
        args.reps = QUICK["reps"] if quick else DEFAULT_REPS
    if args.requests is None:
        args.requests = QUICK["requests"] if quick else DEFAULT_REQUESTS
    workload = args.workload or params.workload.kind
    if quick and not args.loads and not args.load_range and workload != "closed":
        args.load_range = default_load_range(params, QUICK["points"])


def load_preset_checked(name_or_path: str) -> ModelParams:
    """:func:`load_preset`, with a file that is not TOML - or an empty one, which TOML reads
    as a preset of nothing but defaults - named in the error."""
    fix = (f"give a preset name ({', '.join(preset_names())}) or a .toml file like "
           "arch_sim/models/presets/host.toml")
    try:
        path = preset_path(name_or_path)  # an unknown name: ValueError naming the presets
    except FileNotFoundError as exc:
        raise UsageError(f"--preset: {exc}; {fix}") from None
    try:
        with path.open("rb") as f:
            empty = not tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--preset {path}: not a TOML preset file ({exc}); {fix}") from None
    if empty:
        raise UsageError(f"--preset {path}: the file holds no settings; {fix}")
    return load_preset(path)


def run_id_for(args: argparse.Namespace, params: ModelParams) -> str:
    """A run id derived from everything that determines the rows (so reruns match)."""
    config = {k: v for k, v in _jsonable_args(args).items()
              # how it runs, not what (--quick only fills reps, requests and load_range)
              if k not in ("out", "jobs", "quiet", "dask", "quick")}
    config["preset"] = {k: v for k, v in params.to_dict().items() if k != "source"}
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    return f"sim-{params.name}-{digest}"


# -- running it -------------------------------------------------------------------------------

# -- reporting --------------------------------------------------------------------------------

def claims_check(df: pd.DataFrame) -> dict[str, Any]:
    """The seed's two claims judged on the sweep, both counts (:mod:`arch_sim.claims`)."""
    out: dict[str, Any] = {}
    for count in claims.COUNTS:
        for arch, judge in (("thread-per-request", claims.judge_old),
                            ("state-group", claims.judge_new)):
            verdict = judge(df[df["arch"] == arch], count)
            out[f"{verdict.claim}_{count}"] = {"value": verdict.value, "at_rps": verdict.at_rps,
                                              "holds": verdict.holds, "text": verdict.text()}
    return out


def print_summary(df: pd.DataFrame, file=sys.stdout) -> None:
    """A table of means (95% CI half-widths) per arch and load."""
    pts = summarize(df, ["arch", "target_rps"],
                    ["rps", "reschedules_per_s", "reschedules_per_request", "cpu_util",
                     "sched_overhead_frac", "lat_p99_ms"])
    print(f"{'arch':<20}{'offered':>9}{'achieved':>10}{'resched/s':>18}{'per req':>9}"
          f"{'cpu':>7}{'sched':>7}{'p99 ms':>9}", file=file)
    for _, p in pts.iterrows():
        offered = "max" if pd.isna(p["target_rps"]) else f"{p['target_rps']:.0f}"
        ci = "" if pd.isna(p["reschedules_per_s_ci"]) else f" ±{p['reschedules_per_s_ci']:.0f}"
        print(f"{p['arch']:<20}{offered:>9}{p['rps']:>10.0f}"
              f"{p['reschedules_per_s']:>10.0f}{ci:<8}{p['reschedules_per_request']:>9.3f}"
              f"{p['cpu_util']:>7.2f}{p['sched_overhead_frac']:>7.3f}{p['lat_p99_ms']:>9.2f}",
              file=file)


# -- files ------------------------------------------------------------------------------------

def write_results(df: pd.DataFrame, out: Path) -> Path:
    """simulated.csv (and simulated.parquet when pyarrow is installed)."""
    csv = out / "simulated.csv"
    runinfo.write_atomic(csv, lambda p: df.to_csv(p, index=False))
    schema.write_parquet_beside(csv)
    return csv


def host_info() -> dict[str, Any]:
    """Where the simulation ran (it does not affect the rows, only the wall time)."""
    import simpy

    return {
        **runinfo.host_info(),
        "platform": platform.platform(),
        "simpy": simpy.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def _jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k not in ("func", "command")}


# -- the command ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="linux-2.2-1999",
                        help=f"preset name ({', '.join(preset_names())}) or path to a TOML file")
    parser.add_argument("--arch", action=ListAction, item=one_of(ALL_ARCHS), extend=True,
                        default=list(ARCHS), metavar="ARCH",
                        help=f"architectures to simulate: {', '.join(ALL_ARCHS)} (default: the "
                        f"seed's two, {' and '.join(ARCHS)}), {LIST_HELP}, or the option "
                        "repeated")
    loads = parser.add_mutually_exclusive_group()
    loads.add_argument("--loads", action=ListAction, item=positive_float, metavar="RPS",
                       help=f"offered loads in requests/s, {LIST_HELP} (e.g. 100,200 500)")
    loads.add_argument("--load-range", metavar="START:STOP:N",
                       help=f"N evenly spaced loads (default {DEFAULT_LOAD_RANGE}, or up to "
                            "what the preset's link carries; closed workload default: one "
                            "unpaced point)")
    loads.add_argument("--like", action="append", metavar="BENCH_RUN",
                       help="simulate exactly the load points of an `arch-sim bench` run (its "
                            "workloads, connections, CPUs, file set), each of our "
                            "architectures in it, and write measured beside modelled: "
                            "architectures.png/.md/.csv and fidelity.md/.csv (repeatable: "
                            "several runs are pooled, and fidelity.md also judges the model "
                            "against each)")
    parser.add_argument("--cpus", type=positive_int, default=None,
                        help="CPUs (default: the preset's)")
    parser.add_argument("--workload", choices=("open", "closed"), default=None,
                        help="open: Poisson arrivals, one request per connection; closed: "
                             "wrk-like connections with think time (default: the preset's)")
    parser.add_argument("--connection", choices=CONNECTION_MODES, default=None,
                        help="closed workload: keep-alive, or close (a new connection per "
                             "request, HTTP/1.0) (default: the preset's)")
    parser.add_argument("--connections", type=positive_int, default=None,
                        help="closed workload: connections (default: the preset's, 64)")
    parser.add_argument("--reps", type=positive_int, default=None,
                        help=f"repetitions per load, for 95%% CIs (default {DEFAULT_REPS})")
    parser.add_argument("--requests", type=positive_int, default=None,
                        help="measured requests per run, after the warm-up "
                             f"(default {DEFAULT_REQUESTS})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a short sweep: {QUICK['points']} loads, {QUICK['reps']} "
                             f"repetitions, {QUICK['requests']} requests per run (options "
                             "given beside it win)")
    parser.add_argument("--warmup", type=non_negative_int, default=None,
                        help="warm-up requests discarded first (default: a tenth, >= 200)")
    parser.add_argument("--seed", type=int, default=1, help="base seed of the sweep")
    parser.add_argument("--threads", type=non_negative_int, default=None,
                        help="thread-per-request: pool size, 0 = thread per connection "
                             "(default: the preset's)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="prefork: worker processes (default: the preset's, 64)")
    parser.add_argument("--stage-threads", type=stage_threads, default=None,
                        metavar="STATE=N,...",
                        help="staged: threads per stage, e.g. send_data=8 (default: the "
                             f"preset's, {DEFAULT_STAGE_THREADS})")
    parser.add_argument("--file-sizes", type=file_sizes, default=None,
                        help="specweb99, fixed:KB or exp:KB (default: the preset's)")
    parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                        help="parallel processes (default: all CPUs; 1 = serial)")
    parser.add_argument("--dask", metavar="SCHEDULER_ADDRESS", default=None,
                        help="run the points on a Dask cluster, e.g. tcp://HOST:8786 "
                             f"(needs {DASK_INSTALL_HINT}; the workers need arch-sim too)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default: results/simulate-<preset>-<UTC time>)")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    plotstyle.add_style_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    """Check every input (exit 2 with one line, nothing written), then sweep."""
    try:
        params = load_preset_checked(args.preset)
        resolve_defaults(args, params)
        check_shapes(args, params)
        measured = compare.measured_rows(args.like) if args.like else None
        jobs = (compare.plan(measured, params, args) if measured is not None
                else plan_options(args, params))
    except (ValueError, FileNotFoundError, argparse.ArgumentTypeError) as exc:
        raise UsageError(str(exc)) from None
    started = datetime.now(UTC)
    out = args.out or Path("results") / f"simulate-{params.name}-{started:%Y%m%dT%H%M%SZ}"
    check_out_dir(out)
    dask = getattr(args, "dask", None)
    client = None
    if dask:
        try:
            client = connect_dask(dask)
        except DaskError as exc:
            raise UsageError(str(exc)) from None
    try:
        return _run(args, params, jobs, client, out, started, measured)
    finally:
        if client is not None:
            client.close()


def _run(args: argparse.Namespace, params: ModelParams, jobs: list[dict[str, Any]],
         client: Any, out: Path, started: datetime, measured: pd.DataFrame | None) -> int:
    with runinfo.staged_dir(out) as stage:
        figures, csv, df = _sweep(args, params, jobs, client, stage, started)
        if measured is not None:  # measured beside modelled: figure, table, fidelity
            machine = compare.machine_note(measured, params)
            if machine:
                print(f"warning: {machine}", file=sys.stderr)
            figures += compare.write_comparison(measured, df, stage, style=args.style,
                                                figures=not args.no_figures, machine=machine)
            compare.note_in_meta(stage / "meta.json", measured, figures, machine)
    if not args.quiet:
        print_summary(df)
        print(f"wrote {out / csv.name} ({len(df)} rows), meta.json and {len(figures)} figure "
              f"files to {out}")
    return 0


def _sweep(args: argparse.Namespace, params: ModelParams, jobs: list[dict[str, Any]],
           client: Any, out: Path, started: datetime) -> tuple[list[Path], Path, pd.DataFrame]:
    """Run the sweep and write its files into *out* (the staging folder)."""
    run_id = run_id_for(args, params)
    meta: dict[str, Any] = {
        "kind": "simulate",
        "run_id": run_id,
        **host_info(),
        "git_commit": runinfo.git_commit(),
        "preset": {"name": params.name, "placeholder": params.placeholder,
                   "source": params.source, "contents": params.to_dict()},
        "args": _jsonable_args(args),
        "executor": executor_name(client),
        "start": started.isoformat(),
        "complete": False,
    }
    runinfo.write_json_atomic(out / "meta.json", meta)
    if params.placeholder and not args.quiet:
        print(f"note: preset {params.name!r} is a placeholder until calibrated", file=sys.stderr)
    over = over_link_note(params, jobs)
    if over and not args.quiet:
        print(over, file=sys.stderr)

    wall = time.perf_counter()
    rows = run_jobs(jobs, workers=args.jobs, progress=not args.quiet, dask=client)
    wall = time.perf_counter() - wall
    for row in rows:
        row["run_id"] = run_id
    df = schema.to_frame([{k: v for k, v in r.items() if k not in WALL_FIELDS} for r in rows])
    csv = write_results(df, out)
    figures = [] if args.no_figures else draw_all(df, out, claims=params.name == "linux-2.2-1999",
                                                      style=args.style)

    meta.update({
        "seeds": [{"arch": j["arch"], "target_rps": j["target_rps"], "rep": j["rep"],
                   "seed": j["seed"]} for j in jobs],
        "speed": _speed(rows, wall),
        "claims": claims_check(df),
        "files": [csv.name] + [p.name for p in figures],
        "end": datetime.now(UTC).isoformat(),
        "complete": True,
    })
    runinfo.write_json_atomic(out / "meta.json", meta)
    return figures, csv, df


def _speed(rows: Sequence[dict[str, Any]], wall: float) -> dict[str, Any]:
    """Simulated requests per wall-second, per arch (CPU time of the runs, not the sweep)."""
    speed: dict[str, Any] = {"sweep_wall_s": wall}
    for arch in ALL_ARCHS:
        mine = [r for r in rows if r["arch"] == arch]
        if mine:
            sim = sum(r["sim_requests_per_wall_s"] * r["wall_s"] for r in mine)
            cpu = sum(r["wall_s"] for r in mine)
            speed[arch] = {"runs": len(mine), "run_wall_s": cpu,
                           "sim_requests_per_wall_s": sim / cpu if cpu > 0 else math.nan}
    return speed
