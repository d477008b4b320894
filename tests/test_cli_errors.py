"""Bad command-line input: one line naming the fix, exit code 2, nothing written.

Each case runs the real entry point (``arch_sim.cli.main``) - or, for ``serve``, which execs
the server in its own place, a subprocess - and then checks that the folder it was pointed at
holds exactly what it held before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from arch_sim import cli, schema, simulate, sweep
from arch_sim.harness import bench
from arch_sim.harness import plan as bench_plan
from arch_sim.plots import FIGURES

#: the smallest sweep that still runs the model (used only where a case must get that far)
TINY = ["--loads", "500", "--reps", "1", "--requests", "300", "--jobs", "1", "--quiet",
        "--no-figures", "--arch", "state-group"]


def tree(root: Path) -> list[str]:
    """Every path under *root*, hidden ones included (a staging folder must not survive)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_error(argv: list[str], capsys) -> str:
    """Run ``arch-sim ARGV``; assert exit code 2 and a single line on stderr; return it."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's errors exit from inside parse_args
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith(f"arch-sim {argv[0]}: error: "), lines[0]
    return lines[0]


# -- simulate ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "words"), [
    (["--loads", "0"], ["--loads", "> 0"]),
    (["--loads", "-5"], ["--loads", "-5", "> 0"]),
    (["--loads", "100,0"], ["--loads", "> 0"]),
    (["--cpus", "0"], ["--cpus", ">= 1"]),
    (["--reps", "0"], ["--reps", ">= 1"]),
    (["--requests", "0"], ["--requests", ">= 1"]),
    (["--file-sizes", "banana"], ["--file-sizes", "banana", "specweb99", "fixed:KB"]),
    (["--threads", "-1"], ["--threads", ">= 0"]),
    (["--jobs", "0"], ["--jobs", ">= 1"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v[0].startswith("--") else None)
def test_simulate_refuses_bad_values_before_writing(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    line = one_line_error(["simulate", *argv, "--out", str(out), "--quiet"], capsys)
    for word in words:
        assert word in line
    assert tree(tmp_path) == []


def test_simulate_names_a_preset_file_that_is_not_toml(tmp_path, capsys):
    bad = tmp_path / "mine.toml"
    bad.write_text('name = "x\n[[[scheduler\n')
    line = one_line_error(["simulate", "--preset", str(bad), "--out", str(tmp_path / "run")],
                          capsys)
    assert str(bad) in line and "not a TOML preset file" in line
    assert "linux-2.2-1999" in line  # names what to give instead
    empty = tmp_path / "empty.toml"  # valid TOML, but a preset of nothing but defaults
    empty.write_text("")
    line = one_line_error(["simulate", "--preset", str(empty)], capsys)
    assert str(empty) in line and "no settings" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.toml", "mine.toml"]


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_simulate_refuses_an_out_it_cannot_create(tmp_path, capsys, where):
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "run" if where == "under-a-file" else Path("/proc/arch-sim-x")
    line = one_line_error(["simulate", *TINY, "--out", str(out)], capsys)
    assert str(out) in line and "choose another --out" in line
    assert tree(tmp_path) == ["a-file"]


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_sweep_that_fails_midway_leaves_no_folder(tmp_path, monkeypatch, failure):
    calls = []

    def flaky(job):
        calls.append(job)
        if len(calls) == 2:
            raise failure("the model broke")
        return sweep.simulate_point(**job)

    monkeypatch.setattr(sweep, "_job", flaky)
    out = tmp_path / "results" / "run"
    argv = ["simulate", *TINY, "--loads", "500", "900", "--out", str(out)]
    if failure is KeyboardInterrupt:
        assert cli.main(argv) == 130
    else:
        with pytest.raises(RuntimeError, match="the model broke"):
            cli.main(argv)
    assert len(calls) == 2
    assert tree(tmp_path) == []  # no run folder, no staging folder, no parent made for them


def test_a_failed_sweep_into_an_existing_folder_leaves_it_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(sweep, "_job", lambda job: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["simulate", *TINY, "--out", str(out)])
    assert tree(tmp_path) == ["run", "run/notes.txt"]
    # and a sweep that succeeds adds its files beside what was there
    monkeypatch.undo()
    assert cli.main(["simulate", *TINY, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "notes.txt", "simulated.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_simulate_quick_is_a_short_sweep(tmp_path):
    out = tmp_path / "quick"
    assert cli.main(["simulate", "--quick", "--arch", "state-group", "--jobs", "2", "--quiet",
                     "--no-figures", "--out", str(out)]) == 0
    df = schema.load(out)
    assert df["target_rps"].nunique() == simulate.QUICK["points"]
    assert set(df["rep"]) == set(range(simulate.QUICK["reps"]))
    # an option given beside --quick wins
    args = cli.build_parser().parse_args(["simulate", "--quick", "--reps", "1"])
    simulate.resolve_defaults(args, simulate.load_preset(args.preset))
    assert args.reps == 1 and args.requests == simulate.QUICK["requests"]


# -- one list syntax on every command ---------------------------------------------------------

@pytest.mark.parametrize("loads", [["100,200", "500"], ["100", "200", "500"], ["100,200,500"]])
def test_loads_take_spaces_commas_or_both_on_every_command(loads):
    parser = cli.build_parser()
    sim = parser.parse_args(["simulate", "--loads", *loads])
    assert sim.loads == [100.0, 200.0, 500.0]
    sim = parser.parse_args(["simulate", "--arch", "state-group,thread-per-request"])
    assert sim.arch == ["state-group", "thread-per-request"]
    ben = parser.parse_args(["bench", "--loads", *loads, "max"])
    assert bench_plan.parse_loads(ben.loads) == [100.0, 200.0, 500.0, None]
    ben = parser.parse_args(["bench", "--threads", "0", "64", "--server-cpus", "0,0"])
    assert bench_plan.parse_threads(ben.threads) == [0, 64]
    assert bench_plan.parse_cpus(ben.server_cpus) == [0]


@pytest.mark.parametrize("command", ["simulate", "bench"])
def test_help_documents_the_list_syntax(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--loads RPS [RPS ...]" in text
    assert "space- or comma-separated" in text


# -- bench ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "words"), [
    (["--loads", "100,lots"], ["--loads", "'lots'", "max"]),
    (["--loads", "0"], ["--loads", "positive"]),
    (["--loads", "100", "-5"], ["--loads", "-5", "positive"]),
    (["--threads", "x"], ["--threads", "'x'"]),
    (["--threads", "0,-1"], ["--threads", ">= 0"]),
    (["--server-cpus", "999"], ["--server-cpus", "999", "choose from"]),
    (["--client-cpus", "one"], ["--client-cpus", "'one'"]),
    (["--reps", "0"], ["--reps", ">= 1"]),
    (["--connections", "0"], ["--connections", ">= 1"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v[0].startswith("--") else None)
def test_bench_refuses_bad_lists_in_one_line(tmp_path, capsys, argv, words):
    line = one_line_error(["bench", *argv, "--quick", "--out", str(tmp_path / "run")], capsys)
    for word in words:
        assert word in line
    assert tree(tmp_path) == []


def test_bench_parse_functions_raise_usage_errors():
    from arch_sim.argtypes import UsageError

    for parse, bad in ((bench_plan.parse_loads, "1,x"), (bench_plan.parse_threads, "-1"),
                       (bench_plan.parse_cpus, "999")):
        with pytest.raises(UsageError):
            parse(bad)


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_bench_refuses_an_out_it_cannot_create(tmp_path, capsys, where):
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "run" if where == "under-a-file" else Path("/proc/arch-sim-x")
    line = one_line_error(["bench", "--quick", "--out", str(out)], capsys)
    assert str(out) in line and "choose another --out" in line
    assert tree(tmp_path) == ["a-file"]


@pytest.mark.parametrize("window", ["0", "-1", "soon"])
def test_reproduce_refuses_a_bad_window_before_writing(tmp_path, capsys, window):
    out = tmp_path / "run"
    line = one_line_error(["reproduce", "--quick", "--window", window, "--out", str(out)], capsys)
    assert "--window" in line and window in line
    assert tree(tmp_path) == []


# -- plot -------------------------------------------------------------------------------------

def _schema_csv(path: Path, **overrides) -> Path:
    row = {c: 1.0 for c in schema.COLUMNS}
    row.update(source="measured", arch="state-group", server="x", preset="p", run_id="r",
               target_rps=100.0, rps=100.0, reschedules_per_s=50.0)
    rows = [{**row, "rep": rep, **overrides} for rep in range(2)]
    schema.to_frame(rows).to_csv(path, index=False)
    return path


def test_plot_refuses_an_out_it_cannot_create(tmp_path, capsys):
    csv = _schema_csv(tmp_path / "rows.csv")
    (tmp_path / "a-file").write_text("x")
    line = one_line_error(["plot", str(csv), "--out", str(tmp_path / "a-file" / "figs")],
                          capsys)
    assert "choose another --out" in line
    assert tree(tmp_path) == ["a-file", "rows.csv"]


@pytest.mark.parametrize(("drop", "words"), [
    ("arch", ["'arch'"]),
    (("target_rps", "rps"), ["load column", "target_rps", "rps"]),
    (("reschedules_per_s", "reschedules_per_request"),
     ["reschedule column", "reschedules_per_s", "reschedules_per_request"]),
])
def test_plot_names_the_missing_column_and_draws_nothing(tmp_path, capsys, drop, words):
    csv = _schema_csv(tmp_path / "rows.csv")
    pd.read_csv(csv).drop(columns=list(drop) if isinstance(drop, tuple) else [drop]).to_csv(
        csv, index=False)
    line = one_line_error(["plot", str(csv), "--out", str(tmp_path / "figs")], capsys)
    for word in words:
        assert word in line
    assert tree(tmp_path) == ["rows.csv"]


def test_plot_with_nothing_to_draw_is_an_error_not_an_empty_figure(tmp_path, capsys):
    csv = _schema_csv(tmp_path / "rows.csv", reschedules_per_s=None)
    line = one_line_error(["plot", str(csv)], capsys)
    assert "nothing to plot" in line and "reschedules_per_s" in line
    assert tree(tmp_path) == ["rows.csv"]


def test_plot_failing_midway_leaves_no_partial_figures(tmp_path, monkeypatch):
    from arch_sim import plots

    csv = _schema_csv(tmp_path / "rows.csv")
    real_save, saved = plots.save, []

    def save_then_fail(fig, out_dir, name):
        if saved:
            raise OSError(28, "No space left on device")
        saved.append(name)
        return real_save(fig, out_dir, name)

    monkeypatch.setattr(plots, "save", save_then_fail)
    with pytest.raises(OSError):
        cli.main(["plot", str(csv), "--out", str(tmp_path / "figs")])
    assert saved == [FIGURES[0]]
    assert list((tmp_path / "figs").iterdir()) == []


# -- serve (execs the server: run it in a subprocess) -----------------------------------------

def arch_sim_cmd(*argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arch_sim.cli", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize(("args", "words"), [
    (["--port", "80801"], ["--port 80801", "65535"]),
    (["--port", "-1"], ["--port -1", "65535"]),
    (["--port", "http"], ["--port http", "65535"]),
    ([], ["--root DIR is required"]),
    (["--root", "/nonexistent/www"], ["--root /nonexistent/www", "not a folder"]),
])
def test_serve_refuses_bad_ports_and_roots_in_one_line(tmp_path, args, words):
    if args and args[0] == "--port":
        args = [*args, "--root", str(tmp_path)]
    done = arch_sim_cmd("serve", "thread-per-request", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arch-sim serve: error: "), done.stderr
    for word in words:
        assert word in lines[0]


def test_serve_port_zero_still_means_any_free_port(tmp_path):
    """The servers document --port 0 (the harness and tests rely on it): not an error."""
    proc = subprocess.Popen([sys.executable, "-m", "arch_sim.cli", "serve", "state-group",
                             "--root", str(tmp_path), "--port", "0", "--cpus", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent.parent)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:"), proc.stderr.read()
        assert int(line.rsplit(":", 1)[1]) > 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_one_command_runs_another_by_option_names_not_a_command_line():
    from arch_sim.argtypes import options

    args = options(bench.add_arguments, loads="100,max", quick=True)
    assert args.loads == "100,max" and args.quick and args.connections == 64
    assert bench.make_plan(args).loads == [100.0, None]
    with pytest.raises(TypeError, match="no option lods"):
        options(bench.add_arguments, lods="100")
