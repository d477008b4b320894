"""fidelity(): measured vs simulated per request, both counts, both workloads; the 10% rule;
simulate_like(): the same points."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from arch_sim import schema
from arch_sim.fidelity import (
    fidelity,
    fidelity_markdown,
    headline,
    load_label,
    plan_like,
    simulate_like,
    within,
)
from arch_sim.models import load_preset


def measured_rows(points: dict[tuple, list[float]], mode: str = "keep-alive",
                  cpu_factor: float = 2.0) -> pd.DataFrame:
    """Rows per (arch, target[, threads]): reschedules per request values, one per rep; the
    CPU-wide count is ``cpu_factor`` times it."""
    rows = []
    for key, values in points.items():
        arch, target = key[0], key[1]
        threads = key[2] if len(key) > 2 else (64 if arch == "thread-per-request" else None)
        for rep, v in enumerate(values):
            rows.append({
                "source": "measured", "arch": arch, "server": f"{arch} --threads {threads}",
                "preset": "specweb99", "cpus": 1, "connections": 64,
                "target_rps": math.nan if target is None else target,
                "rps": (target or 30000.0) * 0.98, "reschedules_per_s": v * 1000,
                "voluntary_per_s": v * 1000, "involuntary_per_s": 0.0,
                "reschedules_per_request": v, "cpu_switches_per_request": v * cpu_factor,
                "lat_p50_ms": 1.0, "lat_p99_ms": 2.0, "cpu_util": 0.5,
                "sched_overhead_frac": math.nan, "errors": 0, "rep": rep, "seed": 1,
                "duration_s": 3.0, "run_id": "m", "file_set": "specweb99",
                "connection_mode": mode, "threads": threads,
            })
    return schema.to_frame(rows)


def test_the_rule_is_ten_percent_as_a_log_ratio_or_a_hundredth():
    assert within(2.0, 2.19) and within(2.0, 1.83)  # ln(2.19/2) = 0.091; ln(1.83/2) = -0.089
    assert not within(2.0, 2.25) and not within(2.0, 1.8)  # 0.118 and -0.105
    assert within(0.004, 0.012)  # 200% off, but 0.008 apart
    assert not within(0.05, 0.07)  # 0.02 apart and 40% off
    assert not within(1.0, math.nan)
    assert load_label(math.nan) == "max" and load_label(None) == "max"
    assert load_label(2000.0) == "2000"


def test_fidelity_table_covers_both_counts_and_marks_every_miss():
    m = measured_rows({("thread-per-request", 200.0): [2.9, 3.1],
                       ("thread-per-request", None): [2.0, 2.4],
                       ("state-group", 200.0): [0.90, 0.88],
                       ("state-group", 10000.0): [0.08, 0.07],
                       ("state-group", None): [0.004, 0.006]})
    s = measured_rows({("thread-per-request", 200.0): [2.0, 2.2],
                       ("thread-per-request", None): [2.35, 2.45],
                       ("state-group", 200.0): [0.85, 0.87],
                       ("state-group", 10000.0): [0.15, 0.16]},
                      cpu_factor=2.5).assign(source="simulated")
    table = fidelity(m, s)
    assert list(table["count"]) == ["server"] * 5 + ["cpu"] * 5
    server = table[table["count"] == "server"]
    assert list(server["arch"]) == ["thread-per-request"] * 2 + ["state-group"] * 3
    assert list(server["load"]) == ["200", "max", "200", "10000", "max"]
    row = server.iloc[0]
    assert row["measured"] == pytest.approx(3.0) and row["simulated"] == pytest.approx(2.1)
    assert row["diff"] == pytest.approx(-0.9) and row["rel_diff"] == pytest.approx(-0.3)
    assert row["log_ratio"] == pytest.approx(math.log(0.7))
    assert row["measured_ci"] == pytest.approx(12.706 * math.sqrt(0.02) / math.sqrt(2))
    assert list(server["within"]) == [False, True, True, False, False]
    assert math.isnan(server.iloc[4]["simulated"])
    cpu = table[table["count"] == "cpu"]  # 2.5x against 2x: 25% off everywhere
    assert not cpu["within"].any()
    # a miss inside the measured mean's 95% interval is told apart: two windows of 2.9 and
    # 3.1 cannot tell 2.1 from 3.0; two of 0.08 and 0.07 can tell 0.155 from 0.075
    assert list(server["in_ci"]) == [True, True, True, False, False]
    misses_in_ci = int((~table["within"] & table["in_ci"]).sum())
    assert headline(table) == (f"2 of 10 points within 10% (or 0.01 per request); "
                               f"{misses_in_ci} of the 8 others lie inside the measurement's "
                               "own 95% interval")
    text = fidelity_markdown(table)
    assert text.count("\n") == 2 + len(table) - 1 and "**no**" in text and "| yes |" in text
    assert "| **no** (in CI) |" in text and "| **no** |" in text


def test_regimes_and_shapes_are_kept_apart():
    keep = measured_rows({("thread-per-request", 200.0, 64): [3.0]})
    close = measured_rows({("thread-per-request", 200.0, 64): [3.5],
                           ("thread-per-request", 200.0, 0): [7.0]}, mode="close")
    m = pd.concat([keep, close], ignore_index=True)
    s = m.assign(source="simulated")
    table = fidelity(m, s, counts=("server",))
    assert len(table) == 3 and table["within"].all()
    assert set(zip(table["regime"], table["threads"], strict=True)) == {
        ("today", 64), ("seed", 64), ("seed", 0)}


def test_simulate_like_mirrors_the_measured_points():
    m = measured_rows({("thread-per-request", 500.0): [2.9],
                       ("state-group", 500.0): [0.8],
                       ("state-group", None): [0.0]})
    m = pd.concat([m, measured_rows({("thread-per-request", 500.0, 0): [5.0]}, mode="close")],
                  ignore_index=True)
    host = load_preset("host")
    plan = plan_like(m, host, reps=2, requests=800, seed=3)
    assert len(plan) == 4 * 2
    tpr = [j for j in plan if j["arch"] == "thread-per-request"]
    assert {(j["threads"], j["connection"]) for j in tpr} == {(64, "keep-alive"), (0, "close")}
    assert all(j["workload"] == "closed" for j in plan)
    assert {j["target_rps"] for j in plan} == {500.0, None}
    assert all(j["cpus"] == 1 and j["connections"] == 64 and j["file_sizes"] == "specweb99"
               for j in plan)
    a = simulate_like(m, host, reps=2, requests=800, seed=3, jobs=1)
    b = simulate_like(m, host, reps=2, requests=800, seed=3, jobs=2)
    schema.validate(a)
    assert len(a) == 8 and set(a["source"]) == {"simulated"} and set(a["preset"]) == {"host"}
    assert set(a["regime"]) == {"today", "seed"}
    assert a.drop(columns=["run_id"]).equals(b.drop(columns=["run_id"]))
    table = fidelity(m, a)
    assert len(table) == 8 and table["simulated"].notna().all()
