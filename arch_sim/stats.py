"""Confidence intervals over repetitions (Student's t; no scipy needed).

>>> round(t_quantile(4), 3)        # 5 repetitions -> 4 degrees of freedom
2.776
>>> mean, half = mean_ci([1.0, 2.0, 3.0])
>>> mean, round(half, 3)
(2.0, 2.484)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

#: two-sided 95% Student t quantiles (t_{0.975, df}) for df = 1..30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
#: beyond 30 degrees of freedom: 40, 60, 120, infinity
_T975_TAIL = ((40, 2.021), (60, 2.000), (120, 1.980))


def t_quantile(df: int) -> float:
    """t_{0.975} for ``df`` degrees of freedom (the multiplier of a 95% CI)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    for limit, value in _T975_TAIL:
        if df <= limit:
            return value
    return 1.960


def mean_ci(values: Iterable[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% CI) of independent repetitions; NaNs are ignored."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan
    half = t_quantile(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return float(x.mean()), half


def summarize(df: pd.DataFrame, by: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """One row per group of ``by``: ``COL`` (mean), ``COL_ci`` (95% half-width), ``n``."""
    rows = []
    for key, group in df.groupby(list(by), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        row["n"] = len(group)
        for col in columns:
            row[col], row[f"{col}_ci"] = mean_ci(pd.to_numeric(group[col], errors="coerce"))
        rows.append(row)
    return pd.DataFrame(rows)
