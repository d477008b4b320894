"""Document roots for load: the SPECweb99 file set (arch_sim.specweb99), or a single 1 KB file.

One directory of that shape is generated with a fixed seed, so every run serves the same bytes.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from .. import specweb99

FILE_SETS = ("specweb99", "1k")
MANIFEST = "fileset.json"


@dataclass(frozen=True)
class FileSet:
    """A generated document root: its URLs with their request weights and sizes."""

    root: Path
    name: str
    urls: tuple[str, ...]
    weights: tuple[float, ...]
    sizes: tuple[int, ...]


def generate(root: str | os.PathLike[str], name: str = "specweb99", seed: int = 1999) -> FileSet:
    """Write the file set *name* under *root* (created if needed) and return its description."""
    if name not in FILE_SETS:
        raise ValueError(f"unknown file set {name!r}; choose one of {', '.join(FILE_SETS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    specs = _specs(name)
    urls, weights, sizes = [], [], []
    for rel, size, weight in specs:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(rng.randbytes(size))
        urls.append("/" + rel)
        weights.append(weight)
        sizes.append(size)
    (root / "index.html").write_text("<html><body><h1>arch-sim document root</h1></body></html>\n")
    fileset = FileSet(root, name, tuple(urls), tuple(weights), tuple(sizes))
    (root / MANIFEST).write_text(
        json.dumps({"name": name, "seed": seed, "urls": urls, "weights": weights, "sizes": sizes})
    )
    return fileset


def _specs(name: str) -> list[tuple[str, int, float]]:
    if name == "1k":
        return [("file_1k.bin", 1024, 1.0)]
    return specweb99.files()
