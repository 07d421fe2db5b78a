"""The one shape every detector answers in.

A result carries both a p-value (is the change real?) and an effect size
(is it big enough to matter?).  Huge samples make negligible shifts
"significant"; the effect floor keeps those from paging anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest class

    detector: str
    statistic: float
    p_value: float
    effect: float
    min_effect: float
    reference_n: int
    current_n: int
    insufficient: bool = False  # too few observations to test: never significant
    details: dict[str, Any] = field(default_factory=dict)

    def significant(self, alpha: float) -> bool:
        return (not self.insufficient and self.p_value <= alpha
                and self.effect >= self.min_effect)


def insufficient(detector: str, min_effect: float, ref_n: int, cur_n: int,
                 **details: Any) -> TestResult:
    return TestResult(detector, 0.0, 1.0, 0.0, min_effect, ref_n, cur_n, True, details)


def check_min_n(min_n: int, lowest: int = 1) -> None:
    """Refuse a ``min_n`` that is not an integer >= ``lowest``."""
    if not (isinstance(min_n, int | np.integer) and min_n >= lowest):
        raise ValueError(f"min_n must be an integer >= {lowest}, got {min_n!r}")
