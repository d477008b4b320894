"""Measured beside modelled, for every architecture of a bench run: what
``arch-sim simulate --like RUN_DIR`` adds to a simulate run.

:func:`measured_rows` reads a bench run (or several: a keep-alive one and a
connection-per-request one); :func:`arch_sim.fidelity.simulate_like` plans the model's runs at
exactly its load points, for each of our architectures in it (peers have no model); and
:func:`write_comparison` writes, beside the simulate run's own files:

* ``architectures.png`` / ``.svg`` - reschedules, CPU and p99 latency per request against
  load, every server measured and each of ours modelled (:mod:`arch_sim.plots_archs`);
* ``architectures.csv`` / ``architectures.md`` - the same numbers as a table;
* ``fidelity.csv`` / ``fidelity.md`` - the reproduce report's rule at every measured point of
  our servers: ``|ln(simulated / measured)| <= ln 1.10`` or within 0.01 reschedules per request;
* ``like-measurements.csv`` - the measured rows compared with, so the folder stands alone
  (``arch-sim redraw`` draws the figure again from it).

Where the bench run timed the machine's reference work and the preset holds the calibration's
time for it (:mod:`arch_sim.machine_state`), :func:`machine_note` says when the two machines
were not the same - a model is not expected to predict counts taken on a machine running at
another speed than the one it was calibrated on; the note goes to the screen, ``fidelity.md``
and ``meta.json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from arch_sim import ALL_ARCHS, runinfo, schema
from arch_sim.argtypes import UsageError
from arch_sim.fidelity import fidelity, fidelity_markdown, headline, plan_like
from arch_sim.machine_state import speed_note
from arch_sim.models import ModelParams
from arch_sim.plots import save_all
from arch_sim.plots_archs import architectures, architectures_table, table_markdown
from arch_sim.repeatability import repeatability_markdown, self_agreement_markdown

#: the copy of the measured rows a ``--like`` run keeps beside its own
LIKE_CSV = "like-measurements.csv"


def measured_rows(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """The measured rows of one or more bench runs; a folder without them is a UsageError."""
    frames = []
    for path in run_dirs:
        try:
            df = schema.load(path)
        except (FileNotFoundError, schema.SchemaError) as exc:
            raise UsageError(f"--like {path}: {exc}") from None
        df = df[df["source"] == "measured"]
        if df.empty:
            raise UsageError(f"--like {path}: no measured rows there; give an `arch-sim bench` "
                             "run folder")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def modelled_archs(measured: pd.DataFrame) -> list[str]:
    """Our architectures among the measured servers, in arch-sim's order (peers: none)."""
    present = set(measured["arch"].astype(str))
    return [a for a in ALL_ARCHS if a in present]


def plan(measured: pd.DataFrame, params: ModelParams, args: argparse.Namespace
         ) -> list[dict[str, Any]]:
    """The simulate command's jobs for ``--like``: the measured points of each of our
    architectures, ``--reps`` repetitions of ``--requests`` each, seeded from ``--seed``."""
    if not modelled_archs(measured):
        raise UsageError("--like: those runs measured none of our architectures "
                         f"({', '.join(ALL_ARCHS)}); peers have no model")
    return plan_like(measured, params, reps=args.reps, requests=args.requests, seed=args.seed)


def reference_times(measured: pd.DataFrame) -> pd.Series:
    """The machine's reference times a bench run recorded beside its points (``reference_us``,
    :mod:`arch_sim.machine_state`); empty for a run that did not (older runs)."""
    if "reference_us" not in measured.columns:
        return pd.Series(dtype=float)
    return pd.to_numeric(measured["reference_us"], errors="coerce").dropna()


def machine_note(measured: pd.DataFrame, params: ModelParams) -> str | None:
    """A line when the bench's machine ran the reference work at another speed than the
    preset's calibration (the median over the bench's points), else None - also when either
    did not time it (older runs and presets)."""
    times = reference_times(measured)
    if times.empty:
        return None
    return speed_note(float(times.median()), params.reference_us, f"preset {params.name!r}")


def note_in_meta(meta_path: Path, measured: pd.DataFrame, files: Sequence[Path],
                 machine: str | None = None) -> None:
    """Record in the simulate run's meta.json which measured runs it mirrors, its files, and
    the :func:`machine_note` if there is one."""
    meta = json.loads(meta_path.read_text())
    meta["like"] = sorted(set(measured["run_id"].dropna().astype(str)))
    if machine:
        meta["machine_note"] = machine
    meta["files"] = sorted(set(meta.get("files", [])) | {p.name for p in files})
    runinfo.write_json_atomic(meta_path, meta)


def write_comparison(measured: pd.DataFrame, simulated: pd.DataFrame, out: Path,
                     style: str = "paper", figures: bool = True,
                     machine: str | None = None) -> list[Path]:
    """Write the figure, the table and the fidelity check of measured vs modelled into *out*
    (``machine``: a :func:`machine_note`, put at the head of fidelity.md)."""
    both = pd.concat([measured, simulated], ignore_index=True)
    # the measured rows it was compared with travel with the run, so it redraws on its own
    like = out / LIKE_CSV
    runinfo.write_atomic(like, lambda tmp: measured.to_csv(tmp, index=False))
    written: list[Path] = [like]
    if figures:
        written += save_all({"architectures": architectures(both, style=style)}, out)
    table = architectures_table(both)
    csv, md = out / "architectures.csv", out / "architectures.md"
    runinfo.write_atomic(csv, lambda tmp: table.to_csv(tmp, index=False))
    runinfo.write_atomic(md, lambda tmp: tmp.write_text(table_markdown(table)))
    written += [csv, md]
    check = fidelity(measured, simulated)
    fcsv, fmd = out / "fidelity.csv", out / "fidelity.md"
    runinfo.write_atomic(fcsv, lambda tmp: check.to_csv(tmp, index=False))
    own = self_agreement_markdown(measured)  # with two or more windows a point
    again = repeatability_markdown(measured, simulated)  # with two or more bench runs
    runinfo.write_atomic(fmd, lambda tmp: tmp.write_text(
        f"Fidelity: {headline(check)}\n\n"
        + (f"**Warning:** {machine}.\n\n" if machine else "")
        + f"{fidelity_markdown(check)}\n"
        + (f"\n{own}" if own else "") + (f"\n{again}" if again else "")))
    written += [fcsv, fmd]
    return written
