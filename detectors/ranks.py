"""One-sided Mann-Whitney U against a sample sorted once.

``scipy.stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")``
ranks the pooled sample on every call.  Here ``y`` (a reference tested against many
windows) comes sorted, and only ``x`` is sorted per call; the rank sum of ``x`` and
the tie term are counted from the two sorted samples.  Average ranks are
half-integers and the tie term an integer, exact in float64 at any sample size this
package sees (below 2**52), so scipy's sums of them are these exact values whatever
their order; the rest repeats scipy's arithmetic step by step, so statistic and
p-value are the same floats.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs: ``np.unique(values,
    return_counts=True)`` without its sort (the first of each run of equal values)."""
    if values.size == 0:
        return values, np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    return values[starts], np.diff(np.append(starts, values.size))


def tie_term(sorted_values: np.ndarray) -> int:
    """Sum of t**3 - t over the runs of equal values of a sorted sample."""
    _, t = runs(sorted_values)
    t = t.astype(np.int64)
    return int((t**3 - t).sum())


def mann_whitney_greater(x: np.ndarray, y_sorted: np.ndarray, y_ties: int | None = None
                         ) -> tuple[float, float]:
    """U1 and the p-value of ``mannwhitneyu(x, y, alternative="greater",
    method="asymptotic")`` (continuity corrected) for ``y_sorted = np.sort(y)``;
    ``y_ties``: :func:`tie_term` of it, when known.  No NaN, neither sample empty."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0 or y_sorted.size == 0:
        raise ValueError("`x` and `y` must be of nonzero size.")
    if np.isnan(x).any() or np.isnan(y_sorted).any():
        raise ValueError("`x` and `y` must not contain NaNs.")
    xv, cx = runs(np.sort(x))
    cx = cx.astype(np.int64)
    lo = np.searchsorted(y_sorted, xv, side="left")
    cy = np.searchsorted(y_sorted, xv, side="right") - lo
    below = lo + (np.cumsum(cx) - cx)  # pooled values below each distinct x value
    t = cx + cy
    # each of the cx copies has the average rank below + 1 + (t - 1) / 2
    r1_twice = int((cx * (2 * below + t + 1)).sum())
    ties = (tie_term(y_sorted) if y_ties is None else y_ties) + int((t**3 - t - cy**3 + cy).sum())
    n1, n2 = int(x.size), int(y_sorted.size)
    u1 = np.float64(r1_twice / 2) - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    n = n1 + n2
    s = np.sqrt(n1 * n2 / 12 * ((n + 1) - np.float64(ties) / (n * (n - 1))))
    numerator = u1 - mu
    numerator -= 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        z = numerator / s
    p = np.clip(special.ndtr(-z), 0.0, 1.0)
    return float(u1), float(p)
