"""Latency regressions: a global shift or only the tail.

Three one-sided subtests, Bonferroni-combined into one result:

- ``shift``: Mann-Whitney U (is the current window stochastically slower?);
- ``p95`` / ``p99``: Fisher's exact test on how many requests exceed the
  reference's own p95 / p99.  A tail-only regression (a few percent of
  requests much slower) barely moves the median but multiplies these counts.

The effect is the slowdown ratio of the subtest's quantile (p50, p95, p99);
a subtest only counts when its ratio reaches ``min_ratio``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from detectors.hypergeom import fisher_greater
from detectors.numeric import SortedSample, finite_values
from detectors.ranks import mann_whitney_greater
from detectors.result import TestResult, insufficient

MIN_N = 30
SUBTESTS = 3


def _ratio(cur: float, ref: float) -> float:
    if ref > 0:
        return float(cur / ref)
    return 1.0 if cur <= 0 else float("inf")


def _exceedance_p(ref: np.ndarray, cur: np.ndarray, threshold: float) -> float:
    r, c = int((ref > threshold).sum()), int((cur > threshold).sum())
    return fisher_greater(c, int(cur.size) - c, r, int(ref.size) - r)


def latency_test(reference: np.ndarray | SortedSample, current: np.ndarray, *,
                 min_ratio: float = 1.10, min_n: int = MIN_N) -> TestResult:
    """The three subtests of the module docstring.  The reference may be given
    already sorted (:class:`SortedSample`): its quantiles, ranks and exceedances do
    not depend on the order of its values."""
    if not min_ratio >= 1.0:
        raise ValueError(f"min_ratio must be >= 1, got {min_ratio!r}")
    ref = reference.values if isinstance(reference, SortedSample) else finite_values(reference)
    cur = finite_values(current)
    if ref.size < min_n or cur.size < min_n:
        return insufficient("latency", min_ratio, int(ref.size), int(cur.size))
    rq = np.quantile(ref, [0.5, 0.95, 0.99])
    cq = np.quantile(cur, [0.5, 0.95, 0.99])
    # the reference sorted, as mann_whitney_greater needs it (the ranks, quantiles and
    # exceedances do not depend on its order)
    ref = ref if isinstance(reference, SortedSample) else np.sort(ref)
    _, shift_p = mann_whitney_greater(cur, ref)
    subtests = {
        "shift": (shift_p, _ratio(cq[0], rq[0])),
        "p95": (_exceedance_p(ref, cur, rq[1]), _ratio(cq[1], rq[1])),
        "p99": (_exceedance_p(ref, cur, rq[2]), _ratio(cq[2], rq[2])),
    }
    eligible = {k: v for k, v in subtests.items() if v[1] >= min_ratio}
    pool = eligible or subtests
    name = min(pool, key=lambda k: pool[k][0])
    p, ratio = pool[name]
    details = {"subtest": name,
               "ref_p50": float(rq[0]), "ref_p95": float(rq[1]), "ref_p99": float(rq[2]),
               "cur_p50": float(cq[0]), "cur_p95": float(cq[1]), "cur_p99": float(cq[2]),
               "subtest_p_values": {k: v[0] for k, v in subtests.items()}}
    return TestResult("latency", ratio, min(1.0, SUBTESTS * p), ratio, min_ratio,
                      int(ref.size), int(cur.size), details=details)


def latency_contract_test(current: np.ndarray, *, p95_max_ms: float,
                          min_n: int = MIN_N) -> TestResult:
    """Is the true p95 above the contract?  Binomial test: under the contract at
    most 5 % of requests exceed ``p95_max_ms``."""
    if not p95_max_ms > 0:
        raise ValueError(f"p95_max_ms must be > 0, got {p95_max_ms!r}")
    cur = finite_values(current)
    if cur.size < min_n:
        return insufficient("latency_contract", 1.0, 0, int(cur.size), p95_max_ms=p95_max_ms)
    k = int((cur > p95_max_ms).sum())
    p95 = float(np.quantile(cur, 0.95))
    p = float(stats.binomtest(k, int(cur.size), 0.05, alternative="greater").pvalue)
    return TestResult("latency_contract", p95, p, p95 / p95_max_ms, 1.0, 0, int(cur.size),
                      details={"cur_p95": p95, "p95_max_ms": p95_max_ms,
                               "exceed_fraction": k / cur.size})
