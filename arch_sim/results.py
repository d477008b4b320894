"""Committed reference runs under ``results/``: find the newest, load it, judge it, replay it.

    >>> from arch_sim import results
    >>> run = results.latest("reproduce-full", needs=results.REPRODUCTION)  # doctest: +SKIP
    >>> frames = results.load_reference(run)             # doctest: +SKIP
    >>> sorted(frames)                                   # doctest: +SKIP
    ['eras.csv', 'fidelity.csv', 'measured-seed', 'measured-today', 'sensitivity', \
'sensitivity.csv', 'simulated-eras', 'simulated-host']
    >>> results.seed_claims(frames)                      # doctest: +SKIP

Where ``results/`` is: ``$ARCH_SIM_RESULTS`` if set (a results folder, or one run folder), else
the checkout's ``results/`` beside the package, else ``./results`` or ``../results`` (a
notebook runs in ``notebooks/``).  A run folder is one with a ``meta.json``; its kind is the
meta's ``kind`` plus ``mode`` when there is one (``reproduce-full``, ``reproduce-quick``,
``bench``, ``simulate``), or else the start of its name.

* :func:`latest` / :func:`runs` - the newest complete run of a kind (optionally: holding some
  sub-folders, so a reproduction of an older layout is passed over);
* :func:`load_run` - every data set of a run folder, by sub-folder, plus its top-level tables;
* :func:`seed_claims` - the seed's two sentences judged against each data set with
  :mod:`arch_sim.claims` (both counts, the rule of ``REPORT.md``);
* :func:`replay` - re-simulate some committed rows and put them beside the committed values;
* :func:`host_preset` - the calibrated host preset of the newest reproduction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arch_sim import schema

ENV = "ARCH_SIM_RESULTS"
SCHEMA_CSVS = {"measurements.csv": "measured", "simulated.csv": "simulated"}
#: the sub-folders of an ``arch-sim reproduce`` run that every run of its layout has (the real
#: sweeps are skipped without wrk, so they are not required)
REPRODUCTION = ("simulated-eras", "sensitivity")
#: columns that name what produced a row within one data set (split into separate data sets)
PRODUCED_BY = ("era", "variant")


class NoReferenceRun(FileNotFoundError):
    """No run folder of the asked kind; the message says where we looked and what to do."""


# -- finding runs -----------------------------------------------------------------------------

def search_path() -> list[Path]:
    """The folders searched for runs, in order (only those that exist)."""
    env = os.environ.get(ENV)
    if env:
        return [Path(env).expanduser()]
    here = Path(__file__).resolve().parent.parent / "results"
    cwd = Path.cwd()
    out: list[Path] = []
    for folder in (here, cwd / "results", cwd.parent / "results"):
        if folder.is_dir() and all(folder.resolve() != o.resolve() for o in out):
            out.append(folder)
    return out


def meta(run: str | os.PathLike[str]) -> dict[str, Any]:
    """A run folder's ``meta.json`` ({} when it has none or it is unreadable)."""
    try:
        return json.loads((Path(run) / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def kind_of(run: str | os.PathLike[str]) -> str:
    """``reproduce-full``, ``reproduce-quick``, ``bench``, ``simulate``... of a run folder."""
    info = meta(run)
    kind = str(info.get("kind") or "")
    if kind:
        mode = info.get("mode")
        return f"{kind}-{mode}" if mode else kind
    name = Path(run).name
    for known in ("reproduce-full", "reproduce-quick", "bench", "simulate"):
        if name.startswith(known):
            return known
    return name


def _matches(run: Path, kind: str) -> bool:
    found = kind_of(run)
    return found == kind or found.startswith(kind + "-")


def _started(run: Path) -> str:
    info = meta(run)
    return str(info.get("started") or info.get("start") or "")


def has_parts(run: str | os.PathLike[str], needs: Iterable[str] = ()) -> bool:
    """True when *run* has every sub-folder (or file) named in *needs*."""
    return all((Path(run) / part).exists() for part in needs)


def runs(kind: str = "reproduce-full", complete_only: bool = True,
         needs: Iterable[str] = ()) -> list[Path]:
    """Run folders of *kind* (a prefix: ``reproduce`` finds full and quick ones), newest first.

    With ``$ARCH_SIM_RESULTS`` pointing at one run folder, that folder is the only candidate
    (as long as its kind's first word matches: a quick reproduction stands in for a full one).
    *needs*: sub-folders a run must have (e.g. :data:`REPRODUCTION`, which passes over
    reproductions of an older layout).
    """
    needs = tuple(needs)
    found: list[Path] = []
    for folder in search_path():
        if not folder.is_dir():
            continue
        if (folder / "meta.json").is_file():  # a run folder itself
            if kind_of(folder).split("-")[0] == kind.split("-")[0]:
                found.append(folder)
            continue
        for run in folder.iterdir():
            if run.is_dir() and (run / "meta.json").is_file() and _matches(run, kind):
                found.append(run)
    if complete_only:
        found = [r for r in found if meta(r).get("complete", True) is not False]
    found = [r for r in found if has_parts(r, needs)]
    return sorted(found, key=lambda r: (_started(r), r.name), reverse=True)


def latest(kind: str = "reproduce-full", needs: Iterable[str] = ()) -> Path:
    """The newest complete run folder of *kind* (with every part in *needs*), or
    :class:`NoReferenceRun` saying why."""
    needs = tuple(needs)
    found = runs(kind, needs=needs)
    if found:
        return found[0]
    where = ", ".join(
        str(p) + ("" if p.is_dir() else " (missing)") for p in search_path()
    ) or "no results/ folder found"
    what = f"no complete {kind} run" + (f" with {', '.join(needs)}" if needs else "")
    older = [r.name for r in runs(kind)] if needs else []
    raise NoReferenceRun(
        f"{what} found (looked in: {where})"
        + (f"; passed over {', '.join(older)} (an older layout)" if older else "")
        + f". A reference run is made with `make reproduce FULL=1` (arch-sim reproduce) and "
        f"committed under results/; set {ENV}=/path/to/results (or to one run folder) to use "
        f"another."
    )


# -- loading ----------------------------------------------------------------------------------

def load_run(run: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Every data set and table of a run folder.

    * schema rows, by part: ``measured`` / ``simulated`` for the CSVs at the top of a bench or
      simulate folder, the sub-folder's name for each sub-folder holding one (a reproduction:
      ``measured-today``, ``measured-seed``, ``simulated-host``, ``simulated-eras``,
      ``sensitivity``);
    * every other CSV at the top, by its file name (a reproduction: ``fidelity.csv``,
      ``eras.csv``, ``sensitivity.csv``), read as it is.
    """
    run = Path(run)
    frames: dict[str, pd.DataFrame] = {}
    for name, part in SCHEMA_CSVS.items():
        if (run / name).is_file():
            frames[part] = schema.load(run / name)
    for sub in sorted(p for p in run.iterdir() if p.is_dir()):
        if any((sub / name).is_file() for name in SCHEMA_CSVS):
            frames[sub.name] = schema.load(sub)
    for table in sorted(run.glob("*.csv")):
        if table.name not in SCHEMA_CSVS:
            frames[table.name] = pd.read_csv(table)
    return frames


def load_reference(run: str | os.PathLike[str] | None = None, kind: str = "reproduce-full",
                   needs: Iterable[str] = ()) -> dict[str, pd.DataFrame]:
    """:func:`load_run` of *run*, or of :func:`latest` (*kind*, *needs*) when *run* is None."""
    return load_run(latest(kind, needs) if run is None else run)


def host_preset(run: str | os.PathLike[str] | None = None) -> Any:
    """The calibrated ``host.toml`` of a reproduction (*run*, or the latest one), else the
    shipped ``host`` preset (a placeholder until calibrated: check ``.placeholder``)."""
    from arch_sim.models import load_preset

    if run is None:
        try:
            run = latest("reproduce")
        except NoReferenceRun:
            run = None
    if run is not None and (Path(run) / "host.toml").is_file():
        return load_preset(Path(run) / "host.toml")
    return load_preset("host")


# -- the seed's sentences beside the numbers --------------------------------------------------

def data_sets(frames: dict[str, pd.DataFrame] | pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per data set: each part of *frames* with schema rows, split by what
    produced its rows (``era``, ``variant``) and by regime where a part holds both."""
    from arch_sim.regimes import add_regime

    if isinstance(frames, pd.DataFrame):
        frames = {"data": frames}
    out = []
    for part, df in frames.items():
        if "source" not in df.columns or "arch" not in df.columns or df.empty:
            continue  # a table (fidelity.csv...)
        df = add_regime(df)
        keys = [c for c in PRODUCED_BY if c in df.columns and df[c].notna().any()]
        if df["regime"].nunique() > 1:
            keys.append("regime")
        if not keys:
            out.append((part, df))
            continue
        for key, group in df.groupby(keys, sort=False, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            out.append((f"{part}: " + ", ".join(str(k) for k in key), group))
    return out


def _old_shapes(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(shape label, rows) of the old design in *df*: one per ``threads`` value."""
    from arch_sim.fidelity import shape_label

    old = df[df["arch"] == "thread-per-request"]
    if old.empty:
        return []
    threads = pd.to_numeric(old["threads"], errors="coerce") if "threads" in old.columns \
        else pd.Series(np.nan, index=old.index)
    if threads.isna().all():
        return [("thread-per-request", old)]
    return [(shape_label("thread-per-request", t), old[threads == t])
            for t in sorted(threads.dropna().unique())]


def seed_claims(frames: dict[str, pd.DataFrame] | pd.DataFrame,
                counts: Iterable[str] | None = None) -> pd.DataFrame:
    """The seed's two sentences judged against every data set, as ``REPORT.md`` judges them
    (:func:`arch_sim.claims.judge_old` / :func:`~arch_sim.claims.judge_new`).

    One row per data set (:func:`data_sets`), old-design shape (the thread-per-request rows of
    one ``threads`` value) and count (``server``: the server's own switches; ``cpu``: every
    switch on its CPUs, idle included):

    * ``old_peak_per_s``, ``old_at_rps``, ``old_holds`` - "15000 reschedules per second was no
      exception": the peak reschedules/s over the loads, held when in 10,000-20,000;
    * ``new_worst_per_request``, ``new_at_rps``, ``new_holds`` - "over 2000 requests per second
      ... schedules hardly at all": the state-group's worst reschedules per request at the
      points above 2,000 achieved requests/s, held when <= 0.05;
    * ``old`` / ``new`` - the same as a sentence.  ``*_holds`` is None where there is nothing
      to judge (a count the data has not, no point above 2,000 requests/s).
    """
    from arch_sim import claims

    counts = list(claims.COUNTS if counts is None else counts)
    rows = []
    for label, df in data_sets(frames):
        new = df[df["arch"] == "state-group"]
        shapes = _old_shapes(df) or ([("-", df.iloc[0:0])] if not new.empty else [])
        for shape, old in shapes:
            for count in counts:
                o = claims.judge_old(old, count)
                n = claims.judge_new(new, count)
                if o.holds is None and n.holds is None and (
                        claims.COUNTS[count][0] not in df.columns
                        or df[claims.COUNTS[count][0]].isna().all()):
                    continue  # this count is not in the data at all
                rows.append({
                    "data": label, "shape": shape, "count": count,
                    "old_peak_per_s": o.value, "old_at_rps": o.at_rps, "old_holds": o.holds,
                    "new_worst_per_request": n.value, "new_at_rps": n.at_rps,
                    "new_holds": n.holds,
                    "old": o.text() if not old.empty else "no thread-per-request rows",
                    "new": n.text() if not new.empty else "no state-group rows",
                })
    columns = ["data", "shape", "count", "old_peak_per_s", "old_at_rps", "old_holds",
               "new_worst_per_request", "new_at_rps", "new_holds", "old", "new"]
    return pd.DataFrame(rows, columns=columns)


POINT_COLUMNS = ("rps", "reschedules_per_s", "reschedules_per_request", "cpu_switches_per_s",
                 "cpu_switches_per_request", "cpu_us_per_request", "lat_p99_ms")


def points_table(df: pd.DataFrame, columns: Iterable[str] = POINT_COLUMNS) -> pd.DataFrame:
    """Means over repetitions per design shape (``state-group``, ``thread-per-request, pool of
    64``...) and offered load (``200``, ``max`` for unpaced), in order of shape and load."""
    from arch_sim.fidelity import load_label, shape_label

    threads = pd.to_numeric(df["threads"], errors="coerce") if "threads" in df.columns \
        else pd.Series(np.nan, index=df.index)
    shapes = [shape_label(a, t) for a, t in zip(df["arch"], threads, strict=True)]
    order = df.assign(shape=shapes, load=df["target_rps"].map(load_label),
                      _t=df["target_rps"].fillna(np.inf))
    # the old design first (thread-per-request sorts after state-group), then by load
    order = order.sort_values(["arch", "shape", "_t"], ascending=[False, True, True])
    cols = [c for c in columns if c in df.columns]
    return order.groupby(["shape", "load"], sort=False)[cols].mean(numeric_only=True)


def replay(sim_dir: str | os.PathLike[str], points: int = 2,
           archs: Iterable[str] | None = None) -> pd.DataFrame:
    """Re-simulate some committed simulated rows beside their committed values
    (:func:`arch_sim.replays.replay`)."""
    from arch_sim import replays

    return replays.replay(sim_dir, points, archs)
