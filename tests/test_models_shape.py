"""Shape checks on the linux-2.2-1999 preset, as it is sourced (nothing tuned to pass).

* the old design reschedules more, and spends a larger share of its CPUs in the scheduler,
  the more load it carries (below the point where the shared link saturates);
* the new design reschedules less per request as load rises - about one sleep per busy
  period, 1 - utilisation - is below 0.2 per request at 90% utilisation (one CPU), and near
  zero with a closed workload of 64 connections;
* the new design saturates at a higher throughput than the old one on the same machine when the
  CPUs, not the network, are the limit.

Where the network would decide the answer, the preset's shared link is taken out (``NO_LINK``).
"""

from __future__ import annotations

import math

import pytest

from arch_sim.models import load_preset, rate_for_utilisation, simulate_point

P = load_preset("linux-2.2-1999")
NO_LINK = P.replace(network={"server_mbit_s": math.inf})
OLD, NEW = "thread-per-request", "state-group"


@pytest.mark.parametrize("threads", [None, 0])  # the preset's pool, a thread per connection
def test_old_design_reschedules_in_proportion_to_load(threads):
    rows = [simulate_point(OLD, P, rps, requests=4000, seed=11, threads=threads)
            for rps in (250, 500, 1000, 2000)]
    rates = [r["reschedules_per_s"] for r in rows]
    shares = [r["sched_overhead_frac"] for r in rows]
    assert rates == sorted(rates) and rates[-1] > 4 * rates[0], rates
    assert shares == sorted(shares) and shares[-1] > 4 * shares[0], shares
    # at least one reschedule per request at every load: each request ends a thread's work
    assert all(r["reschedules_per_request"] >= 1.0 for r in rows)


def test_new_design_reschedules_less_per_request_as_load_rises():
    for cpus in (1, P.cpus):
        rows = [simulate_point(NEW, NO_LINK, f * 2000 * cpus, cpus=cpus, requests=4000, seed=12)
                for f in (0.1, 0.4, 0.8)]
        per_request = [r["reschedules_per_request"] for r in rows]
        assert per_request == sorted(per_request, reverse=True), (cpus, per_request)
        assert all(r["involuntary_per_s"] == 0 for r in rows)  # kernel threads only ever sleep


def test_new_design_sleeps_once_per_busy_period():
    """Without kHTTPd's one-jiffy sleep limit and with small files: sleeps/request = 1 - util."""
    pure = NO_LINK.replace(server={"sleep_timeout_jiffies": 0})
    for rps in (600, 1400, 2200):
        row = simulate_point(NEW, pure, rps, cpus=1, requests=6000, seed=13,
                             file_sizes="fixed:1")
        assert row["reschedules_per_request"] == pytest.approx(1 - row["cpu_util"], abs=0.03)


def test_new_design_hardly_schedules_at_90_percent_utilisation():
    rate = rate_for_utilisation(NEW, P, 0.9, cpus=1, seed=14)
    row = simulate_point(NEW, P, rate, cpus=1, requests=10000, seed=15)
    assert 0.85 < row["cpu_util"] < 0.95
    # one sleep per busy period (~0.1) plus 2.2's wake-ups for buffer space on large replies
    assert row["reschedules_per_request"] < 0.2


def test_closed_workload_of_64_connections():
    new = simulate_point(NEW, NO_LINK, None, workload="closed", connection="keep-alive",
                         connections=64, requests=6000, seed=16)
    old = simulate_point(OLD, NO_LINK, None, workload="closed", connection="keep-alive",
                         connections=64, requests=6000, seed=16, threads=0,
                         file_sizes="fixed:1")  # (no reply waits for buffer space)
    assert new["cpu_util"] > 0.95  # 64 unpaced connections saturate it
    assert new["reschedules_per_request"] < 0.02
    # keep-alive thread per connection: one recv() block per request, at any load
    assert 0.9 < old["reschedules_per_request"] < 1.5


def test_new_design_saturates_higher_when_the_cpus_are_the_limit():
    old = simulate_point(OLD, NO_LINK, None, workload="closed", connection="close",
                         connections=64, requests=6000, seed=17, threads=0)
    new = simulate_point(NEW, NO_LINK, None, workload="closed", connection="close",
                         connections=64, requests=6000, seed=17)
    assert old["cpu_util"] > 0.85 and new["cpu_util"] > 0.95
    assert new["rps"] > 1.1 * old["rps"]
    assert new["reschedules_per_s"] < 0.05 * old["reschedules_per_s"]
