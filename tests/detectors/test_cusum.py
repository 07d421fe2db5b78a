"""The CUSUM bank: exact batching, thresholds that keep their false-alarm promise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.cusum import (
    H_MAX,
    CusumBank,
    cusum_threshold,
    lindley_scan,
    log_alarm_rate,
    log_arl,
    log_g,
    log_siegmund_arl0,
    normal_scores,
    siegmund_arl0,
)


def naive(z: np.ndarray, k: float, h: float, sign: int, center: float = 0.0) -> list[int]:
    s, out = 0.0, []
    for i, x in enumerate(z):
        if np.isnan(x):
            continue
        s = max(0.0, s + sign * (x - center) - k)
        if s > h:
            out.append(i)
            s = 0.0
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-6, 6), st.just(float("nan"))), min_size=1, max_size=300),
       st.integers(1, 5), st.sampled_from([0.25, 0.5, 1.0]), st.sampled_from([0.0, 0.3, -1.1]))
def test_batches_of_any_size_equal_the_textbook_recursion(xs, pieces, k, center):
    z = np.array(xs)
    bank = CusumBank(1, [k], arl0=50, sigma=[0.02])
    bank.retune(0, center, 0.02)
    got: dict[int, list[int]] = {1: [], -1: []}
    start = 0
    for chunk in np.array_split(z, pieces):
        for a in bank.update(chunk[:, None]):
            got[a.direction].append(start + a.row)
        start += chunk.size
    h = bank.h[0, 0]
    assert got[1] == naive(z, k, h, 1, center)
    assert got[-1] == naive(z, k, h, -1, center)


def test_state_round_trips_and_continues_identically():
    rng = np.random.default_rng(0)
    a = CusumBank(3, [0.25, 0.5], arl0=300, directions=[0, 1, -1], sigma=[0.05, 0.0, 0.1])
    a.update(rng.normal(0.3, 1, size=(777, 3)))
    a.retune(2, 0.07, 0.03)
    b = CusumBank.from_state(json.loads(json.dumps(a.to_state())))
    more = rng.normal(0.3, 1, size=(500, 3))
    assert a.update(more) == b.update(more)
    assert a.to_state() == b.to_state()


def test_weights_share_a_streams_budget_and_keep_its_total():
    ks, arl0 = [0.125, 0.25, 0.5], 5_000.0
    even = CusumBank(1, ks, arl0, sigma=[0.01])
    uneven = CusumBank(1, ks, arl0, sigma=[0.01], weights=[8, 4, 2])  # scaled to mean 1
    share = np.array([8, 4, 2]) / np.mean([8, 4, 2])
    for j, k in enumerate(ks):  # the CUSUMs with ks[j] get arl0 / share[j]
        assert uneven.h[0, j] == pytest.approx(cusum_threshold(k, arl0 / share[j], 0.01))
    # the heaviest k gets a lower threshold, the lightest a higher one
    assert uneven.h[0, 0] < even.h[0, 0] and uneven.h[0, 2] > even.h[0, 2]
    # the stream's expected false alarms per event stay those of the even split
    rate = [sum(np.exp(log_alarm_rate(k, float(b.h[0, j]), 0.01)) for j, k in enumerate(ks))
            for b in (even, uneven)]
    assert rate[1] == pytest.approx(rate[0], rel=1e-6)
    uneven.retune(0, 0.02, 0.004)  # retuning keeps the shares
    assert uneven.h[0, 1] == pytest.approx(cusum_threshold(0.25, arl0 / share[1], 0.004))


def test_a_weighted_bank_round_trips_and_an_old_state_shares_evenly():
    rng = np.random.default_rng(5)
    a = CusumBank(2, [0.05, 0.5], arl0=1e4, sigma=[0.02, 0.0], weights=[3.0, 0.7])
    a.update(rng.normal(0.1, 1, size=(999, 2)))
    b = CusumBank.from_state(json.loads(json.dumps(a.to_state())))
    assert np.array_equal(a.h, b.h)
    more = rng.normal(0.1, 1, size=(2_000, 2))
    assert a.update(more) == b.update(more)
    old = a.to_state()
    del old["weights"]
    assert np.array_equal(CusumBank.from_state(old).h,
                          CusumBank(2, [0.05, 0.5], 1e4, sigma=[0.02, 0.0]).h)


def test_a_scaled_stream_runs_as_a_bank_of_its_stretched_ks_and_the_others_do_not_move():
    rng = np.random.default_rng(6)
    ks, w = [0.05, 0.25], [20.0, 4.0]
    bank = CusumBank(2, ks, 1e4, [0, 1], [0.02, 0.01], w, scale=[1.0, 2.5])
    alone = CusumBank(1, [0.125, 0.625], 1e4, [1], [0.01], w)  # stream 1's ks, stretched
    plain = CusumBank(1, ks, 1e4, [0], [0.02], w)  # stream 0 as without scales
    assert np.allclose(bank.k, [[0.05, 0.25], [0.125, 0.625]])
    assert np.array_equal(bank.h[1], alone.h[0]) and np.array_equal(bank.h[0], plain.h[0])
    z = rng.normal(0.3, 1, size=(3_000, 2))
    got = bank.update(z)
    assert [(a.row, a.k, a.statistic) for a in got if a.stream == 1] == [
        (a.row, a.k, a.statistic) for a in alone.update(z[:, 1:])]
    assert [(a.row, a.k) for a in got if a.stream == 0] == [
        (a.row, a.k) for a in plain.update(z[:, :1])]
    assert got and {a.k for a in got if a.stream == 1} <= {0.125, 0.625}
    bank.retune(1, 0.01, 0.005)  # retuning keeps the stretch
    assert bank.h[1, 0] == pytest.approx(cusum_threshold(0.125, 1e4 / (20 / 12), 0.005))


def test_a_scaled_bank_round_trips_and_an_old_state_runs_unscaled():
    rng = np.random.default_rng(7)
    a = CusumBank(2, [0.05, 0.5], 1e4, sigma=[0.02, 0.0], scale=[1.0, 3.0])
    a.update(rng.normal(0.2, 1, size=(999, 2)))
    b = CusumBank.from_state(json.loads(json.dumps(a.to_state())))
    assert np.array_equal(a.k, b.k) and np.array_equal(a.h, b.h)
    more = rng.normal(0.2, 1, size=(2_000, 2))
    assert a.update(more) == b.update(more)
    old = a.to_state()
    del old["scale"]
    assert np.array_equal(CusumBank.from_state(old).k, [[0.05, 0.5], [0.05, 0.5]])


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
    lambda: cusum_threshold(0.5, 100.0, -0.1),
    lambda: cusum_threshold(0.5, 100.0, float("nan")),
    lambda: CusumBank(2, [0.5], 100).update(np.zeros((3, 3))),
    lambda: CusumBank(2, [0.5], 100, sigma=[0.1]),
    lambda: CusumBank(1, [0.5], 100, sigma=[-0.1]),
    lambda: CusumBank(1, [0.5], 100).retune(0, float("nan"), 0.1),
    lambda: CusumBank(1, [0.5], 100).retune(0, 0.0, float("inf")),
    lambda: CusumBank(1, [0.25, 0.5], 100, weights=[1.0]),
    lambda: CusumBank(2, [0.25, 0.5], 100, scale=[1.0]),
    lambda: CusumBank(1, [0.25, 0.5], 100, scale=[0.5]),
    lambda: CusumBank(1, [0.25, 0.5], 100, scale=[float("nan")]),
    lambda: CusumBank(1, [0.25, 0.5], 100, weights=[1.0, 0.0]),
    lambda: CusumBank(1, [0.25, 0.5], 100, weights=[1.0, float("inf")]),
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
    assert len(rows) > 50 and rows == naive(z, 0.5, bank.h[0, 0], 1)


def test_run_length_points_back_at_the_change_even_across_batches():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(6000, 1))
    z[5000:] += 1.0
    bank = CusumBank(1, [0.5], arl0=1e8, directions=[1])
    assert bank.update(z[:5020]) == []  # the excursion starts in this batch ...
    alarm = bank.update(z[5020:])[0]  # ... and alarms in the next
    assert abs(5020 + alarm.row - alarm.run_length - 5000) < 60


def test_run_length_formula_is_siegmunds_in_control_and_continuous_through_zero_drift():
    assert log_arl(np.array([-0.25]), 30.0)[0] == pytest.approx(log_siegmund_arl0(0.25, 30.0))
    hp = 30.0 + 2 * 0.583
    zero = float(np.exp(log_arl(np.array([0.0]), 30.0)[0]))
    assert zero == pytest.approx(hp**2)  # a driftless walk: ~h^2 steps to cross h
    near = np.exp(log_arl(np.array([-1e-7, 1e-7]), 30.0))
    assert near == pytest.approx([zero, zero], rel=1e-5)
    # out of control (positive drift): about (h + overshoot) / drift, from below
    assert float(np.exp(log_arl(np.array([0.5]), 30.0)[0])) == pytest.approx(hp / 0.5, rel=0.05)
    x = np.array([-1e4, -3.0, -1e-5, 0.0, 1e-5, 2.0, 29.9, 30.1, 800.0])
    ref = [np.log((np.expm1(v) - v) / v**2) if 1e-3 < abs(v) < 700 else None for v in x]
    for got, want in zip(log_g(x), ref, strict=True):
        assert np.isfinite(got)
        if want is not None:
            assert got == pytest.approx(want, rel=1e-9)


def test_an_uncertain_center_only_raises_the_threshold_and_can_make_it_infinite():
    h0 = cusum_threshold(0.05, 1e8)
    assert cusum_threshold(0.05, 1e8, 0.0) == h0
    hs = [cusum_threshold(0.05, 1e8, 1 / np.sqrt(n)) for n in (50_000, 20_000, 5_000)]
    assert h0 < hs[0] < hs[1] < hs[2]
    assert hs[0] < 1.1 * h0  # a 50,000-score baseline costs little
    # the rate at the threshold is the budget, averaged over the center's error
    assert log_alarm_rate(0.05, hs[1], 1 / np.sqrt(20_000)) == pytest.approx(-np.log(1e8))
    # a center as uncertain as k itself: no threshold keeps 1e-12 false alarms per event
    assert cusum_threshold(0.05, 1e12, 0.05) == np.inf
    assert cusum_threshold(0.5, 1e8, 0.014) < 1.02 * cusum_threshold(0.5, 1e8)


@pytest.mark.parametrize(("k", "arl0", "nref"), [(0.125, 2e4, 500), (0.05, 5e4, 2_000)])
def test_thresholds_keep_the_budget_on_average_over_references(k, arl0, nref):
    """Scores against a reference of ``nref`` values are off-centre by ~1/sqrt(nref):
    Siegmund's h then alarms several times too often (averaged over references), the
    h that accounts for the centre's error keeps the budget."""
    rng = np.random.default_rng(7)
    naive_h, h = cusum_threshold(k, arl0), cusum_threshold(k, arl0, 1 / np.sqrt(nref))
    refs, n = 300, 40_000
    alarms = {naive_h: 0, h: 0}
    for _ in range(refs):
        z = normal_scores(np.sort(rng.normal(size=nref)), rng.normal(size=n))
        for sign in (1, -1):
            for hh in alarms:
                alarms[hh] += len(lindley_scan(sign * z - k, 0.0, 0, hh)[0])
    events = 2 * refs * n
    assert events / alarms[naive_h] < 0.6 * arl0  # the problem is real ...
    assert 0.8 * arl0 < events / alarms[h] < 1.4 * arl0  # ... and solved, not overpaid


def test_retune_recenters_a_stream_and_keeps_its_statistics():
    bank = CusumBank(2, [0.05, 0.5], arl0=1e6, sigma=[1 / np.sqrt(5_000)] * 2)
    assert bank.h.shape == (2, 2) and bank.h[0, 0] == cusum_threshold(0.05, 1e6, 5_000**-0.5)
    bank.update(np.full((50, 2), 0.3))
    before = bank.state.copy()
    bank.retune(1, 0.3, 1 / np.sqrt(50_000))
    assert bank.state.tolist() == before.tolist()
    assert bank.h[1, 0] < bank.h[0, 0] and bank.h[0, 0] == cusum_threshold(0.05, 1e6, 5_000**-0.5)
    # scores at the new centre drain stream 1's CUSUMs; stream 0 keeps climbing
    bank.update(np.full((5_000, 2), 0.3))
    assert bank.state[0, 1, 0] == 0.0 and bank.state[0, 0, 0] > 0.0


def test_a_state_from_before_centers_loads_as_known_centers():
    bank = CusumBank(2, [0.125, 0.25, 0.5], arl0=1e5, directions=[0, 1])
    old = bank.to_state()
    del old["center"], old["sigma"]
    restored = CusumBank.from_state(json.loads(json.dumps(old)))
    assert restored.center.tolist() == [0.0, 0.0] and restored.sigma.tolist() == [0.0, 0.0]
    assert restored.h.tolist() == bank.h.tolist()


def test_an_infinite_threshold_never_alarms():
    bank = CusumBank(1, [0.05], arl0=1e12, sigma=[0.05])
    assert bank.h[0, 0] == np.inf and bank.h[0, 0] > H_MAX
    assert bank.update(np.full((10_000, 1), 3.0)) == []


def test_each_stream_keeps_its_own_budget():
    both = CusumBank(2, [0.125, 0.5], arl0=[1e4, 1e7], directions=[0, 1], sigma=[0.01, 0.02])
    for s, (arl0, d, sigma) in enumerate([(1e4, 0, 0.01), (1e7, 1, 0.02)]):
        alone = CusumBank(1, [0.125, 0.5], arl0=arl0, directions=[d], sigma=[sigma])
        assert both.h[s].tolist() == alone.h[0].tolist()
    both.retune(1, 0.01, 0.005)
    assert both.h[1].tolist() == CusumBank(1, [0.125, 0.5], 1e7, [1], [0.005]).h[0].tolist()
    restored = CusumBank.from_state(json.loads(json.dumps(both.to_state())))
    assert restored.arl0 == [1e4, 1e7] and restored.h.tolist() == both.h.tolist()
    with pytest.raises(ValueError):
        CusumBank(2, [0.5], arl0=[1e4])
    with pytest.raises(ValueError):
        CusumBank(2, [0.5], arl0=[1e4, 1.0])


def test_a_state_with_one_budget_for_all_streams_loads():
    bank = CusumBank(2, [0.125, 0.5], arl0=1e5)
    old = bank.to_state()
    old["arl0"] = 1e5  # as saved before budgets were per stream
    assert CusumBank.from_state(json.loads(json.dumps(old))).h.tolist() == bank.h.tolist()
