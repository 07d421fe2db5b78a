"""Data-quality detectors: quiet on healthy feeds, loud on broken ones."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import stats

from detectors.quality import (
    null_rate_test,
    out_of_range_test,
    stuck_value_test,
    type_change_test,
)

N_TRIALS = 500
CATS = np.array([f"c{i}" for i in range(12)], dtype=object)


@dataclasses.dataclass
class _P:
    p_value: float


def rejection_rate(trial, n_trials: int = N_TRIALS, alpha: float = 0.05) -> float:
    return sum(trial(np.random.default_rng(i)).p_value <= alpha
               for i in range(n_trials)) / n_trials


# -- calibration -----------------------------------------------------------------------------


def test_null_rate_is_calibrated_on_a_steady_feed():
    def trial(rng):
        return null_rate_test(int(rng.binomial(1000, 0.05)), 1000, int(rng.binomial(400, 0.05)),
                              400, min_increase=0.0)

    assert rejection_rate(trial) <= 0.07


@pytest.mark.parametrize("kind", ["continuous", "categorical", "two_values"])
def test_stuck_value_is_calibrated_despite_picking_the_mode(kind):
    def trial(rng):
        if kind == "continuous":
            return stuck_value_test(rng.normal(size=1000), rng.normal(size=400), min_share=0.0001)
        if kind == "two_values":
            return stuck_value_test(rng.choice([0.0, 1.0], 1000), rng.choice([0.0, 1.0], 400),
                                    min_share=0.0001)
        return stuck_value_test(rng.choice(CATS, 1000), rng.choice(CATS, 400), min_share=0.0001)

    assert rejection_rate(trial) <= 0.07


def test_picking_the_mode_without_a_correction_would_not_be_calibrated():
    # Why stuck_value_test multiplies by the number of distinct values: the raw Fisher
    # p-value of the most frequent of 12 equally likely categories rejects far too often.
    def raw(rng):
        ref, cur = rng.choice(CATS, 1000), rng.choice(CATS, 400)
        values, counts = np.unique(cur, return_counts=True)
        k, r = int(counts.max()), int(np.count_nonzero(ref == values[counts.argmax()]))
        p = stats.fisher_exact([[k, 400 - k], [r, 1000 - r]], alternative="greater").pvalue
        return _P(p)

    assert rejection_rate(raw, 300) > 0.15


@pytest.mark.parametrize("n, m, tail", [(1000, 400, 0.001), (5000, 2000, 0.01), (200, 60, 0.01)])
def test_out_of_range_is_calibrated_on_stationary_data(n, m, tail):
    def trial(rng):
        return out_of_range_test(rng.normal(size=n), rng.normal(size=m), tail=tail,
                                 min_increase=0.0)

    assert rejection_rate(trial) <= 0.07


def test_a_naive_binomial_against_two_tail_would_over_reject():
    # The reference range is estimated from a few extreme values: 2 * tail is not the rate.
    def trial(rng):
        r = out_of_range_test(rng.normal(size=1000), rng.normal(size=400), tail=0.001)
        k = round(r.details["cur_share"] * 400)
        return _P(stats.binomtest(k, 400, 0.002, alternative="greater").pvalue)

    assert rejection_rate(trial) > 0.07


# -- power on broken feeds -----------------------------------------------------------------


def test_a_ten_percent_null_flood_is_caught():
    r = null_rate_test(50, 5000, 20 + 200, 2000)  # 1 % -> 11 %
    assert r.significant(1e-5)
    assert r.details["ref_rate"] == pytest.approx(0.01)
    assert r.details["cur_rate"] == pytest.approx(0.11)


def test_null_rate_floor_keeps_trivial_rises_at_huge_n_quiet():
    r = null_rate_test(10_000, 1_000_000, 15_000, 1_000_000)  # 1 % -> 1.5 %
    assert r.p_value < 1e-10
    assert not r.significant(1e-5)


def test_fewer_nulls_is_not_an_alarm():
    assert null_rate_test(500, 5000, 0, 2000).p_value == pytest.approx(1.0)


def test_a_numeric_default_stuck_on_thirty_percent_of_rows_is_caught():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    cur = rng.normal(size=2000)
    cur[rng.random(2000) < 0.3] = -1.0
    r = stuck_value_test(ref, cur, min_share=0.2)
    assert r.significant(1e-5)
    assert r.details["value"] == -1.0 and type(r.details["value"]) is float
    assert r.details["ref_share"] == 0.0 and r.details["cur_share"] == pytest.approx(0.3, abs=0.03)
    # The default floor asks for half the window to be taken over.
    assert not stuck_value_test(ref, cur).significant(1e-5)


def test_a_categorical_unknown_taking_over_is_caught():
    rng = np.random.default_rng(0)
    ref = np.append(rng.choice(CATS, 4990), ["unknown"] * 10).astype(object)
    cur = np.append(rng.choice(CATS, 600), ["unknown"] * 1400).astype(object)
    r = stuck_value_test(ref, cur)
    assert r.significant(1e-5)
    assert r.details["value"] == "unknown"
    assert r.details["ref_share"] == pytest.approx(0.002)


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_a_feature_constant_in_the_reference_too_is_not_stuck(value):
    r = stuck_value_test(np.full(1000, value), np.full(400, value))
    assert r.p_value == 1.0 and r.effect == 0.0 and not r.significant(0.5)
    cats = stuck_value_test(np.array(["x"] * 1000, dtype=object), np.array(["x"] * 400,
                                                                            dtype=object))
    assert not cats.significant(0.5)


def test_a_zero_inflated_feature_that_stays_zero_inflated_is_not_stuck():
    rng = np.random.default_rng(0)
    ref = np.where(rng.random(5000) < 0.6, 0.0, rng.exponential(size=5000))
    cur = np.where(rng.random(2000) < 0.62, 0.0, rng.exponential(size=2000))
    assert not stuck_value_test(ref, cur).significant(0.05)


def test_an_out_of_range_flood_is_caught():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    cur = np.concatenate([rng.normal(size=1900), rng.normal(10, 1, 100)])  # 5 % far out
    r = out_of_range_test(ref, cur)
    assert r.significant(1e-5)
    assert r.details["low"] < -2.5 and r.details["high"] > 2.5
    assert r.details["cur_share"] >= 0.05


def test_a_few_outliers_stay_under_the_out_of_range_floor():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=50_000)
    cur = np.concatenate([rng.normal(size=49_800), rng.normal(10, 1, 200)])  # 0.4 % far out
    r = out_of_range_test(ref, cur)
    assert r.p_value < 1e-10
    assert not r.significant(1e-5)


def test_type_changes():
    assert type_change_test(0, 1000).p_value == 1.0
    flood = type_change_test(50, 1000)
    assert flood.significant(1e-9) and flood.details["share"] == pytest.approx(0.05)
    stray = type_change_test(1, 1000)
    assert stray.p_value == 0.0 and not stray.significant(1e-9)


# -- small samples, invalid parameters, serialisation ----------------------------------------


def test_small_samples_are_insufficient():
    rng = np.random.default_rng(0)
    assert null_rate_test(0, 20, 20, 20).insufficient
    assert stuck_value_test(rng.normal(size=100), np.array([0.0] * 29 + [np.nan] * 5)).insufficient
    assert out_of_range_test(rng.normal(size=29), rng.normal(size=100)).insufficient
    assert type_change_test(29, 29).insufficient
    assert not type_change_test(29, 29).significant(1.0)


@pytest.mark.parametrize("call", [
    lambda: null_rate_test(5, 4, 0, 100),
    lambda: null_rate_test(-1, 100, 0, 100),
    lambda: null_rate_test(0, 100, 0, 100, min_increase=1.5),
    lambda: stuck_value_test(np.arange(100.0), np.arange(100.0), min_share=0.0),
    lambda: stuck_value_test(np.arange(100.0), np.arange(100.0), min_share=float("nan")),
    lambda: stuck_value_test(np.arange(100.0), np.arange(100.0), min_n=0),
    lambda: out_of_range_test(np.arange(100.0), np.arange(100.0), tail=0.0),
    lambda: out_of_range_test(np.arange(100.0), np.arange(100.0), tail=0.5),
    lambda: out_of_range_test(np.arange(100.0), np.arange(100.0), min_increase=-0.1),
    lambda: type_change_test(11, 10),
    lambda: type_change_test(1, 10, min_share=2.0),
])
def test_invalid_parameters_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_results_are_json_serialisable_with_python_floats():
    rng = np.random.default_rng(0)
    cur = rng.normal(size=400)
    cur[:200] = 0.0
    results = [
        null_rate_test(np.int64(5), np.int64(1000), np.int64(40), np.int64(400)),
        stuck_value_test(rng.normal(size=1000), cur),
        stuck_value_test(rng.choice(CATS, 1000), np.array(["c1"] * 300 + ["c2"] * 100,
                                                          dtype=object)),
        out_of_range_test(rng.normal(size=1000), rng.normal(3, 1, 400)),
        type_change_test(np.int64(3), np.int64(400)),
    ]
    names = ["null_rate", "stuck_value", "stuck_value", "out_of_range", "type_change"]
    for r, name in zip(results, names, strict=True):
        assert r.detector == name
        for value in (r.statistic, r.p_value, r.effect):
            assert type(value) is float and math.isfinite(value)
        json.loads(json.dumps(dataclasses.asdict(r), allow_nan=False))


def test_a_margin_counts_only_values_far_outside_the_reference_range():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=5000)
    wide = rng.normal(0, 2, 2000)  # a wider world: many values past the plain range ...
    assert out_of_range_test(ref, wide, min_increase=0.05).significant(1e-5)
    far = out_of_range_test(ref, wide, min_increase=0.05, margin=1.0)
    assert not far.significant(0.05) and far.details["high"] > 2 * 3  # ... none far out
    sentinel = np.concatenate([rng.normal(size=1500), np.full(500, -999.0)])
    assert out_of_range_test(ref, sentinel, min_increase=0.05, margin=1.0).significant(1e-5)
    with pytest.raises(ValueError):
        out_of_range_test(ref, wide, margin=-1.0)
