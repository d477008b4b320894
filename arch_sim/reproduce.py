"""``arch-sim reproduce``: the main job - calibrate, measure, simulate, compare, report.

Two workloads (:mod:`arch_sim.regimes`) are measured and modelled: *today* (HTTP/1.1
keep-alive) and *seed* (HTTP/1.0, a connection per request, both of kHTTPd 0.1.2's possible
thread-per-request shapes).  One folder holds everything::

    OUT/host.toml, host.calibration.json   the calibrated model preset and its raw numbers
    OUT/host.rcu.json                      (full runs, as root with perf) RCU's grace-period
                                           thread; without it the packaged preset's is used
    OUT/measured-today/, measured-seed/    the real sweeps (rows carry ``regime``)
    OUT/simulated-host/                    the host model at exactly the measured points
    OUT/simulated-eras/                    the 1999 machine under Linux 2.2, 2.4 and 2.6
    OUT/sensitivity/                       linux-2.2-1999 with one assumption changed each
    OUT/fidelity.csv, eras.csv, sensitivity.csv
    OUT/seed_regime, overlay_today, overlay_seed, states, eras, sensitivity (.png, .svg)
    OUT/REPORT.md, OUT/meta.json

Without wrk the real sweeps (and what needs them) are skipped, and the report says how to get
wrk.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from . import ARCHS, eras, plotstyle, schema
from .argtypes import options, positive_float
from .regimes import REGIMES
from .runinfo import git_commit, host_info, new_run_id, now_iso, write_atomic, write_json_atomic

WRK_HELP = "install wrk with 'apt-get install -y wrk' (as root; `make reproduce` does it)"
#: measured loads per regime and mode ("max": unpaced)
BENCH_LOADS = {
    ("today", "quick"): "200,2000,max",
    ("today", "full"): "100,200,500,1000,2000,5000,10000,max",
    ("seed", "quick"): "200,1000,max",
    ("seed", "full"): "100,200,500,1000,2000,3000,max",
}
#: thread-per-request shapes per regime: the pool, and (seed) a thread per connection
BENCH_THREADS = {"today": "64", "seed": "0,64"}
BUDGET = {"quick": {"reps": 1, "requests": 2000, "like_requests": 3000},
          "full": {"reps": 3, "requests": 8000, "like_requests": 10000}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a short run (about 5 minutes)")
    p.add_argument("--out", type=Path, default=None, help="run folder (results/reproduce-<time>)")
    p.add_argument("--window", type=positive_float, default=None, metavar="SECONDS",
                   help="seconds per measured window, calibration's included (default 2 with "
                        "--quick, else the bench's 3 and calibration's 4); the warm-up before "
                        "each load is half of it")
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--seed", type=int, default=1)
    plotstyle.add_style_argument(p)


class Reproduction:
    """The steps of the main job, each writing into one folder."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.budget = BUDGET[self.mode]
        self.out: Path = args.out or Path("results") / new_run_id(f"reproduce-{self.mode}")
        self.jobs = os.cpu_count() or 1
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}
        self.meta: dict[str, Any] = {
            "kind": "reproduce", "mode": self.mode, "run_id": self.out.name, **host_info(),
            "git": git_commit(), "args": {k: str(v) for k, v in vars(args).items()},
            "regimes": {name: vars(r) for name, r in REGIMES.items()},
            "started": now_iso(), "ended": None, "complete": False,
        }

    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "meta.json", self.meta)
        calibration = self._step("calibrate", self.calibrate)
        measured: dict[str, pd.DataFrame] = {}
        if self._have_wrk():
            for regime in REGIMES:
                measured[regime] = self._step(f"measure {regime}", self.measure, regime)
        sim_host = self._step("simulate the host at the measured points",
                              self.simulate_measured, measured)
        era_rows = self._step("simulate the eras", self.simulate_eras)
        sens_rows = self._step("sensitivity of the 1999 model", self.simulate_sensitivity)
        table = self._step("fidelity", self.fidelity, measured, sim_host)
        era_table = self._step("eras table", self.era_table, era_rows, measured, sim_host)
        sens_table = eras.sensitivity_table(sens_rows)
        write_atomic(self.out / "sensitivity.csv", lambda p: sens_table.to_csv(p, index=False))
        self._step("figures", self.figures, measured, sim_host, era_table, sens_table)
        self._step("report", self.report, calibration, measured, table, era_rows, era_table,
                   sens_table)
        self.meta.update(ended=now_iso(), complete=True, skipped=self.skipped,
                         timings_s=self.timings)
        write_json_atomic(self.out / "meta.json", self.meta)
        print(f"\nwrote {self.out}/ - start with {self.out / 'REPORT.md'}")
        for note in self.skipped:
            print(f"skipped: {note}", file=sys.stderr)
        return 0

    def _step(self, name: str, fn, *args):
        print(f"\n== reproduce: {name}", flush=True)
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.timings[name] = round(time.monotonic() - t0, 1)

    def _have_wrk(self) -> bool:
        from .harness.wrk import WrkError, find_wrk

        try:
            find_wrk()
            return True
        except WrkError:
            self.skipped.append(f"the real sweeps, their fidelity table and overlays: no wrk - "
                                f"{WRK_HELP}")
            return False

    # -- steps ------------------------------------------------------------------------------
    def calibrate(self) -> dict:
        from .calibrate import add_arguments as calibrate_arguments
        from .calibrate import measure, write_preset, write_rcu

        # the full run calibrates every design (its host.toml is a complete preset) and RCU's
        # grace-period thread (host.rcu.json beside it, where the model looks first); the quick
        # one only the seed's two designs it measures (the others' costs stay placeholders, the
        # grace periods the packaged preset's)
        args = options(calibrate_arguments, server_cpus=self.args.server_cpus,
                       client_cpus=self.args.client_cpus, duration=self._window(2.0, 4.0))
        measurements = measure(args, archs=list(ARCHS) if self.args.quick else None)
        write_preset(measurements, self.out / "host.toml")
        if not self.args.quick and write_rcu(args, self.out / "host.toml") is None:
            self.skipped.append("RCU's grace periods in the host preset: not measured here "
                                "(needs root and perf); the packaged preset's are used")
        if measurements.get("servers_skipped"):
            why = measurements["servers_skipped"]
            self.skipped.append(f"server costs in the host preset: {why}")
        return measurements

    def _window(self, quick: float, full: float) -> float:
        if self.args.window is not None:
            return self.args.window
        return quick if self.args.quick else full

    def measure(self, regime: str) -> pd.DataFrame:
        folder = self.out / f"measured-{regime}"
        from .harness import bench

        args = options(bench.add_arguments, out=str(folder), server_cpus=self.args.server_cpus,
                       client_cpus=self.args.client_cpus, seed=self.args.seed,
                       connection=REGIMES[regime].connection,
                       file_set=REGIMES[regime].file_set, threads=BENCH_THREADS[regime],
                       loads=BENCH_LOADS[(regime, self.mode)], quick=self.args.quick,
                       style=self.args.style)
        if self.args.window is not None:
            args.duration, args.warmup = self.args.window, self.args.window / 2
        if bench.run(args) != 0:
            raise RuntimeError(f"the real sweep failed; see {folder}")
        return schema.load(folder)

    def simulate_measured(self, measured: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
        if not measured:
            return None
        from .fidelity import simulate_like
        from .models import load_preset

        reps, requests = (2 if self.args.quick else 3), self.budget["like_requests"]
        frame = pd.concat(measured.values(), ignore_index=True)
        df = simulate_like(frame, load_preset(self.out / "host.toml"), reps=reps,
                           requests=requests, seed=self.args.seed, jobs=self.jobs,
                           progress=True)
        self._write(df, "simulated-host", {"kind": "simulate-like-measured",
                                           "preset": "host.toml", "reps": reps,
                                           "requests": requests, "seed": self.args.seed})
        return df

    def simulate_eras(self) -> pd.DataFrame:
        jobs = eras.era_jobs(eras.LOADS[self.mode], self.budget["reps"], self.budget["requests"],
                             self.args.seed)
        df = eras.run(jobs, "era", self.jobs, progress=True)
        self._write(df, "simulated-eras", {"kind": "simulate-eras", "eras": eras.ERAS,
                                           "loads": eras.LOADS[self.mode],
                                           "reps": self.budget["reps"],
                                           "requests": self.budget["requests"]})
        return df

    def simulate_sensitivity(self) -> pd.DataFrame:
        jobs = eras.sensitivity_jobs(eras.LOADS[self.mode], max(1, self.budget["reps"] - 1),
                                     self.budget["requests"] // 2, self.args.seed)
        df = eras.run(jobs, "variant", self.jobs, progress=True)
        self._write(df, "sensitivity", {"kind": "simulate-sensitivity",
                                        "variants": [v[0] for v in eras.VARIANTS]})
        return df

    def _write(self, df: pd.DataFrame, name: str, meta: dict) -> None:
        folder = self.out / name
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "simulated.csv", lambda p: df.to_csv(p, index=False))
        write_json_atomic(folder / "meta.json", {**meta, "complete": True, "written": now_iso()})

    def fidelity(self, measured, sim_host) -> pd.DataFrame | None:
        if not measured or sim_host is None:
            return None
        from .fidelity import fidelity

        table = fidelity(pd.concat(measured.values(), ignore_index=True), sim_host)
        write_atomic(self.out / "fidelity.csv", lambda p: table.to_csv(p, index=False))
        return table

    def era_table(self, era_rows, measured, sim_host) -> pd.DataFrame:
        host = None
        if "seed" in measured:
            seed_model = sim_host[sim_host["regime"] == "seed"] if sim_host is not None else None
            host = {"measured": measured["seed"], "model": seed_model}
        table = eras.era_table(era_rows, host, pool_threads=int(BENCH_THREADS["today"]))
        write_atomic(self.out / "eras.csv", lambda p: table.to_csv(p, index=False))
        return table

    def figures(self, measured, sim_host, era_table, sens_table) -> None:
        from .plots import save_all
        from .redraw import reproduce_figures

        save_all(reproduce_figures(measured, sim_host, era_table, sens_table,
                                   style=self.args.style), self.out)

    def report(self, calibration, measured, table, era_rows, era_table, sens_table) -> None:
        from .report import render

        text = render(self.out, self.meta, calibration, measured, table, era_rows, era_table,
                      sens_table, self.skipped)
        (self.out / "REPORT.md").write_text(text)


def run(args: argparse.Namespace) -> int:
    return Reproduction(args).run()
