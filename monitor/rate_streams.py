"""The 0/1 streams a model's sequential watch follows with Bernoulli CUSUMs.

- errors (a rise is an ``error_rate`` alarm);
- requests slower than ``latency_min_ratio`` x the reference p99, and than
  that ratio x the reference p99.9 (a rise is a tail-only
  ``latency_regression``: a few percent of requests much slower barely move a
  rank statistic, and in the far tail, which the reference hardly reaches, each
  of them is strong evidence);
- the share of each frequent category of each categorical feature (a rise or
  a fall is ``data_drift``), and the share of values the reference never saw,
  estimated Good-Turing style from the reference's singletons;
- the same shares of a classifier's predicted classes (``prediction_class``: a
  rise or a fall is ``prediction_drift``).

Every in-control rate is the posterior mean of the baseline's (the reference,
then the clean windows since); a reference that happened to see few errors
does not page because the thresholds keep the budget on average over the
rate's posterior given those counts.  The slow tails are the exception: their
alternatives are multiples of ``p0`` and their references hold a handful of
hits, so ``p0`` is the upper 90 % bound there (measured in
``detection_quality.py``: centred on the mean, the tail-only latency
scenarios took 244 and 345 events instead of 186 and 284).  Every CUSUM's alternative
comes from the model's effect floor: a change smaller than the floor is
tolerated forever, on average.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from detectors.bernoulli import alternative, posterior_mean, rate_bound
from monitor.batch import PredictionColumns
from monitor.config.types import MonitorSettings

MIN_REFERENCE = 100  # a stream with fewer reference observations is not watched
MAX_CATEGORIES = 8  # most frequent categories per feature followed one by one
MIN_CATEGORY_COUNT = 20  # reference count below which a category's share is not followed
# the slow tails followed: a few percent of requests much slower stand out most in the
# far tail, where the reference has almost none (each hit is strong evidence), a
# moderate slow-down in the near one
TAIL_QUANTILES = (0.99, 0.999)
MAX_RATE = 0.98  # alternatives beyond this are not worth a CUSUM


@dataclass(frozen=True)
class RateStream:
    kind: str  # the alert kind an alarm raises
    feature: str | None
    what: str  # human wording of the indicator, e.g. "share of 'd' in 'cat'"
    source: str  # "error", "latency", "category" or "prediction" (the predicted class)
    hits: int  # reference observations that were 1 ...
    n: int  # ... out of this many
    rule: str  # how the alternatives follow p0: "add", "mul" (rises) or "fall"
    step: float  # the effect floor (add, fall) or the smallest ratio (mul)
    cutoff: float = float("nan")  # latency: slower than this is a 1
    value: str | None = None  # category: this value is a 1; None: unseen values are
    known: frozenset[str] = field(default_factory=frozenset)

    @property
    def rate(self) -> float:
        return self.hits / self.n

    def parameters(self, hits: float, n: float) -> tuple[float, tuple[float, ...]]:
        """In-control rate (the posterior mean of hits / n; for multiples of it, the
        upper bound) and the alternatives."""
        if self.rule == "add":
            return rise_parameters(hits, n, self.step)
        f = self.step
        if self.rule == "mul":
            p0 = rate_bound(hits, n, upper=True)
            return p0, _rise(p0, [f * p0, 2 * f * p0])
        p0 = posterior_mean(hits, n)
        return p0, _fall(p0, [p0 - f / 2, max(p0 - 2 * f, p0 / 4)])

    @cached_property
    def _reference(self) -> tuple[float, tuple[float, ...]]:
        return self.parameters(self.hits, self.n)

    @property
    def p0(self) -> float:
        """The in-control rate from the reference alone."""
        return self._reference[0]

    @property
    def p1(self) -> tuple[float, ...]:
        return self._reference[1]


def indicator(s: RateStream, cols: PredictionColumns) -> np.ndarray:
    """The stream's 0/1 column for a batch; NaN where there is no observation."""
    if s.source == "error":
        return np.asarray(cols.error, dtype=float)
    if s.source == "latency":
        lat = np.asarray(cols.latency_ms, dtype=float)
        return np.where(np.isnan(lat), np.nan, lat > s.cutoff)
    v = (cols.prediction_class if s.source == "prediction"
         else cols.categorical.get(s.feature or ""))
    if v is None:
        return np.full(cols.n, np.nan)
    present = np.not_equal(v, np.asarray(None, dtype=object))
    hit = v == s.value if s.value is not None else ~np.isin(v, list(s.known))
    return np.where(present, hit, np.nan).astype(float)


def rise_parameters(hits: float, n: float, floor: float) -> tuple[float, tuple[float, ...]]:
    """A rate watched for rises of at least ``floor`` (absolute): its in-control rate,
    the posterior mean of ``hits / n``, and the alternatives that tolerate rises to
    half the floor and to twice it (none past ``MAX_RATE``)."""
    p0 = posterior_mean(hits, n)
    return p0, _rise(p0, [p0 + floor / 2, p0 + 2 * floor])


def _rise(p0: float, zeros: list[float]) -> tuple[float, ...]:
    return tuple(alternative(p0, z) for z in zeros if p0 < z < MAX_RATE)


def _fall(p0: float, zeros: list[float]) -> tuple[float, ...]:
    return tuple(alternative(p0, z) for z in zeros if 0 < z < p0)


def _error_streams(ref: PredictionColumns, s: MonitorSettings) -> list[RateStream]:
    if ref.n < MIN_REFERENCE:
        return []
    return [RateStream("error_rate", None, "error rate", "error", int(np.sum(ref.error)), ref.n,
                       "add", s.error_rate_min_increase)]


def _latency_streams(ref: PredictionColumns, s: MonitorSettings) -> list[RateStream]:
    lat = np.asarray(ref.latency_ms, dtype=float)
    lat = lat[np.isfinite(lat)]
    if lat.size < MIN_REFERENCE:
        return []
    out: list[RateStream] = []
    for q in TAIL_QUANTILES:
        cutoff = float(np.quantile(lat, q)) * s.latency_min_ratio
        if out and cutoff <= out[-1].cutoff:  # a tail no farther out than the last one
            continue
        what = (f"share of requests slower than {cutoff:.4g} ms "
                f"({s.latency_min_ratio:g} x the reference p{q * 100:g})")
        out.append(RateStream("latency_regression", None, what, "latency",
                              int(np.sum(lat > cutoff)), int(lat.size), "mul", 2.0,
                              cutoff=cutoff))
    return out


def _category_streams(feature: str | None, values: np.ndarray,
                      s: MonitorSettings) -> list[RateStream]:
    """A categorical feature's shares (``data_drift``), or with ``feature`` None the
    predicted classes' (``prediction_drift``)."""
    present = [v for v in values.tolist() if v is not None]
    n = len(present)
    if n < MIN_REFERENCE:
        return []
    counts = Counter(present)
    f = s.drift_min_effect
    kind, source = ("data_drift", "category") if feature is not None else (
        "prediction_drift", "prediction")
    out = []
    for value, c in counts.most_common(MAX_CATEGORIES):
        if c < MIN_CATEGORY_COUNT:
            break
        what = (f"share of '{value}' in '{feature}'" if feature is not None
                else f"share of predicted class '{value}'")
        out += [RateStream(kind, feature, what, source, c, n, rule, f, value=value)
                for rule in ("add", "fall")]
    singletons = sum(1 for c in counts.values() if c == 1)
    unseen = (f"share of values of '{feature}' unseen in the reference" if feature is not None
              else "share of predicted classes unseen in the reference")
    out.append(RateStream(kind, feature, unseen, source, singletons, n, "add", f,
                          known=frozenset(counts)))
    return out


def rate_streams(ref: PredictionColumns, s: MonitorSettings) -> list[RateStream]:
    """Every rate stream a model's reference supports (with at least one alternative),
    in a stable order."""
    out = _error_streams(ref, s) + _latency_streams(ref, s)
    for feature in sorted(ref.categorical):
        out += _category_streams(feature, ref.categorical[feature], s)
    out += _category_streams(None, np.asarray(ref.prediction_class, dtype=object), s)
    return [r for r in out if r.p1]
