"""benchmarks/cold_wake.py --bench: what an idle period of the server's CPU costs a request."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from helpers import benchmark

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "archs-bench-2026-11-30-c"



def test_each_paced_point_gets_its_cpu_above_saturation_per_idle_period():
    lines = benchmark("cold_wake").per_idle(str(RUN))
    assert len(lines) == 1 + 2 * 4 * 4  # a header, two workloads x four designs x four loads
    df = pd.read_csv(RUN / "measurements.csv")
    sg = df[(df["arch"] == "state-group") & (df["connection_mode"] == "close")]
    sat = sg[sg["target_rps"].isna()]["cpu_us_per_request"].mean()
    at = sg[sg["target_rps"] == 2000]
    idles = (at["cpu_switches_per_request"].mean() - at["reschedules_per_request"].mean())
    want = (at["cpu_us_per_request"].mean() - sat) / idles
    line = next(x for x in lines if x.startswith("close") and "state-group" in x
                and x.split()[2] == "2000")
    assert float(line.split()[-1]) == round(want)
    assert float(line.split()[-2]) == round(idles, 2)


def test_a_folder_without_measurements_gets_one_line_and_exit_2(tmp_path, capsys):
    assert benchmark("cold_wake").main(["--bench", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "measurements.csv not found" in err[0]
