"""The SPECweb99 static file set, defined once: the real servers' document root is generated
from it and the models draw reply sizes from it (docs/SOURCES.md [WL-specweb99]).

Four classes of nine files each, file ``i`` of a class being ``i`` times its base size; the
share of requests per class is SPECweb99's, spread evenly over its nine files (SPECweb99 itself
weights the files within a class - not reproduced here).
"""

from __future__ import annotations

#: (class name, base size in bytes, share of requests)
CLASSES: tuple[tuple[str, int, float], ...] = (
    ("class0", 102, 0.35),  # 0.1-0.9 KB
    ("class1", 1024, 0.50),  # 1-9 KB
    ("class2", 10 * 1024, 0.14),  # 10-90 KB
    ("class3", 100 * 1024, 0.01),  # 100-900 KB
)
FILES_PER_CLASS = 9


def files() -> list[tuple[str, int, float]]:
    """(relative path, size in bytes, share of requests) of every file."""
    return [(f"{cls}/{cls}_{i}.bin", base * i, share / FILES_PER_CLASS)
            for cls, base, share in CLASSES for i in range(1, FILES_PER_CLASS + 1)]


def mean_bytes() -> float:
    """The mean reply size a request draws, in bytes."""
    return sum(size * share for _, size, share in files())
