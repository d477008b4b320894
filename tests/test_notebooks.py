"""The notebooks run top to bottom in a fresh kernel, draw only with arch_sim.plots functions the
CLI uses too, and are committed without outputs; plus the library helpers they stand on
(arch_sim.results, arch_sim.explore).

Each notebook is executed with nbclient in a fresh ``python3`` kernel, cwd ``notebooks/``, with
``QUICK=1`` in the kernel's environment, and any error fails the test.  QUICK=1 keeps each under
2 minutes on an idle machine: the test bounds the kernel's CPU time (its process and its
children), which the rest of the suite, sharing the two CPUs, does not stretch as it stretches
the wall time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import os
import re
import shutil
import time
from concurrent.futures import Future
from pathlib import Path

import pandas as pd
import psutil
import pytest
from helpers import two_at_a_time

from arch_sim import explore, results, schema
from arch_sim.cli import main as cli_main
from arch_sim.models import load_preset

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = (
    "01_reproduce_old_vs_new.ipynb",
    "02_explore_tradeoffs.ipynb",
    "03_teach_os_scheduling.ipynb",
    "04_scheduler_timeline.ipynb",
)
QUICK_LIMIT_S = 120.0  # the issue: QUICK=1 keeps each notebook under 2 minutes (CPU seconds)

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def kernel_cpu_s(pid: int) -> float:
    """CPU seconds of the kernel process *pid* so far: its own, its reaped children's and its
    live children's (a notebook may run simulations in worker processes)."""
    kernel = psutil.Process(pid)
    t = kernel.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in kernel.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = child.cpu_times()
            total += c.user + c.system
    return total


def execute(name: str, **env: str) -> tuple[object, float, float]:
    """Run one notebook in a fresh python3 kernel (QUICK=1 plus *env* in the kernel's
    environment); (notebook, the kernel's CPU seconds, wall seconds)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, startup_timeout=60,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    cpu = [0.0]

    def after_cell(**_: object) -> None:  # the kernel is gone by the end of execute()
        cpu[0] = kernel_cpu_s(client.km.provisioner.pid)

    client.on_cell_executed = after_cell
    t0 = time.perf_counter()
    # raises CellExecutionError on the first cell that fails
    client.execute(env={**os.environ, "QUICK": "1", **env})
    return nb, cpu[0], time.perf_counter() - t0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Future]:
    """Every notebook run of this module, started at once, two at a time: each kernel is one
    process, so two CPUs run two notebooks in the time of one (a run's seconds still count its
    own notebook only, started when it starts).  Key: the notebook, or ``no-reference``."""
    jobs = {name: {} for name in NAMES}
    jobs["no-reference"] = {"ARCH_SIM_RESULTS": str(tmp_path_factory.mktemp("no-results"))}
    longest_first = sorted(jobs, key=lambda k: k != NAMES[1])  # 02 is the longest
    with two_at_a_time({key: (functools.partial(execute, **jobs[key]),
                              NAMES[0] if key == "no-reference" else key)
                        for key in longest_first}) as futures:
        yield futures


def text_of(nb) -> str:
    """Every stream and text/plain output of an executed notebook, concatenated."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


# -- the notebooks run ------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, runs):
    nb, cpu_s, wall_s = runs[name].result()
    print(f"{name}: {cpu_s:.1f} CPU seconds ({wall_s:.1f} s wall) with QUICK=1")
    assert 0.5 < cpu_s, "the kernel's CPU time was not read"
    assert cpu_s < QUICK_LIMIT_S, f"{name} took {cpu_s:.0f} CPU seconds with QUICK=1"
    assert images(nb) >= 3, "the notebook drew (almost) no figures"


def test_reproduce_notebook_without_a_reference_run(runs):
    """No reference run: notebook 01 says so plainly and still runs, on the models alone."""
    if not results.runs("reproduce-full", needs=results.REPRODUCTION):
        pytest.skip("no reference run committed: the run of 01 above already took this path")
    nb, cpu_s, wall_s = runs["no-reference"].result()
    print(f"{NAMES[0]} without a reference run: {cpu_s:.1f} CPU seconds ({wall_s:.1f} s wall)")
    assert cpu_s < QUICK_LIMIT_S
    text = text_of(nb)
    assert "NO REFERENCE RUN" in text and "simulated" in text and "points live" in text


# -- what is committed ------------------------------------------------------------------------

def test_committed_notebooks_carry_no_outputs():
    spec = importlib.util.spec_from_file_location("strip_outputs", NOTEBOOKS / "strip_outputs.py")
    strip_outputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(strip_outputs)
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert strip_outputs.problems(nb) == [], (
            f"{name}: {strip_outputs.problems(nb)} - run `python notebooks/strip_outputs.py`")
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


def code_of(name: str) -> str:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def cli_sources() -> str:
    """The command-line code: every module of arch_sim except the notebook helpers."""
    skip = {"explore.py", "results.py"}
    return "\n".join(p.read_text() for p in (ROOT / "arch_sim").rglob("*.py") if p.name not in skip)


@pytest.mark.parametrize("name", NAMES)
def test_figures_come_from_arch_sim_plots_used_by_the_cli(name):
    code = code_of(name)
    assert not re.search(r"import matplotlib|pyplot|\bplt\.|\.subplots\(|Figure\(", code), (
        f"{name} draws a figure of its own; use arch_sim.plots")
    used = set(re.findall(r"\bplots(?:_seed|_timeline)?\.(\w+)\(", code))
    named = set(re.findall(r'"(reschedules_vs_load|reschedules_per_request|'
                           r'throughput_and_latency)"', code))
    assert used | named, f"{name} draws nothing with arch_sim.plots"
    cli = cli_sources()
    for function in used | named:
        calls = re.findall(rf"\b{function}\(", cli)
        defs = re.findall(rf"def {function}\(", cli)
        assert len(calls) > len(defs), f"plots.{function} is not used by any CLI path"


# -- arch_sim.results -------------------------------------------------------------------------

def _row(source: str, arch: str, rps: float, per_request: float, **extra) -> dict:
    return {"source": source, "arch": arch, "server": arch, "preset": "p", "cpus": 1,
            "connections": 64, "target_rps": rps, "rps": rps,
            "reschedules_per_s": per_request * rps, "voluntary_per_s": per_request * rps,
            "involuntary_per_s": 0.0, "reschedules_per_request": per_request,
            "cpu_switches_per_s": 2 * per_request * rps,
            "cpu_switches_per_request": 2 * per_request,
            "lat_p50_ms": 1.0, "lat_p99_ms": 2.0, "cpu_util": 0.5, "sched_overhead_frac": 0.0,
            "errors": 0, "rep": 0, "seed": 1, "duration_s": 1.0, "run_id": "r", **extra}


def _sweep(source: str, old_peak: float, new_busy: float, **extra) -> list[dict]:
    """Old design (a thread per connection and a pool of 8) at 200 and 5,000 req/s; new design
    at 200 (1 per request) and 5,000 req/s (*new_busy* per request)."""
    rows = []
    for threads in (0, 8):
        rows += [_row(source, "thread-per-request", 200.0, 1.0, threads=threads, **extra),
                 _row(source, "thread-per-request", 5000.0, old_peak / 5000.0, threads=threads,
                      **extra)]
    rows += [_row(source, "state-group", 200.0, 1.0, **extra),
             _row(source, "state-group", 5000.0, new_busy, **extra)]
    return rows


def _fake_run(folder: Path, kind: str, mode: str | None, started: str,
              complete: bool = True, layout: str = "new") -> Path:
    """A run folder: a bench one (measurements.csv at the top), or a reproduction in the new
    layout (measured-seed/, simulated-eras/, sensitivity/, fidelity.csv...) or the old one
    (measured/ only)."""
    folder.mkdir(parents=True)
    info = {"kind": kind, "started": started, "complete": complete}
    if mode:
        info["mode"] = mode
    (folder / "meta.json").write_text(json.dumps(info))

    def write(sub: str, rows: list[dict], name: str) -> None:
        (folder / sub).mkdir(exist_ok=True)
        schema.to_frame(rows).to_csv(folder / sub / name, index=False)

    if kind != "reproduce":
        schema.to_frame(_sweep("measured", 12000.0, 0.01)).to_csv(
            folder / "measurements.csv", index=False)
    elif layout == "old":
        write("measured", _sweep("measured", 12000.0, 0.01), "measurements.csv")
    else:
        write("measured-seed", _sweep("measured", 12000.0, 0.01, regime="seed",
                                      connection_mode="close"), "measurements.csv")
        write("simulated-eras", _sweep("simulated", 30000.0, 2.0, era="Linux 2.2")
              + _sweep("simulated", 15000.0, 0.04, era="Linux 2.6 O(1)"), "simulated.csv")
        write("sensitivity", _sweep("simulated", 11000.0, 0.5, variant="as written"),
              "simulated.csv")
        pd.DataFrame({"regime": ["seed"], "within": [True]}).to_csv(folder / "fidelity.csv",
                                                                     index=False)
    return folder


def test_latest_finds_the_newest_complete_run_of_a_kind(tmp_path, monkeypatch):
    monkeypatch.setenv(results.ENV, str(tmp_path))
    old = _fake_run(tmp_path / "reproduce-full-a", "reproduce", "full", "2024-01-01T00:00:00")
    new = _fake_run(tmp_path / "reproduce-full-b", "reproduce", "full", "2025-01-01T00:00:00")
    _fake_run(tmp_path / "reproduce-full-c", "reproduce", "full", "2026-01-01T00:00:00",
              complete=False)
    quick = _fake_run(tmp_path / "reproduce-quick-d", "reproduce", "quick", "2027-01-01T00:00:00")
    bench = _fake_run(tmp_path / "bench-e", "bench", None, "2023-01-01T00:00:00")
    assert results.latest("reproduce-full") == new
    assert results.runs("reproduce-full") == [new, old]
    assert results.latest("reproduce") == quick
    assert results.latest("bench") == bench
    frames = results.load_reference()
    assert sorted(frames) == ["fidelity.csv", "measured-seed", "sensitivity", "simulated-eras"]
    assert list(results.load_run(bench)) == ["measured"]
    # pointing the variable at one run folder uses that folder
    monkeypatch.setenv(results.ENV, str(quick))
    assert results.latest("reproduce-full") == quick


def test_latest_passes_over_a_reproduction_of_the_older_layout(tmp_path, monkeypatch):
    monkeypatch.setenv(results.ENV, str(tmp_path))
    current = _fake_run(tmp_path / "reproduce-full-a", "reproduce", "full", "2024")
    older = _fake_run(tmp_path / "reproduce-full-b", "reproduce", "full", "2025", layout="old")
    assert results.latest("reproduce-full") == older
    assert results.latest("reproduce-full", needs=results.REPRODUCTION) == current
    assert results.load_reference(needs=results.REPRODUCTION).keys() >= {"simulated-eras"}
    shutil.rmtree(current)
    with pytest.raises(results.NoReferenceRun, match="passed over reproduce-full-b"):
        results.latest("reproduce-full", needs=results.REPRODUCTION)


def test_latest_says_plainly_when_there_is_no_run(tmp_path, monkeypatch):
    monkeypatch.setenv(results.ENV, str(tmp_path / "missing"))
    with pytest.raises(results.NoReferenceRun, match="no complete reproduce-full run found"):
        results.latest()
    assert isinstance(results.NoReferenceRun("x"), FileNotFoundError)


def test_seed_claims_judges_every_data_set_with_the_claims_rule(tmp_path):
    from arch_sim import claims as rule

    run = _fake_run(tmp_path / "r", "reproduce", "full", "2025")
    frames = results.load_run(run)
    verdicts = results.seed_claims(frames)
    # 4 data sets (measured-seed, two eras, one variant) x 2 old shapes x 2 counts
    assert len(verdicts) == 4 * 2 * 2
    assert set(verdicts["data"]) == {"measured-seed", "simulated-eras: Linux 2.2",
                                     "simulated-eras: Linux 2.6 O(1)",
                                     "sensitivity: as written"}
    assert set(verdicts["shape"]) == {"thread-per-request, a thread per connection",
                                      "thread-per-request, pool of 8"}
    by = verdicts.set_index(["data", "shape", "count"])
    pool = "thread-per-request, pool of 8"
    m = by.loc[("measured-seed", pool, "server")]
    assert m["old_peak_per_s"] == pytest.approx(12000.0) and m["old_holds"]
    assert m["new_worst_per_request"] == pytest.approx(0.01) and m["new_holds"]
    m = by.loc[("measured-seed", pool, "cpu")]  # every switch: twice the server's here
    assert m["old_peak_per_s"] == pytest.approx(24000.0) and not m["old_holds"]
    assert m["new_worst_per_request"] == pytest.approx(0.02) and m["new_holds"]
    e = by.loc[("simulated-eras: Linux 2.2", pool, "server")]
    assert not e["old_holds"] and not e["new_holds"] and "2.000" in e["new"]
    # the same rule as arch_sim.claims (and REPORT.md) for one data set
    eras = frames["simulated-eras"]
    era = eras[eras["era"] == "Linux 2.6 O(1)"]
    verdict = rule.judge_new(era[era["arch"] == "state-group"], "cpu")
    row = by.loc[("simulated-eras: Linux 2.6 O(1)", pool, "cpu")]
    assert (row["new_worst_per_request"], row["new_holds"]) == (verdict.value, verdict.holds)
    assert results.seed_claims(frames["measured-seed"])["data"].unique().tolist() == ["data"]


def test_points_table_orders_shapes_and_loads():
    df = schema.to_frame(_sweep("measured", 12000.0, 0.01)
                         + [_row("measured", "state-group", math.nan, 0.001)])
    df.loc[df["target_rps"].isna(), "rps"] = 9000.0
    table = results.points_table(df, ["rps", "reschedules_per_request"])
    assert list(table.index) == [
        ("thread-per-request, a thread per connection", "200"),
        ("thread-per-request, a thread per connection", "5000"),
        ("thread-per-request, pool of 8", "200"), ("thread-per-request, pool of 8", "5000"),
        ("state-group", "200"), ("state-group", "5000"), ("state-group", "max")]


def test_replay_recomputes_a_simulate_run_exactly(tmp_path):
    out = tmp_path / "sim"
    argv = ["simulate", "--preset", "linux-2.2-1999", "--workload", "closed", "--cpus", "1",
            "--loads", "300", "3000", "--reps", "2", "--requests", "400", "--jobs", "1",
            "--out", str(out), "--quiet", "--no-figures"]
    assert cli_main(argv) == 0
    replayed = results.replay(out, points=2)
    assert len(replayed) == 4  # 2 archs x 2 loads, repetition 0
    assert replayed["same"].all()


def test_replay_recomputes_the_eras_and_variants_of_a_reproduction(tmp_path):
    from arch_sim import eras

    era_jobs = [j for j in eras.era_jobs([400.0], 1, 300) if j["target_rps"] is not None]
    rows = eras.run(era_jobs, "era", workers=1, progress=False)
    wanted = {"1 CPU", "wake-one accept"}
    sens_jobs = [j for j in eras.sensitivity_jobs([400.0], 1, 300)
                 if j["label"] in wanted and j["target_rps"] is not None]
    variants = eras.run(sens_jobs, "variant", workers=1, progress=False)
    for name, df in (("simulated-eras", rows), ("sensitivity", variants)):
        (tmp_path / name).mkdir()
        df.to_csv(tmp_path / name / "simulated.csv", index=False)
    replayed = results.replay(tmp_path / "simulated-eras", points=1)
    assert len(replayed) == 3 * 3  # eras x (pool, thread per connection, state-group)
    assert replayed["same"].all(), replayed
    assert set(replayed["era"]) == {era for era, _ in eras.ERAS}
    replayed = results.replay(tmp_path / "sensitivity", points=1)
    assert len(replayed) == 2 * 2 and replayed["same"].all()
    # a changed model shows: the committed numbers no longer come out
    changed = rows.assign(reschedules_per_request=rows["reschedules_per_request"] + 1.0)
    changed.to_csv(tmp_path / "simulated-eras" / "simulated.csv", index=False)
    assert not results.replay(tmp_path / "simulated-eras", points=1)["same"].any()


# -- arch_sim.explore -------------------------------------------------------------------------

def test_tweak_changes_knobs_and_names_the_change():
    base = load_preset("linux-2.2-1999")
    p = explore.tweak(base, switch_us=30, cpus=2, file_sizes="fixed:1")
    assert (p.scheduler.switch_us, p.cpus, p.workload.file_sizes) == (30, 2, "fixed:1")
    assert p.name == "linux-2.2-1999 switch_us=30 cpus=2 file_sizes=fixed:1"
    assert p.scheduler.per_runnable_us == base.scheduler.per_runnable_us
    assert explore.tweak(base, name="x", **{"server.pass_us": 9.0}).server.pass_us == 9.0
    with pytest.raises(ValueError, match="unknown knob"):
        explore.tweak(base, warp_drive=1)
    assert set(explore.knobs_table(base).index) == set(explore.KNOBS)


def test_sweeps_take_the_presets_workload_unless_told():
    assert {j["workload"] for j in explore.jobs("linux-2.2-1999", [500])} == {"open"}
    closed = explore.tweak("linux-2.2-1999", workload_kind="closed", connection="close",
                           accept_wakes_all=False, server_mbit_s=94.0)
    assert (closed.workload.kind, closed.workload.connection) == ("closed", "close")
    assert (closed.scheduler.accept_wakes_all, closed.network.server_mbit_s) == (False, 94.0)
    (job,) = explore.jobs(closed, [500], archs=["state-group"])
    assert job["workload"] == "closed"
    (job,) = explore.jobs(closed, [500], archs=["state-group"], workload="open",
                          connection="keep-alive")
    assert (job["workload"], job["connection"]) == ("open", "keep-alive")


def test_vary_labels_one_line_per_value_for_the_plots():
    df = explore.vary("linux-2.2-1999", "switch_us", [2, 30], [500, None], workload="closed",
                      requests=300)
    schema.validate(df)
    assert sorted(df["preset"].unique()) == ["switch_us=2", "switch_us=30"]
    assert len(df) == 2 * 2 * 2  # values x archs x loads
    from arch_sim.plots import series

    assert len(list(series(df, "reschedules_per_s"))) == 4  # (arch, value) lines


def test_linux22_on_keeps_the_host_and_takes_the_2_2_scheduler():
    host = load_preset("host")
    old = load_preset("linux-2.2-1999").scheduler
    p = explore.linux22_on(host)
    assert p.server == host.server and p.scheduler.switch_us == host.scheduler.switch_us
    assert (p.scheduler.hz, p.scheduler.timeslice_ms) == (old.hz, old.timeslice_ms)
    assert (p.scheduler.policy, p.scheduler.priority_ticks) == ("linux-2.2", old.priority_ticks)
    assert p.server.kernel_threads == host.server.kernel_threads  # the host's threads stay
    assert p.scheduler.per_runnable_us == pytest.approx(
        old.per_runnable_us * host.scheduler.switch_us / old.switch_us)


def test_schedule_cost_grows_with_the_run_queue_only_on_2_2():
    p22 = load_preset("linux-2.2-1999").scheduler
    small = explore.schedule_cost_us("linux-2.2-1999", 2)
    big = explore.schedule_cost_us("linux-2.2-1999", 1000)
    # each switch walks the run queue; now and then 2.2 also refills every task's counter
    # (one more per_runnable_us per task, [K22-recalc]): a little above the bare formula
    bare = p22.switch_us + 2 * p22.per_runnable_us + p22.cache_refill_us
    assert bare <= small <= bare * 1.02
    assert big - small == pytest.approx(p22.per_runnable_us * 998, rel=0.05)
    assert explore.schedule_cost_us("linux-2.6-o1", 2) == pytest.approx(
        explore.schedule_cost_us("linux-2.6-o1", 1000))


def test_reveal_compares_a_prediction(capsys, monkeypatch):
    monkeypatch.delenv(explore.REVEAL_ENV, raising=False)
    assert "no prediction" in explore.reveal(None, 3.0)
    assert "close" in explore.reveal(3.1, 3.0)
    assert "too low" in explore.reveal(1.0, 3.0)
    assert "12,345" not in explore.reveal(None, 12345.0)  # hidden until a prediction
    assert "12,345" in explore.reveal(12000, 12345.0)
    monkeypatch.setenv(explore.REVEAL_ENV, "1")
    assert "12,345" in explore.reveal(None, 12345.0)
    assert not math.isnan(explore.simulated_requests_per_s(pd.DataFrame(
        {"requests": [10], "warmup": [2], "wall_s": [0.5]})))
