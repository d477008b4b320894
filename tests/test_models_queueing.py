"""Special cases of the models must agree with queueing theory.

With every scheduler and server cost set to zero except an exponentially distributed amount
of work per request (exponential file sizes at a fixed cost per KB), infinite socket buffers
and no network delays, a server with Poisson arrivals is an M/M/1 queue (one CPU) or an M/M/c
queue (c CPUs sharing one run queue).  Mean response times must be within 5% of theory, and
Little's law L = lambda W must hold within 2% in every run.

The state-group model is checked on one CPU only: with several CPUs each worker grabs its own
batch of connections, which is not the single shared queue of M/M/c.
"""

from __future__ import annotations

import math

import pytest
from helpers import in_two_processes

from arch_sim.models import simulate_point
from arch_sim.models.params import ModelParams, ServerParams

MEAN_KB = 4.0
MU = 1000.0  # service rate: 1 ms of CPU per request on average
#: nothing costs anything but the reply's bytes: 1 ms per 4 KB, exponential sizes
QUEUE = ModelParams(
    name="queueing",
    server=ServerParams(send_us_per_kb=1e6 / MU / MEAN_KB, max_connections=10**9),
)


def mm1_response(lam: float, mu: float) -> float:
    """M/M/1 mean response time 1 / (mu - lambda)."""
    return 1.0 / (mu - lam)


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c (Erlang C), offered load a = lambda/mu."""
    rho = offered / c
    top = offered**c / math.factorial(c) / (1.0 - rho)
    return top / (sum(offered**k / math.factorial(k) for k in range(c)) + top)


def mmc_response(lam: float, mu: float, c: int) -> float:
    """M/M/c mean response time: Erlang C waiting plus one service time."""
    return erlang_c(c, lam / mu) / (c * mu - lam) + 1.0 / mu


def replication(arch: str, lam: float, cpus: int, requests: int, threads: int | None,
                rep: int) -> dict:
    return simulate_point(arch, QUEUE, lam, cpus=cpus, requests=requests, seed=1000 + rep,
                          rep=rep, file_sizes=f"exp:{MEAN_KB}", threads=threads)


def mean_response(arch: str, lam: float, cpus: int, reps: int, requests: int,
                  threads: int | None = None) -> float:
    """Mean response time (s) over independent replications; checks Little's law in each.  The
    replications run in two processes (each is one CPU's work and its own seed)."""
    rows = in_two_processes(replication, arch, lam, cpus, requests, threads, reps=reps)
    total = 0.0
    for row in rows:
        assert row["littles_rel_err"] < 0.02, row
        assert row["errors"] == 0
        assert row["sched_overhead_frac"] == 0.0
        total += row["mean_response_ms"] / 1e3
    return total / reps


def test_erlang_c_reduces_to_mm1():
    assert mmc_response(800.0, MU, 1) == pytest.approx(mm1_response(800.0, MU))
    # a textbook value: c=2, a=1 -> C = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


# M/M/1 at utilisation 0.5 and 0.8.  At 0.8 the sample mean converges slowly (strongly
# correlated waits), so it gets more requests.
@pytest.mark.parametrize("arch, threads", [("thread-per-request", 16), ("state-group", None)])
@pytest.mark.parametrize("rho, reps, requests", [(0.5, 2, 20000), (0.8, 4, 100000)])
def test_mm1_mean_response(arch, threads, rho, reps, requests):
    lam = rho * MU
    got = mean_response(arch, lam, cpus=1, reps=reps, requests=requests, threads=threads)
    assert got == pytest.approx(mm1_response(lam, MU), rel=0.05)


def test_mm1_thread_per_connection():
    """The acceptor + a thread per connection is still one FIFO queue for the CPU."""
    lam = 0.5 * MU
    got = mean_response("thread-per-request", lam, cpus=1, reps=2, requests=15000, threads=0)
    assert got == pytest.approx(mm1_response(lam, MU), rel=0.05)


@pytest.mark.parametrize("rho, reps, requests", [(0.5, 2, 20000), (0.8, 4, 100000)])
def test_mmc_four_cpus(rho, reps, requests):
    c = 4
    lam = rho * c * MU
    got = mean_response("thread-per-request", lam, cpus=c, reps=reps, requests=requests,
                        threads=64)
    assert got == pytest.approx(mmc_response(lam, MU, c), rel=0.05)
