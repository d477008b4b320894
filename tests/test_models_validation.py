"""The models against queueing theory, from measurements that can disagree with the row.

**Little's law, time-sampled.**  A :class:`~arch_sim.models.validation.ProbedRecorder` samples
the number of requests in the server (``Recorder.in_system``) at Poisson instants inside the
measurement window; its sample mean L is held against lambda W from the request records.  The
row's own ``littles_L`` comes from the same timestamps as W and cannot fail; this can - for
instance when a model reports a response time that is not when it lets go of the request.

``in_system`` counts a request until the model calls ``Recorder.complete`` for it (the
server lets go of it), so W must be measured up to that same moment:

* thread-per-request, queueing configuration (no network, nothing costs after the last byte):
  the model lets go of a request the moment its last byte is sent, so W is the response time
  the row reports (``until="done"``);
* state-group: a pass computes its replies on its own clock and hands them to the recorder
  after the pass's CPU burst, so a connection stays in the server until the end of its pass
  (the real kHTTPd closes it in the pass's logging step) - after its reply reached the client.
  W runs to that release (``until="released"``); at 80% load in the queueing configuration it
  is about a third longer than the response time.  The response times themselves are checked
  exactly by the FCFS test below.
* the linux-2.2-1999 preset (both designs, on its CPUs and with its scheduler; costs after
  the last byte, network latency and bandwidth): W runs to the release.

Tolerance: given how many samples fell into the window, Poisson instants are i.i.d. uniform
over it, so the sample mean estimates the window's time-average number in the system with
standard error sd / sqrt(n) (sd of the samples; n ~ 40,000 here, twice the measured requests)
- no assumption about the model's autocorrelation.  We allow 4 standard errors (a chance
failure has probability 6e-5) plus 0.5% of lambda W for the window's edges: requests in the
server across t0 or t1 make the time average and lambda W of the window's requests differ by
about L / requests (< 0.2% measured).  That is 1.5-3.5% of L in these cases.  Close to
saturation L grows and the window stops being stationary, so each run first checks that
L / requests < 0.1%: the preset's loads (1000 and 2000 requests/s) must stay well below its
saturation.

**Service order against an exact FCFS recursion.**  On one CPU with every cost zero except
the reply's bytes (``QUEUE``: 1 ms per 4 KB), a server that is first come, first served must
give each request exactly the response time of Lindley's recursion run on the same arrival
times and sizes - the draws the model made.  Mean, p99 and every request must agree to
floating-point tolerance (1e-9 s), for exponential sizes (M/M/1) and the SPECweb99 mix
(M/G/1).  The FCFS configurations:

* thread-per-request with a pool of one thread: it serves the listen queue in order;
* thread-per-request with a thread per connection: the acceptor (free here) queues the
  request threads in arrival order on the FIFO run queue, and nothing preempts;
* state-group on one CPU with batching made strict FCFS - ``cohort_factor = 1`` (the 2nd item
  of a batch costs what the 1st does), ``max_send_kb_per_pass = inf`` (each reply goes out
  whole, not 16 KB per pass round-robin) and no pass or poll cost.  A pass takes the whole
  listen queue in arrival order and sends each reply whole, in that order; a request that
  arrives during a pass is taken by the next pass, which starts the moment the pass's last
  reply is sent - when a FCFS server would start it.

Not FCFS, so not here: a pool of several threads on one CPU.  A thread that finishes a
request takes the next connection from the listen queue while it still holds the CPU, ahead
of pool threads already woken for earlier connections and waiting in the run queue (the
kernel does not preempt it).  The mean is still M/M/1's (``test_models_queueing``): the
order does not depend on the sizes, and with exponential sizes the number in the system is
the same for every such order.  Per-request response times are not (p99 30% higher in a
run at 80% load).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_models_queueing import MEAN_KB, MU, QUEUE

from arch_sim.models import simulate_point
from arch_sim.models.validation import lindley_response, probe_point
from arch_sim.models.workload import KB, FileSizes

SPECWEB99_MU = MU * MEAN_KB * KB / FileSizes("specweb99").mean_bytes()  # requests/s, QUEUE
REQUESTS = 20000  # measured requests per Little's law run
EDGE = 0.005  # allowance for the window's edges, relative to lambda W
STATIONARY = 1e-3  # L / requests below this: the edges are well inside the allowance


@pytest.mark.parametrize("rho", [0.5, 0.8])
@pytest.mark.parametrize("arch, threads, until", [
    ("thread-per-request", 16, "done"),
    ("state-group", None, "released"),
])
def test_littles_law_time_sampled_mm1(arch, threads, until, rho):
    lam = rho * MU
    kwargs = {"cpus": 1, "requests": REQUESTS, "seed": 21, "file_sizes": f"exp:{MEAN_KB}",
              "threads": threads}
    row, probe = probe_point(arch, QUEUE, lam, sample_rate=2 * lam, sample_seed=22, **kwargs)
    sampled, stderr = probe.sampled_L()
    lambda_w = probe.lambda_W(until)
    assert lambda_w < STATIONARY * REQUESTS
    assert sampled == pytest.approx(lambda_w, abs=4 * stderr + EDGE * lambda_w)
    assert len(probe.samples) > 38000
    if until == "done":  # it is the row's own lambda W
        assert lambda_w == pytest.approx(row["littles_lambda_W"], rel=1e-12)
    # the probe only looks: the same point without it gives the same numbers
    plain = simulate_point(arch, QUEUE, lam, **kwargs)
    for key in ("mean_response_ms", "lat_p99_ms", "cpu_util", "duration_s"):
        assert row[key] == plain[key]


@pytest.mark.parametrize("arch", ["thread-per-request", "state-group"])
@pytest.mark.parametrize("rps", [1000, 2000])
def test_littles_law_time_sampled_preset(arch, rps):
    row, probe = probe_point(arch, "linux-2.2-1999", rps, requests=REQUESTS, seed=23,
                             sample_rate=2 * rps, sample_seed=24)
    assert row["errors"] == 0
    sampled, stderr = probe.sampled_L()
    lambda_w = probe.lambda_W("released")
    assert lambda_w < STATIONARY * REQUESTS, "too close to saturation for Little's law"
    assert sampled == pytest.approx(lambda_w, abs=4 * stderr + EDGE * lambda_w)


@pytest.mark.parametrize("sizes, mu", [(f"exp:{MEAN_KB}", MU), ("specweb99", SPECWEB99_MU)],
                         ids=["exp", "specweb99"])
@pytest.mark.parametrize("arch, threads", [
    ("thread-per-request", 1),
    ("thread-per-request", 0),
    ("state-group", None),
], ids=["pool-of-1", "thread-per-connection", "state-group"])
def test_single_server_is_fcfs(arch, threads, sizes, mu):
    server = QUEUE.server
    assert server.cohort_factor == 1.0 and server.max_send_kb_per_pass == math.inf
    assert server.pass_us == server.poll_item_us == 0.0
    row, probe = probe_point(arch, QUEUE, 0.8 * mu, cpus=1, requests=10000, seed=25,
                             file_sizes=sizes, threads=threads)
    arrived = np.array([req.arrived for req in probe.accepted])
    service = np.array([req.size for req in probe.accepted]) / KB * server.send_us_per_kb * 1e-6
    expected = lindley_response(arrived, service)
    window = np.asarray(probe.window)
    got = (np.asarray(probe.done) - arrived)[window]
    expected = expected[window]
    assert expected.mean() > 2 * service.mean()  # a queue formed: the order matters
    assert row["mean_response_ms"] == pytest.approx(expected.mean() * 1e3, rel=1e-9)
    assert row["lat_p99_ms"] == pytest.approx(np.percentile(expected, 99) * 1e3, rel=1e-9)
    np.testing.assert_allclose(got, expected, rtol=0.0, atol=1e-9)


def test_lindley_recursion():
    """A hand-worked example: arrivals at 0, 1, 1.5, 5 needing 2, 1, 1, 1."""
    got = lindley_response(np.array([0.0, 1.0, 1.5, 5.0]), np.array([2.0, 1.0, 1.0, 1.0]))
    # starts at 0, 2, 3 and 5; done at 2, 3, 4 and 6
    np.testing.assert_allclose(got, [2.0, 2.0, 2.5, 1.0])
