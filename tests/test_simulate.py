"""`arch-sim simulate` end to end: run folder, schema, meta.json, figures, reproducibility."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from arch_sim import schema
from arch_sim.cli import main
from arch_sim.models.params import PRESET_DIR
from arch_sim.plots import FIGURES
from arch_sim.simulate import parse_load_range

SMALL = ["--loads", "800", "3000", "--reps", "2", "--requests", "1200", "--quiet"]


def test_simulate_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    assert main(["simulate", *SMALL, "--jobs", "2", "--out", str(out)]) == 0
    df = schema.load(out)  # validates against the schema
    assert len(df) == 2 * 2 * 2  # archs x loads x reps
    assert set(df["source"]) == {"simulated"}
    assert set(df["arch"]) == {"thread-per-request", "state-group"}
    assert set(df["preset"]) == {"linux-2.2-1999"}
    assert df["run_id"].nunique() == 1
    for name in FIGURES:
        for ext in ("png", "svg"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is True
    assert meta["preset"]["name"] == "linux-2.2-1999"
    assert meta["preset"]["contents"]["scheduler"]["switch_us"] == 6.0
    assert {"host", "python", "simpy", "git_commit", "start", "end", "args"} <= set(meta)
    assert len(meta["seeds"]) == len(df)
    assert sorted(s["seed"] for s in meta["seeds"]) == sorted(df["seed"])
    assert meta["claims"]["old_server"]["value"] > 0
    for arch in ("thread-per-request", "state-group"):
        assert meta["speed"][arch]["sim_requests_per_wall_s"] > 1000
    assert not list(out.glob(".*.tmp"))  # atomic writes left nothing behind


def test_parallel_and_serial_sweeps_write_the_same_rows(tmp_path):
    a, b = tmp_path / "parallel", tmp_path / "serial"
    args = [*SMALL, "--arch", "state-group", "--no-figures"]
    assert main(["simulate", *args, "--jobs", "2", "--out", str(a)]) == 0
    assert main(["simulate", *args, "--jobs", "1", "--out", str(b)]) == 0
    assert (a / "simulated.csv").read_bytes() == (b / "simulated.csv").read_bytes()
    # another base seed gives other rows
    c = tmp_path / "other"
    assert main(["simulate", *args, "--jobs", "1", "--seed", "2", "--out", str(c)]) == 0
    assert (a / "simulated.csv").read_bytes() != (c / "simulated.csv").read_bytes()


def test_closed_workload_and_preset_file(tmp_path):
    preset = tmp_path / "slow.toml"
    preset.write_text((PRESET_DIR / "host.toml").read_text()
                      .replace('name = "host"', 'name = "slow-host"'))
    out = tmp_path / "closed"
    rc = main(["simulate", "--preset", str(preset), "--workload", "closed", "--connections",
               "16", "--reps", "2", "--requests", "1000", "--cpus", "1", "--jobs", "1",
               "--quiet", "--no-figures", "--out", str(out)])
    assert rc == 0
    df = schema.load(out)
    assert set(df["preset"]) == {"slow-host"}
    assert df["target_rps"].isna().all()  # unpaced
    assert (df["connections"] == 16).all() and (df["cpus"] == 1).all()
    assert set(df["workload"]) == {"closed"}


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    assert main(["simulate", "--preset", "nope", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "linux-2.2-1999" in capsys.readouterr().err  # names the presets to choose from
    with pytest.raises(SystemExit):
        main(["simulate", "--arch", "apache"])


def test_load_range():
    loads = parse_load_range("100:20000:25")
    assert len(loads) == 25 and loads[0] == 100 and loads[-1] == 20000
    assert math.isclose(loads[1] - loads[0], 19900 / 24)
    for bad in ("100:20000", "0:10:3", "a:b:c", "10:5:2"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_load_range(bad)


def test_meta_json_uses_the_shared_run_info(tmp_path):
    out = tmp_path / "run"
    assert main(["simulate", *SMALL, "--arch", "state-group", "--jobs", "1", "--no-figures",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert {"commit", "dirty"} <= set(meta["git_commit"])
    assert ("changed" in meta["git_commit"]) == bool(meta["git_commit"]["dirty"])
    assert {"host", "kernel", "platform", "cpu_model", "cpu_count", "python", "simpy", "numpy",
            "pandas"} <= set(meta)


def test_parquet_is_written_beside_the_csv_only_with_pyarrow(tmp_path, monkeypatch):
    import importlib.util

    import pandas as pd

    csv = tmp_path / "measurements.csv"
    pd.DataFrame({"rps": [1.0, 2.0]}).to_csv(csv, index=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert schema.write_parquet_beside(csv) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measurements.csv"]

    written = {}  # pyarrow "installed": the frame read back from the CSV goes to X.parquet
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(pd.DataFrame, "to_parquet",
                        lambda self, path, index: written.update(rows=len(self)) or
                        path.write_bytes(b"PAR1"))
    assert schema.write_parquet_beside(csv) == tmp_path / "measurements.parquet"
    assert written == {"rows": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measurements.csv",
                                                          "measurements.parquet"]


def test_loads_above_the_link_get_a_note_and_the_default_range_stays_below():
    from arch_sim.eras import link_capacity_rps
    from arch_sim.models import load_preset
    from arch_sim.sweep import default_load_range, over_link_note, plan

    params = load_preset("linux-2.2-1999")
    top = link_capacity_rps(params)
    below = plan(params, parse_load_range(default_load_range(params)), ["state-group"])
    assert over_link_note(params, below) is None
    note = over_link_note(params, plan(params, [1000.0, top * 1.5, top * 3], ["state-group"]))
    assert note is not None and "2 load(s)" in note and f"{top * 1.5:,.0f}" in note
    assert "\n" not in note
    closed = plan(params, [top * 3], ["state-group"], workload="closed")  # clients wait
    assert over_link_note(params, closed) is None
