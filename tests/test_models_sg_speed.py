"""The state-group worker's send-buffer shortcut changes how a pass is computed, never what.

A worker skips the exact writable check of a connection until
:meth:`~arch_sim.models.network.Connection.write_room`'s bound, and computes
:meth:`~arch_sim.models.network.Connection.space_at` when going to sleep only for connections
whose bound could make them the earliest:

* the bound is a true lower bound on the first time ``writable()`` finds room, and a tight one;
* a run with the shortcut gives, value for value, the row of a run where every check is exact
  (the bound is the time of the check itself), above the link's capacity as well as below it;
* above the link's capacity it spares most of the exact checks (each walks a buffer's chunks).
"""

from __future__ import annotations

import math
import random

import pytest

from arch_sim.models import load_preset, simulate_point
from arch_sim.models.network import Connection, Link
from arch_sim.models.params import NetworkParams
from arch_sim.sweep import WALL_FIELDS

#: the 1999 preset's wire: 64 KB buffers, four Fast Ethernet cards, Fast Ethernet clients
NET = NetworkParams(sndbuf_kb=64.0, wake_free_frac=0.045, client_mbit_s=94.0,
                    server_mbit_s=376.0)


def _writable_at(conn: Connection, t: float, left: float) -> float:
    """``conn.writable(t, left)`` on a copy (a query drops the chunks drained by then, so
    the connection itself may only be asked about later and later times)."""
    copy = Connection(NET, conn.link)
    copy.chunks.extend(list(chunk) for chunk in conn.chunks)
    return copy.writable(t, left)


def _first_writable(conn: Connection, t: float, left: float) -> float:
    """The first time from t at which ``writable()`` finds room, by bisection (no writes
    meanwhile, so the buffer only drains and the answer only goes from 0 to more)."""
    lo, hi = t, conn.drained_at(t) + 1.0
    assert _writable_at(conn, hi, left) > 0.0
    while hi - lo > 1e-13 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if _writable_at(conn, mid, left) > 0.0:
            hi = mid
        else:
            lo = mid
    return hi


def test_write_room_bounds_the_next_room_tightly():
    rng = random.Random(5)
    link = Link(NET.server_mbit_s)
    conns = [Connection(NET, link) for _ in range(12)]
    lefts = [rng.choice((300.0, 2000.0, 40000.0, 400000.0)) for _ in conns]
    t, checked = 0.0, 0
    for _ in range(3000):
        t += rng.expovariate(1.0 / 2e-4)
        i = rng.randrange(len(conns))
        conn, left = conns[i], lefts[i]
        n = min(conn.writable(t, left), 16 * 1024.0)
        if n > 0.0:
            conn.write(n, t)
            lefts[i] = left - n if left - n > 0.0 else rng.choice((500.0, 30000.0, 300000.0))
            continue
        bound = conn.write_room(t, left)[1]
        first = _first_writable(conn, t, left)
        assert t < bound <= first, (t, bound, first)
        # tight: the margin is 1e-3 byte, drained at no less than a client's 11.75 MB/s
        assert first - bound < 1e-9
        checked += 1
    assert checked > 500  # the buffers were full often enough to test the bound


def _row(preset: str, load: float, requests: int, cpus: int | None = None) -> dict:
    row = simulate_point("state-group", load_preset(preset), load, requests=requests,
                         warmup=requests // 4, seed=2, cpus=cpus)
    return {k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in row.items() if k not in WALL_FIELDS}


_write_room = Connection.write_room


def _no_bound(self: Connection, t: float, left: float) -> tuple[float, float]:
    n, bound = _write_room(self, t, left)
    return n, min(bound, t)  # no room: checked exactly again at the next pass


#: over the 1999 link's capacity (the buffers stay full), below it, and the host's keep-alive
CASES = [("linux-2.2-1999", 5075.0, 300, None), ("linux-2.2-1999", 2500.0, 1500, None),
         ("host", 12000.0, 1500, 1)]


@pytest.mark.parametrize(("preset", "load", "requests", "cpus"), CASES)
def test_the_bound_gives_the_row_of_exact_checks(monkeypatch, preset, load, requests, cpus):
    bounded = _row(preset, load, requests, cpus)
    monkeypatch.setattr(Connection, "write_room", _no_bound)
    exact = _row(preset, load, requests, cpus)
    assert bounded == exact


def test_the_bound_spares_exact_checks_above_the_link(monkeypatch):
    calls = [0]
    buffered = Connection.buffered

    def counted(self: Connection, t: float) -> float:
        calls[0] += 1
        return buffered(self, t)

    monkeypatch.setattr(Connection, "buffered", counted)
    _row("linux-2.2-1999", 5075.0, 300)
    with_bound = calls[0]
    calls[0] = 0
    monkeypatch.setattr(Connection, "write_room", _no_bound)
    _row("linux-2.2-1999", 5075.0, 300)
    assert with_bound < 0.5 * calls[0]
