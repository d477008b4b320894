"""The scheduler timeline lesson (arch_sim.timeline, arch_sim.plots_timeline, the trace observer
in arch_sim.models.trace): the trace covers every CPU's time once, each scheduler hands off the
way its mechanism says, schedule()'s cost grows with the run queue only under 2.2, and the
figures draw a panel per scheduler and a row per CPU."""

from __future__ import annotations

import random

import pytest
import simpy

from arch_sim import plots_timeline, timeline
from arch_sim.cli import main as cli_main
from arch_sim.models import load_preset
from arch_sim.models.params import SchedulerParams
from arch_sim.models.scheduler import Scheduler, Task
from arch_sim.models.trace import REASONS, SwitchTrace

MS = 1e-3


@pytest.fixture(scope="module")
def runs():
    return timeline.handoffs()


# -- the trace --------------------------------------------------------------------------------

def test_the_trace_covers_each_cpu_from_start_to_end_without_overlaps(runs):
    for label, run in runs.items():
        by_cpu = {c: [r for r in run.rows if r.cpu == c] for c in range(run.cpus)}
        for cpu, rows in by_cpu.items():
            assert rows, f"{label}: CPU {cpu} has no rows"
            assert rows[0].start == pytest.approx(0.0, abs=1e-12), (label, cpu)
            assert rows[-1].end == pytest.approx(run.end), (label, cpu)
            for before, after in zip(rows, rows[1:], strict=False):
                assert after.start == pytest.approx(before.end, abs=1e-12), (label, before,
                                                                             after)
            for r in rows:
                assert r.end >= r.start and 0.0 <= r.sched <= r.end - r.start + 1e-15
                assert r.why in REASONS
                assert (r.task == "idle") == (r.why == "idle")
        busy = [r for r in run.rows if r.task != "idle"]
        assert {r.task for r in busy} == set(timeline.TASKS), label


def _spin(policy: str, observer: bool) -> tuple[dict, list]:
    """Five tasks that compute and sleep on two CPUs, with or without a trace."""
    params = SchedulerParams(policy=policy, switch_us=2.0, per_runnable_us=0.5,
                             timeslice_ms=1.0, hz=1000, wakeup_preempt=True, cpu_time_cv=0.2)
    env = simpy.Environment()
    sched = Scheduler(env, 2, params, rng=random.Random(5))
    trace = SwitchTrace()
    if observer:
        sched.observer = trace
    tasks = [Task(f"t/{i}") for i in range(5)]

    def body(task, i):
        yield sched.start(task)
        for k in range(40):
            yield from sched.run(task, (0.3 + 0.1 * ((i + k) % 4)) * MS)
            if k % 3 == i % 3:
                env.process(waker(task))
                yield sched.block(task)

    def waker(task):
        yield env.timeout(0.2 * MS)
        sched.wake(task)

    for i, t in enumerate(tasks):
        env.process(body(t, i))
    env.run(until=30 * MS)
    return sched.counters(), trace.finish(env.now, cpus=2)


@pytest.mark.parametrize("policy", ["fifo", "linux-2.2", "linux-2.4", "eevdf"])
def test_tracing_changes_nothing_the_simulation_counts(policy):
    untraced, nothing = _spin(policy, observer=False)
    traced, rows = _spin(policy, observer=True)
    assert untraced == traced
    assert all(r.task == "idle" for r in nothing)
    switches = sum(1 for r in rows if r.why not in ("running", "idle"))
    assert switches > 20 and traced["voluntary"] + traced["involuntary"] == switches


# -- the hand-off under each scheduler --------------------------------------------------------

def test_linux_2_2_waits_for_the_waker_unless_its_counter_is_3_ticks_lower(runs):
    run = runs["Linux 2.2 goodness()"]
    # counters 20 and 20: reschedule_idle() leaves the waker alone; no CPU is idle; the hog's
    # CPU is never preempted - the worker runs when the waker blocks, after_ms later
    assert run.preempted_at_wakeup() == []
    assert run.wait == pytest.approx(3.0 * MS, rel=0.05)
    # 50 ms = 5 ticks at HZ=100: the waker's counter is 15, and 20 > 15 + 3
    long = timeline.handoff(timeline.scheduler_params("linux-2.2-1999"), before_ms=50.0)
    assert long.preempted_at_wakeup() == ["waker"]
    assert long.wait < 0.1 * MS
    # 20 ms = 2 ticks: 20 > 18 + 3 is false, so the worker waits again
    short = timeline.handoff(timeline.scheduler_params("linux-2.2-1999"), before_ms=20.0)
    assert short.preempted_at_wakeup() == [] and short.wait > 2.9 * MS


def test_o1_preempts_the_waker_on_the_workers_last_cpu(runs):
    run = runs["Linux 2.6 O(1)"]
    assert run.preempted_at_wakeup() == ["waker"]
    assert run.wait < 0.1 * MS
    first = next(r for r in run.rows if r.task == "worker" and r.start >= run.woken_at - 1e-9)
    assert first.cpu == 0


def test_eevdf_preempts_at_wake_up_only_with_wakeup_preemption(runs):
    on, off = runs["EEVDF, wake-up preemption"], runs["EEVDF, no wake-up preemption"]
    # with it: the hog (ahead of its fair share, so not eligible and not protected by
    # RUN_TO_PARITY) loses its CPU at its next preemption point; the eligible waker keeps its
    assert on.preempted_at_wakeup() == ["hog"]
    assert on.wait < 0.05 * MS
    # without it: nobody is preempted by the wake-up; the worker runs when the hog's slice ends
    assert off.preempted_at_wakeup() == []
    assert not [r for r in off.rows if r.why == "wakeup"]
    assert off.wait > 0.5 * MS
    ended = max((r for r in off.rows if r.end <= off.worker_runs_at + 1e-9 and r.task == "hog"),
                key=lambda r: r.end)
    assert ended.why == "slice"
    assert off.worker_runs_at - ended.end < 0.01 * MS


@pytest.mark.parametrize(("wakeup", "rtp", "preempts"),
                         [(True, True, False), (True, False, True), (False, False, False)])
def test_run_to_parity_protects_an_eligible_running_task(wakeup, rtp, preempts):
    """check_preempt_wakeup_fair() as the mechanism says: a woken task with the earliest
    eligible deadline preempts a running task that is eligible and inside its slice only
    without RUN_TO_PARITY - and never without WAKEUP_PREEMPTION."""
    params = SchedulerParams(policy="eevdf", timeslice_ms=1.4, hz=250,
                             eevdf_wakeup_preemption=wakeup, eevdf_run_to_parity=rtp)
    env = simpy.Environment()
    sched = Scheduler(env, 1, params)
    running, ahead, woken = Task("running"), Task("ahead"), Task("woken")

    def start(task):
        yield sched.start(task)

    for task in (running, ahead, woken):
        env.process(start(task))
    env.run(until=1e-9)
    (cpu,) = sched.cpus
    assert cpu.current is running
    cpu.need_resched = False
    # V = (1.0 + 3.0 + 0.5) / 3 = 1.5 ms: "running" (v 1.0) and "woken" (v 0.5) are eligible,
    # "ahead" (v 3.0) is not; "woken" has the earliest deadline, "running" is inside its slice
    for task, v, deadline in ((running, 1.0, 2.4), (ahead, 3.0, 4.4), (woken, 0.5, 1.9)):
        sched.policy.set_v(task, v * MS)  # (the run queue's kept sum follows)
        task.deadline, task.vstart = deadline * MS, env.now
    victim = sched.policy.wake_victim(woken, running)
    assert (victim is cpu) == preempts


# -- the cost of schedule() -------------------------------------------------------------------

def test_2_2_schedule_cost_grows_with_the_run_queue_eevdf_hardly():
    costs = timeline.schedule_costs([2, 300], {"2.2": "linux-2.2-1999", "eevdf": "host"},
                                    switches=100)
    p22 = load_preset("linux-2.2-1999").scheduler
    grow_22 = costs.loc[300, "2.2"] - costs.loc[2, "2.2"]
    grow_eevdf = costs.loc[300, "eevdf"] - costs.loc[2, "eevdf"]
    assert grow_22 == pytest.approx(p22.per_runnable_us * 298, rel=0.1)  # the O(n) walk
    assert abs(grow_eevdf) < 0.05 * grow_22
    assert list(costs.index) == [2, 300] and list(costs.columns) == ["2.2", "eevdf"]


# -- figures, exercises, command --------------------------------------------------------------

def test_gantt_draws_a_panel_per_scheduler_and_a_row_per_cpu(runs):
    fig = plots_timeline.gantt(runs)
    axes = fig.get_axes()
    assert len(axes) == len(runs) == 4
    for ax, label in zip(axes, runs, strict=True):
        assert [t.get_text() for t in ax.get_yticklabels()] == ["CPU 1", "CPU 0"]
        assert ax.get_title(loc="left").startswith(label)
    two = plots_timeline.gantt(dict(list(runs.items())[:2]))
    assert len(two.get_axes()) == 2
    with pytest.raises(ValueError):
        plots_timeline.gantt({})


def test_schedule_cost_figure_draws_a_line_per_scheduler():
    import pandas as pd

    costs = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [1.0, 1.0, 1.0], "c": [3.0, 3.0, 3.0]},
                         index=pd.Index([2, 10, 100], name="runnable tasks"))
    (ax,) = plots_timeline.schedule_cost(costs).get_axes()
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b", "c"]
    assert list(ax.get_lines()[0].get_xdata()) == [2, 10, 100]


def test_reveal_shows_the_answer_only_after_a_prediction(monkeypatch, capsys):
    monkeypatch.delenv("REVEAL", raising=False)
    hidden = timeline.reveal(None, 3.0, "wait (ms)", "because")
    assert "3" not in hidden and "because" not in capsys.readouterr().out
    shown = timeline.reveal(2.9, 3.0, "wait (ms)", "because")
    assert "close" in shown and "because" in shown
    monkeypatch.setenv("REVEAL", "1")
    assert "no prediction" in timeline.reveal(None, 3.0, "wait (ms)")


def test_timeline_command_writes_both_figures_and_the_trace(tmp_path, capsys):
    out = tmp_path / "tl"
    assert cli_main(["timeline", "--out", str(out), "--sizes", "2,20"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["handoff.csv", "handoff.png",
                                                      "schedule_cost.png"]
    assert cli_main(["timeline", "--out", str(tmp_path / "x"), "--sizes", "1,two"]) == 2
    assert "--sizes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_timeline_figures_take_the_slides_style(runs):
    """``style="slides"``: 16:9 and the slide font sizes, for the Gantt chart and the cost
    curve alike (the paper style keeps its own sizes)."""
    import pandas as pd

    from arch_sim import plotstyle

    costs = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index([2, 10], name="runnable tasks"))
    slides = plotstyle.STYLES["slides"]
    for fig in (plots_timeline.gantt(runs, style="slides"),
                plots_timeline.schedule_cost(costs, style="slides")):
        width, height = fig.get_size_inches()
        assert width / height == pytest.approx(16 / 9, rel=0.01)
        label = fig.get_axes()[-1].xaxis.get_label()
        assert label.get_fontsize() >= slides.rc["axes.labelsize"] - 0.5
    paper = plots_timeline.schedule_cost(costs)
    assert paper.get_axes()[0].xaxis.get_label().get_fontsize() < slides.rc["axes.labelsize"]


def test_schedule_cost_ticks_are_plain_numbers():
    """Log axes labelled 2, 10, 100, 1,000 - never 10^2 or 4x10^0."""
    import pandas as pd

    costs = pd.DataFrame({"a": [2.0, 30.0, 230.0]}, index=pd.Index([2, 100, 1000]))
    fig = plots_timeline.schedule_cost(costs)
    fig.canvas.draw()
    (ax,) = fig.get_axes()
    labels = [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    assert labels and not any("^" in t or "times" in t for t in labels), labels
    assert "1,000" in labels


def test_switch_traces_traces_the_schedulers_made_inside_the_block_only():
    """``switch_traces()``: a run inside the block is traced (its stretches cover the run), a
    scheduler made after it has no observer."""
    from arch_sim.models.runner import simulate_point
    from arch_sim.models.trace import switch_traces

    with switch_traces() as traces:
        row = simulate_point("state-group", "host", 500.0, workload="closed", requests=300)
    assert len(traces) == 1
    stretches = traces[0].finish(0.0)
    assert {s.task.split("/")[0] for s in stretches} >= {"idle", "khttpd"}
    assert sum(s.end - s.start for s in stretches if s.cpu == 0) >= row["duration_s"]
    after = Scheduler(simpy.Environment(), 1, SchedulerParams(), random.Random(1))
    assert after.observer is None
