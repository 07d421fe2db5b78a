"""Detectors: calibrated under the null, powerful under the alternatives they exist for."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.budget import bonferroni, holm
from detectors.categorical import chi2_test
from detectors.latency import latency_contract_test, latency_test
from detectors.numeric import ks_test
from detectors.rates import error_rate_contract_test, error_rate_test
from detectors.traffic import silence_test, silence_threshold


def rejection_rate(test, n_trials: int, alpha: float) -> float:
    return sum(test(i).p_value <= alpha for i in range(n_trials)) / n_trials


# -- calibration: under the null, p-values reject at most about alpha ------------------


def test_ks_is_calibrated_on_stationary_data():
    def trial(i):
        rng = np.random.default_rng(i)
        return ks_test(rng.normal(size=1000), rng.normal(size=400))

    assert rejection_rate(trial, 1000, 0.05) <= 0.07


def test_chi2_is_calibrated_on_stationary_data():
    cats = np.array(["a", "b", "c", "d"], dtype=object)
    probs = [0.5, 0.3, 0.15, 0.05]

    def trial(i):
        rng = np.random.default_rng(i)
        return chi2_test(rng.choice(cats, 1000, p=probs), rng.choice(cats, 400, p=probs))

    assert rejection_rate(trial, 1000, 0.05) <= 0.07


def test_latency_is_calibrated_on_stationary_data():
    def trial(i):
        rng = np.random.default_rng(i)
        return latency_test(rng.lognormal(4, 0.3, 1000), rng.lognormal(4, 0.3, 400),
                            min_ratio=1.0)

    assert rejection_rate(trial, 600, 0.05) <= 0.07


def test_error_rate_is_calibrated_on_stationary_data():
    def trial(i):
        rng = np.random.default_rng(i)
        return error_rate_test(int(rng.binomial(5000, 0.02)), 5000,
                               int(rng.binomial(2000, 0.02)), 2000, min_increase=0.0)

    assert rejection_rate(trial, 1000, 0.05) <= 0.06


# -- power: the changes each detector exists for --------------------------------------


def test_ks_catches_a_quarter_sigma_mean_shift():
    rng = np.random.default_rng(0)
    r = ks_test(rng.normal(size=5000), rng.normal(0.25, 1, size=2000))
    assert r.significant(1e-5)
    assert r.details["cur_mean"] > r.details["ref_mean"] + 0.15


def test_ks_catches_a_variance_change_with_the_same_mean():
    rng = np.random.default_rng(0)
    assert ks_test(rng.normal(size=5000), rng.normal(0, 2, size=2000)).significant(1e-5)


def test_effect_floor_keeps_trivial_shifts_at_huge_n_quiet():
    rng = np.random.default_rng(0)
    r = ks_test(rng.normal(size=400_000), rng.normal(0.02, 1, size=400_000))
    assert r.p_value < 1e-5  # "significant" ...
    assert not r.significant(1e-5)  # ... but far below the 5 % effect floor


def test_ks_ignores_nulls_and_refuses_tiny_samples():
    rng = np.random.default_rng(0)
    cur = np.full(2000, np.nan)
    cur[:10] = 0.0
    r = ks_test(rng.normal(size=5000), cur)
    assert r.insufficient and not r.significant(0.5) and r.current_n == 10


def test_chi2_names_new_and_vanished_categories():
    rng = np.random.default_rng(0)
    ref = rng.choice(np.array(["de", "fr", "it"], dtype=object), 5000, p=[0.6, 0.3, 0.1])
    cur = rng.choice(np.array(["de", "fr", "xx"], dtype=object), 2000, p=[0.6, 0.3, 0.1])
    r = chi2_test(ref, cur)
    assert r.significant(1e-5)
    assert r.details["new_categories"] == ["xx"]
    assert r.details["vanished_categories"] == ["it"]
    assert r.effect == pytest.approx(0.1, abs=0.03)


def test_chi2_pools_rare_categories_instead_of_exploding():
    rng = np.random.default_rng(1)
    common = rng.choice(np.array(["a", "b"], dtype=object), 5000)
    rare_ref = np.array([f"r{i}" for i in range(40)], dtype=object)
    rare_cur = np.array([f"s{i}" for i in range(40)], dtype=object)
    r = chi2_test(np.concatenate([common, rare_ref]),
                  np.concatenate([rng.choice(np.array(["a", "b"], dtype=object), 2000),
                                  rare_cur]))
    # 40 singletons each side are noise, not a 2 % distribution change worth a page
    assert not r.significant(1e-5)


def test_chi2_treats_none_as_missing_not_as_a_category():
    ref = np.array(["a", "b"] * 500, dtype=object)
    cur = np.array(["a", "b", None, None] * 250, dtype=object)
    r = chi2_test(ref, cur)
    assert r.current_n == 500 and not r.significant(1e-3)


def test_latency_catches_a_ten_percent_global_slowdown():
    rng = np.random.default_rng(0)
    r = latency_test(rng.lognormal(np.log(80), 0.3, 5000),
                     1.15 * rng.lognormal(np.log(80), 0.3, 2000))
    assert r.significant(1e-5)
    assert r.details["subtest"] in ("shift", "p95", "p99")


def test_latency_catches_a_tail_only_regression_the_median_misses():
    rng = np.random.default_rng(0)
    ref = rng.lognormal(np.log(80), 0.3, 5000)
    cur = rng.lognormal(np.log(80), 0.3, 2000)
    cur[rng.random(2000) < 0.03] += 150.0
    r = latency_test(ref, cur)
    assert r.details["cur_p50"] / r.details["ref_p50"] < 1.05
    assert r.significant(1e-5) and r.details["subtest"] in ("p95", "p99")


def test_latency_getting_faster_is_not_a_regression():
    rng = np.random.default_rng(0)
    r = latency_test(rng.lognormal(4, 0.3, 5000), 0.5 * rng.lognormal(4, 0.3, 2000))
    assert not r.significant(0.05)


def test_latency_contract_breach():
    rng = np.random.default_rng(0)
    ok = latency_contract_test(rng.uniform(10, 90, 2000), p95_max_ms=100)
    bad = latency_contract_test(rng.uniform(10, 200, 2000), p95_max_ms=100)
    assert not ok.significant(1e-5)
    assert bad.significant(1e-5) and bad.details["cur_p95"] > 100


def test_error_rate_spike_and_floor():
    spike = error_rate_test(50, 5000, 100, 2000)  # 1 % -> 5 %
    assert spike.significant(1e-5)
    assert spike.details == {"ref_rate": 0.01, "cur_rate": 0.05}
    tiny = error_rate_test(1, 1_000_000, 300, 1_000_000)  # 0.0001 % -> 0.03 %
    assert tiny.p_value < 1e-5 and not tiny.significant(1e-5)
    assert not error_rate_test(100, 5000, 0, 2000).significant(0.5)


def test_error_rate_contract():
    assert error_rate_contract_test(200, 2000, max_rate=0.05).significant(1e-5)
    assert not error_rate_contract_test(90, 2000, max_rate=0.05).significant(1e-5)


def test_silence_threshold_scales_with_rate_and_respects_floor():
    assert silence_threshold(10.0, 1e-5, 0) == pytest.approx(-math.log(1e-5) / 10.0)
    assert silence_threshold(10.0, 1e-5, 300) == 300
    assert silence_threshold(0.001, 1e-5, 300) > 11_000
    gap = silence_threshold(2.0, 1e-5, 0)
    assert silence_test(gap, 2.0, min_seconds=0).p_value == pytest.approx(1e-5)


def test_silence_false_alarm_rate_matches_alpha_on_poisson_traffic():
    rng = np.random.default_rng(0)
    rate, alpha = 5.0, 1e-3
    gaps = rng.exponential(1 / rate, 2_000_000)
    observed = float((gaps >= silence_threshold(rate, alpha, 0)).mean())
    assert observed == pytest.approx(alpha, rel=0.15)


# -- parameters and serialisation -----------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: ks_test(np.zeros(50), np.zeros(50), min_effect=2.0),
    lambda: chi2_test(np.array(["a"]), np.array(["a"]), min_effect=-1),
    lambda: latency_test(np.ones(50), np.ones(50), min_ratio=0.5),
    lambda: latency_contract_test(np.ones(50), p95_max_ms=0),
    lambda: error_rate_test(5, 3, 0, 10),
    lambda: error_rate_contract_test(0, 10, max_rate=1.5),
    lambda: silence_threshold(0.0, 1e-5, 10),
    lambda: silence_threshold(1.0, 0.0, 10),
    lambda: holm([0.1], 0.0),
])
def test_invalid_parameters_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_constant_streams_never_alarm():
    same = np.full(3000, 7.0)
    cats = np.array(["x"] * 3000, dtype=object)
    for r in (ks_test(same, same), chi2_test(cats, cats), latency_test(same, same),
              error_rate_test(0, 3000, 0, 3000)):
        assert not r.significant(0.5), r


def test_results_are_json_serialisable():
    rng = np.random.default_rng(0)
    cats = np.array(["a", "b"], dtype=object)
    for r in (ks_test(rng.normal(size=100), rng.normal(size=100)),
              chi2_test(rng.choice(cats, 100), rng.choice(cats, 100)),
              latency_test(rng.lognormal(size=100), rng.lognormal(size=100)),
              error_rate_test(1, 100, 2, 100), silence_test(10, 1.0, min_seconds=5)):
        json.dumps({"statistic": r.statistic, "p": r.p_value, "effect": r.effect,
                    "details": r.details})
        assert type(r.statistic) is float and type(r.effect) is float


# -- family-wise budget ---------------------------------------------------------------

p_lists = st.lists(st.floats(0, 1), min_size=1, max_size=40)


@given(p_lists, st.floats(1e-6, 0.5))
def test_holm_rejects_everything_bonferroni_does(ps, alpha):
    h, b = holm(ps, alpha), bonferroni(ps, alpha)
    assert all(hi or not bi for hi, bi in zip(h, b, strict=True))


@given(p_lists, st.floats(1e-6, 0.5))
def test_holm_rejections_are_a_prefix_of_the_sorted_p_values(ps, alpha):
    rejected = holm(ps, alpha)
    if any(rejected):
        worst_rejected = max(p for p, r in zip(ps, rejected, strict=True) if r)
        assert all(r for p, r in zip(ps, rejected, strict=True) if p < worst_rejected)


def test_holm_controls_the_family_wise_error_rate():
    rng = np.random.default_rng(0)
    alpha, m, trials = 0.05, 20, 20_000
    ps = rng.uniform(size=(trials, m))
    fwer = sum(any(holm(row.tolist(), alpha)) for row in ps) / trials
    assert fwer <= alpha + 0.005
