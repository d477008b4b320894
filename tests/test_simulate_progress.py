"""The sweep's progress bar says what it runs, and a parallel sweep starts the dearest runs
first (rows still come back in job order: tests/test_simulate.py compares --jobs 1 and 2)."""

from __future__ import annotations

import math

from arch_sim.models import load_preset
from arch_sim.sweep import dearest_first, describe, plan, run_jobs


def test_dearest_runs_first_unpaced_heaviest_ties_in_job_order():
    jobs = [{"target_rps": 100.0}, {"target_rps": None}, {"target_rps": 3000.0},
            {"target_rps": 100.0}, {"target_rps": math.nan}]
    assert dearest_first(jobs) == [1, 4, 2, 0, 3]


def test_progress_bar_names_the_sweep_and_each_run(capsys):
    jobs = plan(load_preset("linux-2.2-1999"), [800.0], ["state-group", "thread-per-request"],
                requests=300, warmup=50, cpus=1)
    assert describe(jobs[0]) == "state-group 800 req/s rep 0"
    rows = run_jobs(jobs, workers=1, progress=True)
    assert [r["arch"] for r in rows] == ["state-group", "thread-per-request"]
    err = capsys.readouterr().err
    assert "simulating 2 runs" in err
    assert "thread-per-request 800 req/s rep 0" in err
