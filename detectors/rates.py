"""Error-rate regressions: against the reference, and against the contract.

Fisher's exact test compares the window's error count with the reference's
(one-sided: only more errors is a regression); the absolute rise must reach
``min_increase`` so that 0.01 % -> 0.03 % on millions of calls pages no one.
"""

from __future__ import annotations

from scipy import stats

from detectors.hypergeom import fisher_greater
from detectors.result import TestResult, insufficient

MIN_N = 30


def _check_counts(errors: int, n: int) -> None:
    if n < 0 or errors < 0 or errors > n:
        raise ValueError(f"need 0 <= errors <= n, got errors={errors!r} n={n!r}")


def error_rate_test(ref_errors: int, ref_n: int, cur_errors: int, cur_n: int, *,
                    min_increase: float = 0.005, min_n: int = MIN_N) -> TestResult:
    _check_counts(ref_errors, ref_n)
    _check_counts(cur_errors, cur_n)
    if not 0.0 <= min_increase <= 1.0:
        raise ValueError(f"min_increase must be in [0, 1], got {min_increase!r}")
    if ref_n < min_n or cur_n < min_n:
        return insufficient("error_rate", min_increase, ref_n, cur_n)
    ref_rate, cur_rate = ref_errors / ref_n, cur_errors / cur_n
    p = fisher_greater(cur_errors, cur_n - cur_errors, ref_errors, ref_n - ref_errors)
    return TestResult("error_rate", cur_rate - ref_rate, p, cur_rate - ref_rate, min_increase,
                      ref_n, cur_n, details={"ref_rate": ref_rate, "cur_rate": cur_rate})


def error_rate_contract_test(cur_errors: int, cur_n: int, *, max_rate: float,
                             min_n: int = MIN_N) -> TestResult:
    """Binomial test of the window's error rate against the contract's maximum."""
    _check_counts(cur_errors, cur_n)
    if not 0.0 < max_rate < 1.0:
        raise ValueError(f"max_rate must be in (0, 1), got {max_rate!r}")
    if cur_n < min_n:
        return insufficient("error_rate_contract", 1.0, 0, cur_n, max_rate=max_rate)
    rate = cur_errors / cur_n
    p = float(stats.binomtest(cur_errors, cur_n, max_rate, alternative="greater").pvalue)
    return TestResult("error_rate_contract", rate, p, rate / max_rate, 1.0, 0, cur_n,
                      details={"cur_rate": rate, "max_rate": max_rate})
