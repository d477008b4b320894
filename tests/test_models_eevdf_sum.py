"""EEVDF's V from a kept sum: the run queue's integer sum of v always matches its tasks.

:meth:`arch_sim.models.policy_eevdf.Eevdf._avg_v` does not walk the queue; it reads a sum of
integer keys kept up to date as tasks join, leave and are charged.  At every V the model takes
(host preset, both host designs, one and two CPUs) that sum must be exactly the sum of the
queued tasks' keys, each the key of the task's current v, and V must be the walk's average to
within rounding.
"""

from __future__ import annotations

import math

import pytest

from arch_sim.models import load_preset, simulate_point
from arch_sim.models.policy_eevdf import Eevdf, vkey


@pytest.mark.parametrize(("arch", "load", "cpus"), [("thread-per-request", 11000.0, 1),
                                                    ("thread-per-request", 9000.0, 2),
                                                    ("state-group", 12000.0, 1)])
def test_the_kept_sum_is_the_queues_sum_at_every_v(monkeypatch, arch, load, cpus):
    avg_v = Eevdf._avg_v
    checked = [0]

    def checked_avg_v(self: Eevdf) -> float:
        v = avg_v(self)
        assert self.vsum == sum(vkey(t.v) for t in self.queue)
        assert all(t.vkey == vkey(t.v) for t in self.queue)
        if self.queue:
            now = self.env.now
            walk = sum(t.v + max(0.0, now - t.vstart) if t.cpu is not None else t.v
                       for t in self.queue) / len(self.queue)
            assert math.isclose(v, walk, rel_tol=1e-12, abs_tol=1e-15)
        checked[0] += 1
        return v

    monkeypatch.setattr(Eevdf, "_avg_v", checked_avg_v)
    simulate_point(arch, load_preset("host"), load, requests=400, seed=5, cpus=cpus)
    assert checked[0] > 50  # (state-group: a worker per CPU, few decisions)
