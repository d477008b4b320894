"""The two workloads arch-sim measures and models, named once.

* ``today`` - HTTP/1.1 keep-alive: wrk's 64 connections each carry request after request, as
  today's clients and load generators do.
* ``seed`` - the seed's own regime: HTTP/1.0, a new TCP connection for every request
  (``Connection: close``), the SPECweb99 file set.  kHTTPd 0.1.x spoke HTTP/1.0; keep-alive
  was an experimental patch (docs/SOURCES.md [KH-versions]).

A row's regime follows from how its clients used connections: measured rows carry
``connection_mode`` (wrk's), simulated rows their workload (an open workload opens a connection
per request).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Regime:
    name: str
    connection: str  # keep-alive | close
    file_set: str
    label: str  # for legends and tables
    description: str


REGIMES: dict[str, Regime] = {
    "today": Regime("today", "keep-alive", "specweb99", "today: HTTP/1.1 keep-alive",
                    "64 keep-alive connections, request after request (wrk's default)"),
    "seed": Regime("seed", "close", "specweb99", "seed: HTTP/1.0, a connection per request",
                   "a new TCP connection per request (Connection: close), as kHTTPd's "
                   "HTTP/1.0 clients made them"),
}
#: connection mode -> regime name
BY_CONNECTION = {r.connection: r.name for r in REGIMES.values()}


def regime_of(connection_mode: str | None, workload: str | None = None) -> str:
    """The regime of a row: ``seed`` for a connection per request (or an open workload)."""
    if workload == "open":
        return "seed"
    return BY_CONNECTION.get(str(connection_mode), "today")


def add_regime(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``regime`` column (derived where missing: older runs are keep-alive)."""
    if "regime" in df.columns and df["regime"].notna().all():
        return df
    modes = df["connection_mode"] if "connection_mode" in df.columns else pd.Series(
        [None] * len(df), index=df.index)
    workloads = df["workload"] if "workload" in df.columns else pd.Series(
        [None] * len(df), index=df.index)
    derived = [regime_of(m if isinstance(m, str) else None, w if isinstance(w, str) else None)
               for m, w in zip(modes, workloads, strict=True)]
    out = df.copy()
    if "regime" in out.columns:
        out["regime"] = out["regime"].where(out["regime"].notna(), derived)
    else:
        out["regime"] = derived
    return out
