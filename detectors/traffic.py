"""Traffic gaps: how long a silence must last before it is not chance.

Arrivals at the reference rate ``r`` per second are modelled as Poisson, so
a silence of ``g`` seconds has probability ``exp(-r * g)``.  The alarm gap is
where that probability falls to ``alpha`` -- never below ``min_seconds``,
because real traffic is burstier than Poisson (nights, batch clients).
"""

from __future__ import annotations

import math

from detectors.result import TestResult


def _check(rate_per_s: float, min_seconds: float) -> None:
    if not rate_per_s > 0 or not math.isfinite(rate_per_s):
        raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s!r}")
    if not min_seconds >= 0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds!r}")


def silence_threshold(rate_per_s: float, alpha: float, min_seconds: float) -> float:
    """The shortest gap (seconds) that counts as a traffic drop."""
    _check(rate_per_s, min_seconds)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return max(min_seconds, -math.log(alpha) / rate_per_s)


def silence_test(gap_seconds: float, rate_per_s: float, *, min_seconds: float) -> TestResult:
    _check(rate_per_s, min_seconds)
    gap = max(0.0, float(gap_seconds))
    p = math.exp(-rate_per_s * gap)
    return TestResult("silence", gap, p, gap, min_seconds, 0, 0,
                      details={"gap_seconds": gap, "rate_per_s": rate_per_s,
                               "expected_events": rate_per_s * gap})
