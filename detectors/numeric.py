"""Numeric drift: two-sample Kolmogorov-Smirnov with an effect floor.

The KS distance is itself the effect size (the largest gap between the two
empirical CDFs), so ``min_effect`` reads as "at least 5 % of the mass moved".
Nulls are not drift: they are dropped here and watched by data-quality checks.

A reference tested against many windows is sorted once: :class:`SortedSample`
(its finite values sorted, their mean and spread).  The distance and p-value are
those of ``scipy.stats.ks_2samp(method="asymp")`` to the last bit, computed with
the same elementwise operations on the sorted samples (see :func:`ks_distance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy.stats import distributions

from detectors.ranks import runs
from detectors.result import TestResult, insufficient

try:  # what kstwo.sf evaluates inside the support (scipy.stats._ksstats since 1.5)
    from scipy.stats._ksstats import _kolmogn
except ImportError:  # pragma: no cover - a scipy that moved it: the public path
    _kolmogn = None

MIN_N = 30


def finite_values(x: Any) -> np.ndarray:
    """The finite values of ``x`` as float64 (NaN, inf and None dropped), flattened."""
    arr = np.asarray(x)
    if arr.dtype == object:
        arr = np.array([np.nan if v is None else v for v in arr.ravel()], dtype=float)
    arr = np.asarray(arr, dtype=float).ravel()
    return arr[np.isfinite(arr)]


@dataclass(frozen=True, eq=False)
class SortedSample:
    """A sample's finite values, sorted once for every test that ranks them.

    ``mean`` and ``std`` are those of the finite values in their original order
    (summation order decides the last bits), NaN when there are none.
    """

    values: np.ndarray  # finite float64, ascending
    mean: float
    std: float

    @classmethod
    def of(cls, x: Any) -> SortedSample:
        v = finite_values(x)
        if v.size == 0:
            return cls(v, float("nan"), float("nan"))
        s = np.sort(v)
        s.flags.writeable = False  # shared by every test of a reference: never written
        return cls(s, float(v.mean()), float(v.std()))

    @property
    def size(self) -> int:
        return int(self.values.size)

    @cached_property
    def runs(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values and their counts (:func:`detectors.ranks.runs`), once."""
        return runs(self.values)

    @cached_property
    def distinct(self) -> int:
        """How many distinct values (``np.unique(values).size``)."""
        v = self.values
        return int(np.count_nonzero(v[1:] != v[:-1])) + 1 if v.size else 0


def sorted_sample(x: Any) -> SortedSample:
    """``x`` as a :class:`SortedSample` (itself when it already is one)."""
    return x if isinstance(x, SortedSample) else SortedSample.of(x)


def ks_distance(ref: np.ndarray, cur: np.ndarray) -> float:
    """The two-sided KS distance of two sorted, non-empty finite samples, as
    ``ks_2samp`` computes it: ``cdf1(x) - cdf2(x)`` with ``cdf = searchsorted(sorted,
    x, "right") / n`` over the pooled values, the larger of its maximum and of its
    clipped negated minimum.

    ``cdf1 - cdf2`` only rises at a value of ``ref`` alone and only falls at one of
    ``cur``, each step rounded monotonically, so its maximum is taken at a value of
    ``ref`` and its minimum at one of ``cur``.  Within a run of tied values the last
    one's rank ``i + 1`` is its count ``searchsorted(..., "right")`` and the earlier
    ones' lower ranks give values on the safe side (smaller at the maximum, larger at
    the minimum), so both extremes are the same floats as ks_2samp's.
    """
    n1, n2 = ref.shape[0], cur.shape[0]
    at_ref = np.arange(1, n1 + 1) / n1 - np.searchsorted(cur, ref, side="right") / n2
    at_cur = np.searchsorted(ref, cur, side="right") / n1 - np.arange(1, n2 + 1) / n2
    max_s = at_ref.max()
    min_s = np.clip(-at_cur.min(), 0, 1)
    return float(min_s if min_s > max_s else max_s)


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """``ks_2samp``'s asymptotic two-sided p-value: ``kstwo.sf(d, round(en))``."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = np.round(m * n / (m + n))
    if not en >= 1:  # two samples of one (en rounds to 0): outside kstwo's n >= 1
        return float("nan")
    if _kolmogn is None:  # pragma: no cover
        return float(np.clip(distributions.kstwo.sf(d, en), 0, 1))
    # kstwo.sf: 1 at or below the support's lower end 0.5 / n, 0 from its upper end 1
    if d <= 0.5 / en:
        return 1.0
    if d >= 1.0:
        return 0.0
    return float(np.clip(_kolmogn(int(en), d, cdf=False), 0, 1))


def ks_test(reference: np.ndarray | SortedSample, current: np.ndarray | SortedSample, *,
            min_effect: float = 0.05, min_n: int = MIN_N) -> TestResult:
    """Two-sample KS test (``ks_2samp``, asymptotic p-value) of the finite values;
    either sample may be given already sorted (:class:`SortedSample`)."""
    if not 0.0 <= min_effect <= 1.0:
        raise ValueError(f"min_effect must be in [0, 1], got {min_effect!r}")
    ref, cur = sorted_sample(reference), sorted_sample(current)
    if ref.size < min_n or cur.size < min_n:
        return insufficient("ks", min_effect, ref.size, cur.size)
    d = ks_distance(ref.values, cur.values)
    return TestResult(
        "ks", d, ks_pvalue(d, ref.size, cur.size), d, min_effect, ref.size, cur.size,
        details={"ref_mean": ref.mean, "cur_mean": cur.mean,
                 "ref_std": ref.std, "cur_std": cur.std},
    )
