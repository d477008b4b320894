"""Committed reference runs under ``results/``: find the newest, load it, check it, replay it.

    >>> from arch_sim import results
    >>> run = results.latest("reproduce-full")          # doctest: +SKIP
    >>> frames = results.load_reference(run)             # doctest: +SKIP
    >>> sorted(frames)                                   # doctest: +SKIP
    ['fidelity', 'measured', 'simulated-1999', 'simulated-host', 'simulated-host-sweep']

Where ``results/`` is: ``$ARCH_SIM_RESULTS`` if set (a results folder, or one run folder), else
the checkout's ``results/`` beside the package, else ``./results`` or ``../results`` (a
notebook runs in ``notebooks/``).  A run folder is one with a ``meta.json``; its kind is the
meta's ``kind`` plus ``mode`` when there is one (``reproduce-full``, ``reproduce-quick``,
``bench``, ``simulate``), or else the start of its name.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arch_sim import schema

ENV = "ARCH_SIM_RESULTS"
SCHEMA_CSVS = {"measurements.csv": "measured", "simulated.csv": "simulated"}


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


def runs(kind: str = "reproduce-full", complete_only: bool = True) -> list[Path]:
    """Run folders of *kind* (a prefix: ``reproduce`` finds full and quick ones), newest first.

    With ``$ARCH_SIM_RESULTS`` pointing at one run folder, that folder is the only candidate
    (as long as its kind's first word matches: a quick reproduction stands in for a full one).
    """
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
    return sorted(found, key=lambda r: (_started(r), r.name), reverse=True)


def latest(kind: str = "reproduce-full") -> Path:
    """The newest complete run folder of *kind*, or :class:`NoReferenceRun` saying why."""
    found = runs(kind)
    if found:
        return found[0]
    where = ", ".join(
        str(p) + ("" if p.is_dir() else " (missing)") for p in search_path()
    ) or "no results/ folder found"
    raise NoReferenceRun(
        f"no complete {kind} run found (looked in: {where}). A reference run is made with "
        f"`make reproduce FULL=1` (arch-sim reproduce) and committed under results/; set "
        f"{ENV}=/path/to/results (or to one run folder) to use another."
    )


# -- loading ----------------------------------------------------------------------------------

def load_run(run: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Every schema CSV of a run folder, by part: ``measured`` / ``simulated`` for a bench or
    simulate folder, the sub-folder's name for a reproduction (``measured``,
    ``simulated-host``, ``simulated-1999``, ``simulated-host-sweep``), plus ``fidelity``."""
    run = Path(run)
    frames: dict[str, pd.DataFrame] = {}
    for name, part in SCHEMA_CSVS.items():
        if (run / name).is_file():
            frames[part] = schema.load(run / name)
    for sub in sorted(p for p in run.iterdir() if p.is_dir()):
        if any((sub / name).is_file() for name in SCHEMA_CSVS):
            frames[sub.name] = schema.load(sub)
    if (run / "fidelity.csv").is_file():
        frames["fidelity"] = pd.read_csv(run / "fidelity.csv")
    return frames


def load_reference(run: str | os.PathLike[str] | None = None,
                   kind: str = "reproduce-full") -> dict[str, pd.DataFrame]:
    """:func:`load_run` of *run*, or of :func:`latest` (*kind*) when *run* is None."""
    return load_run(latest(kind) if run is None else run)


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

def seed_claims(frames: dict[str, pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    """The seed's three claims next to what each data set shows (one row per claim and data).

    * old design: "15000 reschedules per second was no exception" - the peak reschedules/s
      of thread-per-request;
    * new design: "over 2000 requests per second ... schedules hardly at all" - the most
      reschedules/s, and per request, of state-group at >= 2,000 achieved requests/s;
    * new design: "interrupt-driven at low load, polling at high load" - state-group sleeps
      (blocking waits) per request at its lowest and its highest load.
    """
    from arch_sim.plots import SEED_NEW_HARDLY_ABOVE_RPS, SEED_OLD_RESCHEDULES_PER_S
    from arch_sim.stats import summarize

    if isinstance(frames, pd.DataFrame):
        frames = {"data": frames}
    out = []
    for part, df in frames.items():
        if "source" not in df.columns or "arch" not in df.columns:
            continue  # e.g. fidelity.csv
        for (source, preset), group in df.groupby(["source", "preset"], dropna=False):
            data = f"{part}: {source} [{preset}]"
            old = group[group["arch"] == "thread-per-request"]
            new = group[group["arch"] == "state-group"]
            point = [c for c in ("target_rps", "connections") if c in group.columns]
            if not old.empty:
                pts = summarize(old, point, ["rps", "reschedules_per_s"])
                peak = pts.loc[pts["reschedules_per_s"].idxmax()]
                out.append({
                    "claim": "old: '15000 reschedules per second was no exception'",
                    "data": data, "seed": SEED_OLD_RESCHEDULES_PER_S,
                    "value": float(peak["reschedules_per_s"]),
                    "detail": f"peak reschedules/s, at {peak['rps']:,.0f} requests/s"})
            if new.empty:
                continue
            cols = ["rps", "reschedules_per_s", "reschedules_per_request"]
            has_sleeps = "sleeps_per_request" in new.columns and new[
                "sleeps_per_request"].notna().any()
            if has_sleeps:
                cols.append("sleeps_per_request")
            pts = summarize(new, point, cols).sort_values("rps")
            above = pts[pts["rps"] >= SEED_NEW_HARDLY_ABOVE_RPS]
            if above.empty:
                value, detail = math.nan, "no state-group point at >= 2,000 requests/s"
            else:
                worst = above.loc[above["reschedules_per_s"].idxmax()]
                value = float(worst["reschedules_per_s"])
                detail = (f"most reschedules/s at >= 2,000 requests/s (at {worst['rps']:,.0f}/s:"
                          f" {worst['reschedules_per_request']:.3f} per request)")
            out.append({"claim": "new: 'over 2000 requests per second ... hardly at all'",
                        "data": data, "seed": math.nan, "value": value, "detail": detail})
            if has_sleeps and len(pts) >= 2:
                low, high = pts.iloc[0], pts.iloc[-1]
                out.append({
                    "claim": "new: 'interrupt-driven at low load, polling at high load'",
                    "data": data, "seed": math.nan,
                    "value": float(high["sleeps_per_request"]),
                    "detail": (f"sleeps per request: {low['sleeps_per_request']:.3f} at "
                               f"{low['rps']:,.0f}/s -> {high['sleeps_per_request']:.4f} at "
                               f"{high['rps']:,.0f}/s")})
    return pd.DataFrame(out, columns=["claim", "data", "seed", "value", "detail"])


# -- replaying a simulated run ----------------------------------------------------------------

COMPARED = ("rps", "reschedules_per_s", "reschedules_per_request", "lat_p99_ms", "cpu_util")


def params_from_meta(info: dict[str, Any]) -> Any:
    """The exact :class:`~arch_sim.models.ModelParams` a simulate run's meta.json recorded."""
    from arch_sim.models.params import SECTIONS, ModelParams

    contents = dict(info["preset"]["contents"])

    def unjson(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unjson(v) for k, v in value.items()}
        if isinstance(value, str) and value in ("inf", "-inf", "nan"):
            return float(value)
        return value

    sections = {key: cls(**{k: unjson(v) for k, v in contents.pop(key, {}).items()})
                for key, cls in SECTIONS.items()}
    return ModelParams(**{k: unjson(v) for k, v in contents.items()}, **sections)


def replay(sim_dir: str | os.PathLike[str], points: int = 2,
           archs: Iterable[str] | None = None) -> pd.DataFrame:
    """Re-simulate *points* load points (per arch, repetition 0) of a simulate run folder from
    its meta.json (same preset, arguments and seeds) and put each beside the committed row.

    ``same`` is True where every compared column agrees to 1e-9 (relative): the figures are
    computed, not drawn.  A difference means the models changed since the run was made.
    """
    from arch_sim.simulate import plan, run_jobs

    sim_dir = Path(sim_dir)
    info = meta(sim_dir)
    if info.get("kind") != "simulate" or "args" not in info:
        raise ValueError(f"{sim_dir} has no meta.json of an `arch-sim simulate` run")
    params = params_from_meta(info)
    reference = schema.load(sim_dir)
    jobs = [j for j in plan(argparse.Namespace(**info["args"]), params) if j["rep"] == 0]
    wanted = set(archs) if archs is not None else None
    chosen = []
    for arch in dict.fromkeys(j["arch"] for j in jobs):
        if wanted is not None and arch not in wanted:
            continue
        mine = [j for j in jobs if j["arch"] == arch]
        picks = np.unique(np.linspace(0, len(mine) - 1, min(points, len(mine))).round())
        chosen += [mine[int(i)] for i in picks]
    rows = run_jobs(chosen, workers=1, progress=False)
    out = []
    for job, new in zip(chosen, rows, strict=True):
        load = job["target_rps"]
        ref = reference[(reference["arch"] == job["arch"]) & (reference["rep"] == 0)]
        ref = ref[ref["target_rps"].isna()] if load is None else ref[
            np.isclose(ref["target_rps"], load)]
        if ref.empty:
            continue
        ref_row = ref.iloc[0]
        item: dict[str, Any] = {"arch": job["arch"], "target_rps": load, "seed": job["seed"]}
        same = True
        for col in COMPARED:
            a, b = float(ref_row[col]), float(new[col])
            item[f"{col} (committed)"] = a
            item[f"{col} (now)"] = b
            same &= bool(np.isclose(a, b, rtol=1e-9, atol=0.0) or (np.isnan(a) and np.isnan(b)))
        item["same"] = same
        item["wall_s"] = new.get("wall_s", math.nan)
        out.append(item)
    return pd.DataFrame(out)
