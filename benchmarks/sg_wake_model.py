"""Why the state-group model's worker wakes, with a connection per request: the account that
``benchmarks/sg_wake_causes.py`` takes of the real worker, taken of the model.

Simulates a bench point (``simulate_point``, 3-s windows) with the worker's methods wrapped
(the model itself unchanged) and cuts its run into wake cycles, each from a sleep's wake-up to
the next sleep: what woke the worker (a new connection in the listen queue, request bytes, room
to write, its own timer), how long from the wake-up call to the pass starting, how long the
worker then ran, and the passes and accepts of the cycle.

    python benchmarks/sg_wake_model.py 2000 5000
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

from arch_sim.argtypes import OneLineParser, positive_float  # noqa: E402
from arch_sim.models import simulate_point, wrk_clients  # noqa: E402
from arch_sim.models import state_group as sg  # noqa: E402
from arch_sim.models.bench_window import WindowRecorder as Recorder  # noqa: E402
from benchmarks.sg_reconnect_race import race  # noqa: E402
from benchmarks.sg_wake_causes import by_idle, median  # noqa: E402
from real_servers.core.lifecycle import ACCEPT, LOGGING


@contextmanager
def traced(cycles: list[dict], totals: dict[str, Any]):
    """Wrap the worker's wake-up, pass and sleep to note each wake cycle in ``cycles``."""
    worker, model = sg.Worker, sg.StateGroup
    saved = (worker.kick, worker.one_pass, worker.sleep, model.submit, model.data_ready,
             Recorder.complete, wrk_clients.ClosedClients._connect)
    race: list[str] = totals.setdefault("race", [])  # sg_reconnect_race.py's trace lines
    cause = totals  # the cause of the wake-up under way; the requests logged in all

    def kick(self: sg.Worker) -> None:
        if self.sleeping:
            self.cycle = {"cause": cause["now"], "kicked": self.model.env.now, "passes": 0,
                          "slept": self.model.env.now - cause.get("slept", {}).get(self, 0.0),
                          "accepts": 0, "sends": 0, "start": None}
        saved[0](self)

    def one_pass(self: sg.Worker, t: float) -> Any:
        cur = getattr(self, "cycle", None)
        before, logged = self.moved[ACCEPT], self.moved[LOGGING]
        p = saved[1](self, t)
        cause["logged"] = cause.get("logged", 0) + self.moved[LOGGING] - logged
        if cur is not None:
            cur["sends"] += self.moved[LOGGING] - logged
        if cur is not None:
            if cur["start"] is None:
                cur["start"] = t
            cur["passes"] += 1
            cur["accepts"] += self.moved[ACCEPT] - before
        return p

    def sleep(self: sg.Worker, cost: float):
        sleeps = self.sleeps
        gen = saved[2](self, cost)
        step = next(gen)  # the empty pass's CPU, then (if it sleeps) the wake-up
        cur = getattr(self, "cycle", None)
        try:
            while True:
                if self.sleeps != sleeps and cur is not None:  # it went to sleep
                    cur["end"] = self.model.env.now
                    cause.setdefault("slept", {})[self] = cur["end"]
                    race.append(f"{round(cur['end'] * 1e9)} SLEEP")
                    cycles.append(cur)
                    cur = self.cycle = None
                step = gen.send((yield step))
        except StopIteration:
            return

    def submit(self: sg.StateGroup, req: Any) -> None:
        cause["now"] = "listener" if req.opens else "bytes"
        if req.opens:
            race.append(f"{round(self.env.now * 1e9)} QUEUED")
        saved[3](self, req)
        cause["now"] = "timer"

    def data_ready(self: sg.StateGroup, req: Any) -> None:
        cause["now"] = "bytes"
        saved[4](self, req)
        cause["now"] = "timer"

    def complete(self: Recorder, req: Any, t: float) -> None:
        race.append(f"{round((t - one_way) * 1e9)} SEND")  # its last bytes left the server
        saved[5](self, req, t)

    def connect(self: wrk_clients.ClosedClients, slot: Any, at: float | None = None) -> None:
        race.append(f"{round((self.env.now if at is None else at) * 1e9)} CONNECT")
        saved[6](self, slot, at)

    one_way = 5e-6  # the host preset's network.one_way_us
    worker.kick, worker.one_pass, worker.sleep = kick, one_pass, sleep
    model.submit, model.data_ready = submit, data_ready
    Recorder.complete, wrk_clients.ClosedClients._connect = complete, connect
    try:
        yield
    finally:
        (worker.kick, worker.one_pass, worker.sleep, model.submit, model.data_ready,
         Recorder.complete, wrk_clients.ClosedClients._connect) = saved


def measure(rate: float, requests: int = 6000) -> dict[str, float]:
    cycles: list[dict] = []
    totals: dict[str, Any] = {"now": "timer", "logged": 0}
    with traced(cycles, totals):
        row = simulate_point("state-group", "host", rate, workload="closed", connection="close",
                             requests=requests, bench_window_s=3.0)
    n = max(1, totals["logged"])  # every request of the run, as every cycle is
    done = [c for c in cycles if c["start"] is not None]
    out = {"rate": rate, "sleeps_per_request": row["sleeps_per_request"],
           "cycles_per_request": len(done) / n}
    for what in ("listener", "bytes", "timer"):
        out[f"woken_{what}_per_request"] = sum(c["cause"] == what for c in done) / n
    out["passes_per_request"] = row["passes_per_request"]
    out["accepts_per_accepting_cycle"] = (sum(c["accepts"] for c in done)
                                          / max(1, sum(c["accepts"] > 0 for c in done)))
    lat = sorted((c["start"] - c["kicked"]) * 1e6 for c in done)
    busy = sorted((c["end"] - c["start"]) * 1e6 for c in done)
    out["wake_latency_us_median"] = lat[len(lat) // 2]
    out["busy_us_median"] = busy[len(busy) // 2]
    out["busy_us_mean"] = sum(busy) / len(busy)
    out["accepts_per_cycle"] = sum(c["accepts"] for c in done) / max(1, len(done))
    only_accepts = [c for c in done if c["accepts"] and not c["sends"]]
    only_sends = [c for c in done if c["sends"] and not c["accepts"]]
    out["accept_only_cycles_per_request"] = len(only_accepts) / n
    out["accept_only_busy_us_median"] = median([(c["end"] - c["start"]) * 1e6
                                                for c in only_accepts])
    out["accept_only_accepts"] = (sum(c["accepts"] for c in only_accepts)
                                  / max(1, len(only_accepts)))
    out["send_only_cycles_per_request"] = len(only_sends) / n
    out["send_only_busy_us_median"] = median([(c["end"] - c["start"]) * 1e6 for c in only_sends])
    out["passes_per_cycle"] = sum(c["passes"] for c in done) / max(1, len(done))
    rows = [{"accepts": c["accepts"], "sends": c["sends"], "idle_us": c["slept"] * 1e6,
             "busy_us": (c["end"] - c["start"]) * 1e6} for c in done]
    out.update(by_idle(rows))
    out.update({f"race_{k}": float(v) for k, v in race(totals["race"]).items()})
    return out


def main(argv: list[str]) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("rates", nargs="*", type=positive_float, metavar="RATE",
                        default=[2000.0, 5000.0], help="offered requests/s (default 2000 5000)")
    for rate in parser.parse_args(argv).rates:
        row = measure(rate)
        print("  ".join(f"{k}={v:.3g}" for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
