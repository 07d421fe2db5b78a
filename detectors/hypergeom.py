"""The hypergeometric CDF and one-sided Fisher exact test, without scipy's wrappers.

Window tests call them a dozen times per window on scalars, where
``scipy.stats.hypergeom.cdf`` and ``scipy.stats.fisher_exact`` spend most of their
time validating and broadcasting arguments.  Both functions below take the steps
those take for scalar integer arguments and end in the same ufunc (Boost's
hypergeometric CDF, as ``hypergeom._cdf`` calls it), so their results are the same
floats; a scipy without that ufunc gets scipy's public functions.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

try:  # what hypergeom._cdf calls (scipy >= 1.8)
    from scipy.special._ufuncs import _hypergeom_cdf
except ImportError:  # pragma: no cover - a scipy that moved it: the public path
    _hypergeom_cdf = None


def hypergeom_cdf(k: int, M: int, n: int, N: int) -> float:  # noqa: N803 (scipy's names)
    """``scipy.stats.hypergeom.cdf(k, M, n, N)`` for integers with 0 <= n, N <= M, M > 0."""
    if _hypergeom_cdf is None:  # pragma: no cover
        return float(stats.hypergeom.cdf(k, M, n, N))
    if not (M > 0 and 0 <= n <= M and 0 <= N <= M):
        raise ValueError(f"need M > 0 and 0 <= n, N <= M, got M={M!r} n={n!r} N={N!r}")
    if k >= min(n, N):  # at or past the support's upper end
        return 1.0
    if k < max(N - (M - n), 0):
        return 0.0
    p = _hypergeom_cdf(np.float64(k), np.float64(n), np.float64(N), np.float64(M))
    return float(np.clip(p, 0, 1))


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """``scipy.stats.fisher_exact([[a, b], [c, d]], alternative="greater").pvalue``."""
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be >= 0, got {[[a, b], [c, d]]!r}")
    if 0 in (a + c, b + d, a + b, c + d):  # an empty row or column: p = 1
        return 1.0
    return min(hypergeom_cdf(b, a + b + c + d, a + b, b + d), 1.0)
