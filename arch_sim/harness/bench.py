"""``arch-sim bench``: drive the real servers with wrk and count their reschedules against load.

For each server (our two architectures, then any peers) it starts the server pinned to the
server CPUs, primes it, and for each load point runs a warm-up and then ``--reps`` measured wrk
windows, recording each as one row of the shared schema in ``measurements.csv`` (appended as it
goes, so a crash keeps what finished) with ``meta.json`` beside it.  Before each load point it
times the machine's reference work on the server's CPU, and each window records its CPUs' steal
(:mod:`arch_sim.machine_state`): a run says how fast the machine ran, and warns where that moved.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from .. import ALL_ARCHS, plotstyle
from ..argtypes import (
    LIST_HELP,
    ListAction,
    check_out_dir,
    non_negative_int,
    positive_int,
)
from ..machine_state import reference_us, summarise
from ..regimes import regime_of
from ..runinfo import git_commit, host_info, now_iso, write_json_atomic
from ..schema import RowWriter, write_parquet_beside
from . import byo, fileset, servers
from .counters import PerfCounter, idle_cpu_switches
from .cpu_trace import CpuSwitchTrace
from .measure import EXTRA_COLUMNS, Load, Target, drive, measure, row
from .peers import PEERS, peer_target, peer_version, start_peer
from .plan import DEFAULT_LOADS, Plan, load_item, make_plan
from .servers import ServerError
from .wrk import WrkError, find_wrk, wrk_version

# seconds of the server's CPUs without load before each load point: at most this, and no longer
# than half a window (the rate is only taken off for the fraction of a second that a CPU-wide
# count runs beyond wrk's window, so a short run's shorter baseline costs it little)
IDLE_BASELINE_S = 1.0
CLOSE_NOTE = (
    "--connection close opens a new TCP connection per request (kHTTPd's HTTP/1.0 days); on a "
    "small machine the client's connect cost may keep the server from saturating."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", action="append", choices=ALL_ARCHS,
                   help="our servers (default: the seed's two, thread-per-request and state-group)")
    p.add_argument("--peer", action="append", choices=PEERS, default=[], help="peer servers")
    p.add_argument("--peers-only", action="store_true",
                   help="run only the --peer and --server-cmd servers, none of ours")
    p.add_argument(
        "--server-cmd", action="append", default=None, metavar="CMD",
        help="bring your own server: a command with {port} (a free port on 127.0.0.1), "
        "{root} (the document root) and {tmp} (a scratch folder) filled in; repeatable, "
        "each paired in order with a --server-name",
    )
    p.add_argument("--server-name", action="append", default=None, metavar="NAME",
                   help="the rows' arch label for the --server-cmd in the same position")
    p.add_argument("--server-config", default=None, metavar="FILE",
                   help="bring-your-own servers from a TOML file: [[server]] name=..., cmd=...")
    p.add_argument(
        "--loads", action=ListAction, item=load_item, default=None, metavar="RPS",
        help=f"offered req/s, 'max' = unpaced, {LIST_HELP}: 100,200 500 (default "
        f"{DEFAULT_LOADS})",
    )
    p.add_argument("--connections", type=positive_int, default=64)
    p.add_argument(
        "--connection", action=ListAction, item=str, default=None, metavar="MODE",
        help="keep-alive (HTTP/1.1, the default), close (a new connection per request: "
        f"HTTP/1.0, the seed's regime) or keep-alive,close for both in one run ({LIST_HELP})")
    p.add_argument("--duration", type=float, default=None, help="seconds per window (5)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per point (2)")
    p.add_argument("--reps", type=positive_int, default=None,
                   help="measured windows per point (3)")
    p.add_argument("--file-set", choices=fileset.FILE_SETS, default="specweb99")
    p.add_argument(
        "--threads",
        action=ListAction,
        item=non_negative_int,
        default=[64],
        metavar="N",
        help="thread-per-request shape(s): N = dispatcher + pool of N threads "
        "(default 64, every request a hand-off); 0 = one thread per connection; '0,64' "
        f"measures both ({LIST_HELP}: 0,64 or 0 64)",
    )
    p.add_argument("--server-cpus", action=ListAction, item=non_negative_int, default=[0],
                   metavar="CPU", help=f"CPUs for the server (0), {LIST_HELP}: 0,1 or 0 1")
    p.add_argument("--client-cpus", action=ListAction, item=non_negative_int, default=[1],
                   metavar="CPU", help=f"CPUs for wrk (1), {LIST_HELP}")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=None, help="run folder (default results/bench-<time>)")
    p.add_argument("--quick", action="store_true",
                   help="3 points, 2 s, 1 rep, switches on the server's CPUs counted with perf "
                   "stat: under 2 minutes")
    p.add_argument("--no-cpu-trace", action="store_true",
                   help="count the switches on the server's CPUs with perf stat at every load "
                   "(about 2 s less a paced point; other processes' switches there then count)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    plotstyle.add_style_argument(p)


def run(args: argparse.Namespace) -> int:
    plan = make_plan(args)  # bad values: UsageError, before anything is written
    check_out_dir(plan.out)
    try:
        find_wrk()
    except WrkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    previous = plan.out / "measurements.csv"
    if previous.exists() and previous.stat().st_size > 0:
        print(f"error: {plan.out} already holds a run ({previous.name}); choose another --out "
              "or remove that folder", file=sys.stderr)
        return 2
    if "close" in plan.modes:
        print(f"note: {CLOSE_NOTE}")
    return Bench(plan, args).run()


class Bench:
    """One sweep: servers x loads x reps, rows appended as they finish."""

    def __init__(self, plan: Plan, args: argparse.Namespace) -> None:
        self.plan = plan
        self.args = args
        self.run_id = plan.out.name
        self.mode = plan.modes[0]  # the connection mode being swept
        self.perf_ok, self.perf_reason = PerfCounter.available()
        # switches on the server's CPUs from a trace, other processes' left out (cpu_trace.py);
        # a perf record session costs about a second to start and one to stop, so a quick run
        # (and one asked not to) counts with perf stat
        self.trace_ok = (self.perf_ok and not args.quick and not args.no_cpu_trace
                         and CpuSwitchTrace.available())
        self.meta = self._meta()

    def run(self) -> int:
        plan = self.plan
        plan.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(plan.out / "meta.json", self.meta)
        error = None
        with tempfile.TemporaryDirectory(prefix="arch-sim-root-") as tmp:
            os.chmod(tmp, 0o755)  # nginx's workers drop root and must still read the files
            files = fileset.generate(Path(tmp) / "www", self.args.file_set)
            total = len(plan.modes) * len(plan.names) * len(plan.loads) * plan.reps
            with RowWriter(plan.out / "measurements.csv", EXTRA_COLUMNS) as out, tqdm(
                total=total, desc="bench", unit="pt", dynamic_ncols=True
            ) as bar:
                for self.mode, (name, threads) in itertools.product(plan.modes, plan.names):
                    try:
                        self._sweep_server(name, threads, files, out, bar)
                    except (ServerError, WrkError) as exc:
                        error = f"{name} ({self.mode}): {exc}"
                        break
        return self._finish(error)

    # -- one server --------------------------------------------------------------------------
    def _sweep_server(self, name: str, threads: int | None, files, out, bar) -> None:
        logs = self.plan.out / "logs"
        proc, target = self._start(name, threads, files, logs)
        label = name if threads is None else f"{name} --threads {threads}"
        if len(self.plan.modes) > 1:
            label = f"{label}, {self.mode}"
        cpus = self.plan.server_cpus
        try:
            drive(target, self._load(files, None, 0), duration=1)  # prime caches
            for target_rps in self.plan.loads:
                # a trace at paced loads only: there a request is rare beside another
                # process's wake-ups, and tracing a saturated server would charge it a
                # tracepoint per switch where foreign switches hardly count per request
                trace = self.trace_ok and target_rps is not None
                # how fast the machine runs the reference work now, the server idle: a point
                # measured in a slower hour than the calibration is not the model's to predict
                speed = reference_us(cpus[0])
                # the server's CPUs with the load off: the background a CPU-wide count holds
                idle = (idle_cpu_switches(cpus, min(IDLE_BASELINE_S, self.plan.duration / 2),
                                          target.pids if trace else None)
                        if self.perf_ok else None)
                load = self._load(files, target_rps, 0)
                if self.plan.warmup:
                    drive(target, load, duration=self.plan.warmup)
                for rep in range(self.plan.reps):
                    bar.set_postfix_str(f"{label} @ {_fmt_load(target_rps)} rep {rep}")
                    load = self._load(files, target_rps, rep)
                    result, d, perf, on_cpus = measure(target, load, self.perf_ok, cpus, idle,
                                                       trace=trace)
                    fixed = {**self._fixed(rep, load), "threads": threads,
                             "reference_us": speed}
                    out.write(row(target, load, result, d, perf, len(cpus), fixed, on_cpus))
                    bar.update()
        finally:
            proc.stop()

    def _start(self, name: str, threads: int | None, files, logs: Path):
        cpus = self.plan.server_cpus
        if name in ALL_ARCHS:
            args = servers.arch_args(name, threads, cpus)
            proc = servers.start(name, files.root, cpus=cpus, args=args, log_dir=logs)
            label = f"{servers.SERVER_MODULES[name]} {' '.join(args)}"
            status = proc.status
            pids = lambda: status()["pids"]  # noqa: E731
            return proc, Target(name, label, proc.url, pids, status, proc.check_alive)
        if name in self.plan.byo:
            server = self.plan.byo[name]
            proc = byo.start(server, files.root, cpus, logs)
            return proc, byo.target(server, proc)
        proc = start_peer(name, files.root, cpus, logs)
        return proc, peer_target(name, proc)

    def _load(self, files, target_rps: float | None, rep: int) -> Load:
        return Load(
            target_rps=target_rps,
            connections=self.args.connections,
            duration=self.plan.duration,
            keep_alive=self.mode == "keep-alive",
            paths=files.urls,
            weights=files.weights,
            client_cpus=self.plan.client_cpus,
            seed=self.args.seed * 1000 + rep,
        )

    def _fixed(self, rep: int, load: Load) -> dict:
        return {
            "preset": self.args.file_set,
            "cpus": len(self.plan.server_cpus),
            "rep": rep,
            "seed": load.seed,
            "run_id": self.run_id,
            "connection_mode": self.mode,
            "regime": regime_of(self.mode),
            "file_set": self.args.file_set,
            "server_cpus": ",".join(map(str, self.plan.server_cpus)),
            "client_cpus": ",".join(map(str, self.plan.client_cpus)),
        }

    # -- bookkeeping --------------------------------------------------------------------------
    def _meta(self) -> dict:
        plan = self.plan
        return {
            "kind": "bench",
            "run_id": self.run_id,
            **host_info(),
            "git": git_commit(),
            "wrk": wrk_version(),
            "nginx": peer_version("nginx") if ("nginx", None) in plan.names else None,
            "peers": {n: peer_version(n) for n, _ in plan.names if n in PEERS},
            "byo_servers": [s.record() for s in plan.byo.values()],
            "pinning": {"server_cpus": plan.server_cpus, "client_cpus": plan.client_cpus},
            "servers": [n if t is None else f"{n} --threads {t}" for n, t in plan.names],
            # one regime, or both (keep-alive first) when --connection gives both modes
            "regime": (regime_of(plan.modes[0]) if len(plan.modes) == 1
                       else [regime_of(m) for m in plan.modes]),
            "connection_modes": plan.modes,
            "loads": ["max" if x is None else x for x in plan.loads],
            "reps": plan.reps,
            "duration_s": plan.duration,
            "warmup_s": plan.warmup,
            "args": {k: v for k, v in vars(self.args).items() if k != "func"},
            "perf": {"used": self.perf_ok, "reason": self.perf_reason,
                     # cpu_switches_* at paced loads: from perf record, other processes'
                     # switches left out (unpaced: perf stat)
                     "cpu_trace": self.trace_ok},
            "file_set": {"name": self.args.file_set, "seed": 1999},
            "notes": self._notes(),
            "started": now_iso(),
            "ended": None,
            "complete": False,
        }

    def _notes(self) -> list[str]:
        notes = [CLOSE_NOTE] if "close" in self.plan.modes else []
        counted_by_tree = [n for n, _ in self.plan.names
                           if n in self.plan.byo or (n in PEERS and n != "python-http-server")]
        if counted_by_tree and not self.perf_ok:
            notes.append(f"{', '.join(counted_by_tree)}: no /server-status and no perf "
                         f"({self.perf_reason}), so their reschedules are their live threads' "
                         "/proc counts; a process or thread that exits in a window is lost")
        return notes

    def _finish(self, error: str | None) -> int:
        csv = self.plan.out / "measurements.csv"
        state = machine_summary(csv)
        self.meta.update(ended=now_iso(), complete=error is None, error=error,
                         machine_state=state)
        write_json_atomic(self.plan.out / "meta.json", self.meta)
        if csv.exists():
            write_parquet_beside(csv)  # when pyarrow is installed
            if not self.args.no_plots:
                _plot(self.plan.out, self.args.style)
        _print_table(csv)
        for warning in state.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        if error:
            print(f"\nerror: the sweep stopped early - {error}\n"
                  f"The rows that finished are kept in {csv}; meta.json says complete: false.",
                  file=sys.stderr)
            return 1
        print(f"\nwrote {self.plan.out}/ (measurements.csv, meta.json, figures)")
        return 0


def machine_summary(csv: Path) -> dict:
    """meta.json's ``machine_state``: how fast the machine ran over the run's rows, with a
    warning where it changed or the host took its CPUs (:func:`machine_state.summarise`)."""
    import pandas as pd

    try:
        df = pd.read_csv(csv)
    except (OSError, ValueError):  # no rows yet (a sweep that failed at once): nothing to say
        return {"warnings": []}
    ref, steal = (df[c].tolist() if c in df.columns else [] for c in ("reference_us", "steal_frac"))
    return summarise(ref, steal)


def _fmt_load(target_rps: float | None) -> str:
    return "max" if target_rps is None else f"{target_rps:g}/s"


def _plot(run_dir: Path, style: str) -> None:
    from .. import schema
    from ..plots import draw_all

    df = schema.load(run_dir)
    if not df.empty:
        draw_all(df, run_dir, style=style)


def _print_table(csv: Path) -> None:
    import pandas as pd

    if not csv.exists():
        return
    df = pd.read_csv(csv)
    if df.empty:
        return
    cols = ["rps", "reschedules_per_s", "reschedules_per_request", "cpu_switches_per_request",
            "cpu_us_per_request", "lat_p99_ms", "errors"]
    cols = [c for c in cols if c in df.columns]
    keys = ["arch", "threads", "target_rps"] if "threads" in df.columns else ["arch", "target_rps"]
    if "connection_mode" in df.columns and df["connection_mode"].nunique() > 1:
        keys.insert(0, "connection_mode")
    table = df.groupby(keys, dropna=False)[cols].mean().reset_index()
    table["target_rps"] = table["target_rps"].map(lambda v: "max" if math.isnan(v) else f"{v:g}")
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
