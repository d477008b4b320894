"""The prefork and staged models: deterministic, their mechanisms visible in the rows, the rows
complete, Little's law, and the calibration that writes their host costs.

Each run is short (1,000-3,000 measured requests): the counts asserted are per request and far
from their bounds, so the noise of a short run does not decide them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from arch_sim import ALL_ARCHS, STATES, cli, schema
from arch_sim.calibrate import merge_measurements
from arch_sim.models import simulate_point
from arch_sim.models.calibration import host_preset_text
from arch_sim.models.params import PRESET_DIR, load_preset
from arch_sim.models.staged import DEFAULT_STAGE_THREADS, parse_stage_threads
from arch_sim.models.validation import probe_point
from arch_sim.sweep import WALL_FIELDS
from real_servers.core.lifecycle import LOGGING, SEND_DATA, USERSPACE, WAIT_HEADERS, moved_column

HANDOFFS = (WAIT_HEADERS, SEND_DATA, LOGGING)  # the states a keep-alive request is woken into


def point(arch: str, preset: str, rps: float | None, requests: int = 1500, **kw) -> dict:
    return simulate_point(arch, preset, rps, requests=requests, seed=3, **kw)


# -- both -----------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["prefork", "staged"])
@pytest.mark.parametrize("preset, rps, kw", [
    ("host", 2000, {"workload": "closed"}),
    ("linux-2.2-1999", 1500, {}),
], ids=["host", "1999"])
def test_same_seed_same_row(arch, preset, rps, kw):
    a, b = (point(arch, preset, rps, 800, **kw) for _ in range(2))
    strip = lambda row: {k: v for k, v in row.items() if k not in WALL_FIELDS}  # noqa: E731
    assert strip(a) == strip(b)
    other = simulate_point(arch, preset, rps, requests=800, seed=4, **kw)
    assert other["reschedules_per_s"] != a["reschedules_per_s"]


@pytest.mark.parametrize("arch", ["prefork", "staged"])
def test_row_has_every_schema_column_and_its_documented_extras(arch):
    row = point(arch, "linux-2.4", 1000, 800)
    assert set(schema.COLUMNS) <= set(row)
    assert set(schema.KNOWN_EXTRAS) <= set(row)
    mine = {"prefork": ["workers", "gil_waits_per_request", "pool_wakeups_per_request",
                        "spurious_wakeups_per_request"],
            "staged": ["stage_threads", "gil_waits_per_request", "wakeups_per_request"]
            + [f"wakeups_{STATES[s]}_per_request" for s in (0, *HANDOFFS)]
            + [moved_column(i) for i in range(len(STATES))]}[arch]
    for col in mine:
        assert col in row, col
        generic = [col.replace(f"_{s}_", "_<state>_") for s in STATES if f"_{s}_" in col]
        assert col in schema.MODEL_EXTRAS or generic[0] in schema.MODEL_EXTRAS, col
    assert row["arch"] == arch and math.isnan(row["threads"])
    schema.validate(schema.to_frame([row]))


@pytest.mark.parametrize("arch", ["prefork", "staged"])
def test_littles_law_time_sampled(arch):
    """L sampled at Poisson instants (independent of the per-request times) is lambda W."""
    rps = 1000
    row, probe = probe_point(arch, "linux-2.4", rps, requests=3000, seed=5,
                             sample_rate=2 * rps, sample_seed=6)
    assert row["errors"] == 0
    sampled, stderr = probe.sampled_L()
    lambda_w = probe.lambda_W("released")
    assert sampled == pytest.approx(lambda_w, abs=4 * stderr + 0.005 * lambda_w)
    assert row["littles_rel_err"] < 0.02


# -- prefork --------------------------------------------------------------------------------

def test_prefork_reschedules_rise_with_load_as_the_pools_do():
    """Linux 2.4: a blocking worker per request, so its reschedules per second grow in
    proportion to the load, with the kernel-thread pool's count per request."""
    loads = (200, 1000, 2000)
    pre = [point("prefork", "linux-2.4", r) for r in loads]
    pool = [point("thread-per-request", "linux-2.4", r) for r in loads]
    for rows in (pre, pool):
        per_s = [r["reschedules_per_s"] for r in rows]
        assert per_s[0] < per_s[1] < per_s[2]
        assert per_s[2] > 5 * per_s[0]
    for p, t in zip(pre, pool, strict=True):
        assert p["reschedules_per_request"] >= 1.0
        assert p["reschedules_per_request"] == pytest.approx(t["reschedules_per_request"],
                                                             rel=0.1)


def test_prefork_herd_on_linux_22_only():
    herd = point("prefork", "linux-2.2-1999", 200)
    assert load_preset("linux-2.2-1999").scheduler.accept_wakes_all
    assert herd["spurious_wakeups_per_request"] > 10  # most of the 64 sleepers, per connection
    assert herd["reschedules_per_request"] > herd["spurious_wakeups_per_request"]
    one = point("prefork", "linux-2.4", 200)
    assert one["spurious_wakeups_per_request"] < 0.1


def test_prefork_has_no_gil_on_the_host():
    pre = point("prefork", "host", 2000, workload="closed")
    pool = point("thread-per-request", "host", 2000, workload="closed")
    assert load_preset("host").server.gil
    assert pre["gil_waits_per_request"] == 0.0
    assert pool["gil_waits_per_request"] > 0.1
    # keep-alive: a worker holds its connection and sleeps in recv() once per request
    assert pre["voluntary_per_s"] / pre["rps"] == pytest.approx(1.0, abs=0.02)


def test_prefork_pays_for_switching_address_spaces_threads_do_not():
    base = load_preset("linux-2.4")
    dear = base.replace(scheduler={"mm_switch_us": 50.0})

    def cpu_us(row: dict) -> float:
        return row["cpu_util"] * row["cpus"] * 1e6 / row["rps"]

    # most switches into a worker come from another worker's address space (or an idle CPU
    # that last held one): about one per request at 1.25 switches per request
    extra = cpu_us(point("prefork", dear, 1000)) - cpu_us(point("prefork", base, 1000))
    assert 25.0 < extra < 1.25 * 50.0 + 5.0
    pool, pool_dear = (point("thread-per-request", p, 1000) for p in (base, dear))
    assert pool["cpu_util"] == pool_dear["cpu_util"]


def test_prefork_refuses_more_keepalive_connections_than_workers(capsys):
    with pytest.raises(ValueError, match="workers"):
        point("prefork", "host", None, workload="closed", connections=65)
    code = cli.main(["simulate", "--preset", "host", "--arch", "prefork", "--workers", "8",
                     "--out", "/nonexistent/never-written", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--workers" in err[0]


# -- staged ---------------------------------------------------------------------------------

def test_staged_wakes_a_thread_per_handoff_at_low_load_and_batches_at_high():
    low = point("staged", "host", 200, workload="closed")
    high = point("staged", "host", None, workload="closed")
    for state in HANDOFFS:  # keep-alive: epoll readiness, send_data's get(), logging's get()
        assert low[f"wakeups_{STATES[state]}_per_request"] > 0.85
    assert low["wakeups_per_request"] == pytest.approx(3.0, abs=0.3)
    assert high["wakeups_per_request"] < 0.5 * low["wakeups_per_request"]
    assert low["gil_waits_per_request"] > 0  # the host's stage threads share one GIL
    era = point("staged", "linux-2.4", 100)  # a connection per request: accept wakes too
    assert era["wakeups_per_request"] == pytest.approx(4.0, abs=0.3)
    assert era["gil_waits_per_request"] == 0.0  # kernel threads


@pytest.mark.parametrize("preset, rps, kw, accepts", [
    ("host", 1000, {"workload": "closed"}, 0.0),  # keep-alive: accepted before the window
    ("linux-2.2-1999", 2000, {}, 1.0),
], ids=["keep-alive", "connection-per-request"])
def test_staged_moves_each_request_out_of_each_state_once(preset, rps, kw, accepts):
    row = point("staged", preset, rps, **kw)
    for state in HANDOFFS:
        assert row[moved_column(state)] == pytest.approx(1.0, abs=0.02)
    assert row[moved_column(USERSPACE)] == 0.0
    assert row[moved_column(0)] == pytest.approx(accepts, abs=0.02)


def test_stage_threads_change_the_pools():
    assert parse_stage_threads(DEFAULT_STAGE_THREADS) == parse_stage_threads("")
    assert parse_stage_threads("send_data=8")[SEND_DATA] == 8
    for bad in ("userspace=2", "send_data=0", "pool=3", "send_data"):
        with pytest.raises(ValueError, match="stage threads"):
            parse_stage_threads(bad)
    one = point("staged", "linux-2.4", 2500, stage_threads="send_data=1")
    four = point("staged", "linux-2.4", 2500)
    assert one["stage_threads"] == "send_data=1" and four["stage_threads"] == DEFAULT_STAGE_THREADS
    assert one["lat_p99_ms"] > four["lat_p99_ms"]  # one sender queues every reply behind another


# -- calibration ----------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("# Written by")]


def test_calibration_renders_the_host_preset_and_its_placeholders():
    measured = json.loads((PRESET_DIR / "host.calibration.json").read_text())
    shipped = (PRESET_DIR / "host.toml").read_text()
    assert _lines(host_preset_text(measured, only=[])) == _lines(shipped)
    host = load_preset("host")
    for arch in ("prefork", "staged"):  # measured by `arch-sim calibrate --arch prefork ...`
        assert arch in measured["servers"] and arch in measured["close"]
        section = shipped[shipped.index(f"[server.{arch}]"):].split("\n\n", 1)[0]
        # (and the staged server's four hand-off costs, where calibrate timed them)
        timed = 4 if arch == "staged" and measured["servers"]["staged"].get("handoffs") else 0
        assert "placeholder" not in section
        assert section.count("measured by arch-sim calibrate") == 6 + timed
        assert host.for_arch(arch).server.parse_us != host.for_arch(
            "thread-per-request").server.parse_us
    # without its measurements, an architecture's costs are placeholders, and say so
    bare = {**measured, "servers": {k: v for k, v in measured["servers"].items()
                                    if k != "staged"},
            "close": {k: v for k, v in measured["close"].items() if k != "staged"}}
    text = host_preset_text(bare, only=[])
    staged = text[text.index("[server.staged]"):].split("\n\n", 1)[0]
    assert staged.count("placeholder until arch-sim calibrate --arch prefork --arch staged") == 6


def test_calibrate_arch_replaces_only_that_architecture():
    previous = json.loads((PRESET_DIR / "host.calibration.json").read_text())
    paced = {"target_rps": 1000.0, "rps": 1000.0, "cpu_us_per_request": 120.0,
             "reschedules_per_request": 1.0}
    found = {"servers": {"prefork": {"cpu_us_per_request": 30.0, "reschedules_per_request": 1.0,
                                     "rps": 30000.0, "cpu_util": 1.0, "paced": paced}},
             "close": {"prefork": {"cpu_us_per_request": 60.0}}, "client": {"x": 1}}
    merged = merge_measurements(previous, found, ["prefork"])
    assert merged["servers"]["prefork"] == found["servers"]["prefork"]
    assert merged["client"] == previous["client"] and merged["switch"] == previous["switch"]
    assert {k: v for k, v in merged["servers"].items() if k != "prefork"} == {
        k: v for k, v in previous["servers"].items() if k != "prefork"}
    text = host_preset_text(merged, only=["prefork"])
    before, after = _lines((PRESET_DIR / "host.toml").read_text()), _lines(text)
    changed = [b for a, b in zip(before, after, strict=True) if a != b]
    section = after[after.index("[server.prefork]"):after.index("[server.staged]")]
    assert changed and all(line in section for line in changed)
    assert all("measured by arch-sim calibrate" in line for line in section[2:] if "=" in line)
    staged = after.index("[server.staged]")
    assert after[staged:staged + 8] == before[staged:staged + 8]  # staged's lines untouched
    solved = load_preset_text(text).for_arch("prefork").server
    assert solved.parse_us != load_preset("host").for_arch("prefork").server.parse_us


def test_the_same_measurements_render_the_same_costs_whatever_preset_came_before():
    """A design's costs and refill are solved from its measurements alone: starting from the
    previous preset's refill made the solve, which stops within a tolerance, find another
    preset after every calibration (the state-group refill 212.1 or 217.4 us from the same
    measurements, with the shipped host preset or another machine's before it)."""
    measured = json.loads((PRESET_DIR / "host.calibration.json").read_text())

    def section(previous: str | Path) -> str:
        text = host_preset_text(measured, only=["state-group"], previous=previous)
        return text[text.index("[server.state-group]"):].split("\n\n", 1)[0]

    other = load_preset("linux-2.4").for_arch("state-group").server.cold_refill_us
    assert other != load_preset("host").for_arch("state-group").server.cold_refill_us
    assert section("host") == section(PRESET_DIR / "linux-2.4.toml")


def load_preset_text(text: str):
    import tomllib

    from arch_sim.models.params import from_dict

    return from_dict(tomllib.loads(text))


def test_every_preset_describes_every_architecture():
    for name in ("host", "linux-2.2-1999", "linux-2.4", "linux-2.6-o1"):
        preset = load_preset(name)
        assert set(preset.server_by_arch) >= {"prefork", "staged"}, name
        assert preset.scheduler.mm_switch_us == 0.0
        for arch in ALL_ARCHS:
            assert preset.for_arch(arch).server.workers == 64


def test_staged_hand_offs_cost_their_cpu_where_a_thread_sleeps_and_wakes():
    """A queue get() that sleeps costs ``queue_wait_us`` + ``futex_wait_us`` of the thread's
    own CPU and a put() that wakes one ``wake_extra_us`` more; at 100 requests/s logging and
    send_data each sleep in get() about once a request and wait_headers in epoll
    (``poll_wait_us``), so each microsecond of a sleep's cost adds at least one a request per
    sleep - and up to 1 + ``cold_slowdown`` times that, run on caches still cold."""
    host = load_preset("host")
    staged = host.server_by_arch["staged"]
    assert staged["queue_wait_us"] > 0 and staged["futex_wait_us"] > 0  # as shipped
    none = {"queue_wait_us": 0.0, "futex_wait_us": 0.0, "wake_extra_us": 0.0,
            "poll_wait_us": 0.0}

    def cpu_us(**costs) -> float:
        p = host.replace(server_by_arch={**host.server_by_arch,
                                         "staged": {**staged, **none, **costs}})
        row = point("staged", p, 100.0, requests=600, workload="closed")
        return row["cpu_util"] * 1e6 / row["rps"]

    base = cpu_us()
    slow = 1 + host.scheduler.cold_slowdown
    assert 2 * 40 <= cpu_us(futex_wait_us=40.0) - base <= 2 * 40 * slow * 1.2  # two gets
    assert 40 <= cpu_us(poll_wait_us=40.0) - base <= 40 * slow * 1.2  # one poll
    shipped = host_preset_text(json.loads((PRESET_DIR / "host.calibration.json").read_text()),
                               only=[])
    section = shipped[shipped.index("[server.staged]"):].split("\n\n", 1)[0]
    for key in none:
        assert f"\n{key} = " in section and "benchmarks/staged_handoffs.py" in section
    cold = json.loads((PRESET_DIR / "host.calibration.json").read_text())["cold_cache"]
    k = cold["refill_us"] / cold["warm_us"]  # the reference work's refill over its warm time
    assert f"\ncold_slowdown = {k:.2f} " in shipped
