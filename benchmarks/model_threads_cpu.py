"""The model's CPU per request thread group by thread group, beside what calibrate measured.

``arch-sim calibrate`` reads the real server's CPU per request per thread group at saturation
(``arch_sim/threadcpu.py``: schedstat of each thread; keep-alive as ``threads_cpu``, with a
connection per request as ``threads_cpu_close``) and uses their shares to place the model's
costs.  This script runs the host model the same way - unpaced, 64 connections, each
``--connection`` mode - and sums each task group's time on the CPU
(:class:`~arch_sim.models.trace.SwitchTrace`: its own work, the GIL's and the scheduler's
switches into it), so the two can be set side by side::

    .venv/bin/python benchmarks/model_threads_cpu.py staged
    .venv/bin/python benchmarks/model_threads_cpu.py staged --preset OTHER.toml

One line per mode: requests/s, the server's switches per request, then each group's us per
request, model / measured (the measured from the ``.calibration.json`` beside the preset, where
it has the group).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arch_sim.argtypes import OneLineParser, positive_int  # noqa: E402
from arch_sim.calibrate import calibration_path  # noqa: E402
from arch_sim.models.params import load_preset, preset_path  # noqa: E402
from arch_sim.models.runner import simulate_point  # noqa: E402
from arch_sim.models.trace import switch_traces  # noqa: E402

#: calibrate's record of the CPU by thread group, per connection mode
RECORDS = {"keep-alive": "threads_cpu", "close": "threads_cpu_close"}
#: a model task group's name in that record, where the two differ (the pool's dispatcher is
#: the real server's main thread)
REAL_NAME = {"dispatcher": "main"}


def model_groups(arch: str, preset: str, connection: str, requests: int,
                 seed: int = 1) -> tuple[dict[str, float], dict[str, float]]:
    """(the point's row, each task group's us of CPU per request) for ``arch`` unpaced."""
    params = load_preset(preset)
    with switch_traces() as traces:
        row = simulate_point(arch, params, None, workload="closed", connection=connection,
                             requests=requests, seed=seed)
    slices = [s for s in traces[0].finish(0.0) if s.task != "idle"]
    span = max(s.end for s in slices) - min(s.start for s in slices)
    total: dict[str, float] = defaultdict(float)
    for s in slices:
        total[s.task.split("/", 1)[0]] += s.end - s.start
    per = row["rps"] * span  # requests in the traced span
    return row, {group: seconds * 1e6 / per for group, seconds in sorted(total.items())}


def measured_groups(arch: str, preset: str, connection: str) -> dict[str, float]:
    """What calibrate measured per thread group (us per request), or nothing."""
    cal = calibration_path(preset_path(preset))
    if not cal.is_file():
        return {}
    server = json.loads(cal.read_text()).get("servers", {}).get(arch, {})
    return dict((server.get(RECORDS[connection]) or {}).get("us_per_request", {}))


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", choices=("thread-per-request", "staged"))
    ap.add_argument("--preset", default="host", help="preset name or TOML path (host)")
    ap.add_argument("--requests", type=positive_int, default=6000)
    args = ap.parse_args(argv)
    for connection in RECORDS:
        row, model = model_groups(args.arch, args.preset, connection, args.requests)
        real = measured_groups(args.arch, args.preset, connection)
        cells = []
        for group, us in model.items():
            name = REAL_NAME.get(group, group)
            cells.append(f"{group} {us:.1f}" + (f" / {real[name]:.1f}" if name in real else ""))
        print(f"{connection:10}  {row['rps']:8.0f}/s  {row['reschedules_per_request']:.3f} "
              f"switches/req  " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
