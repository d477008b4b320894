"""The one results schema shared by measured and simulated rows.

Rows are tidy: one per (source, arch, load point, repetition).  Plots and notebooks read only
these columns, so a simulated curve overlays a measured one.

A CSV of one's own measurements needs only ``arch``, a load (``target_rps`` or ``rps``) and a
reschedule count (``reschedules_per_s`` or ``reschedules_per_request``): :func:`load` fills
the rest (:func:`complete`), printing one warning line per column it had to guess.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
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
                          "included (vmstat's cs; measured at a paced load: a perf record "
                          "trace of the wrk window, other processes' runs left out; unpaced, "
                          "where tracing is not allowed, and in runs before the trace: perf "
                          "stat -a -C)",
    "cpu_switches_idle_per_s": "the same CPUs' rate with no load (measured; 0 in the model)",
    "cpu_switches_per_request": "(cpu_switches_per_s - cpu_switches_idle_per_s) / rps",
}

#: Columns only some simulated rows carry: what one model counts that the others have no
#: counterpart of (``<state>`` is a lifecycle state of real_servers/core/lifecycle.py).
MODEL_EXTRAS: dict[str, str] = {
    "workers": "prefork: worker processes (each holds one connection at a time)",
    "stage_threads": "staged: threads per stage's pool, as real_servers.staged --stage-threads",
    "gil_waits_per_request": "thread-per-request, prefork, staged: times a thread found the GIL "
                             "(or its mutex) held and slept (prefork: always 0, no shared GIL)",
    "pool_wakeups_per_request": "thread-per-request, prefork: threads / processes woken to take "
                                "a connection",
    "spurious_wakeups_per_request": "thread-per-request, prefork: ... that found none "
                                    "(accept() waking every sleeper: the thundering herd)",
    "again_handoffs_per_request": "thread-per-request (the pool): connections a pool thread, "
                                  "done with its request, handed off again because bytes came "
                                  "meanwhile (real_servers/threaded/pool.py's again)",
    "wakeups_per_request": "staged: stage threads woken by a hand-off (a put onto a queue they "
                           "slept on, epoll_wait returning), over every stage",
    "wakeups_<state>_per_request": "staged: the same for one stage's pool (accept, "
                                   "wait_headers, send_data, logging)",
    "moved_<state>_per_request": "state-group, staged: items moved out of that state per "
                                 "request (staged: one out of each state a request crosses)",
    "bench_window_s": "the point simulated as arch-sim bench measures it: windows of this many "
                      "seconds, each a new wrk run whose connections open at its start and "
                      "close at its end (NaN: the steady state, connections open throughout)",
    "bench_windows": "how many such windows the row sums (0: the steady state)",
}

SOURCES = ("measured", "simulated")

#: A minimal CSV (one's own measurements) needs ``arch`` and one column of each pair.
LOAD_COLUMNS = ("target_rps", "rps")
RESCHEDULE_COLUMNS = ("reschedules_per_s", "reschedules_per_request")
#: (per second, per request) pairs: either one gives the other through ``rps``
PER_REQUEST_PAIRS = (("reschedules_per_s", "reschedules_per_request"),
                     ("cpu_switches_per_s", "cpu_switches_per_request"))
#: columns that must hold numbers when present
NUMERIC = ("cpus", "connections", "target_rps", "rps", "reschedules_per_s", "voluntary_per_s",
           "involuntary_per_s", "reschedules_per_request", "lat_p50_ms", "lat_p99_ms",
           "cpu_util", "sched_overhead_frac", "errors", "rep", "seed", "duration_s",
           "cpu_switches_per_s", "cpu_switches_per_request", "cpu_switches_idle_per_s")


class SchemaError(ValueError):
    """Rows that do not follow the shared results schema."""


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check that *df* carries every schema column with sane values; return it unchanged."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"missing columns: {', '.join(missing)}")
    bad = set(df["source"].dropna()) - set(SOURCES)
    if bad:
        raise SchemaError(f"unknown source values: {sorted(bad)}; use "
                          f"{' or '.join(SOURCES)}")
    return df


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def complete(df: pd.DataFrame, name: str = "rows",
             warn: Callable[[str], None] | None = _stderr_warning) -> pd.DataFrame:
    """Fill the schema columns a minimal CSV leaves out; *df* itself is not changed.

    Needs ``arch``, ``target_rps`` or ``rps``, and ``reschedules_per_s`` or
    ``reschedules_per_request`` (else :class:`SchemaError` naming what is missing).  Guessed,
    each with one ``warn`` line: ``source`` = measured; ``rps`` = ``target_rps`` (every
    offered request served) or ``target_rps`` = ``rps`` (each row its own load point - never
    one unpaced "max" point for all); a per-second count from per-request x ``rps``, or back.
    Other absent columns stay empty.  A frame that has every schema column is returned as is.
    """
    if all(c in df.columns for c in COLUMNS):
        return df
    say = warn or (lambda message: None)
    have = set(df.columns)
    if "arch" not in have:
        raise SchemaError(f"{name}: no 'arch' column: add one naming the server of each row "
                          "(thread-per-request, state-group, or your own server's name)")
    if not have & set(LOAD_COLUMNS):
        raise SchemaError(f"{name}: no load column: add target_rps (offered requests/s) or rps "
                          "(achieved requests/s)")
    if not have & set(RESCHEDULE_COLUMNS):
        raise SchemaError(f"{name}: no reschedule column: add reschedules_per_s or "
                          "reschedules_per_request")
    df = df.copy()
    for col in (c for c in NUMERIC if c in have):
        numbers = pd.to_numeric(df[col], errors="coerce")
        bad = df[col][numbers.isna() & df[col].notna()]
        if not bad.empty:
            raise SchemaError(f"{name}: column {col} holds {bad.iloc[0]!r}, not a number; "
                              "leave a cell empty for 'unknown'")
        df[col] = numbers.astype(float)
    achieved = df["rps"] if "rps" in have else df["target_rps"]  # what rps will hold
    if not achieved.notna().any():
        raise SchemaError(f"{name}: the load column has no values: fill rps or target_rps")
    if "source" not in have:
        df["source"] = "measured"
        say(f"{name}: no 'source' column: every row taken as measured")
    if "rps" not in have:
        df["rps"] = df["target_rps"]
        say(f"{name}: no 'rps' column: achieved requests/s taken as target_rps (every offered "
            "request served)")
    elif "target_rps" not in have:
        # each row keeps its own load; all-NaN target_rps would merge them into one "max"
        df["target_rps"] = df["rps"]
        say(f"{name}: no 'target_rps' column: offered load taken as rps, so each distinct rps "
            "is a load point of its own")
    rps = df["rps"].where(df["rps"] > 0)  # a rate per request needs requests
    for per_s, per_request in PER_REQUEST_PAIRS:
        if per_s in have and per_request not in have:
            df[per_request] = df[per_s] / rps
            say(f"{name}: no '{per_request}' column: computed as {per_s} / rps")
        elif per_request in have and per_s not in have:
            df[per_s] = df[per_request] * df["rps"]
            say(f"{name}: no '{per_s}' column: computed as {per_request} x rps")
    for col in COLUMNS:  # the rest stay empty: NaN where a number belongs
        if col not in df.columns:
            df[col] = float("nan") if col in NUMERIC else pd.NA
    return df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]]


def to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts) -> DataFrame with the schema columns first, extras after."""
    df = pd.DataFrame(list(rows))
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    extras = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extras]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not a results CSV ({exc})") from None


def load(path: str | Path,
         warn: Callable[[str], None] | None = _stderr_warning) -> pd.DataFrame:
    """Load a results CSV, or every ``*.csv`` of the schema in a run folder, as one frame.

    A CSV of one's own measurements may hold only the minimal columns (see :func:`complete`);
    ``warn`` gets one line per column guessed (default: printed to stderr; None: silent).
    """
    path = Path(path)
    if path.is_dir():
        frames = [
            complete(_read_csv(p), str(p), warn)
            for p in sorted(path.glob("*.csv"))
            if p.name in ("measurements.csv", "simulated.csv")
        ]
        if not frames:
            raise FileNotFoundError(f"no measurements.csv or simulated.csv in {path}")
        return validate(pd.concat(frames, ignore_index=True))
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return validate(complete(_read_csv(path), str(path), warn))


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
