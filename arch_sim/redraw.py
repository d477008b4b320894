"""Redraw every figure of an existing results folder from its CSVs: ``arch-sim redraw``.

``arch-sim redraw results/NAME [results/NAME ...] [--out DIR] [--style paper|slides]``

A figure is a view of a run's CSVs, so a better figure (or the slides style) needs no new
measurement.  What a folder holds decides what is drawn - the same figures the command that
wrote it drew, by the same functions:

* an ``arch-sim reproduce`` folder (meta ``kind`` reproduce): :func:`reproduce_figures` from
  ``measured-*/``, ``simulated-host/``, ``eras.csv`` and ``sensitivity.csv`` (a figure whose
  inputs are missing is skipped), then every sub-folder with a ``measurements.csv`` (the
  ``measured-*`` sweeps, whose figures ``arch-sim bench`` drew; the simulated sub-folders
  have none);
* a peers folder (``peers.csv``, from ``benchmarks/servers.py``): ``cpu_per_request``;
* a run folder (``measurements.csv`` / ``simulated.csv``: bench, simulate):
  :func:`arch_sim.plots.draw_all`.

Figures go back into the folder, or into ``--out`` (``OUT/<folder name>`` when several folders
are redrawn; a reproduce folder's sub-folders go to ``OUT/<sub-folder>``).  Nothing is
measured or simulated again.  Redrawn in place, a folder whose ``meta.json`` keeps a ``notes``
list (bench runs) gets one note saying so, with the code's commit; no other field changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from arch_sim import plots, plots_peers, plots_seed, plotstyle, runinfo, schema
from arch_sim.argtypes import UsageError, check_out_dir
from arch_sim.compare import LIKE_CSV
from arch_sim.plots_archs import architectures
from arch_sim.regimes import REGIMES
from arch_sim.results import kind_of

#: how the note a redraw leaves in meta.json starts (a later redraw replaces it)
NOTE_PREFIX = "figures redrawn from the CSVs by `arch-sim redraw`"


def reproduce_figures(measured: dict[str, pd.DataFrame], sim_host: pd.DataFrame | None,
                      era_table: pd.DataFrame | None, sens_table: pd.DataFrame | None,
                      style: str = "paper") -> dict[str, Figure]:
    """The figures of ``arch-sim reproduce`` by file name; those whose inputs are missing (no
    real sweeps without wrk, no lifecycle counters in older runs) are left out."""
    figures: dict[str, Figure] = {}
    if "seed" in measured:
        figures["seed_regime"] = plots_seed.seed_regime(measured["seed"], style=style)
    if sim_host is not None:
        for regime, rows in measured.items():
            model = sim_host[sim_host["regime"] == regime]
            figures[f"overlay_{regime}"] = plots.overlay_host(rows, model, style=style)
    if measured and _has_state_counters(measured):
        rows = pd.concat(measured.values(), ignore_index=True)
        figures["states"] = plots_seed.per_state(rows, sim_host, style=style)
    if era_table is not None:
        figures["eras"] = plots_seed.eras(era_table, style=style)
    if sens_table is not None:
        figures["sensitivity"] = plots_seed.sensitivity(sens_table, style=style)
    return figures


def _has_state_counters(measured: dict[str, pd.DataFrame]) -> bool:
    from real_servers.core.lifecycle import moved_column

    return any(moved_column(0) in df.columns and df[moved_column(0)].notna().any()
               for df in measured.values())


def _table(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def redraw_reproduce(folder: Path, out: Path, style: str = "paper") -> list[Path]:
    measured = {regime: schema.load(folder / f"measured-{regime}", warn=None)
                for regime in REGIMES if (folder / f"measured-{regime}").is_dir()}
    host = folder / "simulated-host"
    sim_host = schema.load(host, warn=None) if host.is_dir() else None
    figures = reproduce_figures(measured, sim_host, _table(folder / "eras.csv"),
                                _table(folder / "sensitivity.csv"), style=style)
    paths = plots.save_all(figures, out)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / "measurements.csv").exists():  # bench drew its three figures there
            paths += redraw(sub, out / sub.name, style=style)
    return paths


def redraw(folder: str | Path, out: str | Path | None = None,
           style: str = "paper") -> list[Path]:
    """Redraw the figures of one results folder (see the module doc); returns the files
    written.  A folder with nothing to draw raises FileNotFoundError."""
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    if not folder.is_dir():
        raise FileNotFoundError(f"no such results folder: {folder}")
    if kind_of(folder).startswith("reproduce"):
        written = redraw_reproduce(folder, out, style=style)
    elif (folder / "peers.csv").exists():
        fig = plots_peers.cpu_per_request(pd.read_csv(folder / "peers.csv"), style=style)
        written = plots.save(fig, out, "cpu_per_request")
    elif any((folder / name).exists() for name in ("measurements.csv", "simulated.csv")):
        df = schema.load(folder, warn=None)
        written = plots.draw_all(df, out, style=style)
        measured = _like_runs(folder)
        if measured is not None:  # a `simulate --like` run: measured beside modelled
            both = pd.concat([measured, df], ignore_index=True)
            written += plots.save_all({"architectures": architectures(both, style=style)}, out)
    else:
        raise FileNotFoundError(f"nothing to redraw in {folder}: no measurements.csv, "
                                f"simulated.csv, peers.csv or reproduce run")
    if out.resolve() == folder.resolve():
        note_redraw(folder, style)
    return written


def _like_runs(folder: Path) -> pd.DataFrame | None:
    """The measured rows a ``simulate --like`` run was compared with (the copy it keeps,
    :data:`arch_sim.compare.LIKE_CSV`), or None for any other folder."""
    path = folder / LIKE_CSV
    return schema.load(path, warn=None) if path.exists() else None


def note_redraw(folder: Path, style: str) -> bool:
    """Record an in-place redraw in the folder's meta.json when its format has a ``notes``
    list; an earlier redraw note is replaced, everything else is written back unchanged
    (JSON floats round-trip exactly).  Returns whether a note was written."""
    path = folder / "meta.json"
    if not path.exists():
        return False
    meta = json.loads(path.read_text())
    if not isinstance(meta.get("notes"), list):
        return False
    git = runinfo.git_commit()
    code = git.get("commit") or "unknown"
    # the figures just written are uncommitted changes too; only changes to code count
    if any(not str(f).startswith("results/") for f in git.get("changed", [])):
        code += " (with uncommitted changes)"
    note = f"{NOTE_PREFIX} (style {style}) on {runinfo.now_iso()[:10]}, code at commit {code}"
    meta["notes"] = [n for n in meta["notes"] if not str(n).startswith(NOTE_PREFIX)] + [note]
    runinfo.write_json_atomic(path, meta)
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="results folders: bench, simulate, reproduce or peers runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the figures here instead of back into each folder "
                             "(OUT/<folder name> when several folders are given)")
    plotstyle.add_style_argument(parser)


def run(args: argparse.Namespace) -> int:
    """``arch-sim redraw RUN_DIR...``: every folder and output folder is checked before any is
    drawn."""
    folders: list[Path] = args.run_dirs
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"--redraw takes results folders; {folder} is not one")
    if args.out is None:
        outs = folders
    elif len(folders) == 1:
        outs = [args.out]
    else:
        outs = [args.out / folder.resolve().name for folder in folders]
    for out in outs:
        check_out_dir(out)
    for folder, out in zip(folders, outs, strict=True):
        try:
            written = redraw(folder, out, style=args.style)
        except (FileNotFoundError, schema.SchemaError) as exc:
            raise UsageError(str(exc)) from None
        for path in written:
            print(path)
    return 0
