"""Data-quality tests: broken feeds rather than drifting populations.

* ``null_rate_test`` -- a feed starts sending nulls/missing fields: one-sided Fisher
  exact test of the current null rate against the reference's; effect = rise in rate.
* ``stuck_value_test`` -- one value (a stuck default: 0, -1, "unknown") takes over the
  current window.  The current mode is tested against its own reference share with a
  one-sided Fisher exact test, Bonferroni-corrected for having picked the mode among
  the pooled sample's distinct values (uncorrected, picking the largest of many
  categories makes stationary categorical windows "stuck").  Effect = the share the
  value gained (cur_share - ref_share), so a feature that was constant in the reference
  too, or a zero-inflated feature that stays zero-inflated, is not stuck.
* ``out_of_range_test`` -- current values outside the reference's [q_tail, q_{1-tail}]
  range.  The range is taken at reference order statistics X_(r), X_(n+1-r),
  r = max(1, round(tail n)), so the expected share outside is 2r / (n + 1) and the count
  of current values outside has an exact, distribution-free null law (negative
  hypergeometric: the current values fall into the n + 1 gaps between reference values
  exchangeably).  A binomial test against 2 tail would ignore that the range itself is
  estimated from a handful of extreme reference values and over-reject.
* ``type_change_test`` -- values whose JSON type disagrees with the feature's type.
  A correct feed sends none, so any mismatch is certain evidence (exact binomial test
  against a zero rate: p = 0 if any, else 1); the share floor decides whether it pages.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.hypergeom import fisher_greater, hypergeom_cdf
from detectors.numeric import SortedSample
from detectors.result import TestResult, check_min_n, insufficient

MIN_N = 30


def _check_counts(k: int, n: int, what: str) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= {what} <= n, got {what}={k!r} n={n!r}")


def _check_share(name: str, value: float, *, open_low: bool = False) -> None:
    ok = (0.0 < value <= 1.0) if open_low else (0.0 <= value <= 1.0)
    if not ok:
        bound = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")


def null_rate_test(ref_nulls: int, ref_n: int, cur_nulls: int, cur_n: int, *,
                   min_increase: float = 0.05, min_n: int = MIN_N) -> TestResult:
    """One-sided Fisher exact test: is the current null rate higher than the reference's?"""
    _check_counts(ref_nulls, ref_n, "ref_nulls")
    _check_counts(cur_nulls, cur_n, "cur_nulls")
    ref_nulls, ref_n, cur_nulls, cur_n = int(ref_nulls), int(ref_n), int(cur_nulls), int(cur_n)
    _check_share("min_increase", min_increase)
    check_min_n(min_n)
    if ref_n < min_n or cur_n < min_n:
        return insufficient("null_rate", min_increase, ref_n, cur_n)
    ref_rate, cur_rate = ref_nulls / ref_n, cur_nulls / cur_n
    p = fisher_greater(cur_nulls, cur_n - cur_nulls, ref_nulls, ref_n - ref_nulls)
    rise = cur_rate - ref_rate
    return TestResult("null_rate", rise, min(p, 1.0), rise, min_increase, ref_n, cur_n,
                      details={"ref_rate": ref_rate, "cur_rate": cur_rate})


def _is_numeric(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "fiub"


def _values(x: Any, numeric: bool) -> np.ndarray:
    arr = np.asarray(x).ravel()
    if numeric:
        arr = arr.astype(float)
        return arr[np.isfinite(arr)]
    arr = arr.astype(object)
    # None and NaN (NaN != NaN) are missing
    keep = np.not_equal(arr, np.asarray(None, dtype=object)) & (arr == arr)
    return arr[keep.astype(bool)].astype(str)


def _distinct_pooled(ref: SortedSample, cur_values: np.ndarray) -> int:
    """``np.unique(np.concatenate([ref, cur])).size`` for the distinct values of ``cur``."""
    n, values = ref.size, ref.values
    pos = np.searchsorted(values, cur_values)
    found = pos < n
    found[found] = values[pos[found]] == cur_values[found]
    return ref.distinct + int(np.count_nonzero(~found))


def _sorted(values: np.ndarray) -> SortedSample:
    """Finite ``values`` sorted, for the counts alone (no mean or spread)."""
    return SortedSample(np.sort(values), float("nan"), float("nan"))


def stuck_value_test(reference: Any, current: Any, *, min_share: float = 0.5,
                     min_n: int = MIN_N) -> TestResult:
    """Has one value taken over the current window far beyond its reference share?

    ``min_share`` floors the gain in share (cur_share - ref_share).  Numeric arrays are
    compared as floats (NaN/inf dropped), anything else as strings (None/NaN dropped).
    Either sample may be given already sorted (:class:`SortedSample`: numeric).
    """
    _check_share("min_share", min_share, open_low=True)
    check_min_n(min_n)
    prepared = isinstance(reference, SortedSample) or isinstance(current, SortedSample)
    r_arr = reference if isinstance(reference, SortedSample) else np.asarray(reference)
    c_arr = current if isinstance(current, SortedSample) else np.asarray(current)
    numeric = all(isinstance(a, SortedSample) or _is_numeric(a) for a in (r_arr, c_arr))
    if prepared and not numeric:
        raise ValueError("a sorted sample is numeric: the other sample must be too")
    if numeric:  # sorted once, counted by runs (the same values np.unique finds)
        rs = r_arr if isinstance(r_arr, SortedSample) else _sorted(_values(r_arr, True))
        cs = c_arr if isinstance(c_arr, SortedSample) else _sorted(_values(c_arr, True))
        ref, cur = rs.values, cs.values
    else:
        ref, cur = _values(r_arr, False), _values(c_arr, False)
    n, m = int(ref.size), int(cur.size)
    if n < min_n or m < min_n:
        return insufficient("stuck_value", min_share, n, m)
    if numeric:
        values, counts = cs.runs
        i = int(np.argmax(counts))
        value, k = values[i], int(counts[i])
        r = int(np.searchsorted(ref, value, side="right") - np.searchsorted(ref, value))
        distinct = _distinct_pooled(rs, values)
    else:
        values, counts = np.unique(cur, return_counts=True)
        i = int(np.argmax(counts))
        value, k = values[i], int(counts[i])
        r = int(np.count_nonzero(ref == value))
        distinct = int(np.unique(np.concatenate([ref, cur])).size)
    ref_share, cur_share = r / n, k / m
    p = fisher_greater(k, m - k, r, n - r)
    p = min(1.0, p * distinct)
    shown: float | str = float(value) if numeric else str(value)
    gain = cur_share - ref_share
    return TestResult("stuck_value", cur_share, p, gain, min_share, n, m,
                      details={"value": shown, "ref_share": ref_share, "cur_share": cur_share,
                               "distinct_values": distinct})


def out_of_range_test(reference: Any, current: Any, *, tail: float = 0.001,
                      min_increase: float = 0.01, min_n: int = MIN_N,
                      margin: float = 0.0) -> TestResult:
    """Are more current values outside the reference's central range than chance allows?

    Exact distribution-free p-value: with r reference values at or beyond each end,
    P(K >= k) = P(at most 2r - 1 reference values among the first k + 2r - 1 of the
    pooled order) = hypergeom(N, n, k + 2r - 1).cdf(2r - 1).  Ties with the boundary
    count as inside, which only makes the test conservative.

    ``margin`` widens the range by that many times its own width on each side, so
    only values far outside anything the reference saw count (the p-value, computed
    for the unwidened range, is then conservative): for rows picked *because* they
    are extreme, such as a CUSUM's excursion, where the plain range would call a
    wider distribution a broken feed.  Either sample may be given already sorted
    (:class:`SortedSample`).
    """
    if not 0.0 < tail < 0.5:
        raise ValueError(f"tail must be in (0, 0.5), got {tail!r}")
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be finite and >= 0, got {margin!r}")
    _check_share("min_increase", min_increase)
    check_min_n(min_n)
    if isinstance(reference, SortedSample):
        ref = reference.values
    else:
        ref = np.asarray(reference, dtype=float).ravel()
        ref = np.sort(ref[np.isfinite(ref)])
    if isinstance(current, SortedSample):
        cur = current.values
    else:
        cur = np.asarray(current, dtype=float).ravel()
        cur = cur[np.isfinite(cur)]
    n, m = int(ref.size), int(cur.size)
    if n < min_n or m < min_n:
        return insufficient("out_of_range", min_increase, n, m)
    r = max(1, min(int(round(tail * n)), (n - 1) // 2))
    low, high = float(ref[r - 1]), float(ref[n - r])
    low, high = low - margin * (high - low), high + margin * (high - low)
    k = int(np.count_nonzero((cur < low) | (cur > high)))
    expected = 2 * r / (n + 1)
    cur_share = k / m
    p = 1.0 if k == 0 else hypergeom_cdf(2 * r - 1, n + m, n, k + 2 * r - 1)
    rise = cur_share - expected
    return TestResult("out_of_range", cur_share, min(max(p, 0.0), 1.0), rise, min_increase,
                      n, m, details={"low": low, "high": high, "cur_share": cur_share,
                                     "expected_share": expected})


def type_change_test(mismatches: int, n: int, *, min_share: float = 0.01,
                     min_n: int = MIN_N) -> TestResult:
    """Share of values whose JSON type disagrees with the feature's type.

    Exact binomial test against a zero mismatch rate: one mismatch already rules it
    out (p = 0), none gives p = 1; ``min_share`` keeps a stray value from paging.
    """
    _check_counts(mismatches, n, "mismatches")
    mismatches, n = int(mismatches), int(n)
    _check_share("min_share", min_share)
    check_min_n(min_n)
    if n < min_n:
        return insufficient("type_change", min_share, 0, n)
    share = mismatches / n
    p = 0.0 if mismatches > 0 else 1.0
    return TestResult("type_change", share, p, share, min_share, 0, n,
                      details={"share": share, "mismatches": int(mismatches)})

