"""Categorical drift: chi-square homogeneity test, total-variation effect.

Categories too rare for the chi-square approximation (expected count < 5)
are pooled into one cell.  Categories that appear, or that held at least
1 % of the reference and vanish, are reported by name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
from scipy import special

from detectors.result import TestResult, insufficient

MIN_N = 30
MIN_EXPECTED = 5.0
VANISHED_MIN_SHARE = 0.01
MAX_LISTED = 5


def category_counts(values: np.ndarray) -> dict[str, int]:
    """Each category's count (None dropped, values as str), in sorted order."""
    arr = np.asarray(values, dtype=object)
    counted = Counter(arr.ravel().tolist())
    counted.pop(None, None)
    # str keys as numpy's unicode arrays hold them (no trailing NUL): np.unique's
    # categories and counts, without its conversion and sort of every value
    if all(type(c) is str and not c.endswith("\0") for c in counted):
        return dict(sorted(counted.items()))
    arr = arr[np.not_equal(arr, np.asarray(None, dtype=object))].astype(str)
    cats, counts = np.unique(arr, return_counts=True)
    return dict(zip(cats.tolist(), counts.tolist(), strict=True))


def chi2_test(reference: np.ndarray | Mapping[str, int], current: np.ndarray, *,
              min_effect: float = 0.05, min_n: int = MIN_N) -> TestResult:
    """Chi-square homogeneity test; the reference may be given as its counts
    (:func:`category_counts`), counted once for many windows."""
    if not 0.0 <= min_effect <= 1.0:
        raise ValueError(f"min_effect must be in [0, 1], got {min_effect!r}")
    rc = reference if isinstance(reference, Mapping) else category_counts(reference)
    cc = category_counts(current)
    rn, cn = sum(rc.values()), sum(cc.values())
    if rn < min_n or cn < min_n:
        return insufficient("chi2", min_effect, rn, cn)
    cats = sorted(set(rc) | set(cc))
    table = np.array([[rc.get(c, 0) for c in cats], [cc.get(c, 0) for c in cats]], dtype=float)
    p_ref, p_cur = table[0] / rn, table[1] / cn
    tv = 0.5 * float(np.abs(p_ref - p_cur).sum())
    new = sorted((c for c in cc if c not in rc), key=lambda c: -cc[c])[:MAX_LISTED]
    vanished = sorted((c for c in rc if c not in cc and rc[c] / rn >= VANISHED_MIN_SHARE),
                      key=lambda c: -rc[c])[:MAX_LISTED]
    details = {"categories": len(cats), "new_categories": new, "vanished_categories": vanished}
    expected = table.sum(axis=0) * min(rn, cn) / (rn + cn)
    rare = expected < MIN_EXPECTED
    if rare.any():
        table = np.column_stack([table[:, ~rare], table[:, rare].sum(axis=1)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return TestResult("chi2", 0.0, 1.0, tv, min_effect, rn, cn, details=details)
    stat, p = chi2_homogeneity(table)
    return TestResult("chi2", stat, p, tv, min_effect, rn, cn, details=details)


def chi2_homogeneity(table: np.ndarray) -> tuple[float, float]:
    """Statistic and p-value of ``scipy.stats.chi2_contingency(table, correction=False)``
    for a 2 x k table of counts (k >= 2, no empty row or column), by scipy's own
    arithmetic: expected counts from the margins, Pearson's terms summed in the
    table's order, ``chdtrc`` at k - 1 degrees of freedom; without its wrappers."""
    observed = np.asarray(table, dtype=np.float64)
    if observed.ndim != 2 or observed.shape[0] != 2 or observed.shape[1] < 2:
        raise ValueError(f"need a 2 x k table with k >= 2, got shape {observed.shape}")
    if (observed < 0).any():
        raise ValueError("All values in `observed` must be nonnegative.")
    expected = (observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True)
                / observed.sum())
    if (expected == 0).any():
        raise ValueError("a row or column of the table is empty")
    stat = ((observed - expected) ** 2 / expected).ravel().sum()
    dof = np.float64(observed.shape[1] - 1)
    return float(stat), float(special.chdtrc(dof, stat))
