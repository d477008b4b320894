"""Strip outputs from the committed notebooks, or check that none are left.

    .venv/bin/python notebooks/strip_outputs.py          # strip every notebooks/*.ipynb in place
    .venv/bin/python notebooks/strip_outputs.py --check  # exit 1 if any carries outputs

Committed notebooks carry no outputs, so none can disagree with the code: run them (``make
lab``, then Run All) to see the figures.  Also pins the kernel to ``python3``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What makes *nb* unfit to commit (empty when it is clean)."""
    found = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        found.append("kernel is not python3")
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    outputs = [i for i, c in code if c.get("outputs")]
    counts = [i for i, c in code if c.get("execution_count") is not None]
    if outputs:
        found.append(f"outputs in cells {outputs}")
    if counts:
        found.append(f"execution counts in cells {counts}")
    if "widgets" in nb.metadata:
        found.append("saved widget state")
    return found


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.pop("widgets", None)  # saved ipywidgets state is an output too
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if unclean")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all here)")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(HERE.glob("*.ipynb"))
    bad = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        found = problems(nb)
        if args.check:
            if found:
                bad += 1
                print(f"{path}: {'; '.join(found)}")
        else:
            before = nbformat.writes(nb)
            after = nbformat.writes(strip(nb))
            if after != before:
                path.write_text(after)
                print(f"stripped {path}")
    if bad:
        print(f"{bad} notebook(s) need `python notebooks/strip_outputs.py`", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
