"""Family-wise error control over the tests of one window.

Every test a model runs on a window is one family: the probability that a
stationary window raises anything stays at or below ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def bonferroni(p_values: Sequence[float], alpha: float) -> list[bool]:
    _check(alpha)
    m = len(p_values)
    return [bool(p <= alpha / m) for p in p_values]


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: uniformly more powerful than Bonferroni,
    same family-wise guarantee, no independence assumption."""
    _check(alpha)
    m = len(p_values)
    rejected = [False] * m
    order = np.argsort(np.asarray(p_values, dtype=float), kind="stable")
    for rank, i in enumerate(order):
        if p_values[i] <= alpha / (m - rank):
            rejected[i] = True
        else:
            break
    return rejected
