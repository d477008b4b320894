"""How fast the machine ran (arch_sim.machine_state): /proc/stat's steal, the reference work, the
bench's summary of both, and the note `simulate --like` gives when the bench's machine was not
the calibrated one."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from arch_sim.machine_state import (
    SPEED_TOLERANCE,
    ReferenceWork,
    cpu_times,
    drift_note,
    speed_note,
    steal_fraction,
    summarise,
)
from arch_sim.models import load_preset
from arch_sim.models.calibration import host_preset_text
from arch_sim.models.params import from_dict
from arch_sim.report import _machine_lines

SHIPPED = Path(__file__).resolve().parent.parent / "arch_sim" / "models" / "presets"

STAT = """cpu  300 0 30 600 4 0 6 60 0 0
cpu0 100 0 10 300 2 0 3 40 7 0
cpu1 200 0 20 300 2 0 3 20 0 0
intr 12345
ctxt 999
"""
LATER = """cpu  0 0 0 0 0 0 0 0 0 0
cpu0 150 0 20 330 2 0 3 90 7 0
cpu1 210 0 20 370 2 0 3 20 0 0
"""


def test_cpu_times_reads_each_cpus_steal_and_total_and_not_the_summary_line():
    times = cpu_times(STAT)
    assert times == {0: (40, 455), 1: (20, 545)}  # guest (9th) is inside user: not added


def test_steal_fraction_is_the_stolen_share_of_the_named_cpus_ticks():
    before, after = cpu_times(STAT), cpu_times(LATER)
    # cpu0: 50 stolen of 50 + 10 + 30 + 50 = 140 ticks; cpu1: none of 80
    assert steal_fraction(before, after, [0]) == pytest.approx(50 / 140)
    assert steal_fraction(before, after, [0, 1]) == pytest.approx(50 / 220)
    assert steal_fraction(before, after, [1]) == 0.0
    assert math.isnan(steal_fraction(before, after, [5]))  # no such CPU: nothing to say
    assert math.isnan(steal_fraction(before, before, [0]))  # no tick passed


def test_this_machines_proc_stat_parses():
    times = cpu_times()
    assert 0 in times and all(0 <= steal <= total for steal, total in times.values())


def test_the_reference_work_runs_and_is_timed():
    with ReferenceWork() as work:
        assert work.run() > 0
        assert work.warm_us(runs=20, warmup=5) > 0


def test_speed_note_only_outside_the_tolerance():
    assert speed_note(10.0, 10.0) is None
    assert speed_note(10.0 * SPEED_TOLERANCE * 0.99, 10.0) is None
    assert speed_note(10.0 / SPEED_TOLERANCE * 1.01, 10.0) is None
    slower = speed_note(22.0, 10.0, "preset 'host'")
    assert slower is not None and "2.20x slower" in slower and "preset 'host'" in slower
    assert "calibrate" in slower  # names the fix
    faster = speed_note(5.0, 10.0)
    assert faster is not None and "2.00x faster" in faster
    for missing in ((0.0, 10.0), (10.0, 0.0), (math.nan, 10.0)):
        assert speed_note(*missing) is None  # an older run or preset did not time it


def test_summarise_warns_when_the_speed_moved_or_the_host_stole_the_cpus():
    calm = summarise([10.0, 10.5, 11.0], [0.0, 0.01, math.nan])
    assert calm["warnings"] == []
    assert calm["reference_us"] == {"min": 10.0, "median": 10.5, "max": 11.0}
    assert calm["steal_frac_max"] == 0.01
    moved = summarise([7.3, 16.3], [0.0])
    assert len(moved["warnings"]) == 1 and "7.3 to 16.3 us" in moved["warnings"][0]
    stolen = summarise([10.0], [0.2, 0.01, 0.06])
    assert len(stolen["warnings"]) == 1 and "2 of 3 windows" in stolen["warnings"][0]
    assert summarise([], [])["warnings"] == []  # an older run's rows hold neither


def test_the_preset_carries_the_calibrations_reference_time():
    m = json.loads((SHIPPED / "host.calibration.json").read_text())
    warm = m["cold_cache"]["warm_us"]
    text = host_preset_text(m, solve=False)
    assert from_dict(tomllib.loads(text)).reference_us == pytest.approx(warm, abs=0.01)
    assert load_preset("host").reference_us == pytest.approx(warm, abs=0.01)
    del m["cold_cache"]  # not measured: no line, and the preset says nothing
    assert "reference_us" not in host_preset_text(m, solve=False)
    assert load_preset("linux-2.2-1999").reference_us == 0.0


def test_the_reproduce_report_gives_both_speeds_and_warns_when_they_differ():
    cal = {"cold_cache": {"warm_us": 7.3}}
    slow = _machine_lines(cal, pd.DataFrame({"reference_us": [16.3, 16.0, 17.1]}))
    assert "in 7.3 us when calibrated and in 16.3 us" in slow[0] and "16-17.1" in slow[0]
    assert any(line.startswith("**Warning:**") and "2.23x slower" in line for line in slow)
    same = _machine_lines(cal, pd.DataFrame({"reference_us": [7.4, 7.6]}))
    assert same and not any("Warning" in line for line in same)
    assert _machine_lines(cal, pd.DataFrame({"rps": [1.0]})) == []  # an older bench: nothing
    assert _machine_lines({}, pd.DataFrame({"reference_us": [7.4]})) == []
    # a calibration timed at its end too: the mean of the two, as its preset holds
    both = {"cold_cache": {"warm_us": 7.0}, "machine_state": {"reference_us_end": 9.0}}
    lines = _machine_lines(both, pd.DataFrame({"reference_us": [8.0]}))
    assert "in 8 us when calibrated" in lines[0]


def test_the_preset_averages_the_reference_times_at_the_calibrations_start_and_end():
    m = json.loads((SHIPPED / "host.calibration.json").read_text())
    m["cold_cache"]["warm_us"] = 10.0
    m["machine_state"] = {"reference_us_start": 10.0, "reference_us_end": 16.0}
    text = host_preset_text(m, solve=False)
    assert from_dict(tomllib.loads(text)).reference_us == pytest.approx(13.0)
    assert "10.00 us at the start of the calibration and 16.00 at its end" in text


def test_drift_note_only_outside_the_tolerance():
    assert drift_note(10.0, 12.0) is None and drift_note(10.0, 0.0) is None
    assert "10.0 us at its start and 16.0 us at its end" in drift_note(10.0, 16.0)
    assert drift_note(16.0, 10.0) is not None
