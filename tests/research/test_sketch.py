"""LogHistogram: relative-error quantiles in bounded memory, mergeable, serialisable."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.research.lib.sketch import LogHistogram

ACC = 0.01
ROUNDING = 1e-9  # the guarantee is exact up to floating-point rounding

in_range = st.floats(1e-3, 1e7, allow_nan=False, allow_infinity=False)
values_lists = st.lists(st.one_of(in_range, st.just(0.0)), min_size=1, max_size=300)
quantiles = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20)


def exact(values, q):
    return np.quantile(np.asarray(values, dtype=float), q, method="inverted_cdf")


def assert_within(estimate, truth, accuracy=ACC):
    estimate, truth = np.atleast_1d(estimate), np.atleast_1d(truth)
    assert np.all(np.abs(estimate - truth) <= accuracy * np.abs(truth) * (1 + ROUNDING)
                  + 1e-300), (estimate, truth)


@settings(max_examples=300, deadline=None)
@given(values_lists, quantiles, st.sampled_from([0.001, 0.01, 0.05]))
def test_every_quantile_is_within_the_relative_accuracy_of_numpys(values, qs, accuracy):
    h = LogHistogram(accuracy)
    h.add_many(np.array(values))
    assert_within(h.quantile(np.array(qs)), exact(values, qs), accuracy)
    for q in qs[:3]:  # the scalar path agrees with the vector one
        assert h.quantile(q) == h.quantile(np.array([q]))[0]


def test_quantiles_of_a_large_heavy_tailed_sample():
    rng = np.random.default_rng(0)
    x = rng.lognormal(3, 1.5, 200_000)
    h = LogHistogram()
    h.add_many(x)
    qs = np.array([0.0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])
    assert_within(h.quantile(qs), exact(x, qs))
    assert h.quantile(0.0) == x.min() and h.quantile(1.0) == x.max()  # clamped to min/max
    # The bound is not vacuous: most estimates are off by more than 0.1 %.
    assert np.mean(np.abs(h.quantile(qs[1:-1]) / exact(x, qs[1:-1]) - 1) > 1e-3) > 0.5


@settings(max_examples=100, deadline=None)
@given(values_lists, values_lists)
def test_merge_equals_adding_everything_to_one(a, b):
    ha, hb, hall = LogHistogram(), LogHistogram(), LogHistogram()
    ha.add_many(np.array(a))
    hb.add_many(np.array(b))
    hall.add_many(np.array(a + b))
    assert ha.merge(hb) is ha
    assert ha.to_state() == hall.to_state()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(in_range, st.just(0.0), st.just(-1.0), st.just(math.nan),
                          st.floats(1e-9, 1e-3), st.floats(1e7, 1e12)), max_size=100))
def test_state_round_trips_through_json(values):
    h = LogHistogram()
    h.add_many(np.array(values, dtype=float))
    state = json.loads(json.dumps(h.to_state(), allow_nan=False))
    back = LogHistogram.from_state(state)
    assert back.to_state() == h.to_state()
    assert back.count == h.count
    qs = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(back.quantile(qs), h.quantile(qs))


def test_state_is_sparse():
    h = LogHistogram()
    h.add_many(np.full(10_000, 42.0))
    state = h.to_state()
    assert state["bucket_index"] and len(state["bucket_index"]) == 1
    assert state["bucket_count"] == [10_000]
    assert len(json.dumps(state)) < 400


def test_memory_is_bounded_and_independent_of_n():
    h = LogHistogram()
    expected = math.ceil(math.log(1e7 / 1e-3) / math.log(1.01 / 0.99)) + 1
    assert h.n_buckets in (expected - 1, expected)  # ceil rounding of the two edges
    before = h.nbytes
    rng = np.random.default_rng(1)
    for _ in range(5):
        h.add_many(rng.lognormal(3, 2, 400_000))
    assert h.count == 2_000_000
    assert h.nbytes == before == 8 * h.n_buckets < 10_000
    assert len(h.to_state()["bucket_index"]) <= h.n_buckets


def test_nan_is_ignored_and_counted_zeros_and_negatives_go_to_the_zero_bucket():
    h = LogHistogram()
    h.add_many(np.array([np.nan, np.inf, -np.inf, 0.0, -3.0, 5.0, 7.0, np.nan]))
    assert h.nan_count == 4 and h.count == 4 and h.zero_count == 2
    assert h.quantile(0.5) == 0.0  # rank 2 of [-3, 0, 5, 7] is in the zero bucket
    assert h.quantile(0.0) == -3.0  # clamped to the exact minimum
    assert h.quantile(1.0) == 7.0


def test_out_of_range_values_are_clamped_and_counted():
    h = LogHistogram(min_value=1.0, max_value=100.0)
    h.add_many(np.array([0.01, 0.5, 50.0, 1e4, 1e5]))
    assert h.underflow == 2 and h.overflow == 2 and h.count == 5
    assert h.quantile(0.0) == 0.01 and h.quantile(1.0) == 1e5  # extremes are exact
    # In between, out-of-range values report at the range's edge bucket (no guarantee).
    assert h.quantile(0.3) == pytest.approx(1.0, rel=2 * ACC)  # truly 0.5
    assert h.quantile(0.7) == pytest.approx(100.0, rel=2 * ACC)  # truly 1e4


def test_empty_histogram():
    h = LogHistogram()
    assert h.count == 0 and math.isnan(h.quantile(0.5))
    assert h.exceedances(1.0) == 0
    assert LogHistogram.from_state(h.to_state()).count == 0


def test_exceedances_are_exact_to_bucket_resolution():
    rng = np.random.default_rng(2)
    x = rng.lognormal(4, 1, 100_000)
    h = LogHistogram()
    h.add_many(x)
    gamma = (1 + ACC) / (1 - ACC)
    for t in (10.0, 54.6, 150.0, 1000.0):
        got = h.exceedances(t)
        # Exact for the bucket edge just above t (within a factor gamma) ...
        edge = gamma ** math.ceil(math.log(t) / math.log(gamma))
        assert t <= edge < t * gamma * (1 + 1e-12)
        assert got == int((x > edge).sum())
        # ... so bracketed by the exact counts at t and at t * gamma.
        assert (x > t * gamma).sum() <= got <= (x > t).sum()
    # Exact at a bucket edge and at zero.
    edge = gamma ** 200
    assert h.exceedances(edge) == int((x > edge).sum())
    assert h.exceedances(0.0) == x.size
    assert h.exceedances(1e8) == 0


@pytest.mark.parametrize("call", [
    lambda: LogHistogram(0.0),
    lambda: LogHistogram(1.0),
    lambda: LogHistogram(float("nan")),
    lambda: LogHistogram(min_value=0.0),
    lambda: LogHistogram(min_value=10.0, max_value=1.0),
    lambda: LogHistogram(max_value=float("inf")),
    lambda: LogHistogram(1e-9),  # would need billions of buckets
    lambda: LogHistogram().quantile(1.5),
    lambda: LogHistogram().quantile(-0.1),
    lambda: LogHistogram().exceedances(-1.0),
    lambda: LogHistogram().merge(LogHistogram(0.02)),
    lambda: LogHistogram.from_state({"kind": "other"}),
    lambda: LogHistogram.from_state({**LogHistogram().to_state(), "bucket_index": [10**6],
                                     "bucket_count": [1]}),
])
def test_invalid_parameters_are_refused(call):
    with pytest.raises(ValueError):
        call()
