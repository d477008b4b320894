"""M/M/1 and M/M/c three ways: arch-sim's model, ciw and the closed form.

ciw (https://ciw.readthedocs.io) is an independent, well-kept discrete-event queueing
simulator.  It runs the textbook queue - Poisson arrivals at rate lambda, c servers, one FCFS
queue, exponential services at rate mu - at the same lambda and mu as arch-sim's queueing
configuration (``test_models_queueing.QUEUE``: everything free except the reply's bytes,
exponential sizes of mean 1 ms).  Both measure the same window: the customers arriving after
arch-sim's warm-up (``default_warmup``), ``REQUESTS`` of them, each to its departure.

Each estimate is the mean of ``REPS`` independent replications (20 x 10,000 customers); its
standard error is the replication means' standard deviation / sqrt(REPS).  Each pair must
agree to a 99.9% confidence interval (Student t, 19 degrees of freedom: 3.883 standard errors):

* arch-sim vs theory and ciw vs theory: ``|mean - formula| <= t * se``;
* arch-sim vs ciw: ``|a - b| <= t * sqrt(se_a^2 + se_b^2)`` (Welch; at least 19 degrees of
  freedom, so 3.883 is conservative).

A replication starts empty and its first 1,000 customers are discarded; at 70% load the
queue forgets its start within a few hundred customers, so the bias left is far below the
standard error (1.5% of the mean for c = 1, 1.2% for c = 2, 0.9% for c = 4).  That makes the
tolerances 3.5-6% against the formula and 5-8% between the two simulators (a 3% error in the
service rate moves the M/M/1 mean by 10%); each test also checks that the pair's tolerance
stays below 9% of the mean, so it keeps its teeth.

The state-group model is an M/M/1 queue on one CPU only (see ``test_models_queueing``).
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import pytest
from helpers import in_two_processes
from test_models_queueing import MEAN_KB, MU, QUEUE, mmc_response

from arch_sim.models import simulate_point
from arch_sim.models.runner import default_warmup

REPS = 20
REQUESTS = 10000
WARMUP = default_warmup(REQUESTS, "open", 0)
T_999 = 3.883  # Student t: 0.9995 quantile, REPS - 1 = 19 degrees of freedom
RHO = 0.7


def _ciw():
    """ciw, or skip - but only off CI as a normal user: as root or in CI it must be installed
    (the dev extra has it), so the test fails there instead of skipping."""
    try:
        import ciw
    except ImportError:
        if os.geteuid() == 0 or os.environ.get("CI"):
            raise
        pytest.skip("ciw is not installed (pip install -e '.[dev]')")
    return ciw


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """Mean of independent replications and its standard error."""
    arr = np.asarray(values)
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def replications(rep_of, *args) -> tuple[float, float]:
    """``rep_of(*args, rep)`` for every replication, two at a time: (mean, stderr)."""
    return mean_and_stderr(in_two_processes(rep_of, *args, reps=REPS))


def ciw_rep(lam: float, mu: float, c: int, rep: int) -> float:
    """One ciw replication's mean response time (s) over the window."""
    ciw = _ciw()
    ciw.seed(4000 + rep)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)],
        service_distributions=[ciw.dists.Exponential(rate=mu)],
        number_of_servers=[c],
    )
    sim = ciw.Simulation(network)
    sim.simulate_until_max_time(1.1 * (WARMUP + REQUESTS) / lam)
    records = sorted(sim.get_all_records(), key=lambda r: r.arrival_date)
    window = records[WARMUP:WARMUP + REQUESTS]
    # every customer of the window has left: those still inside arrived after it
    inside = [ind.arrival_date for ind in sim.nodes[1].all_individuals]
    assert len(window) == REQUESTS and min(inside, default=math.inf) > window[-1].arrival_date
    return float(np.mean([r.exit_date - r.arrival_date for r in window]))


@functools.cache
def ciw_response(lam: float, mu: float, c: int) -> tuple[float, float]:
    """ciw's M/M/c mean response time (s) over the window: (mean, standard error)."""
    _ciw()  # skips (or fails) here, not in a worker process
    return replications(ciw_rep, lam, mu, c)


def archsim_rep(arch: str, lam: float, c: int, threads: int | None, rep: int) -> float:
    """One arch-sim replication's mean response time (s) over the window."""
    return simulate_point(arch, QUEUE, lam, cpus=c, requests=REQUESTS, warmup=WARMUP,
                          seed=3000 + rep, rep=rep, file_sizes=f"exp:{MEAN_KB}",
                          threads=threads)["mean_response_ms"] / 1e3


def archsim_response(arch: str, lam: float, c: int, threads: int | None) -> tuple[float, float]:
    """arch-sim's mean response time (s) over the window: (mean, standard error)."""
    return replications(archsim_rep, arch, lam, c, threads)


@pytest.mark.parametrize("c, arch, threads", [
    (1, "thread-per-request", 16),
    (1, "state-group", None),
    (2, "thread-per-request", 64),
    (4, "thread-per-request", 64),
])
def test_mmc_archsim_ciw_and_theory_agree(c, arch, threads):
    lam = RHO * c * MU
    theory = mmc_response(lam, MU, c)
    ciw_mean, ciw_se = ciw_response(lam, MU, c)
    sim_mean, sim_se = archsim_response(arch, lam, c, threads)
    assert 0.0 < T_999 * math.hypot(ciw_se, sim_se) < 0.09 * theory  # sharp enough to matter
    assert ciw_mean == pytest.approx(theory, abs=T_999 * ciw_se)
    assert sim_mean == pytest.approx(theory, abs=T_999 * sim_se)
    assert sim_mean == pytest.approx(ciw_mean, abs=T_999 * math.hypot(ciw_se, sim_se))
