"""The window tests' fast paths equal what they replace, to the last bit.

Each fast path (a reference sorted once, scalar Fisher/hypergeometric calls, the
Mann-Whitney U against a presorted sample, category and version counts by Counter)
is checked against scipy's or numpy's own function on samples with ties, signed
zeros, infinities, NaN and None, tiny and unequal sizes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.categorical import category_counts, chi2_homogeneity, chi2_test
from detectors.hypergeom import fisher_greater, hypergeom_cdf
from detectors.latency import latency_test
from detectors.multivariate import PcaReference, pca_reconstruction_test
from detectors.numeric import SortedSample, finite_values, ks_test
from detectors.quality import out_of_range_test, stuck_value_test
from detectors.ranks import mann_whitney_greater

VALUES = st.one_of(st.floats(-1e6, 1e6), st.integers(-3, 3).map(float),
                   st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf]))
SAMPLE = st.lists(VALUES, min_size=0, max_size=60).map(np.array)


def bits(x: float) -> bytes:
    return np.float64(x).tobytes()


def same(a: float, b: float) -> bool:
    return bits(a) == bits(b) or (np.isnan(a) and np.isnan(b))


@settings(max_examples=300, deadline=None)
@given(SAMPLE, SAMPLE, st.booleans())
def test_ks_equals_scipy_ks_2samp(ref, cur, presorted):
    r, c = finite_values(ref), finite_values(cur)
    got = ks_test(SortedSample.of(ref) if presorted else ref, cur, min_n=1)
    if r.size == 0 or c.size == 0:
        assert got.insufficient
        return
    with warnings.catch_warnings():  # two samples of one: scipy divides by zero
        warnings.simplefilter("ignore", RuntimeWarning)
        want = stats.ks_2samp(r, c, method="asymp")
    assert bits(got.statistic) == bits(want.statistic)
    assert same(got.p_value, want.pvalue)
    assert got.details == {"ref_mean": float(r.mean()), "cur_mean": float(c.mean()),
                           "ref_std": float(r.std()), "cur_std": float(c.std())}


def test_ks_on_window_sized_samples_with_rounding_ties():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.05, 0.3):
        ref, cur = rng.normal(size=5000).round(2), rng.normal(shift, 1, 2000).round(2)
        got, want = ks_test(ref, cur), stats.ks_2samp(ref, cur, method="asymp")
        assert (got.statistic, got.p_value) == (float(want.statistic), float(want.pvalue))
        got = ks_test(cur[:700], SortedSample.of(ref))  # n1 < n2
        want = stats.ks_2samp(cur[:700], ref, method="asymp")
        assert (got.statistic, got.p_value) == (float(want.statistic), float(want.pvalue))


COUNT = st.one_of(st.integers(0, 10), st.integers(0, 6000))


@settings(max_examples=300, deadline=None)
@given(COUNT, COUNT, COUNT, COUNT)
def test_fisher_greater_equals_scipy(a, b, c, d):
    want = stats.fisher_exact([[a, b], [c, d]], alternative="greater").pvalue
    assert bits(fisher_greater(a, b, c, d)) == bits(want)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 8000), st.data())
def test_hypergeom_cdf_equals_scipy(big_m, data):
    n, big_n = data.draw(st.integers(0, big_m)), data.draw(st.integers(0, big_m))
    k = data.draw(st.integers(-2, big_m + 2))
    assert bits(hypergeom_cdf(k, big_m, n, big_n)) == bits(stats.hypergeom.cdf(k, big_m, n, big_n))


@settings(max_examples=300, deadline=None)
@given(SAMPLE, SAMPLE)
def test_mann_whitney_equals_scipy(x, y):
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size == 0 or y.size == 0:
        return
    with np.errstate(all="ignore"):  # every value tied: scipy's z is 0 / 0
        want = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")
    u, p = mann_whitney_greater(x, np.sort(y))
    assert bits(u) == bits(want.statistic)
    assert same(p, want.pvalue)


def _stuck_oracle(ref, cur, min_share, min_n):
    """stuck_value_test on numeric samples as it was written before the fast path."""
    ref, cur = finite_values(ref), finite_values(cur)
    n, m = ref.size, cur.size
    if n < min_n or m < min_n:
        return None
    values, counts = np.unique(cur, return_counts=True)
    i = int(np.argmax(counts))
    value, k = values[i], int(counts[i])
    r = int(np.count_nonzero(ref == value))
    distinct = int(np.unique(np.concatenate([ref, cur])).size)
    p = float(stats.fisher_exact([[k, m - k], [r, n - r]], alternative="greater").pvalue)
    return (k / m, min(1.0, p * distinct), k / m - r / n,
            {"value": float(value), "ref_share": r / n, "cur_share": k / m,
             "distinct_values": distinct})


def _range_oracle(ref, cur, margin, min_n, tail=0.001):
    ref, cur = np.sort(finite_values(ref)), finite_values(cur)
    n, m = ref.size, cur.size
    if n < min_n or m < min_n:
        return None
    r = max(1, min(int(round(tail * n)), (n - 1) // 2))
    low, high = float(ref[r - 1]), float(ref[n - r])
    low, high = low - margin * (high - low), high + margin * (high - low)
    k = int(np.count_nonzero((cur < low) | (cur > high)))
    p = 1.0 if k == 0 else float(stats.hypergeom.cdf(2 * r - 1, n + m, n, k + 2 * r - 1))
    return k / m, min(max(p, 0.0), 1.0), k / m - 2 * r / (n + 1), (low, high)


@settings(max_examples=300, deadline=None)
@given(SAMPLE, SAMPLE, st.booleans(), st.floats(0, 2))
def test_quality_tests_on_sorted_samples_equal_the_plain_computation(ref, cur, presorted, margin):
    r, c = (SortedSample.of(ref), SortedSample.of(cur)) if presorted else (ref, cur)
    got, want = stuck_value_test(r, c, min_share=0.1, min_n=1), _stuck_oracle(ref, cur, 0.1, 1)
    if want is None:
        assert got.insufficient
    else:
        assert [bits(x) for x in (got.statistic, got.p_value, got.effect)] == \
            [bits(x) for x in want[:3]]
        assert repr(got.details) == repr(want[3])  # -0.0 shown as numpy's unique shows it
    got, want = out_of_range_test(r, c, margin=margin, min_n=3), _range_oracle(ref, cur, margin, 3)
    if want is None:
        assert got.insufficient
    else:
        assert [bits(x) for x in (got.statistic, got.p_value, got.effect)] == \
            [bits(x) for x in want[:3]]
        assert (got.details["low"], got.details["high"]) == want[3]


def test_latency_test_on_a_sorted_reference_equals_the_raw_one():
    rng = np.random.default_rng(5)
    ref = rng.lognormal(3.4, 0.3, 5000).round(2)
    for scale in (1.0, 1.1, 1.5):
        cur = (rng.lognormal(3.4, 0.3, 2000) * scale).round(2)
        a, b = latency_test(ref, cur), latency_test(SortedSample.of(ref), cur)
        assert a == b
        want = stats.mannwhitneyu(cur, ref, alternative="greater", method="asymptotic")
        assert a.details["subtest_p_values"]["shift"] == float(want.pvalue)


def test_pca_against_a_fitted_reference_equals_fitting_it_each_time():
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(5000, 4))
    ref[::97, 2] = np.nan
    fitted = PcaReference.fit(ref)
    for shift in (0.0, 0.3):
        cur = rng.normal(shift, 1, size=(2000, 4))
        assert pca_reconstruction_test(fitted, cur) == pca_reconstruction_test(ref, cur)
    with pytest.raises(ValueError, match="fitted with"):
        pca_reconstruction_test(fitted, cur, variance=0.8)
    with pytest.raises(ValueError, match="4 features"):
        pca_reconstruction_test(fitted, cur[:, :3])


CATEGORY = st.one_of(st.sampled_from(["a", "b", "é", "a\x00", "", None]), st.text(max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(CATEGORY, st.integers(0, 2)), max_size=40))
def test_category_counts_equal_numpys_unique(values):
    arr = np.array(values + [None], dtype=object)[:-1]  # stays a 1-D object array
    kept = arr[np.not_equal(arr, np.asarray(None, dtype=object))].astype(str)
    cats, counts = np.unique(kept, return_counts=True)
    got = category_counts(arr)
    assert list(got.items()) == list(zip(cats.tolist(), counts.tolist(), strict=True))


def test_chi2_against_counted_reference_equals_the_raw_one():
    rng = np.random.default_rng(7)
    ref = rng.choice(np.array(["x", "y", "z", None], dtype=object), 5000)
    cur = rng.choice(np.array(["x", "y", "w"], dtype=object), 2000)
    assert chi2_test(category_counts(ref), cur) == chi2_test(ref, cur)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(COUNT, COUNT), min_size=2, max_size=30))
def test_chi2_homogeneity_equals_scipys_contingency_test(columns):
    table = np.array(columns, dtype=float).T
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return
    want = stats.chi2_contingency(table, correction=False)
    stat, p = chi2_homogeneity(table)
    assert (bits(stat), bits(p)) == (bits(want.statistic), bits(want.pvalue))

