"""Is a model's miss the model's, or the machine's drift since the preset was calibrated?  The
host preset's per-design inputs re-solved from one ``arch-sim bench`` run's own CPU.

    .venv/bin/python benchmarks/calibrate_from_bench.py RUN OUT.toml [--paced RPS] [--no-solve]
                                                           [--cold-decay-ms MS]
    .venv/bin/python -m arch_sim.cli simulate --preset OUT.toml --like RUN ...

``arch-sim calibrate`` measures the host on one day and the bench runs on another; on a shared
machine the CPU a request costs moves by tens of percent between them (docs/FIDELITY.md, "The
calibration against itself").  This writes a preset whose inputs come from the bench run
itself, solved as calibrate solves them (:func:`arch_sim.models.calibration.host_preset_text`):

* each design's CPU per request at saturation: the run's keep-alive unpaced rows;
* each design's cache refill: its keep-alive rows paced at ``--paced`` requests/s (default 500;
  calibrate uses 1,000, which the archs benches do not run) - that point's CPU is then matched
  by construction, its switches are not;
* each design's connection costs: the run's connection-per-request unpaced rows;
* wrk's CPU per request and its extra for a connection per request: against the fastest
  server, as calibrate takes them.

Everything measured about the host itself (switch cost, wake-up latency, the futex wake, CPU
jitter, the cold-cache decay, RCU's grace periods), and prefork's work after the last send
(traced by calibrate, not in a bench's rows), is kept from the packaged calibration
(``arch_sim/models/presets/host.calibration.json`` and ``host.rcu.json``, copied beside OUT).
No switch count of the run is an input: the switches simulated with this preset can be judged
against the run (``simulate --like RUN``, ``benchmarks/bench_repeat.py --model``).
``--no-solve`` sets the costs analytically (fast; for checking the inputs).  ``--cold-decay-ms``
puts another decay time in place of the calibrated one (an experiment on the refill's shape
against idle time: each design's refill is re-solved with it, so the paced point's CPU is still
matched; the ``cold_cache`` record says it was set by hand).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arch_sim import ALL_ARCHS  # noqa: E402
from arch_sim.argtypes import OneLineParser, positive_float  # noqa: E402
from arch_sim.calibrate_servers import (  # noqa: E402
    CALIBRATE_ONLY,
    close_from_rows,
    servers_from_rows,
)
from arch_sim.models.calibration import host_preset_text  # noqa: E402

PRESETS = ROOT / "arch_sim" / "models" / "presets"


class Refused(Exception):
    """A bad argument: one line on stderr, exit 2."""


def measurements(run: Path, paced: float, decay_ms: float | None = None) -> dict:
    """calibrate's measurements, with every per-design input taken from ``run``'s rows as
    calibrate takes them from its own bench runs
    (:func:`arch_sim.calibrate_servers.servers_from_rows`,
    :func:`~arch_sim.calibrate_servers.close_from_rows`; a point's windows averaged)."""
    path = run / "measurements.csv"
    if not path.is_file():
        raise Refused(f"{path} not found: give the folder of an arch-sim bench run")
    rows = pd.read_csv(path)
    rows = rows[rows["arch"].isin(ALL_ARCHS)]
    keep = rows[rows["connection_mode"] == "keep-alive"]
    slow = keep[keep["target_rps"] == paced]
    missing = [a for a in ALL_ARCHS if a not in set(slow["arch"])]
    try:
        if missing:
            raise ValueError(f"no {missing[0]} keep-alive rows {paced:g} requests/s")
        servers, client = servers_from_rows(keep, list(ALL_ARCHS), paced)
        close = close_from_rows(rows[rows["connection_mode"] == "close"])
        if not set(ALL_ARCHS) <= set(close):
            raise ValueError("no connection-per-request rows of every design")
    except ValueError as exc:
        raise Refused(f"the run has {exc}: give a run of the four designs, both workloads "
                      "(arch-sim bench --arch ... --connection keep-alive,close)"
                      + (", or another --paced load it ran" if missing else "")) from None
    cal = json.loads((PRESETS / "host.calibration.json").read_text())
    # what calibrate measures beside the bench (a design's work after the last send, its CPU
    # thread by thread) is not in a bench's rows: kept from the packaged calibration
    kept = {arch: {key: row[key] for key in CALIBRATE_ONLY if row.get(key)}
            for arch, row in cal["servers"].items() if isinstance(row, dict)}
    cal["servers"].update(servers)
    for arch, extra in kept.items():
        cal["servers"].setdefault(arch, {}).update(extra)
    cal["close"].update({arch: close[arch] for arch in ALL_ARCHS})
    cal["client"] = {"cpu_us_per_request": client}
    cal["close"]["client_close_us"] = max(0.0, close["client_us"] - client)
    cal["from_bench"] = {"run": str(run), "paced_rps": paced}
    if decay_ms is not None:
        cal["cold_cache"] = {"decay_ms": decay_ms, "set_by_hand": True}
    return cal


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="an arch-sim bench folder of the four designs")
    p.add_argument("out", type=Path, help="the preset to write (NAME.toml)")
    p.add_argument("--paced", type=positive_float, default=500.0,
                   help="the paced load whose CPU solves the cache refill (500)")
    p.add_argument("--no-solve", action="store_true", help="set the costs analytically")
    p.add_argument("--cold-decay-ms", type=positive_float, default=None, metavar="MS",
                   help="this cold-cache decay time instead of the calibrated one")
    args = p.parse_args(argv)
    try:
        if args.out.suffix != ".toml":
            raise Refused(f"{args.out}: the preset must be a .toml file")
        cal = measurements(args.run, args.paced, args.cold_decay_ms)
    except Refused as exc:
        print(f"calibrate_from_bench: {exc}", file=sys.stderr)
        return 2
    text = host_preset_text(cal, name=args.out.stem, solve=not args.no_solve)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".calibration.json").write_text(json.dumps(cal, indent=1) + "\n")
    shutil.copy(PRESETS / "host.rcu.json", args.out.with_name(f"{args.out.stem}.rcu.json"))
    print(f"wrote {args.out} (inputs from {args.run}, refill at {args.paced:g} requests/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
