"""Distance detectors: calibrated under the null, powerful on real changes, quiet on trivia."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import special, stats

from detectors.distance import (
    ad_asymptotic_sf,
    ad_test,
    categorical_js_test,
    categorical_psi_test,
    cvm_asymptotic_sf,
    cvm_test,
    hellinger_test,
    js_test,
    psi_test,
    tv_test,
    wasserstein_test,
)

NUMERIC = {"cvm": cvm_test, "ad": ad_test, "wasserstein": wasserstein_test, "psi": psi_test,
           "js": js_test, "hellinger": hellinger_test}
CATEGORICAL = {"psi_cat": categorical_psi_test, "js_cat": categorical_js_test, "tv": tv_test}
ALL = {**NUMERIC, **CATEGORICAL}
N_TRIALS = 500
CATS = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
PROBS = [0.45, 0.3, 0.15, 0.06, 0.03, 0.01]  # "f" is rare enough to be pooled at n=400


def _rates(tests: dict, draw, n_trials: int = N_TRIALS) -> dict[str, float]:
    hits = dict.fromkeys(tests, 0)
    for i in range(n_trials):
        ref, cur = draw(np.random.default_rng(i))
        for name, test in tests.items():
            hits[name] += test(ref, cur).p_value <= 0.05
    return {name: h / n_trials for name, h in hits.items()}


# -- calibration: rejection rate at alpha = 0.05 on stationary data ---------------------------


@pytest.fixture(scope="module")
def null_rates_continuous():
    return _rates(NUMERIC, lambda rng: (rng.normal(size=1000), rng.normal(size=400)))


@pytest.fixture(scope="module")
def null_rates_small_tied():
    """Small windows of a discrete feature: few bins, many ties."""
    return _rates(NUMERIC, lambda rng: (rng.poisson(3, 200).astype(float),
                                        rng.poisson(3, 60).astype(float)))


@pytest.fixture(scope="module")
def null_rates_categorical():
    return _rates(CATEGORICAL, lambda rng: (rng.choice(CATS, 1000, p=PROBS),
                                            rng.choice(CATS, 400, p=PROBS)))


@pytest.mark.parametrize("name", list(NUMERIC))
def test_numeric_detectors_are_calibrated_on_stationary_data(name, null_rates_continuous):
    assert null_rates_continuous[name] <= 0.07


@pytest.mark.parametrize("name", list(NUMERIC))
def test_numeric_detectors_stay_calibrated_on_small_tied_windows(name, null_rates_small_tied):
    assert null_rates_small_tied[name] <= 0.075


@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_categorical_detectors_are_calibrated_on_stationary_data(name, null_rates_categorical):
    assert null_rates_categorical[name] <= 0.07


def test_binned_p_values_are_not_just_conservative(null_rates_continuous):
    # The chi-square laws are the real null laws, not loose bounds: they use alpha.
    for name in ("psi", "js", "hellinger", "cvm", "ad"):
        assert null_rates_continuous[name] >= 0.02, name


def test_wasserstein_bound_is_conservative_not_anti_conservative(null_rates_continuous):
    assert null_rates_continuous["wasserstein"] <= 0.02


# -- the asymptotic laws behind the p-values --------------------------------------------------


@pytest.mark.parametrize("x, level", [(1.933, 0.10), (2.492, 0.05), (3.070, 0.025),
                                      (3.878, 0.01)])
def test_ad_asymptotic_tail_matches_published_critical_values(x, level):
    assert ad_asymptotic_sf(x) == pytest.approx(level, rel=0.01)


def test_ad_asymptotic_tail_follows_its_large_x_asymptote():
    # P(A2 > x) ~ sqrt(3) erfc(sqrt(x)): the leading weight 1/2, and
    # prod_{j>=2} (1 - 2 / (j (j + 1)))^(-1/2) = sqrt(3) from the others.
    for x in (25.0, 40.0, 60.0):
        assert ad_asymptotic_sf(x) == pytest.approx(math.sqrt(3) * special.erfc(math.sqrt(x)),
                                                    rel=0.02)
    ps = [ad_asymptotic_sf(x) for x in np.linspace(0.1, 60, 200)]
    assert all(a >= b for a, b in zip(ps, ps[1:], strict=False))
    assert ad_asymptotic_sf(0.0) == 1.0


@pytest.mark.parametrize("x, level", [(0.347, 0.10), (0.461, 0.05), (0.743, 0.01),
                                      (1.168, 0.001)])
def test_cvm_asymptotic_tail_matches_published_critical_values(x, level):
    assert cvm_asymptotic_sf(x) == pytest.approx(level, rel=0.01)


def test_cvm_agrees_with_scipy_where_scipy_is_accurate_and_not_below():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=2000)
    r = cvm_test(ref, rng.normal(0.05, 1, 800))
    assert r.p_value == pytest.approx(r.details["scipy_p_value"], rel=1e-6)
    # scipy truncates its series at 1e-7: a bigger shift gets a *larger* p from it.
    small, large = cvm_test(ref, rng.normal(0.25, 1, 800)), cvm_test(ref, rng.normal(0.5, 1, 800))
    assert large.p_value < small.p_value < 1e-9


def test_ad_p_value_agrees_with_scipy_inside_scipy_range_and_is_not_floored():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=1000)
    for shift in (0.1, 0.15):
        r = ad_test(ref, rng.normal(shift, 1, 400))
        if 0.002 < r.details["scipy_p_value"] < 0.2:
            assert r.p_value == pytest.approx(r.details["scipy_p_value"], rel=0.25)
    big = ad_test(ref, rng.normal(0.5, 1, 400))
    assert big.details["scipy_p_value"] == pytest.approx(0.001)
    assert big.p_value < 1e-10 and big.significant(1e-5)


def test_js_g_statistic_is_the_weighted_js_divergence():
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=3000), rng.normal(0.3, 1, 1000)
    r = js_test(ref, cur, bins=10)
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    rc = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10)
    cc = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10)
    p, q = rc / rc.sum(), cc / cc.sum()
    w = np.array([3000, 1000]) / 4000
    mix = w[0] * p + w[1] * q
    js_w = w[0] * special.rel_entr(p, mix).sum() + w[1] * special.rel_entr(q, mix).sum()
    assert r.statistic == pytest.approx(2 * 4000 * js_w)
    g = stats.chi2_contingency(np.vstack([rc, cc]), lambda_="log-likelihood")
    assert r.statistic == pytest.approx(g.statistic)


# -- power -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref5000():
    return np.random.default_rng(0).normal(size=5000)


@pytest.mark.parametrize("name", ["cvm", "ad", "wasserstein"])
def test_quarter_sigma_mean_shift_is_caught(name, ref5000):
    cur = np.random.default_rng(1).normal(0.25, 1, 2000)
    assert NUMERIC[name](ref5000, cur).significant(1e-5)


@pytest.mark.parametrize("name", ["psi", "js", "hellinger"])
def test_quarter_sigma_shift_is_real_but_below_the_conventional_psi_floor(name, ref5000):
    r = NUMERIC[name](ref5000, np.random.default_rng(1).normal(0.25, 1, 2000))
    assert r.p_value < 1e-10
    assert not r.significant(1e-5)  # PSI ~0.06 < 0.1: "stable" by the industry convention
    assert NUMERIC[name](ref5000, np.random.default_rng(1).normal(0.25, 1, 2000),
                         min_effect=r.effect / 2).significant(1e-5)


@pytest.mark.parametrize("name", list(NUMERIC))
def test_half_sigma_mean_shift_is_caught(name, ref5000):
    r = NUMERIC[name](ref5000, np.random.default_rng(1).normal(0.5, 1, 2000))
    assert r.significant(1e-5)


def test_psi_reads_on_the_conventional_scale(ref5000):
    r = psi_test(ref5000, np.random.default_rng(1).normal(0.5, 1, 2000))
    assert 0.15 < r.effect < 0.35
    assert r.details["bins"] == 10


@pytest.mark.parametrize("name", list(NUMERIC))
def test_variance_doubling_with_the_same_mean_is_caught(name, ref5000):
    cur = np.random.default_rng(1).normal(0, math.sqrt(2), 2000)
    assert NUMERIC[name](ref5000, cur).significant(1e-5)


def test_wasserstein_effect_reads_in_reference_sigmas(ref5000):
    r = wasserstein_test(ref5000, np.random.default_rng(1).normal(0.5, 1, 2000))
    assert r.effect == pytest.approx(0.5, abs=0.06)
    shifted = wasserstein_test(ref5000 * 100, np.random.default_rng(1).normal(50, 100, 2000))
    assert shifted.effect == pytest.approx(r.effect, rel=0.05)  # scale-free


def _cats(rng, n, probs):
    return rng.choice(CATS, n, p=probs)


@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_a_new_category_appearing_is_caught_and_named(name):
    rng = np.random.default_rng(0)
    ref = _cats(rng, 5000, PROBS)
    cur = np.concatenate([_cats(rng, 1800, PROBS), np.array(["brand_new"] * 200, dtype=object)])
    r = CATEGORICAL[name](ref, cur)
    assert r.significant(1e-5)
    assert r.details["new_categories"] == ["brand_new"]


@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_a_vanished_category_is_named(name):
    rng = np.random.default_rng(0)
    ref = _cats(rng, 5000, PROBS)
    cur = _cats(rng, 2000, [0.45, 0.3, 0.15, 0.1, 0.0, 0.0])
    r = CATEGORICAL[name](ref, cur)
    assert r.details["vanished_categories"] == ["e", "f"]
    assert r.p_value < 1e-10


# -- effect floors, constants, degenerate input ----------------------------------------------


@pytest.fixture(scope="module")
def huge_trivial_shift():
    rng = np.random.default_rng(0)
    return rng.normal(size=200_000), rng.normal(0.02, 1, 200_000)


@pytest.mark.parametrize("name", list(NUMERIC))
def test_effect_floor_keeps_trivial_shifts_at_huge_n_quiet(name, huge_trivial_shift):
    r = NUMERIC[name](*huge_trivial_shift)
    assert r.p_value < 0.01  # the shift is real ...
    assert not r.significant(0.01)  # ... and too small to matter


@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_effect_floor_keeps_trivial_categorical_shifts_quiet(name):
    rng = np.random.default_rng(0)
    ref = _cats(rng, 400_000, PROBS)
    cur = _cats(rng, 400_000, [0.44, 0.3, 0.15, 0.07, 0.03, 0.01])
    r = CATEGORICAL[name](ref, cur)
    assert r.p_value < 1e-5
    assert not r.significant(1e-5)


@pytest.mark.parametrize("name", list(NUMERIC))
@pytest.mark.parametrize("value", [0.0, -1.0, 7.5])
def test_constant_streams_are_never_significant(name, value):
    r = NUMERIC[name](np.full(500, value), np.full(300, value))
    assert r.p_value == 1.0 and r.effect == 0.0
    assert not r.significant(0.5)


@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_constant_categorical_streams_are_never_significant(name):
    r = CATEGORICAL[name](np.array(["x"] * 500, dtype=object), np.array(["x"] * 300, dtype=object))
    assert r.p_value == 1.0 and r.effect == 0.0 and not r.significant(0.5)


@pytest.mark.parametrize("name", list(NUMERIC))
def test_a_constant_reference_with_a_moved_current_is_caught(name):
    rng = np.random.default_rng(0)
    r = NUMERIC[name](np.zeros(500), rng.normal(3, 1, 300), min_effect=0.0)
    assert r.p_value < 1e-5


@pytest.mark.parametrize("name", list(NUMERIC))
def test_numeric_detectors_drop_none_and_nan_and_refuse_tiny_samples(name):
    rng = np.random.default_rng(0)
    ref = [*rng.normal(size=100).tolist(), None, float("nan"), float("inf")]
    cur = [*rng.normal(size=50).tolist(), None, None]
    r = NUMERIC[name](ref, cur)
    assert not r.insufficient and (r.reference_n, r.current_n) == (100, 50)
    tiny = NUMERIC[name](rng.normal(size=100), [1.0] * 29 + [None] * 10)
    assert tiny.insufficient and not tiny.significant(1.0) and tiny.current_n == 29


@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_categorical_detectors_drop_none_and_nan_and_refuse_tiny_samples(name):
    ref = np.array(["a", "b"] * 50 + [None, float("nan")], dtype=object)
    cur = np.array(["a", "b"] * 20 + [None] * 30, dtype=object)
    r = CATEGORICAL[name](ref, cur)
    assert (r.reference_n, r.current_n) == (100, 40) and r.details["categories"] == 2
    assert CATEGORICAL[name](ref, cur[:20]).insufficient


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("kwargs", [{"min_effect": -0.1}, {"min_effect": float("nan")},
                                    {"min_n": 1}, {"min_n": 2.5}])
def test_invalid_parameters_are_refused(name, kwargs):
    with pytest.raises(ValueError):
        ALL[name](np.arange(100.0), np.arange(100.0), **kwargs)


@pytest.mark.parametrize("name", ["cvm", "js", "hellinger", "js_cat", "tv"])
def test_bounded_effects_refuse_floors_above_one(name):
    with pytest.raises(ValueError):
        ALL[name](np.arange(100.0), np.arange(100.0), min_effect=1.5)


@pytest.mark.parametrize("name", ["psi", "js", "hellinger"])
@pytest.mark.parametrize("bins", [1, 0, 2.5])
def test_invalid_bin_counts_are_refused(name, bins):
    with pytest.raises(ValueError):
        NUMERIC[name](np.arange(100.0), np.arange(100.0), bins=bins)


@pytest.mark.parametrize("test", [psi_test, categorical_psi_test])
def test_psi_refuses_a_non_positive_pseudocount(test):
    with pytest.raises(ValueError):
        test(np.arange(100.0), np.arange(100.0), pseudocount=0.0)


@pytest.mark.parametrize("name", list(ALL))
def test_results_are_json_serialisable_with_python_floats(name):
    rng = np.random.default_rng(0)
    if name in CATEGORICAL:
        ref, cur = _cats(rng, 500, PROBS), np.array(["a", "new"] * 100, dtype=object)
    else:
        ref, cur = rng.normal(size=500), rng.normal(0.3, 1, 200)
    r = ALL[name](ref, cur)
    assert r.detector == name
    for value in (r.statistic, r.p_value, r.effect):
        assert type(value) is float and math.isfinite(value)
    assert 0.0 <= r.p_value <= 1.0
    json.loads(json.dumps(dataclasses.asdict(r), allow_nan=False))
