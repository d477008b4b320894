"""fidelity(): measured vs simulated reschedules per request; simulate_like(): the same points."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from arch_sim import schema
from arch_sim.fidelity import (
    fidelity,
    fidelity_markdown,
    load_label,
    plan_like,
    simulate_like,
    tolerance,
)
from arch_sim.models import load_preset


def measured_rows(points: dict[tuple[str, float | None], list[float]]) -> pd.DataFrame:
    rows = []
    for (arch, target), values in points.items():
        server = ("real_servers.threaded --threads 64" if arch == "thread-per-request"
                  else "real_servers.stategroup --cpus 0")
        for rep, v in enumerate(values):
            rows.append({
                "source": "measured", "arch": arch, "server": server, "preset": "specweb99",
                "cpus": 1, "connections": 64,
                "target_rps": math.nan if target is None else target,
                "rps": (target or 30000.0) * 0.98, "reschedules_per_s": v * 1000,
                "voluntary_per_s": v * 1000, "involuntary_per_s": 0.0,
                "reschedules_per_request": v, "lat_p50_ms": 1.0, "lat_p99_ms": 2.0,
                "cpu_util": 0.5, "sched_overhead_frac": math.nan, "errors": 0, "rep": rep,
                "seed": 1, "duration_s": 3.0, "run_id": "m", "file_set": "specweb99",
            })
    return schema.to_frame(rows)


def test_tolerance_is_25_percent_or_a_tenth():
    assert tolerance(2.0) == pytest.approx(0.5)
    assert tolerance(0.2) == pytest.approx(0.1)
    assert load_label(math.nan) == "max" and load_label(None) == "max"
    assert load_label(2000.0) == "2000"


def test_fidelity_table():
    m = measured_rows({("thread-per-request", 200.0): [2.9, 3.1],
                       ("thread-per-request", None): [2.0, 2.4],
                       ("state-group", 200.0): [0.90, 0.88],
                       ("state-group", 10000.0): [0.08, 0.07],
                       ("state-group", None): [0.004, 0.006]})
    s = measured_rows({("thread-per-request", 200.0): [2.0, 2.2],
                       ("thread-per-request", None): [2.5, 2.6],
                       ("state-group", 200.0): [0.85, 0.87],
                       ("state-group", 10000.0): [0.15, 0.16]}).assign(source="simulated")
    table = fidelity(m, s)
    assert list(table["arch"]) == ["thread-per-request"] * 2 + ["state-group"] * 3
    assert list(table["load"]) == ["200", "max", "200", "10000", "max"]
    row = table.iloc[0]
    assert row["measured"] == pytest.approx(3.0) and row["simulated"] == pytest.approx(2.1)
    assert row["diff"] == pytest.approx(-0.9) and row["rel_diff"] == pytest.approx(-0.3)
    assert row["abs_diff"] == pytest.approx(0.9)
    assert row["measured_ci"] == pytest.approx(12.706 * math.sqrt(0.02) / math.sqrt(2))
    assert not row["within"]  # 30% off
    assert table.iloc[1]["within"]  # 2.55 vs 2.2: 16%
    assert table.iloc[2]["within"]
    assert table.iloc[3]["within"]  # 0.155 vs 0.075: 107% but only 0.08 absolute
    missing = table.iloc[4]
    assert math.isnan(missing["simulated"]) and not missing["within"]
    text = fidelity_markdown(table)
    assert text.count("\n") == 2 + len(table) - 1 and "| no |" in text and "| yes |" in text


def test_simulate_like_mirrors_the_measured_points():
    m = measured_rows({("thread-per-request", 500.0): [2.9],
                       ("state-group", 500.0): [0.8],
                       ("state-group", None): [0.0]})
    host = load_preset("host")
    plan = plan_like(m, host, reps=2, requests=800, seed=3)
    assert len(plan) == 3 * 2
    tpr = [j for j in plan if j["arch"] == "thread-per-request"]
    assert all(j["threads"] == 64 and j["workload"] == "closed" for j in tpr)
    assert {j["target_rps"] for j in plan} == {500.0, None}
    assert all(j["cpus"] == 1 and j["connections"] == 64 and j["file_sizes"] == "specweb99"
               for j in plan)
    a = simulate_like(m, host, reps=2, requests=800, seed=3, jobs=1)
    b = simulate_like(m, host, reps=2, requests=800, seed=3, jobs=2)
    schema.validate(a)
    assert len(a) == 6 and set(a["source"]) == {"simulated"} and set(a["preset"]) == {"host"}
    assert a.drop(columns=["run_id"]).equals(b.drop(columns=["run_id"]))
    table = fidelity(m, a)
    assert len(table) == 3 and table["simulated"].notna().all()
