"""Bernoulli CUSUMs: exact batching, thresholds that keep their false-alarm promise,
alternatives that tolerate exactly the effect floor, honest reference bounds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.bernoulli import (
    BernoulliBank,
    _tilt,
    alternative,
    bernoulli_threshold,
    expected_threshold,
    expected_thresholds,
    kl_bernoulli,
    log_bernoulli_arl,
    posterior_mean,
    posterior_rates,
    rate_bound,
    rate_thresholds,
)


def naive(x: list[float], p0: float, p1: float, h: float) -> list[int]:
    s, out = 0.0, []
    for i, v in enumerate(x):
        if math.isnan(v):
            continue
        s = max(0.0, s + (math.log(p1 / p0) if v else math.log((1 - p1) / (1 - p0))))
        if s > h:
            out.append(i)
            s = 0.0
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, float("nan")]), min_size=1, max_size=400),
       st.integers(1, 5), st.sampled_from([(0.1, 0.3), (0.3, 0.1), (0.02, 0.2)]),
       st.sampled_from([None, (3, 100), (40, 400)]))
def test_batches_of_any_size_equal_the_textbook_recursion(xs, pieces, rates, counts):
    p0, p1 = rates
    bank = BernoulliBank([p0], [[p1]], arl0=30, counts=[counts])
    got, start = [], 0
    for chunk in np.array_split(np.array(xs), pieces):
        got += [start + a.row for a in bank.update(chunk[:, None])]
        start += chunk.size
    assert got == naive(xs, p0, p1, bank.cusums[0][4])


@pytest.mark.parametrize(("p0", "p1", "arl0"), [
    (0.01, 0.03, 5_000.0), (0.1, 0.05, 5_000.0), (0.4, 0.6, 3_000.0), (0.001, 0.01, 20_000.0)])
def test_threshold_keeps_the_promised_run_length(p0, p1, arl0):
    rng = np.random.default_rng(0)
    bank = BernoulliBank([p0], [[p1]], arl0)
    n = 3_000_000
    alarms = bank.update((rng.random(n) < p0).astype(float)[:, None])
    observed = n / max(len(alarms), 1)
    # Wald's approximation ignores the overshoot over h: conservative, not wasteful
    assert arl0 * 0.9 <= observed <= arl0 * 3


def test_alternative_tolerates_exactly_the_floor():
    for p0, z in ((0.01, 0.015), (0.01, 0.03), (0.1, 0.05), (0.0003, 0.05)):
        p1 = alternative(p0, z)
        assert (p1 > z) == (z > p0)
        llr = z * math.log(p1 / p0) + (1 - z) * math.log((1 - p1) / (1 - p0))
        assert llr == pytest.approx(0.0, abs=1e-9)
        beyond = z + 0.3 * (z - p0)  # a rate past the floor accumulates evidence
        assert beyond * math.log(p1 / p0) + (1 - beyond) * math.log((1 - p1) / (1 - p0)) > 0


def test_posterior_mean_is_jeffreys_and_never_zero_or_one():
    assert posterior_mean(50, 5_000) == pytest.approx(50.5 / 5_001)
    assert 0 < posterior_mean(0, 5_000) < 1e-3 and 1 - 1e-3 < posterior_mean(5_000, 5_000) < 1
    rng = np.random.default_rng(1)
    counts = rng.binomial(5_000, 0.01, size=4_000)
    means = np.array([posterior_mean(c, 5_000) for c in counts])
    assert abs(means.mean() - 0.01) < 1e-4  # all but unbiased


def test_rate_bound_covers_the_true_rate_at_its_level():
    rng = np.random.default_rng(1)
    for p, n in ((0.01, 5_000), (0.3, 2_000), (0.0005, 5_000)):
        counts = rng.binomial(n, p, size=4_000)
        upper = np.array([rate_bound(c, n, upper=True) for c in counts])
        lower = np.array([rate_bound(c, n, upper=False) for c in counts])
        assert (upper < p).mean() <= 0.12  # the level is 0.9
        assert (lower > p).mean() <= 0.12
    assert 0 < rate_bound(0, 5_000, upper=True) < 0.001


def test_a_rise_is_caught_fast_and_a_fall_by_its_own_cusum():
    rng = np.random.default_rng(2)
    x = (rng.random((6_000, 2)) < 0.01).astype(float)
    x[3_000:, 0] = rng.random(3_000) < 0.04
    x[3_000:, 1] = 0.0
    bank = BernoulliBank([0.01, 0.01], [[0.03], [0.002]], arl0=1e8)
    alarms = bank.update(x)
    rise = [a for a in alarms if a.stream == 0]
    fall = [a for a in alarms if a.stream == 1]
    assert rise and 3_000 <= rise[0].row < 4_500 and rise[0].direction == 1
    assert fall and 3_000 <= fall[0].row < 6_000 and fall[0].direction == -1


def test_state_round_trips_and_continues_identically():
    rng = np.random.default_rng(3)
    a = BernoulliBank([0.05, 0.2], [[0.1, 0.2], [0.1]], arl0=500, counts=[[40, 1000], None])
    a.update((rng.random((777, 2)) < 0.08).astype(float))
    a.retune(1, 0.19, [0.11], [350, 2000])
    b = BernoulliBank.from_state(json.loads(json.dumps(a.to_state())))
    more = (rng.random((500, 2)) < 0.08).astype(float)
    assert a.update(more) == b.update(more)
    assert a.to_state() == b.to_state()


def test_a_stream_at_or_below_the_reference_never_alarms_upward():
    bank = BernoulliBank([0.01], [[0.05]], arl0=1e6)
    assert bank.update(np.zeros((200_000, 1))) == []


def test_threshold_grows_with_the_budget_and_shrinks_with_the_distance():
    assert bernoulli_threshold(0.01, 0.03, 1e8) > bernoulli_threshold(0.01, 0.03, 1e6)
    assert kl_bernoulli(0.01, 0.05) > kl_bernoulli(0.01, 0.03)


@pytest.mark.parametrize("call", [
    lambda: BernoulliBank([], [], 100),
    lambda: BernoulliBank([0.1], [[0.2], [0.3]], 100),
    lambda: BernoulliBank([0.0], [[0.2]], 100),
    lambda: BernoulliBank([0.1], [[0.1]], 100),
    lambda: BernoulliBank([0.1], [[1.0]], 100),
    lambda: BernoulliBank([0.1], [[]], 100),
    lambda: bernoulli_threshold(0.1, 0.2, 1.0),
    lambda: alternative(0.1, 0.1),
    lambda: posterior_mean(5, 3),
    lambda: rate_bound(5, 3, upper=True),
    lambda: BernoulliBank([0.1], [[0.2]], 100).update(np.zeros((3, 2))),
    lambda: BernoulliBank([0.1], [[0.2]], 100, counts=[[5, 3]]),
    lambda: BernoulliBank([0.1], [[0.2]], 100, counts=[[1, 10], [1, 10]]),
    lambda: BernoulliBank([0.1], [[0.2]], 100, counts=[[1, 0]]),
    lambda: expected_threshold(0.1, 0.2, 100, 5, 3),
    lambda: expected_threshold(0.1, 0.1, 100, 1, 10),
    lambda: expected_threshold(0.1, 0.2, 1.0, 1, 10),
])
def test_invalid_parameters_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_retune_moves_one_stream_keeps_its_statistic_and_refuses_a_new_shape():
    bank = BernoulliBank([0.02, 0.1], [[0.05, 0.08], [0.2]], arl0=1e4)
    bank.update(np.tile([1.0, 0.0], (3, 1)))
    before = bank.state.copy()
    assert bank.retune(0, 0.015, [0.04, 0.07])
    assert bank.p0 == [0.015, 0.1] and bank.state.tolist() == before.tolist()
    assert [c[1] for c in bank.cusums] == [0.04, 0.07, 0.2]
    assert bank.cusums[0][4] == bernoulli_threshold(0.015, 0.04, 1e4)
    assert not bank.retune(1, 0.05, [0.1, 0.2])  # two alternatives where there was one
    assert not bank.retune(1, 0.05, [0.05])
    restored = BernoulliBank.from_state(json.loads(json.dumps(bank.to_state())))
    assert restored.cusums == bank.cusums


def test_the_run_length_at_p0_is_walds_and_the_tilt_solves_walds_equation():
    for p0, p1 in ((0.01, 0.03), (0.1, 0.05), (0.4, 0.6), (0.001, 0.01)):
        h = bernoulli_threshold(p0, p1, 1e6)
        assert float(np.exp(log_bernoulli_arl(np.array([p0]), p0, p1, h)[0])) == \
            pytest.approx(1e6, rel=1e-9)
        a, b = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
        ps = np.array([1e-9, p0 / 3, p0, 0.5 * (p0 + p1), p1, 0.999])
        theta, mu, _ = _tilt(ps, a, b)
        assert theta[2] == pytest.approx(1.0, rel=1e-9)  # at p0 the LLR's exponent is 1
        assert np.all(np.sign(theta) == -np.sign(mu))
        lhs = ps * np.exp(theta * a) + (1 - ps) * np.exp(theta * b)
        assert lhs == pytest.approx(np.ones_like(ps), rel=1e-9)
    # a driftless walk: about h^2 / variance steps to cross h
    p0, p1 = 0.1, 0.2
    a, b = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    zero = -b / (a - b)
    var = zero * (1 - zero) * (a - b) ** 2
    got = float(np.exp(log_bernoulli_arl(np.array([zero]), p0, p1, 10.0)[0]))
    assert got == pytest.approx(100 / var, rel=1e-3)


def test_posterior_nodes_follow_the_jeffreys_posterior_into_both_tails():
    rates = posterior_rates(3, 1000)
    assert np.all(np.diff(rates) > 0) and 0 < rates[0] < 1e-4 and 0.02 < rates[-1] < 0.2
    assert posterior_rates(0, 5_000)[0] > 0 and posterior_rates(5_000, 5_000)[-1] < 1


def test_expected_threshold_tends_to_walds_as_the_baseline_grows():
    p0 = 0.01
    for q in (0.016, 0.035):
        wald = bernoulli_threshold(p0, q, 1e8)
        near = expected_threshold(p0, q, 1e8, p0 * 1e8, 1e8)
        assert near == pytest.approx(wald, rel=0.01)
    # shared posterior, one threshold per alternative, in order
    hs = expected_thresholds(0.012, [0.017, 0.036], 1e8, 200, 20_000)
    assert hs == [expected_threshold(0.012, q, 1e8, 200, 20_000) for q in (0.017, 0.036)]
    # a reference too small for the floor: the small alternative waits (huge or no h)
    assert expected_threshold(0.1079, 0.1130, 1e10, 250, 2_500) > 100


def test_thresholds_keep_the_budget_on_average_over_references():
    """Small references: Wald's h at the posterior mean overspends the budget on
    average (the references that underestimate the rate page over and over), the h
    that averages over the rate's posterior keeps it."""
    rng = np.random.default_rng(3)
    p, nref, floor, arl0 = 0.05, 200, 0.005, 1e5
    refs, n = 300, 40_000
    alarms = {"wald": 0, "expected": 0}
    for _ in range(refs):
        hits = int(rng.binomial(nref, p))
        p0 = posterior_mean(hits, nref)
        p1 = [alternative(p0, p0 + floor)]
        x = (rng.random(n) < p).astype(float)[:, None]
        alarms["wald"] += len(BernoulliBank([p0], [p1], arl0).update(x))
        alarms["expected"] += len(BernoulliBank([p0], [p1], arl0, [[hits, nref]]).update(x))
    assert refs * n / alarms["wald"] < 0.7 * arl0
    assert 0.8 * arl0 < refs * n / alarms["expected"] < 2.5 * arl0


def test_a_state_from_before_counts_loads_with_known_rates():
    bank = BernoulliBank([0.02, 0.3], [[0.05], [0.2, 0.1]], arl0=1e5)
    old = bank.to_state()
    del old["counts"]
    restored = BernoulliBank.from_state(json.loads(json.dumps(old)))
    assert restored.counts == [None, None] and restored.cusums == bank.cusums


def test_retune_with_counts_averages_over_the_new_baseline():
    bank = BernoulliBank([0.012], [[0.017, 0.036]], arl0=1e8, counts=[[50, 5_000]])
    assert [c[4] for c in bank.cusums] == rate_thresholds(0.012, [0.017, 0.036], 1e8,
                                                            [50, 5_000])
    assert bank.retune(0, 0.0109, [0.0163, 0.0356], [200, 20_000])
    assert bank.counts == [[200.0, 20_000.0]]
    assert [c[4] for c in bank.cusums] == rate_thresholds(0.0109, [0.0163, 0.0356], 1e8,
                                                            [200, 20_000])
    assert not bank.retune(0, 0.0109, [0.0163, 0.0356], [30_000, 20_000])


def test_each_stream_keeps_its_own_budget():
    both = BernoulliBank([0.01, 0.2], [[0.02, 0.04], [0.3]], arl0=[1e7, 1e4],
                         counts=[[50, 5_000], None])
    assert [c[4] for c in both.cusums[:2]] == rate_thresholds(0.01, [0.02, 0.04], 1e7,
                                                               [50, 5_000])
    assert both.cusums[2][4] == bernoulli_threshold(0.2, 0.3, 1e4)
    both.retune(1, 0.21, [0.31])
    assert both.cusums[2][4] == bernoulli_threshold(0.21, 0.31, 1e4)
    restored = BernoulliBank.from_state(json.loads(json.dumps(both.to_state())))
    assert restored.arl0 == [1e7, 1e4] and restored.cusums == both.cusums
    old = both.to_state()
    old["arl0"] = 1e4  # as saved before budgets were per stream: one for all
    assert BernoulliBank.from_state(old).cusums[2] == both.cusums[2]
    with pytest.raises(ValueError):
        BernoulliBank([0.01, 0.2], [[0.02], [0.3]], arl0=[1e7])


@pytest.mark.parametrize(("hits", "n"), [(50, 5_000), (500, 50_000), (2_399, 25_500)])
def test_thresholds_keep_both_promises(hits, n):
    p0 = posterior_mean(hits, n)
    alts = [alternative(p0, p0 + 0.005), alternative(p0, p0 + 0.02)]
    got = rate_thresholds(p0, alts, 1e7, [hits, n])
    wald = [bernoulli_threshold(p0, q, 1e7) for q in alts]
    avg = expected_thresholds(p0, alts, 1e7, hits, n)
    assert got == [max(a, b) for a, b in zip(wald, avg, strict=True)]
    assert rate_thresholds(p0, alts, 1e7) == wald
    # a short reference: what it leaves uncertain costs threshold over Wald's
    if n <= 5_000:
        assert all(b > a for a, b in zip(wald, avg, strict=True))
