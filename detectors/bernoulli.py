"""Sequential detection for rates: Bernoulli CUSUMs on 0/1 indicator streams.

Error rates, the share of requests slower than the reference p99, a
category's share: each is a stream of 0/1 indicators with an in-control rate
``p0``.  The CUSUM of log-likelihood ratios against a changed rate ``p1``::

    S_t = max(0, S_{t-1} + x_t log(p1/p0) + (1 - x_t) log((1-p1)/(1-p0)))

is the optimal detector of that change (Moustakides 1986).  Each stream runs
a few alternatives ``p1`` (above ``p0`` for a rise, below it for a fall);
:func:`alternative` turns an effect floor into the ``p1`` that tolerates it.

Thresholds come from the false-alarm budget: for a log-likelihood-ratio
random walk the in-control ARL is about ``(e^h - h - 1) / KL(p0 || p1)``
(Wald; the overshoot over ``h`` only lengthens it), and ``h`` is solved so
that every CUSUM has ``ARL0 >= arl0``.

``p0`` is estimated from a reference, so it is uncertain: half the
references underestimate the rate, and a CUSUM tuned to a small rise over an
underestimate alarms far more often than its budget.  So when the bank knows
the counts ``p0`` came from (``p0`` their posterior mean,
:func:`posterior_mean`), ``h`` keeps the false-alarm budget *on average over
the rate's posterior* (Jeffreys, ``Beta(hits + 1/2, n - hits + 1/2)``;
:func:`expected_threshold`) as well as at ``p0`` (:func:`rate_thresholds`):
the average needs a higher ``h`` than Wald's when the reference is small.
Measured over many independent references, that keeps the budget; a one-sided
bound in place of the mean would pay for the uncertainty twice (in ``p0`` and
again in ``h``), spending delay on false alarms that do not happen.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from detectors.cusum import (
    lindley_scans,
    log_g,
    log_wald_numerator,
    normal_quadrature,
    per_stream,
    solve_threshold,
)

# quadrature over the rate's posterior, in normal scores of its quantiles
_T, _LOG_W = normal_quadrature(10.0, 81)
_LOWER = _T <= 0


def kl_bernoulli(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)) in nats."""
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


@functools.lru_cache(maxsize=4096)
def bernoulli_threshold(p0: float, p1: float, arl0: float) -> float:
    """The ``h`` at which a Bernoulli CUSUM for ``p0 -> p1`` has the given ARL0 (cached:
    :func:`rate_thresholds` asks for each twice, once as the start of a solve)."""
    if not (0 < p0 < 1 and 0 < p1 < 1) or p0 == p1:
        raise ValueError(f"need 0 < p0, p1 < 1 and p0 != p1, got {p0!r}, {p1!r}")
    if not arl0 > 1:
        raise ValueError(f"arl0 must be > 1, got {arl0!r}")
    target = math.log(arl0) + math.log(kl_bernoulli(p0, p1))
    if target <= log_wald_numerator(1e-6):
        return 1e-6
    return float(optimize.brentq(lambda h: log_wald_numerator(h) - target, 1e-6, 1e4))


def _tilt(p: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For increments ``a`` (probability ``p``) or ``b``: the nonzero root ``theta`` of
    ``p e^(theta a) + (1 - p) e^(theta b) = 1`` (Wald's exponent), the mean and the
    variance, elementwise over ``p``."""
    mu = p * a + (1 - p) * b
    var = p * (1 - p) * (a - b) ** 2
    lp, lq = np.log(p), np.log1p(-p)
    quad = -2 * mu / var  # the root of psi's quadratic approximation
    # next to a zero drift the quadratic root is exact enough (and Newton ill-posed)
    flat = np.abs(quad) < 1e-6
    theta = np.where(flat, 1.0, 2 * quad)
    for _ in range(200):  # start beyond the root: Newton then converges monotonically
        ua = lp + theta * a
        y = np.logaddexp(ua, lq + theta * b)  # psi(theta)
        short = y < 0
        if not short.any():
            break
        theta = np.where(short, 2 * theta, theta)
    else:  # (never short of the root: psi at the last doubling)
        ua = lp + theta * a
        y = np.logaddexp(ua, lq + theta * b)
    for i in range(100):
        if i:  # (the first: psi at the start, above)
            ua = lp + theta * a
            y = np.logaddexp(ua, lq + theta * b)
        wa = np.exp(ua - y)  # the tilted probability of an ``a``
        step = y / (wa * a + (1 - wa) * b)
        theta = theta - step
        if (np.abs(step) <= 1e-10 * np.abs(theta)).all():
            break
    return np.where(flat, quad, theta), mu, var


def log_bernoulli_arl(p: np.ndarray, p0: float, p1: float, h: float) -> np.ndarray:
    """log of Wald's run length of the ``p0 -> p1`` CUSUM with threshold ``h`` when the
    rate is ``p`` (elementwise): ``(e^(theta h) - theta h - 1) / (-theta mu)``, which
    is :func:`bernoulli_threshold`'s at ``p = p0`` and ``h^2 / var`` at zero drift."""
    a, b = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    theta, mu, var = _tilt(np.asarray(p, dtype=float), a, b)
    return _log_arl(theta, mu, var, h)


def _log_arl(theta: np.ndarray, mu: np.ndarray, var: np.ndarray, h: float) -> np.ndarray:
    return 2 * math.log(h) + log_g(theta * h) + _log_ratio(theta, mu, var)


def _log_ratio(theta: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    # (e^x - x - 1) / (-theta mu) with x = theta h is h^2 g(x) theta / (-mu); theta / (-mu)
    # tends to 2 / var at zero drift
    return np.log(np.where(np.abs(theta) < 1e-12, 2 / var,
                           theta / np.where(mu == 0, 1.0, -mu)))


@functools.lru_cache(maxsize=256)
def posterior_rates(hits: float, n: float) -> np.ndarray:
    """The quadrature nodes over a rate's Jeffreys posterior (its quantiles at the
    normal scores ``_T``; the upper tail from the complementary side, for precision),
    clipped away from 0 and 1.  Cached (read-only): a category's rise and fall streams
    share their counts, so their retunes ask for the same nodes."""
    a, b = hits + 0.5, n - hits + 0.5
    lower = special.betaincinv(a, b, special.ndtr(_T[_LOWER]))
    upper = 1 - special.betaincinv(b, a, special.ndtr(-_T[~_LOWER]))
    out = np.clip(np.concatenate([lower, upper]), 1e-12, 1 - 1e-12)
    out.flags.writeable = False
    return out


def expected_thresholds(p0: float, p1: Sequence[float], arl0: float, hits: float,
                        n: float) -> list[float]:
    """The ``h`` of each ``p0 -> p1`` CUSUM that keeps ARL0 on average over the
    posterior of a rate seen ``hits`` times in ``n``: its expected false alarms per
    event are ``1 / arl0`` (``inf`` when no ``h`` up to ``H_MAX`` keeps that)."""
    if not arl0 > 1:
        raise ValueError(f"arl0 must be > 1, got {arl0!r}")
    if not (0 <= hits <= n and n > 0):
        raise ValueError(f"need 0 <= hits <= n and n > 0, got {hits!r}, {n!r}")
    for q in p1:
        if not (0 < p0 < 1 and 0 < q < 1) or p0 == q:
            raise ValueError(f"need 0 < p0, p1 < 1 and p0 != p1, got {p0!r}, {q!r}")
    rates = posterior_rates(hits, n)
    out = []
    for q in p1:
        theta, mu, var = _tilt(rates, math.log(q / p0), math.log((1 - q) / (1 - p0)))
        out.append(solve_threshold(_LOG_W - _log_ratio(theta, mu, var), theta,
                                   math.log(arl0), bernoulli_threshold(p0, q, arl0)))
    return out


def expected_threshold(p0: float, p1: float, arl0: float, hits: float, n: float) -> float:
    """:func:`expected_thresholds` for one alternative."""
    return expected_thresholds(p0, [p1], arl0, hits, n)[0]


def rate_thresholds(p0: float, p1: Sequence[float], arl0: float,
                    counts: Sequence[float] | None = None) -> list[float]:
    """The ``h`` of each ``p0 -> p1`` CUSUM.  With the baseline's ``counts`` (hits, n)
    it keeps two promises: ARL0 at ``p0`` (Wald's) *and* on average over the rate's
    posterior (:func:`expected_thresholds`), whichever needs the higher threshold.
    Wald's alone leaves a short reference's underestimates to chance: they page
    over and over."""
    hs = [bernoulli_threshold(p0, q, arl0) for q in p1]
    if counts is None:
        return hs
    avg = expected_thresholds(p0, p1, arl0, counts[0], counts[1])
    return [max(a, b) for a, b in zip(hs, avg, strict=True)]


def posterior_mean(count: float, n: float) -> float:
    """The mean of the Jeffreys posterior of a rate seen ``count`` times in ``n``,
    ``(count + 1/2) / (n + 1)``: never 0 or 1, so every CUSUM's log-ratios are finite."""
    if not (0 <= count <= n and n > 0):
        raise ValueError(f"need 0 <= count <= n and n > 0, got {count!r}, {n!r}")
    return (count + 0.5) / (n + 1)


def rate_bound(count: float, n: float, *, upper: bool, level: float = 0.9) -> float:
    """One-sided Jeffreys bound on a rate seen ``count`` times in ``n``: the rate is
    below the upper bound (above the lower one) with probability ``level``."""
    if not (0 <= count <= n and n > 0):
        raise ValueError(f"need 0 <= count <= n and n > 0, got {count!r}, {n!r}")
    q = level if upper else 1 - level
    return float(special.betaincinv(count + 0.5, n - count + 0.5, q))


def alternative(p0: float, p_zero: float) -> float:
    """The changed rate ``p1`` whose CUSUM drifts neither up nor down at ``p_zero``:
    rates beyond ``p_zero`` accumulate evidence, rates short of it drain it.  So an
    effect floor becomes a rate a CUSUM tolerates forever on average."""
    if not (0 < p0 < 1 and 0 < p_zero < 1) or p0 == p_zero:
        raise ValueError(f"need 0 < p0, p_zero < 1 and p0 != p_zero, got {p0!r}, {p_zero!r}")

    base = kl_bernoulli(p_zero, p0)

    def drift(p1: float) -> float:  # expected log-likelihood ratio at the rate p_zero
        return base - kl_bernoulli(p_zero, p1)

    lo, hi = (p_zero, 1 - 1e-12) if p_zero > p0 else (1e-12, p_zero)
    return float(optimize.brentq(drift, lo, hi, xtol=1e-15))


def _valid_counts(c: Sequence[float]) -> bool:
    return (len(c) == 2 and all(math.isfinite(float(x)) for x in c)
            and 0 <= float(c[0]) <= float(c[1]) and float(c[1]) > 0)


@dataclass(frozen=True)
class RateAlarm:
    row: int  # index into the batch
    stream: int
    p0: float
    p1: float
    statistic: float
    threshold: float
    run_length: int  # rows since the statistic last left zero: where the change began

    @property
    def direction(self) -> int:
        return 1 if self.p1 > self.p0 else -1


class BernoulliBank:
    """One CUSUM per (stream, alternative), updated per batch of 0/1 indicators.

    NaN (no observation) leaves a stream's statistics as they are; after an
    alarm the alarming CUSUM restarts from zero.
    """

    def __init__(self, p0: Sequence[float], p1: Sequence[Sequence[float]],
                 arl0: float | Sequence[float],
                 counts: Sequence[Sequence[float] | None] | None = None) -> None:
        if not p0 or len(p1) != len(p0):
            raise ValueError(f"need one list of alternatives per stream, got {len(p0)} "
                             f"streams and {len(p1)} lists")
        for p, alts in zip(p0, p1, strict=True):
            if not 0 < p < 1:
                raise ValueError(f"p0 must be in (0, 1), got {p!r}")
            if not alts or any(not (0 < q < 1 and q != p) for q in alts):
                raise ValueError(f"alternatives must be in (0, 1) and differ from p0={p!r}, "
                                 f"got {list(alts)!r}")
        cnt = list(counts) if counts is not None else [None] * len(p0)
        if len(cnt) != len(p0) or any(c is not None and not _valid_counts(c) for c in cnt):
            raise ValueError(f"counts must be one (hits, n) with 0 <= hits <= n, n > 0 (or "
                             f"None) per stream, got {cnt!r}")
        self.p0 = [float(p) for p in p0]
        self.p1 = [[float(q) for q in alts] for alts in p1]
        # the baseline each p0 was estimated from, (hits, n); None: p0 is known
        self.counts: list[list[float] | None] = [
            None if c is None else [float(c[0]), float(c[1])] for c in cnt]
        self.arl0 = per_stream(arl0, len(self.p0))
        # one row per CUSUM: (stream, p1, log-ratio on a 1, on a 0, threshold)
        self.cusums: list[tuple[int, float, float, float, float]] = [
            row for s in range(len(self.p0)) for row in self._stream(s)]
        self.state = np.zeros(len(self.cusums))
        self.run = np.zeros(len(self.cusums), dtype=np.int64)
        self.n = 0

    def retune(self, stream: int, p0: float, p1: Sequence[float],
               counts: Sequence[float] | None = None) -> bool:
        """New in-control rate and alternatives for one stream (a sharper estimate of
        its baseline, from ``counts``); its statistics carry over.  Refused (False) when
        the number of alternatives would change."""
        rows = [i for i, c in enumerate(self.cusums) if c[0] == stream]
        if (len(rows) != len(p1) or not 0 < p0 < 1
                or any(not (0 < q < 1 and q != p0) for q in p1)
                or (counts is not None and not _valid_counts(counts))):
            return False
        self.p0[stream] = float(p0)
        self.p1[stream] = [float(q) for q in p1]
        self.counts[stream] = None if counts is None else [float(counts[0]), float(counts[1])]
        for i, row in zip(rows, self._stream(stream), strict=True):
            self.cusums[i] = row
        return True

    def _stream(self, s: int) -> list[tuple[int, float, float, float, float]]:
        p0, alts, c = self.p0[s], self.p1[s], self.counts[s]
        hs = rate_thresholds(p0, alts, self.arl0[s], c)
        return [(s, q, math.log(q / p0), math.log((1 - q) / (1 - p0)), h)
                for q, h in zip(alts, hs, strict=True)]

    def update(self, x: np.ndarray) -> list[RateAlarm]:
        """Feed a batch of indicators (rows x streams); returns the alarms, in row order."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.p0):
            raise ValueError(f"x must be (rows, {len(self.p0)}), got {x.shape}")
        stream, _, up, down, h = (np.asarray(v) for v in zip(*self.cusums, strict=True))
        cols = x[:, stream.astype(np.int64)]
        inc = np.where(cols > 0, up.astype(float), down.astype(float))
        inc[np.isnan(cols)] = np.nan
        hits, self.state, self.run = lindley_scans(inc, self.state, self.run, h)
        alarms = [RateAlarm(row, s, self.p0[s], p1, stat, hc, run)
                  for (s, p1, _, _, hc), found in zip(self.cusums, hits, strict=True)
                  for row, stat, run in found]
        self.n += x.shape[0]
        alarms.sort(key=lambda a: (a.row, a.stream, a.p1))
        return alarms

    def to_state(self) -> dict[str, Any]:
        return {"p0": self.p0, "p1": self.p1, "arl0": self.arl0, "counts": self.counts,
                "state": self.state.tolist(), "run": self.run.tolist(), "n": self.n}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> BernoulliBank:
        """Restores a bank; a state from before counts existed is a bank whose in-control
        rates were taken as known (Wald's thresholds at ``p0``), as then."""
        bank = cls(s["p0"], s["p1"], s["arl0"], s.get("counts"))
        bank.state = np.asarray(s["state"], dtype=float)
        bank.run = np.asarray(s["run"], dtype=np.int64)
        bank.n = int(s["n"])
        return bank
