"""Replaying committed simulated rows: re-simulate some of them and put each beside its committed
value.  The models are deterministic, so every replayed point should be the same; one that is
not says the models (or the shipped presets) changed since the run was made.

    >>> from arch_sim import results
    >>> results.replay("results/<run>/simulated-host", points=2)   # doctest: +SKIP

:func:`replay` is also reachable as ``arch_sim.results.replay``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arch_sim import schema
from arch_sim.results import meta

COMPARED = ("rps", "reschedules_per_s", "reschedules_per_request", "cpu_switches_per_request",
            "lat_p99_ms", "cpu_util")


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


def _none(value: Any) -> Any:
    """None for NaN / NA cells, the value otherwise (numpy scalars made plain)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _params_resolver(folder: Path):
    """row -> the ModelParams that produced it, for a sub-folder of a reproduction: the eras
    (their presets), the sensitivity variants (linux-2.2-1999 changed as the variant says) and
    the host model (the run's own ``host.toml``)."""
    from arch_sim import eras
    from arch_sim.models import load_preset

    era_presets = dict(eras.ERAS)
    variants = {label: change for label, _, change, _ in eras.VARIANTS}
    cache: dict[tuple, Any] = {}

    def resolve(row: pd.Series) -> Any:
        era, variant = _none(row.get("era")), _none(row.get("variant"))
        preset = str(row["preset"])
        key = (era, variant, preset)
        if key not in cache:
            if variant is not None:
                if variant not in variants:
                    raise ValueError(f"unknown sensitivity variant {variant!r}")
                base = load_preset("linux-2.2-1999")
                cache[key] = variants[variant](base).replace(name=f"{base.name}: {variant}")
            elif era is not None:
                cache[key] = load_preset(era_presets.get(era, preset))
            else:
                local = [f / f"{preset}.toml" for f in (folder, folder.parent)]
                found = [p for p in local if p.is_file()]
                cache[key] = load_preset(found[0] if found else preset)
        return cache[key]

    return resolve


def _job_from_row(row: pd.Series, params: Any) -> dict[str, Any]:
    """The simulate_point keywords that made a simulated row (everything the row records)."""
    threads = _none(row.get("threads")) if row["arch"] == "thread-per-request" else None
    shapes = {k: _none(row.get(k)) for k in ("workers", "stage_threads")
              if _none(row.get(k)) is not None}
    if "workers" in shapes:
        shapes["workers"] = int(shapes["workers"])
    return {**shapes,
        "arch": row["arch"], "params": params, "target_rps": _none(row["target_rps"]),
        "workload": _none(row.get("workload")), "connection": _none(row.get("connection_mode")),
        "connections": None if _none(row.get("connections")) is None else int(
            row["connections"]),
        "requests": int(row["requests"]), "warmup": int(row["warmup"]),
        "seed": int(row["seed"]), "rep": int(row["rep"]),
        "cpus": None if _none(row.get("cpus")) is None else int(row["cpus"]),
        "threads": None if threads is None else int(threads),
        "file_sizes": _none(row.get("file_sizes")),
        "bench_window_s": _none(row.get("bench_window_s")),
    }


def _pick(frame: pd.DataFrame, points: int, group: list[str]) -> pd.DataFrame:
    """Up to *points* load points (repetition 0) of each group, spread over its loads."""
    chosen = []
    rep0 = frame[frame["rep"] == 0]
    for _, sub in rep0.groupby(group, sort=False, dropna=False):
        sub = sub.assign(_order=sub["target_rps"].fillna(np.inf)).sort_values("_order")
        picks = np.unique(np.linspace(0, len(sub) - 1, min(points, len(sub))).round())
        chosen.append(sub.iloc[[int(i) for i in picks]].drop(columns="_order"))
    return pd.concat(chosen) if chosen else rep0.iloc[0:0]


def _compare(item: dict[str, Any], committed: Any, now: dict[str, Any]) -> dict[str, Any]:
    same = True
    for col in COMPARED:
        if col not in now or col not in committed:
            continue
        a, b = float(committed[col]), float(now[col])
        item[f"{col} (committed)"] = a
        item[f"{col} (now)"] = b
        same &= bool(np.isclose(a, b, rtol=1e-9, atol=0.0) or (np.isnan(a) and np.isnan(b)))
    item["same"] = same
    item["wall_s"] = now.get("wall_s", math.nan)
    return item


def replay(sim_dir: str | os.PathLike[str], points: int = 2,
           archs: Iterable[str] | None = None) -> pd.DataFrame:
    """Re-simulate *points* load points (per series, repetition 0) of a folder of simulated
    rows and put each beside the committed row.

    *sim_dir* is an ``arch-sim simulate`` run folder (replayed from its meta.json: the recorded
    preset, arguments and seeds) or a sub-folder of a reproduction: ``simulated-eras``,
    ``sensitivity`` or ``simulated-host`` (or a ``simulate --like`` run), replayed from what
    each row records (architecture, shape, load, workload, connections, CPUs, file sizes,
    requests, warm-up, seed) with the preset that produced it: the era's preset, the
    sensitivity variant of linux-2.2-1999, the run's ``host.toml``, or (``--like``) the preset
    its meta.json records.  The shipped presets are read as they are now (a reproduction
    records their names, not their contents).

    ``same`` is True where every compared column agrees to 1e-9 (relative): the figures are
    computed, not drawn.  A difference means the models - or, for the eras and the sensitivity
    variants, the shipped presets - changed since the run was made.
    """
    from arch_sim.sweep import run_jobs

    sim_dir = Path(sim_dir)
    info = meta(sim_dir)
    wanted = set(archs) if archs is not None else None
    like = info.get("kind") == "simulate" and bool(info.get("args", {}).get("like"))
    if info.get("kind") == "simulate" and "args" in info and not like:
        return _replay_simulate(sim_dir, info, points, wanted)
    reference = schema.load(sim_dir)
    reference = reference[reference["source"] == "simulated"]
    if wanted is not None:
        reference = reference[reference["arch"].isin(wanted)]
    if reference.empty:
        raise ValueError(f"{sim_dir} has no simulated rows to replay")
    group = [c for c in ("era", "variant", "preset", "regime", "arch", "threads", "workload",
                         "connection_mode") if c in reference.columns]
    chosen = _pick(reference, points, group)
    # a `simulate --like` run mirrors measured points: its rows say what ran, its meta the preset
    recorded = params_from_meta(info) if like else None
    resolve = (lambda _row: recorded) if like else _params_resolver(sim_dir)
    jobs = [_job_from_row(row, resolve(row)) for _, row in chosen.iterrows()]
    rows = run_jobs(jobs, workers=1, progress=False)
    out = []
    for (_, ref), job, new in zip(chosen.iterrows(), jobs, rows, strict=True):
        item: dict[str, Any] = {c: ref[c] for c in ("era", "variant") if c in ref.index}
        item.update({"preset": ref["preset"], "arch": job["arch"], "threads": job["threads"],
                     "target_rps": job["target_rps"], "seed": job["seed"]})
        out.append(_compare(item, ref, new))
    return pd.DataFrame(out)


def _replay_simulate(sim_dir: Path, info: dict[str, Any], points: int,
                     wanted: set[str] | None) -> pd.DataFrame:
    """:func:`replay` of an ``arch-sim simulate`` folder, planned from its meta.json."""
    from arch_sim.sweep import plan_options as plan
    from arch_sim.sweep import run_jobs

    params = params_from_meta(info)
    reference = schema.load(sim_dir)
    jobs = [j for j in plan(argparse.Namespace(**info["args"]), params) if j["rep"] == 0]
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
        item: dict[str, Any] = {"arch": job["arch"], "target_rps": load, "seed": job["seed"]}
        out.append(_compare(item, ref.iloc[0], new))
    return pd.DataFrame(out)
