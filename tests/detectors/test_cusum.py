"""The CUSUM bank: exact batching, thresholds that keep their false-alarm promise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.cusum import CusumBank, cusum_threshold, normal_scores, siegmund_arl0


def naive(z: np.ndarray, k: float, h: float, sign: int) -> list[int]:
    s, out = 0.0, []
    for i, x in enumerate(z):
        if np.isnan(x):
            continue
        s = max(0.0, s + sign * x - k)
        if s > h:
            out.append(i)
            s = 0.0
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-6, 6), st.just(float("nan"))), min_size=1, max_size=300),
       st.integers(1, 5), st.sampled_from([0.25, 0.5, 1.0]))
def test_batches_of_any_size_equal_the_textbook_recursion(xs, pieces, k):
    z = np.array(xs)
    bank = CusumBank(1, [k], arl0=50)
    got: dict[int, list[int]] = {1: [], -1: []}
    start = 0
    for chunk in np.array_split(z, pieces):
        for a in bank.update(chunk[:, None]):
            got[a.direction].append(start + a.row)
        start += chunk.size
    h = bank.h[0]
    assert got[1] == naive(z, k, h, 1)
    assert got[-1] == naive(z, k, h, -1)


def test_state_round_trips_and_continues_identically():
    rng = np.random.default_rng(0)
    a = CusumBank(3, [0.25, 0.5], arl0=300, directions=[0, 1, -1])
    a.update(rng.normal(0.3, 1, size=(777, 3)))
    b = CusumBank.from_state(json.loads(json.dumps(a.to_state())))
    more = rng.normal(0.3, 1, size=(500, 3))
    assert a.update(more) == b.update(more)
    assert a.to_state() == b.to_state()


@pytest.mark.parametrize(("k", "arl0"), [(0.5, 400.0), (0.25, 1500.0), (0.125, 2500.0)])
def test_threshold_delivers_the_promised_run_length(k, arl0):
    rng = np.random.default_rng(1)
    bank = CusumBank(1, [k], arl0=arl0, directions=[1])
    n = 2_000_000
    alarms = bank.update(rng.normal(size=(n, 1)))
    observed = n / len(alarms)
    assert observed == pytest.approx(arl0, rel=0.15)
    assert siegmund_arl0(k, cusum_threshold(k, arl0)) == pytest.approx(arl0)


def test_a_shift_is_caught_fast_and_in_the_right_direction():
    rng = np.random.default_rng(2)
    bank = CusumBank(2, [0.125, 0.25, 0.5], arl0=1e9, directions=[0, 1])
    z = rng.normal(size=(3000, 2))
    z[1000:, 0] += 1.0  # up on a two-sided stream
    z[1000:, 1] -= 1.0  # down on an up-only stream: not a regression
    alarms = bank.update(z)
    first = [a for a in alarms if a.stream == 0][0]
    assert first.direction == 1 and 1000 <= first.row < 1100
    assert not [a for a in alarms if a.stream == 1]


def test_normal_scores_are_standard_normal_under_no_change_even_for_discrete_data():
    rng = np.random.default_rng(3)
    for ref, cur in ((rng.lognormal(size=5000), rng.lognormal(size=20000)),
                     (rng.poisson(2, 5000).astype(float), rng.poisson(2, 20000).astype(float))):
        z = normal_scores(np.sort(ref), cur)
        assert abs(z.mean()) < 0.05 and z.std() <= 1.05
    # quantiles line up with the normal's, up to the reference's own sampling error
    z = normal_scores(np.sort(rng.normal(size=5000)), rng.normal(size=20000))
    assert np.quantile(z, [0.01, 0.5, 0.99]) == pytest.approx(
        stats.norm.ppf([0.01, 0.5, 0.99]), abs=0.08)
    assert np.isnan(normal_scores(np.sort(rng.normal(size=10)), np.array([np.nan]))).all()


@pytest.mark.parametrize("call", [
    lambda: CusumBank(0, [0.5], 100),
    lambda: CusumBank(1, [], 100),
    lambda: CusumBank(1, [-0.5], 100),
    lambda: CusumBank(2, [0.5], 100, directions=[0, 2]),
    lambda: cusum_threshold(0.5, 1.0),
    lambda: CusumBank(2, [0.5], 100).update(np.zeros((3, 3))),
])
def test_invalid_parameters_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_constant_stream_at_the_reference_never_alarms():
    bank = CusumBank(1, [0.125, 0.25, 0.5], arl0=1e6)
    assert bank.update(np.zeros((100_000, 1))) == []


def test_long_batches_across_blocks_equal_the_recursion():
    rng = np.random.default_rng(4)
    z = rng.normal(0.4, 1, size=10_000)  # many alarms, some near block edges
    z[::97] = np.nan
    bank = CusumBank(1, [0.5], arl0=200)
    rows = [a.row for a in bank.update(z[:, None]) if a.direction == 1]
    assert len(rows) > 50 and rows == naive(z, 0.5, bank.h[0], 1)


def test_run_length_points_back_at_the_change_even_across_batches():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(6000, 1))
    z[5000:] += 1.0
    bank = CusumBank(1, [0.5], arl0=1e8, directions=[1])
    assert bank.update(z[:5020]) == []  # the excursion starts in this batch ...
    alarm = bank.update(z[5020:])[0]  # ... and alarms in the next
    assert abs(5020 + alarm.row - alarm.run_length - 5000) < 60
