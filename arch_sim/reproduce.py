"""``arch-sim reproduce``: the main job - calibrate, measure, simulate, compare, report.

One folder holds everything::

    OUT/host.toml, host.calibration.json   the calibrated model preset and its raw numbers
    OUT/measured/                          the real sweep (both architectures), its meta.json
    OUT/simulated-host/                    the host model at exactly the measured points
    OUT/simulated-host-sweep/              the host model over a load sweep   } then_and_now
    OUT/simulated-1999/                    the Linux 2.2 model over the same   }
    OUT/fidelity.csv                       measured vs simulated reschedules per request
    OUT/overlay_host.{png,svg}, then_and_now.{png,svg}
    OUT/REPORT.md, OUT/meta.json

Without wrk the real sweep (and what needs it) is skipped, and the report says how to get wrk.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from . import cli, schema
from .runinfo import git_commit, host_info, new_run_id, now_iso, write_json_atomic

WRK_HELP = "install wrk with 'apt-get install -y wrk' (as root; `make reproduce` does it)"
SWEEP_LOADS = {"quick": [200, 1000, 5000, 20000], "full": [100, 200, 500, 1000, 2000, 5000,
                                                           10000, 20000, 50000]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a short run (<= 3 minutes)")
    p.add_argument("--out", type=Path, default=None, help="run folder (results/reproduce-<time>)")
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--seed", type=int, default=1)


class Reproduction:
    """The steps of the main job, each writing into one folder."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.out: Path = args.out or Path("results") / new_run_id(f"reproduce-{self.mode}")
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}
        self.meta: dict[str, Any] = {
            "kind": "reproduce", "mode": self.mode, "run_id": self.out.name, **host_info(),
            "git": git_commit(), "args": {k: str(v) for k, v in vars(args).items()},
            "started": now_iso(), "ended": None, "complete": False,
        }

    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "meta.json", self.meta)
        calibration = self._step("calibrate", self.calibrate)
        measured = self._step("measure", self.measure) if self._have_wrk() else None
        sim_host = self._step("simulate host at measured points", self.simulate_measured, measured)
        sweeps = self._step("simulate then and now", self.simulate_sweeps)
        table = self._step("fidelity", self.fidelity, measured, sim_host)
        self._step("figures", self.figures, measured, sim_host, sweeps)
        self._step("report", self.report, calibration, measured, sweeps, table)
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
            self.skipped.append(f"the real sweep, its fidelity table and overlay: no wrk - "
                                f"{WRK_HELP}")
            return False

    # -- steps ------------------------------------------------------------------------------
    def calibrate(self) -> dict:
        from .calibrate import add_arguments as calibrate_arguments
        from .calibrate import measure, write_preset

        parser = argparse.ArgumentParser()
        calibrate_arguments(parser)
        cal_args = parser.parse_args(["--server-cpus", self.args.server_cpus,
                                      "--client-cpus", self.args.client_cpus,
                                      "--duration", "2" if self.args.quick else "4"])
        measurements = measure(cal_args)
        write_preset(measurements, self.out / "host.toml")
        if measurements.get("servers_skipped"):
            why = measurements["servers_skipped"]
            self.skipped.append(f"server costs in the host preset: {why}")
        return measurements

    def measure(self) -> pd.DataFrame | None:
        argv = ["bench", "--out", str(self.out / "measured"), "--server-cpus",
                self.args.server_cpus, "--client-cpus", self.args.client_cpus,
                "--seed", str(self.args.seed)]
        if self.args.quick:
            argv.append("--quick")
        if cli.main(argv) != 0:
            raise RuntimeError(f"the real sweep failed; see {self.out / 'measured'}")
        return schema.load(self.out / "measured")

    def simulate_measured(self, measured: pd.DataFrame | None) -> pd.DataFrame | None:
        if measured is None:
            return None
        from .fidelity import simulate_like
        from .models import load_preset

        reps = 2 if self.args.quick else 3
        requests = 3000 if self.args.quick else 10000
        df = simulate_like(measured, load_preset(self.out / "host.toml"), reps=reps,
                           requests=requests, seed=self.args.seed)
        folder = self.out / "simulated-host"
        folder.mkdir(parents=True, exist_ok=True)
        df.to_csv(folder / "simulated.csv", index=False)
        write_json_atomic(folder / "meta.json", {
            "kind": "simulate-like-measured", "preset": str(self.out / "host.toml"),
            "reps": reps, "requests": requests, "seed": self.args.seed, "complete": True})
        return df

    def simulate_sweeps(self) -> dict[str, pd.DataFrame]:
        loads = [str(x) for x in SWEEP_LOADS[self.mode]]
        requests = "3000" if self.args.quick else "10000"
        reps = "2" if self.args.quick else "3"
        sweeps = {}
        for name, preset in (("host", str(self.out / "host.toml")),
                             ("1999", "linux-2.2-1999")):
            folder = self.out / ("simulated-host-sweep" if name == "host" else "simulated-1999")
            argv = ["simulate", "--preset", preset, "--workload", "closed", "--cpus", "1",
                    "--loads", *loads, "--reps", reps, "--requests", requests,
                    "--seed", str(self.args.seed), "--out", str(folder), "--quiet"]
            if cli.main(argv) != 0:
                raise RuntimeError(f"the {name} simulation failed")
            sweeps[name] = schema.load(folder)
        return sweeps

    def fidelity(self, measured, sim_host) -> pd.DataFrame | None:
        if measured is None or sim_host is None:
            return None
        from .fidelity import fidelity

        table = fidelity(measured, sim_host)
        table.to_csv(self.out / "fidelity.csv", index=False)
        return table

    def figures(self, measured, sim_host, sweeps) -> None:
        from .plots import overlay_host, save, then_and_now

        if measured is not None and sim_host is not None:
            save(overlay_host(measured, sim_host), self.out, "overlay_host")
        save(then_and_now(sweeps["host"], sweeps["1999"]), self.out, "then_and_now")

    def report(self, calibration, measured, sweeps, table) -> None:
        from .report import render

        text = render(self.out, self.meta, calibration, measured, sweeps, table, self.skipped)
        (self.out / "REPORT.md").write_text(text)


def run(args: argparse.Namespace) -> int:
    return Reproduction(args).run()

