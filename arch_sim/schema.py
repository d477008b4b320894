"""The one results schema shared by measured and simulated rows.

Rows are tidy: one per (source, arch, load point, repetition).  Plots and notebooks read only
these columns, so a simulated curve overlays a measured one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

#: Required columns, in file order.  Extra columns (e.g. other reschedule sources) may follow.
COLUMNS: tuple[str, ...] = (
    "source",  # measured | simulated
    "arch",  # thread-per-request | state-group | peer name (nginx, python-http-server)
    "server",  # what actually ran: module, binary or model name
    "preset",  # model preset (simulated) or file set (measured)
    "cpus",
    "connections",
    "target_rps",  # offered load; NaN for unpaced ("max")
    "rps",  # achieved requests per second
    "reschedules_per_s",
    "voluntary_per_s",
    "involuntary_per_s",
    "reschedules_per_request",
    "lat_p50_ms",
    "lat_p99_ms",
    "cpu_util",
    "sched_overhead_frac",
    "errors",
    "rep",
    "seed",
    "duration_s",
    "run_id",
)

#: Columns both measured and simulated rows carry beside the required ones (optional: older runs
#: lack them, and :func:`arch_sim.regimes.add_regime` derives ``regime`` for those).
KNOWN_EXTRAS: dict[str, str] = {
    "regime": "today (HTTP/1.1 keep-alive) | seed (HTTP/1.0, a connection per request)",
    "connection_mode": "keep-alive | close: how the clients used connections",
    "threads": "thread-per-request shape: 0 = a thread per connection, N = a pool of N",
    "cpu_switches_per_s": "every context switch on the server's CPUs, to and from idle "
                          "included (vmstat's cs; measured: perf -a -C)",
    "cpu_switches_idle_per_s": "the same CPUs' rate with no load (measured; 0 in the model)",
    "cpu_switches_per_request": "(cpu_switches_per_s - cpu_switches_idle_per_s) / rps",
}

SOURCES = ("measured", "simulated")


class SchemaError(ValueError):
    """Rows that do not follow the shared results schema."""


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check that *df* carries every schema column with sane values; return it unchanged."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"missing columns: {', '.join(missing)}")
    bad = set(df["source"].dropna()) - set(SOURCES)
    if bad:
        raise SchemaError(f"unknown source values: {sorted(bad)}")
    return df


def to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts) -> DataFrame with the schema columns first, extras after."""
    df = pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    extras = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extras]


def load(path: str | Path) -> pd.DataFrame:
    """Load a results CSV, or every ``*.csv`` of the schema in a run folder, as one frame."""
    path = Path(path)
    if path.is_dir():
        frames = [
            pd.read_csv(p)
            for p in sorted(path.glob("*.csv"))
            if p.name in ("measurements.csv", "simulated.csv")
        ]
        if not frames:
            raise FileNotFoundError(f"no measurements.csv or simulated.csv in {path}")
        return validate(pd.concat(frames, ignore_index=True))
    return validate(pd.read_csv(path))


def write_parquet_beside(csv: str | Path) -> Path | None:
    """Write ``X.parquet`` next to the results CSV ``X.csv`` when pyarrow is installed (the
    CSV stays the reference copy); None without pyarrow."""
    import importlib.util

    from arch_sim.runinfo import write_atomic

    if importlib.util.find_spec("pyarrow") is None:
        return None
    target = Path(csv).with_suffix(".parquet")
    frame = pd.read_csv(csv)
    write_atomic(target, lambda tmp: frame.to_parquet(tmp, index=False))
    return target


class RowWriter:
    """Appends rows to a CSV one at a time (flushed and fsynced), so a crash keeps every row
    written so far.  The header is the schema columns followed by *extras*, fixed at creation."""

    def __init__(self, path: str | Path, extras: Iterable[str] = ()) -> None:
        import csv

        self.path = Path(path)
        self.columns = list(COLUMNS) + [c for c in extras if c not in COLUMNS]
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != self.columns:
                raise ValueError(f"{self.path} holds rows with other columns than these; "
                                 "write to a new file (or remove it) rather than mix the two")
        self._file = open(self.path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        if new:
            self._csv.writeheader()
            self._flush()

    def write(self, row: Mapping[str, Any]) -> None:
        self._csv.writerow({c: _cell(row.get(c)) for c in self.columns})
        self._flush()

    def _flush(self) -> None:
        import os

        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return value
