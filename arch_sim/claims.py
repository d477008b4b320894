"""The seed's claims, and the one rule by which a run is judged against them.

The kHTTPd architecture page (docs/SOURCES.md [KH-page]) makes two quantitative claims:

* old design (<= 0.1.2, a thread per request): "15000 reschedules per second was no exception";
* new design (>= 0.1.3, a thread per CPU, requests grouped by state): "under extreme load (over
  2000 requests per second), the daemon schedules hardly at all".

How a run is judged (the same rule in the report, the figures and the notebooks):

* **old**: the peak reschedules/s over the run's loads (means over repetitions) falls in
  10,000-20,000 - "no exception" read as "the usual peak", within a factor of 1.5.
* **new**: at every load point whose *achieved* rate is above 2,000 requests/s, at most 0.05
  reschedules per request - "hardly at all" read as one reschedule per twenty requests.

Either count can be judged: ``server`` (the server's own switches, ``reschedules_*``) or ``cpu``
(every switch on the server's CPUs, idle included, ``cpu_switches_*``).  The seed does not say
how it counted; a 1999 administrator most likely read ``vmstat``'s ``cs`` column, which is the
second count (docs/SOURCES.md [CS-vmstat] [K22-ctxt]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

#: "15000 reschedules per second was no exception"
OLD_RESCHEDULES_PER_S = 15_000.0
#: "under extreme load (over 2000 requests per second), the daemon schedules hardly at all"
NEW_HARDLY_ABOVE_RPS = 2_000.0
#: the band the old design's peak must fall in
OLD_PEAK_BAND = (10_000.0, 20_000.0)
#: "hardly at all": at most this many reschedules per request above NEW_HARDLY_ABOVE_RPS
NEW_HARDLY_PER_REQUEST = 0.05

OLD_QUOTE = "15000 reschedules per second was no exception"
NEW_QUOTE = "under extreme load (over 2000 requests per second), the daemon schedules hardly at all"

#: count -> (per-second column, per-request column)
COUNTS = {
    "server": ("reschedules_per_s", "reschedules_per_request"),
    "cpu": ("cpu_switches_per_s", "cpu_switches_per_request"),
}
COUNT_LABELS = {
    "server": "the server's own switches",
    "cpu": "every switch on the server's CPUs (as vmstat's cs counts)",
}


@dataclass(frozen=True)
class Verdict:
    """One claim against one run: the number, where it was seen, and whether it holds."""

    claim: str  # old | new
    count: str  # server | cpu
    value: float  # old: peak per s; new: worst per request above 2,000 req/s
    at_rps: float  # achieved requests/s of that point
    holds: bool | None  # None: the run has no point to judge (e.g. nothing above 2,000 req/s)

    def text(self) -> str:
        if self.holds is None:
            return "not judged (no load point above 2,000 requests/s)" if self.claim == "new" \
                else "not judged (no thread-per-request rows)"
        if self.claim == "old":
            return (f"peak {self.value:,.0f}/s at {self.at_rps:,.0f} requests/s: "
                    f"{'within' if self.holds else 'outside'} 10,000-20,000")
        return (f"at most {self.value:.3f} per request above 2,000 requests/s (worst at "
                f"{self.at_rps:,.0f}): {'yes' if self.holds else 'no'} (<= 0.05)")


def points(df: pd.DataFrame, count: str = "server") -> pd.DataFrame:
    """Mean achieved rps and the count per load point (``target_rps``; NaN = unpaced)."""
    per_s, per_req = COUNTS[count]
    cols = [c for c in ("rps", per_s, per_req) if c in df.columns]
    out = df.groupby(df["target_rps"].fillna(-1.0))[cols].mean()
    return out.sort_values("rps")


def judge_old(df: pd.DataFrame, count: str = "server") -> Verdict:
    """The old design's peak reschedules/s against 15,000 (rows of one series)."""
    if df.empty or COUNTS[count][0] not in df.columns:
        return Verdict("old", count, math.nan, math.nan, None)
    pts = points(df, count).dropna(subset=[COUNTS[count][0]])
    if pts.empty:
        return Verdict("old", count, math.nan, math.nan, None)
    peak = pts.loc[pts[COUNTS[count][0]].idxmax()]
    value = float(peak[COUNTS[count][0]])
    lo, hi = OLD_PEAK_BAND
    return Verdict("old", count, value, float(peak["rps"]), lo <= value <= hi)


def judge_new(df: pd.DataFrame, count: str = "server") -> Verdict:
    """The new design's worst reschedules per request above 2,000 achieved requests/s."""
    if df.empty or COUNTS[count][1] not in df.columns:
        return Verdict("new", count, math.nan, math.nan, None)
    pts = points(df, count).dropna(subset=[COUNTS[count][1]])
    busy = pts[pts["rps"] > NEW_HARDLY_ABOVE_RPS]
    if busy.empty:
        return Verdict("new", count, math.nan, math.nan, None)
    worst = busy.loc[busy[COUNTS[count][1]].idxmax()]
    value = float(worst[COUNTS[count][1]])
    return Verdict("new", count, value, float(worst["rps"]), value <= NEW_HARDLY_PER_REQUEST)
