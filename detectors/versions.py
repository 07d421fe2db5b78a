"""Anytime-valid comparison of two versions of a model: confidence sequences.

A champion and a challenger serve side by side; every metric (log latency, the
share of slow requests, errors, accuracy, the predictions' mean or a class's
share) is a mean per event, and the question is where the difference of the two
means ``D = challenger - champion`` lies.  It is asked after every batch, for as
long as the rollout runs, so a fixed-horizon test (a z-test checked after each
batch) would raise false verdicts far more often than its level
(``benchmarks/versions.py``).

Instead each metric carries a **confidence sequence** (Howard, Ramdas, McAuliffe
and Sekhon 2021; its asymptotic form, Waudby-Smith et al. 2021, is the one
GrowthBook and Statsig run): intervals ``[lo_t, hi_t]`` that hold ``D`` *at every
time at once* with probability ``1 - alpha``, so a verdict read at any time --
any number of times -- is wrong with probability at most ``alpha``.  With ``I``
the information of the estimate (one over its variance) the boundary is
Robbins' normal mixture::

    |I (D_hat - D)| <= sqrt((I + rho) log((I + rho) / (rho alpha^2)))

(Ville's inequality on the mixture martingale; two-sided).  ``rho`` sets where
the boundary is tightest: at the information a difference of the metric's
margin needs (:func:`mixture_rho`).  Variances are the arms' plug-in estimates
(the asymptotic confidence sequence); a Bernoulli arm's is that of its rate with
half a hit added, so a stretch of no errors never claims certainty.  Intervals
are intersected over time (still valid), so a verdict once reached stays.

Verdicts on a metric with margin ``m`` (the difference worth acting on):

- ``worse``: the interval lies beyond ``m / 2`` on the worse side -- the
  challenger is worse, by more than half the margin, with confidence
  ``1 - alpha``; a difference well inside the margin is never called;
- ``no_worse``: the interval lies below ``m`` on the worse side (and, for a
  two-sided metric such as the predictions' distribution, within ``+-m``);
- ``pending`` otherwise.  Between ``m / 2`` and ``m`` either verdict is right.

Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

MIN_ARM = 100  # an arm with fewer observations gives no interval
WORSE, NO_WORSE, PENDING = "worse", "no_worse", "pending"
# the side on which a difference is worse: +1 higher is worse (latency, errors), -1 lower
# is worse (accuracy), 0 both (a distribution that moved either way)
HIGHER, LOWER, EITHER = 1, -1, 0
_NORMAL = NormalDist()


def mixture_rho(info_star: float, alpha: float) -> float:
    """The mixture variance that makes the boundary tightest near information
    ``info_star`` (Howard et al. 2021, eq. 3.7 approximately)."""
    lg = 2.0 * math.log(1.0 / alpha)
    return info_star / (lg + math.log1p(lg))


def mixture_radius(info: float, rho: float, alpha: float) -> float:
    """Half-width, on the estimate's scale, of the two-sided normal-mixture
    confidence sequence at information ``info`` (inf when there is none)."""
    if not info > 0 or not math.isfinite(info):
        return math.inf
    v = info + rho
    return math.sqrt(v * math.log(v / (rho * alpha * alpha))) / info


def plan_information(effect: float, alpha: float) -> float:
    """The information at which a fixed-horizon test at ``alpha`` would just see
    ``effect``: where the mixture is tuned to be tightest."""
    return 2.0 * math.log(1.0 / alpha) / (effect * effect)


class Arm:
    """Running count, sum and sum of squares of one version's observations."""

    __slots__ = ("bernoulli", "n", "s", "ss")

    def __init__(self, bernoulli: bool = False) -> None:
        self.bernoulli = bernoulli
        self.n = 0
        self.s = 0.0
        self.ss = 0.0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size:
            self.n += int(x.size)
            self.s += float(x.sum())
            self.ss += float(np.dot(x, x))

    @property
    def mean(self) -> float:
        return self.s / self.n if self.n else math.nan

    @property
    def var(self) -> float:
        if self.n == 0:
            return math.nan
        if self.bernoulli:
            p = (self.s + 0.5) / (self.n + 1.0)
            return p * (1.0 - p)
        m = self.mean
        v = max(0.0, self.ss / self.n - m * m) * self.n / max(1, self.n - 1)
        return max(v, 1e-12 * (1.0 + m * m))

    def to_state(self) -> list[Any]:
        return [self.bernoulli, self.n, self.s, self.ss]

    @classmethod
    def from_state(cls, s: list[Any]) -> Arm:
        a = cls(bool(s[0]))
        a.n, a.s, a.ss = int(s[1]), float(s[2]), float(s[3])
        return a


class Comparison:
    """A confidence sequence for ``D = mean(challenger) - mean(champion)`` (or, with
    ``target`` set, ``mean(challenger) - target``: one arm against a fixed level).

    Parameters
    ----------
    margin : the difference worth acting on (> 0), in the metric's units.
    alpha : probability that the sequence ever misses ``D`` (the metric's share of
        the comparison's budget).
    worse : :data:`HIGHER`, :data:`LOWER` or :data:`EITHER`.
    bernoulli : the observations are 0/1.
    target : compare the challenger with this fixed level instead of a champion.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> c = Comparison(margin=0.01, alpha=0.01, worse=HIGHER, bernoulli=True)
    >>> for _ in range(40):
    ...     c.update(rng.random(1000) < 0.01, rng.random(1000) < 0.03)
    ...     if c.verdict != PENDING:
    ...         break
    >>> c.verdict, c.champion.n
    ('worse', 3000)
    """

    def __init__(self, margin: float, alpha: float, worse: int = HIGHER, *,
                 bernoulli: bool = False, target: float | None = None) -> None:
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin!r}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if worse not in (HIGHER, LOWER, EITHER):
            raise ValueError(f"worse must be 1, -1 or 0, got {worse!r}")
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.worse = worse
        self.bernoulli = bernoulli
        self.target = target
        self._reset()

    def _reset(self) -> None:
        self.champion = Arm(self.bernoulli)
        self.challenger = Arm(self.bernoulli)
        # tightest where an effect of half the margin would just be seen
        self.rho = mixture_rho(plan_information(self.margin / 2, self.alpha), self.alpha)
        self.lo = -math.inf
        self.hi = math.inf

    def update(self, champion: np.ndarray | None = None,
               challenger: np.ndarray | None = None, *, narrow: bool = True) -> None:
        """Fold in new observations of either arm (non-finite ones are skipped),
        then (``narrow``) narrow the interval.  Equal to adding them one at a time and
        reading the interval at the end.  A caller that checks at fixed points (so
        that its verdicts do not depend on its batching) adds with ``narrow=False``
        and calls :meth:`narrow` at those points."""
        if champion is not None:
            self.champion.add(champion)
        if challenger is not None:
            self.challenger.add(challenger)
        if narrow:
            self.narrow()

    def narrow(self) -> None:
        """Intersect the interval with this time's."""
        lo, hi = self.current()
        # intersected over time: the sequence holds at every time at once, so does
        # the intersection (a plug-in variance can make it empty: keep the latest)
        nlo, nhi = max(self.lo, lo), min(self.hi, hi)
        if nlo <= nhi:
            self.lo, self.hi = nlo, nhi
        else:
            self.lo, self.hi = lo, hi

    @property
    def estimate(self) -> float:
        base = self.target if self.target is not None else self.champion.mean
        return self.challenger.mean - base

    @property
    def information(self) -> float:
        b = self.challenger
        if b.n < MIN_ARM:
            return 0.0
        v = b.var / b.n
        if self.target is None:
            a = self.champion
            if a.n < MIN_ARM:
                return 0.0
            v += a.var / a.n
        return 1.0 / v if v > 0 else 0.0

    def current(self) -> tuple[float, float]:
        """This time's interval, before the intersection over time."""
        r = mixture_radius(self.information, self.rho, self.alpha)
        if not math.isfinite(r):
            return -math.inf, math.inf
        d = self.estimate
        return d - r, d + r

    @property
    def interval(self) -> tuple[float, float]:
        return self.lo, self.hi

    @property
    def verdict(self) -> str:
        lo, hi, m = self.lo, self.hi, self.margin
        if self.worse == HIGHER:
            if lo > m / 2:
                return WORSE
            return NO_WORSE if hi < m else PENDING
        if self.worse == LOWER:
            if hi < -m / 2:
                return WORSE
            return NO_WORSE if lo > -m else PENDING
        if lo > m / 2 or hi < -m / 2:
            return WORSE
        return NO_WORSE if -m < lo and hi < m else PENDING

    @property
    def n(self) -> int:
        return self.champion.n + self.challenger.n

    def to_state(self) -> dict[str, Any]:
        return {"margin": self.margin, "alpha": self.alpha, "worse": self.worse,
                "bernoulli": self.bernoulli, "target": self.target,
                "champion": self.champion.to_state(), "challenger": self.challenger.to_state(),
                "lo": _num(self.lo), "hi": _num(self.hi)}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Comparison:
        c = cls(s["margin"], s["alpha"], int(s["worse"]), bernoulli=bool(s["bernoulli"]),
                target=s["target"])
        c.champion = Arm.from_state(s["champion"])
        c.challenger = Arm.from_state(s["challenger"])
        c.lo = -math.inf if s["lo"] is None else float(s["lo"])
        c.hi = math.inf if s["hi"] is None else float(s["hi"])
        return c


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def fixed_horizon_worse(c: Comparison, alpha: float, floor: float | None = None) -> bool:
    """The fixed-horizon test a team would run by hand on the same data: a one-sided
    (two-sided for :data:`EITHER`) z-test that the challenger is worse by more than
    ``floor`` (default: half the margin, as :attr:`Comparison.verdict`; 0 is the
    plain "significantly worse") at level ``alpha``.  Valid when read once; read
    after every batch it is not (the benchmark's baseline)."""
    info = c.information
    if info <= 0:
        return False
    z = _NORMAL.inv_cdf(1 - (alpha / 2 if c.worse == EITHER else alpha))
    se = 1 / math.sqrt(info)
    d, h = c.estimate, c.margin / 2 if floor is None else floor
    if c.worse == HIGHER:
        return d - z * se > h
    if c.worse == LOWER:
        return d + z * se < -h
    return d - z * se > h or d + z * se < -h
