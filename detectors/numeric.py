"""Numeric drift: two-sample Kolmogorov-Smirnov with an effect floor.

The KS distance is itself the effect size (the largest gap between the two
empirical CDFs), so ``min_effect`` reads as "at least 5 % of the mass moved".
Nulls are not drift: they are dropped here and watched by data-quality checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from detectors.result import TestResult, insufficient

MIN_N = 30


def finite_values(x: Any) -> np.ndarray:
    """The finite values of ``x`` as float64 (NaN, inf and None dropped), flattened."""
    arr = np.asarray(x)
    if arr.dtype == object:
        arr = np.array([np.nan if v is None else v for v in arr.ravel()], dtype=float)
    arr = np.asarray(arr, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def ks_test(reference: np.ndarray, current: np.ndarray, *, min_effect: float = 0.05,
            min_n: int = MIN_N) -> TestResult:
    if not 0.0 <= min_effect <= 1.0:
        raise ValueError(f"min_effect must be in [0, 1], got {min_effect!r}")
    ref, cur = finite_values(reference), finite_values(current)
    if ref.size < min_n or cur.size < min_n:
        return insufficient("ks", min_effect, int(ref.size), int(cur.size))
    res = stats.ks_2samp(ref, cur, method="asymp")
    d = float(res.statistic)
    return TestResult(
        "ks", d, float(res.pvalue), d, min_effect, int(ref.size), int(cur.size),
        details={"ref_mean": float(ref.mean()), "cur_mean": float(cur.mean()),
                 "ref_std": float(ref.std()), "cur_std": float(cur.std())},
    )
