"""Confidence sequences for champion/challenger comparisons (detectors.versions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.versions import (
    EITHER,
    HIGHER,
    LOWER,
    NO_WORSE,
    PENDING,
    WORSE,
    Comparison,
    fixed_horizon_worse,
    mixture_radius,
)


def _stream(rng: np.random.Generator, bernoulli: bool, n: int, shift: float = 0.0) -> np.ndarray:
    if bernoulli:
        return (rng.random(n) < 0.02 + shift).astype(float)
    return rng.normal(shift, 1.0, n)


@pytest.mark.parametrize("bernoulli", [True, False])
def test_coverage_holds_under_continuous_monitoring(bernoulli: bool) -> None:
    """250 A/A rollouts read after every batch: the sequence misses D = 0 at some time
    in at most alpha of them; a z-test read the same way misses far more often."""
    rng = np.random.default_rng(11)
    alpha, runs = 0.05, 250
    missed = peeked = 0
    for _ in range(runs):
        c = Comparison(0.01 if bernoulli else 0.1, alpha, HIGHER, bernoulli=bernoulli)
        miss = fixed = False
        for _ in range(40):
            nb = int(rng.binomial(400, 0.3))
            c.update(_stream(rng, bernoulli, 400 - nb), _stream(rng, bernoulli, nb))
            lo, hi = c.current()
            miss |= lo > 0 or hi < 0
            fixed |= fixed_horizon_worse(c, alpha, floor=0.0)
        missed += miss
        peeked += fixed
    assert missed / runs <= alpha + 0.02  # binomial slack: sd ~ 0.013
    assert peeked / runs > 2 * alpha  # the peeked test's inflation the sequence avoids


def test_detects_a_regression_and_calls_a_copy_no_worse() -> None:
    rng = np.random.default_rng(3)
    worse = Comparison(0.01, 1e-5, HIGHER, bernoulli=True)
    same = Comparison(0.01, 1e-5, HIGHER, bernoulli=True)
    for _ in range(200):
        worse.update(_stream(rng, True, 500), _stream(rng, True, 500, shift=0.02))
        same.update(_stream(rng, True, 500), _stream(rng, True, 500))
    assert worse.verdict == WORSE and worse.interval[0] > 0.005
    assert same.verdict == NO_WORSE and same.interval[1] < 0.01


def test_lower_is_worse_and_either_side() -> None:
    rng = np.random.default_rng(5)
    acc = Comparison(0.02, 0.001, LOWER, bernoulli=True)
    pred = Comparison(0.1, 0.001, EITHER)
    for _ in range(100):
        acc.update((rng.random(500) < 0.90).astype(float), (rng.random(500) < 0.85).astype(float))
        pred.update(rng.normal(0, 1, 500), rng.normal(-0.3, 1, 500))
    assert acc.verdict == WORSE and acc.estimate < 0
    assert pred.verdict == WORSE and pred.interval[1] < -0.05


def test_pending_until_both_arms_have_data() -> None:
    c = Comparison(0.1, 0.01, HIGHER)
    c.update(np.zeros(5000), np.zeros(10))
    assert c.verdict == PENDING and c.interval == (-math.inf, math.inf)
    assert mixture_radius(0.0, 1.0, 0.01) == math.inf


def test_batching_does_not_change_the_estimate_and_state_round_trips() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, 3000), rng.normal(0.05, 1, 1000)
    one = Comparison(0.1, 0.01, HIGHER)
    one.update(a, b)
    many = Comparison(0.1, 0.01, HIGHER)
    for i in range(0, 3000, 300):
        many.update(a[i:i + 300], b[i // 3:i // 3 + 100])
    assert many.estimate == pytest.approx(one.estimate)
    assert many.current() == pytest.approx(one.current())
    back = Comparison.from_state(many.to_state())
    assert back.interval == many.interval and back.verdict == many.verdict
    assert back.challenger.n == 1000 and back.champion.n == 3000


def test_one_arm_against_a_target() -> None:
    rng = np.random.default_rng(2)
    c = Comparison(0.02, 0.01, LOWER, bernoulli=True, target=0.95)
    c.update(challenger=(rng.random(20_000) < 0.90).astype(float))
    assert c.verdict == WORSE and c.estimate == pytest.approx(-0.05, abs=0.01)


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="margin"):
        Comparison(0.0, 0.01)
    with pytest.raises(ValueError, match="alpha"):
        Comparison(0.1, 1.0)
