"""benchmarks/staged_chain.py's forcing: the wrapped wake-up check preempts as many times as
asked and no more, and is unwrapped afterwards."""

from __future__ import annotations

from helpers import benchmark

from arch_sim.models import policy_eevdf
from arch_sim.models.policy_eevdf import watch_wake_checks
from arch_sim.models.runner import simulate_point


def test_forcing_preempts_the_first_hand_offs_then_the_model_decides_again():
    mod = benchmark("staged_chain")
    original = policy_eevdf.Eevdf.wake_victim
    checks = []
    with mod.forced(30) as done, watch_wake_checks(checks.append):
        forced = simulate_point("staged", "host", 100.0, workload="closed", requests=600,
                                warmup=0, seed=1, connection="keep-alive")
    assert done["forced"] == 30
    assert policy_eevdf.Eevdf.wake_victim is original
    plain = simulate_point("staged", "host", 100.0, workload="closed", requests=600, seed=1,
                           warmup=0, connection="keep-alive")
    # each forced preemption is an involuntary switch of a send_data thread the plain run
    # does not have (and the GIL hand-offs it sets off)
    assert forced["involuntary_per_s"] > plain["involuntary_per_s"]
    share = mod.pairs(checks)
    assert share[("send_data", "logging")][0] > 100
