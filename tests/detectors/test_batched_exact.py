"""The batched and fused fast paths of the CUSUM banks and their threshold solves give
the same floats, to the last bit, as the per-CUSUM / per-function code they replaced
(kept here as the reference)."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

import detectors.cusum as cusum
from detectors.bernoulli import _LOG_W as RATE_LOG_W
from detectors.bernoulli import (
    BernoulliBank,
    RateAlarm,
    _log_ratio,
    _tilt,
    alternative,
    bernoulli_threshold,
    expected_thresholds,
    kl_bernoulli,
    posterior_rates,
)
from detectors.cusum import (
    H_MAX,
    Alarm,
    CusumBank,
    lindley_scan,
    lindley_scans,
    log_g,
    log_g_slope,
    normal_scores,
    right_ends,
    solve_threshold,
)

# -- the reference: the code before the fast paths ------------------------------------


def ref_slope(theta: np.ndarray, h: float) -> np.ndarray:
    x = theta * h
    small = np.abs(x) < 1e-3
    safe = np.where(small, 1.0, np.minimum(x, 30.0))
    mid = theta * np.expm1(safe) / (np.expm1(safe) - safe)
    far = theta / (1 - (x + 1) * np.exp(-np.maximum(x, 30.0)))
    return np.where(small, 2 / h + theta / 3, np.where(x > 30, far, mid))


def ref_solve(base: np.ndarray, theta: np.ndarray, log_arl0: float, guess: float,
              shift: float = 0.0) -> float:
    def excess(h: float) -> tuple[float, float]:
        hp = h + shift
        v = base - 2 * math.log(hp) - log_g(theta * hp)
        top = float(v.max())
        e = np.exp(v - top)
        total = float(e.sum())
        return top + math.log(total) + log_arl0, -float((e * ref_slope(theta, hp)).sum()) / total

    lo, hi = 1e-6, H_MAX
    if excess(hi)[0] > 0:
        return math.inf
    f, df = excess(lo)
    if f <= 0:
        return lo
    h = min(max(guess, lo), hi)
    for _ in range(100):
        f, df = excess(h)
        if f > 0:
            lo = h
        else:
            hi = h
        nxt = h - f / df if df < 0 else math.nan
        if not lo < nxt < hi:
            nxt = math.sqrt(lo * hi) if hi / lo > 4 else 0.5 * (lo + hi)
        if abs(nxt - h) <= 1e-9 * h or hi - lo <= 1e-9 * hi:
            return float(nxt)
        h = nxt
    return float(h)


def ref_tilt(p: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = p * a + (1 - p) * b
    var = p * (1 - p) * (a - b) ** 2
    lp, lq = np.log(p), np.log1p(-p)

    def psi(t: np.ndarray) -> np.ndarray:
        return np.logaddexp(lp + t * a, lq + t * b)

    quad = -2 * mu / var
    flat = np.abs(quad) < 1e-6
    theta = np.where(flat, 1.0, 2 * quad)
    for _ in range(200):
        short = psi(theta) < 0
        if not short.any():
            break
        theta = np.where(short, 2 * theta, theta)
    for _ in range(100):
        y = psi(theta)
        wa = np.exp(lp + theta * a - y)
        step = y / (wa * a + (1 - wa) * b)
        theta = theta - step
        if np.all(np.abs(step) <= 1e-10 * np.abs(theta)):
            break
    return np.where(flat, quad, theta), mu, var


def ref_cusum_update(bank: CusumBank, z: np.ndarray) -> list[Alarm]:
    alarms: list[Alarm] = []
    for d, sign in enumerate((1, -1)):
        for s in range(z.shape[1]):
            if bank.directions[s] == -sign:
                continue
            col = sign * (z[:, s] - bank.center[s])
            for j, k in enumerate(bank.k[s]):
                h = float(bank.h[s, j])
                hits, bank.state[d, s, j], bank.run[d, s, j] = lindley_scan(
                    col - k, float(bank.state[d, s, j]), int(bank.run[d, s, j]), h)
                alarms += [Alarm(row, s, float(k), sign, stat, h, run)
                           for row, stat, run in hits]
    bank.n += z.shape[0]
    alarms.sort(key=lambda a: (a.row, a.stream, a.k))
    return alarms


def ref_bernoulli_update(bank: BernoulliBank, x: np.ndarray) -> list[RateAlarm]:
    alarms: list[RateAlarm] = []
    for i, (s, p1, up, down, h) in enumerate(bank.cusums):
        col = x[:, s]
        inc = np.where(col > 0, up, down)
        inc[np.isnan(col)] = np.nan
        hits, bank.state[i], bank.run[i] = lindley_scan(
            inc, float(bank.state[i]), int(bank.run[i]), h)
        alarms += [RateAlarm(row, s, bank.p0[s], p1, stat, h, run) for row, stat, run in hits]
    bank.n += x.shape[0]
    alarms.sort(key=lambda a: (a.row, a.stream, a.p1))
    return alarms


def same(a: object, b: object) -> bool:
    """Equal to the last bit (NaN where NaN)."""
    x, y = np.asarray(a), np.asarray(b)
    return x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()


# -- Lindley scans side by side ------------------------------------------------------------

values = st.one_of(st.floats(-3, 3), st.just(float("nan")))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 60), st.integers(1, 6), st.integers(1, 9), st.data())
def test_lindley_scans_is_lindley_scan_per_column(rows: int, cols: int, block: int,
                                                  data: st.DataObject) -> None:
    inc = np.asarray(data.draw(st.lists(values, min_size=rows * cols, max_size=rows * cols)),
                     dtype=float).reshape(rows, cols)
    s0 = np.asarray(data.draw(st.lists(st.floats(0, 3), min_size=cols, max_size=cols)))
    run = np.asarray(data.draw(st.lists(st.integers(0, 50), min_size=cols, max_size=cols)))
    h = np.asarray(data.draw(st.lists(st.one_of(st.floats(0, 4), st.just(math.inf)),
                                      min_size=cols, max_size=cols)))
    with mock.patch.object(cusum, "BLOCK", block):  # blocks, and restarts across them
        hits, s_end, r_end = lindley_scans(inc, s0, run, h)
        for c in range(cols):
            want, s1, r1 = lindley_scan(inc[:, c].copy(), float(s0[c]), int(run[c]),
                                        float(h[c]))
            assert hits[c] == want
            assert same(s_end[c], np.float64(s1)) and int(r_end[c]) == r1


# -- the banks: batched update against the per-CUSUM loop ---------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.lists(st.integers(0, 120), min_size=1, max_size=4),
       st.floats(-1.5, 1.5), st.integers(0, 2**31))
def test_cusum_bank_update_is_the_loop(streams: int, batches: list[int], shift: float,
                                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    dirs = rng.integers(-1, 2, streams).tolist()
    args = (streams, [0.05, 0.25, 0.5], [30.0 + 50 * s for s in range(streams)], dirs,
            rng.uniform(0, 0.05, streams).tolist(), [3.0, 1.0, 0.5])
    fast, ref = CusumBank(*args), CusumBank(*args)
    for bank in (fast, ref):
        bank.center[:] = np.arange(streams) * 0.01
    for n in batches:
        z = rng.normal(shift, 1.0, (n, streams))
        z[rng.random((n, streams)) < 0.1] = np.nan
        assert fast.update(z) == ref_cusum_update(ref, z)
        assert same(fast.state, ref.state) and same(fast.run, ref.run) and fast.n == ref.n


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.lists(st.integers(0, 200), min_size=1, max_size=4),
       st.floats(0.0, 0.3), st.integers(0, 2**31))
def test_bernoulli_bank_update_is_the_loop(streams: int, batches: list[int], rise: float,
                                           seed: int) -> None:
    rng = np.random.default_rng(seed)
    p0 = rng.uniform(0.02, 0.3, streams).tolist()
    p1 = [[min(0.9, p + 0.1), p / 2] for p in p0]
    fast, ref = BernoulliBank(p0, p1, 40.0), BernoulliBank(p0, p1, 40.0)
    for n in batches:
        x = (rng.random((n, streams)) < np.asarray(p0) + rise).astype(float)
        x[rng.random((n, streams)) < 0.1] = np.nan
        assert fast.update(x) == ref_bernoulli_update(ref, x)
        assert same(fast.state, ref.state) and same(fast.run, ref.run) and fast.n == ref.n


# -- the threshold solves -----------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(-50, 50), st.floats(-1e-3, 1e-3), st.floats(25, 1e4)),
                min_size=1, max_size=40),
       st.floats(1e-6, 1e6))
def test_log_g_slope_is_log_g_and_the_slope(theta: list[float], h: float) -> None:
    t = np.asarray(theta)
    lg, sl = log_g_slope(t, h)
    assert same(lg, log_g(t * h)) and sl is not None and same(sl, ref_slope(t, h))
    lg2, none = log_g_slope(t, h, slope=False)
    assert same(lg2, lg) and none is None


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-4, 0.6), st.floats(1.05, 6.0), st.floats(0.2, 0.9))
def test_tilt_is_the_reference(p0: float, ratio: float, fall: float) -> None:
    rates = posterior_rates(p0 * 1000, 1000.0)
    for q in (min(0.99, p0 * ratio), p0 * fall):
        a, b = math.log(q / p0), math.log((1 - q) / (1 - p0))
        for got, want in zip(_tilt(rates, a, b), ref_tilt(rates, a, b), strict=True):
            assert same(got, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 400), st.integers(100, 50_000), st.floats(1.2, 4.0),
       st.floats(20.0, 1e6))
def test_expected_thresholds_are_the_reference_solves(hits: int, n: int, ratio: float,
                                                      arl0: float) -> None:
    hits = min(hits, n)
    p0 = (hits + 0.5) / (n + 1)
    alts = [q for q in (p0 * ratio, p0 / ratio) if 0 < q < 1]
    rates = posterior_rates(float(hits), float(n))
    want = []
    for q in alts:
        theta, mu, var = ref_tilt(rates, math.log(q / p0), math.log((1 - q) / (1 - p0)))
        want.append(ref_solve(RATE_LOG_W - _log_ratio(theta, mu, var), theta, math.log(arl0),
                              bernoulli_threshold(p0, q, arl0)))
    assert expected_thresholds(p0, alts, arl0, hits, n) == want


@settings(max_examples=40, deadline=None)
@given(st.floats(0.01, 1.0), st.floats(20.0, 1e7), st.floats(0.0, 0.2))
def test_cusum_thresholds_are_the_reference_solves(k: float, arl0: float,
                                                   sigma: float) -> None:
    h0 = cusum.cusum_threshold.__wrapped__(k, arl0, 0.0)
    got = solve_threshold(cusum._LOG_W - math.log(2), 2 * (k - sigma * cusum._T),
                          math.log(arl0), h0, shift=2 * cusum._RHO)
    want = ref_solve(cusum._LOG_W - math.log(2), 2 * (k - sigma * cusum._T), math.log(arl0),
                     h0, shift=2 * cusum._RHO)
    assert same(np.float64(got), np.float64(want))


# -- normal scores: one search, the runs of equal reference values for the other ---------

grid = st.one_of(st.integers(-20, 20).map(lambda i: i / 4), st.floats(-3, 3),
                 st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(-20, 20).map(lambda i: i / 4), st.floats(-3, 3),
                          st.just(-0.0)), max_size=60),
       st.lists(grid, max_size=60))
def test_normal_scores_with_right_ends_are_the_two_searches(ref: list[float],
                                                            x: list[float]) -> None:
    r = np.sort(np.asarray(ref, dtype=float))
    v = np.asarray(x, dtype=float)
    assert same(normal_scores(r, v, right_ends(r)), normal_scores(r, v))


def ref_alternative(p0: float, p_zero: float) -> float:
    def drift(p1: float) -> float:
        return kl_bernoulli(p_zero, p0) - kl_bernoulli(p_zero, p1)

    lo, hi = (p_zero, 1 - 1e-12) if p_zero > p0 else (1e-12, p_zero)
    return float(optimize.brentq(drift, lo, hi, xtol=1e-15))


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-4, 0.9), st.floats(-0.5, 0.5).filter(lambda d: abs(d) > 1e-6))
def test_alternative_is_the_reference(p0: float, d: float) -> None:
    p_zero = p0 + d
    if not 0 < p_zero < 1:
        return
    outcome = []
    for solve in (alternative, ref_alternative):
        try:
            outcome.append(np.float64(solve(p0, p_zero)).tobytes())
        except ValueError as e:  # no root in the bracket: both must say so
            outcome.append(str(e).encode())
    assert outcome[0] == outcome[1]
