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

``p0`` is estimated from a reference, so it is uncertain; :func:`rate_bound`
gives the one-sided Jeffreys bound to use instead of the point estimate, so
that a rate the reference happened to underestimate does not page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from detectors.cusum import lindley_scan, log_wald_numerator


def kl_bernoulli(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)) in nats."""
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def bernoulli_threshold(p0: float, p1: float, arl0: float) -> float:
    """The ``h`` at which a Bernoulli CUSUM for ``p0 -> p1`` has the given ARL0."""
    if not (0 < p0 < 1 and 0 < p1 < 1) or p0 == p1:
        raise ValueError(f"need 0 < p0, p1 < 1 and p0 != p1, got {p0!r}, {p1!r}")
    if not arl0 > 1:
        raise ValueError(f"arl0 must be > 1, got {arl0!r}")
    target = math.log(arl0) + math.log(kl_bernoulli(p0, p1))
    if target <= log_wald_numerator(1e-6):
        return 1e-6
    return float(optimize.brentq(lambda h: log_wald_numerator(h) - target, 1e-6, 1e4))


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

    def drift(p1: float) -> float:  # expected log-likelihood ratio at the rate p_zero
        return kl_bernoulli(p_zero, p0) - kl_bernoulli(p_zero, p1)

    lo, hi = (p_zero, 1 - 1e-12) if p_zero > p0 else (1e-12, p_zero)
    return float(optimize.brentq(drift, lo, hi, xtol=1e-15))


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
                 arl0: float) -> None:
        if not p0 or len(p1) != len(p0):
            raise ValueError(f"need one list of alternatives per stream, got {len(p0)} "
                             f"streams and {len(p1)} lists")
        for p, alts in zip(p0, p1, strict=True):
            if not 0 < p < 1:
                raise ValueError(f"p0 must be in (0, 1), got {p!r}")
            if not alts or any(not (0 < q < 1 and q != p) for q in alts):
                raise ValueError(f"alternatives must be in (0, 1) and differ from p0={p!r}, "
                                 f"got {list(alts)!r}")
        self.p0 = [float(p) for p in p0]
        self.p1 = [[float(q) for q in alts] for alts in p1]
        self.arl0 = float(arl0)
        # one row per CUSUM: (stream, p1, log-ratio on a 1, on a 0, threshold)
        self.cusums: list[tuple[int, float, float, float, float]] = [
            self._cusum(s, p, q) for s, (p, alts) in enumerate(zip(self.p0, self.p1, strict=True))
            for q in alts]
        self.state = np.zeros(len(self.cusums))
        self.run = np.zeros(len(self.cusums), dtype=np.int64)
        self.n = 0

    def retune(self, stream: int, p0: float, p1: Sequence[float]) -> bool:
        """New in-control rate and alternatives for one stream (a sharper estimate of
        its baseline); its statistics carry over.  Refused (False) when the number of
        alternatives would change."""
        rows = [i for i, c in enumerate(self.cusums) if c[0] == stream]
        if len(rows) != len(p1) or not 0 < p0 < 1 or any(not (0 < q < 1 and q != p0)
                                                          for q in p1):
            return False
        self.p0[stream] = float(p0)
        self.p1[stream] = [float(q) for q in p1]
        for i, q in zip(rows, self.p1[stream], strict=True):
            self.cusums[i] = self._cusum(stream, p0, q)
        return True

    def _cusum(self, stream: int, p0: float, p1: float) -> tuple[int, float, float, float, float]:
        return (stream, p1, math.log(p1 / p0), math.log((1 - p1) / (1 - p0)),
                bernoulli_threshold(p0, p1, self.arl0))

    def update(self, x: np.ndarray) -> list[RateAlarm]:
        """Feed a batch of indicators (rows x streams); returns the alarms, in row order."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.p0):
            raise ValueError(f"x must be (rows, {len(self.p0)}), got {x.shape}")
        alarms: list[RateAlarm] = []
        for i, (s, p1, up, down, h) in enumerate(self.cusums):
            col = x[:, s]
            inc = np.where(col > 0, up, down)
            inc[np.isnan(col)] = np.nan
            hits, self.state[i], self.run[i] = lindley_scan(
                inc, float(self.state[i]), int(self.run[i]), h)
            alarms += [RateAlarm(row, s, self.p0[s], p1, stat, h, run)
                       for row, stat, run in hits]
        self.n += x.shape[0]
        alarms.sort(key=lambda a: (a.row, a.stream, a.p1))
        return alarms

    def to_state(self) -> dict[str, Any]:
        return {"p0": self.p0, "p1": self.p1, "arl0": self.arl0,
                "state": self.state.tolist(), "run": self.run.tolist(), "n": self.n}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> BernoulliBank:
        bank = cls(s["p0"], s["p1"], s["arl0"])
        bank.state = np.asarray(s["state"], dtype=float)
        bank.run = np.asarray(s["run"], dtype=np.int64)
        bank.n = int(s["n"])
        return bank
