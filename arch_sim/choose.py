"""Which design when: every architecture's model under one changed condition, and a verdict.

    >>> from arch_sim import choose                                   # doctest: +SKIP
    >>> df = choose.compare("host", "cpus", [1, 2, 4], loads=[1000, None])
    >>> choose.verdict(df, at=1000)

:func:`compare` runs :func:`arch_sim.explore.vary` over every architecture (the seed's two,
prefork and staged) for each value of one knob - CPUs, connections, file sizes, or any knob of
:data:`arch_sim.explore.KNOBS`.  :func:`verdict` reads the result as a user choosing a design
would: for each value, which design serves most requests per second unpaced ("max"), and at a
paced load which spends the fewest reschedules and the least CPU per request and answers with
the lowest p99 latency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from arch_sim import ALL_ARCHS, explore
from arch_sim.models import ModelParams
from arch_sim.plots_archs import with_cpu_per_request

#: what :func:`verdict` ranks: (column, best is the lowest?, heading)
CRITERIA: tuple[tuple[str, bool, str], ...] = (
    ("reschedules_per_request", True, "fewest reschedules/request"),
    ("cpu_us_per_request", True, "least CPU/request"),
    ("lat_p99_ms", True, "lowest p99"),
)


def compare(base: ModelParams | str, knob: str, values: Iterable[Any],
            loads: Iterable[float | None] = (1000.0, None), archs: Sequence[str] = ALL_ARCHS,
            **kwargs: Any) -> pd.DataFrame:
    """Every design in *archs* at *loads*, once per value of *knob* (rows labelled
    ``"<knob>=<value>"`` in ``preset``), with ``cpu_us_per_request`` filled in.  Keyword
    arguments as :func:`arch_sim.explore.sweep` (workload, connection, requests, reps...)."""
    return with_cpu_per_request(explore.vary(base, knob, values, list(loads), archs, **kwargs))


def verdict(df: pd.DataFrame, at: float) -> pd.DataFrame:
    """Per value of the varied knob: the design with the highest unpaced throughput, and at
    offered load *at* the best design for each of :data:`CRITERIA` (with its value)."""
    rows = []
    for label, part in df.groupby("preset", sort=False):
        row: dict[str, Any] = {"condition": label}
        unpaced = part[part["target_rps"].isna()]
        if not unpaced.empty:
            best = unpaced.groupby("arch")["rps"].mean().sort_values(ascending=False)
            row["most req/s (max)"] = f"{best.index[0]} ({best.iloc[0]:,.0f})"
        paced = part[part["target_rps"] == at]
        for column, lowest, heading in CRITERIA:
            if paced.empty or column not in paced:
                continue
            means = paced.groupby("arch")[column].mean().sort_values(ascending=lowest)
            row[f"{heading} @ {at:g}"] = f"{means.index[0]} ({means.iloc[0]:.3g})"
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")
