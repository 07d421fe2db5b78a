"""Sequential detection for many streams at once: a bank of normal CUSUMs.

Windowed two-sample tests wait for a window to fill; a CUSUM accumulates
evidence event by event and alarms as soon as it is conclusive, so a large
shift is caught within tens of events.  Page's one-sided CUSUM on standard
normal scores ``z``::

    S_t = max(0, S_{t-1} + z_t - k)     alarm when S_t > h

is the optimal detector of a mean shift of ``2k`` standard deviations.  A
bank runs several ``k`` per stream (small ``k`` for small shifts, large
``k`` for fast detection of large ones), in both directions where asked.

Thresholds come from a false-alarm budget, not from tuning: Siegmund's
approximation gives the in-control average run length (ARL0, events between
false alarms) of a normal CUSUM, and ``h`` is solved so that every CUSUM in
the bank has ``ARL0 >= arl0``.  Inputs must be (approximately) N(0, 1) under
no change: :func:`normal_scores` maps any feature to that scale against a
reference sample.

That scale is only as good as the sample: scores against a reference of
``n`` values have an in-control mean that is off by about ``1/sqrt(n)``
(0.014 for 5,000), and a CUSUM's false-alarm rate grows like
``exp(2 * offset * h)``: a factor ~1.6 for ``k = 0.5`` (h ~ 17), ~70 for
``k = 0.05`` (h ~ 150) -- measured, averaged over references, ~40.
So each stream carries a ``center`` (the best estimate of that offset) and a
``sigma`` (its standard error), and ``h`` is solved so that the false-alarm
rate *averaged over the offset's uncertainty* keeps the budget
(:func:`cusum_threshold` with ``sigma``).  A sigma too large for ``k`` gives
``h = inf``: that CUSUM waits, silent, until the caller has a sharper center.

The update is vectorised over a batch: with ``C_t = sum_{i<=t} (z_i - k)``,
``S_t = C_t - min(-S_0, min_{j<=t} C_j)`` (Lindley's recursion in closed
form), so a batch costs a few cumulative sums, whatever its length.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

BLOCK = 4096
_RHO = 0.583  # Siegmund's correction: the overshoot of a normal random walk
H_MAX = 1e6  # a threshold beyond this is infinite: the CUSUM cannot keep the budget
# quadrature over the center's error, in standard errors: trapezoid on a Gaussian
# weight, exact to far below the approximations' own error
def normal_quadrature(span: float, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid nodes over ``[-span, span]`` standard errors and the log of their
    weights under a standard normal density: ``E f(e) ~ sum exp(log_w) f(t)``."""
    t = np.linspace(-span, span, nodes)
    return t, -0.5 * t**2 - 0.5 * math.log(2 * math.pi) + math.log(t[1] - t[0])


_T, _LOG_W = normal_quadrature(12.0, 121)


def log_wald_numerator(x: float) -> float:
    """``log(e^x - x - 1)``, the numerator of Siegmund's and Wald's ARL approximations,
    without overflow for large ``x``."""
    return x + math.log1p(-(x + 1) * math.exp(-x)) if x > 30 else math.log(math.expm1(x) - x)


def log_siegmund_arl0(k: float, h: float) -> float:
    """log of the in-control ARL of a one-sided normal CUSUM (Siegmund 1985)."""
    return log_wald_numerator(2 * k * (h + 2 * _RHO)) - math.log(2 * k * k)


def siegmund_arl0(k: float, h: float) -> float:
    return math.exp(log_siegmund_arl0(k, h))


def log_g(x: np.ndarray) -> np.ndarray:
    """``log((e^x - x - 1) / x^2)`` elementwise, for any sign of ``x`` (``log(1/2)`` at 0),
    without overflow or cancellation: the shape of Wald's and Siegmund's run lengths."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-3  # series: 1/2 + x/6 + x^2/24 (error ~x^3/120), never <= 0
    big = x > 30
    safe = np.where(small, 1.0, np.minimum(x, 30.0))
    mid = np.log(np.expm1(safe) - safe) - 2 * np.log(np.abs(safe))
    far = x + np.log1p(-(x + 1) * np.exp(-np.maximum(x, 30.0))) - 2 * np.log(np.maximum(x, 30.0))
    return np.where(small, np.log(0.5 + x / 6 + x * x / 24), np.where(big, far, mid))


def log_g_slope(theta: np.ndarray, h: float,
                slope: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``log_g(theta h)`` (:func:`log_g`, to the last bit) and, with ``slope``, its
    derivative in ``h`` plus ``2 / h``: d/dh of ``2 log h + log g(theta h)``,
    ``theta (e^x - 1) / (e^x - x - 1)`` with x = theta h.  One pass for both: they share
    ``x``, ``e^x - 1`` and ``e^x - x - 1``; the branch for small (large) ``x`` is
    computed only when some element takes it."""
    x = theta * h
    small = np.abs(x) < 1e-3
    big = x > 30
    safe = np.where(small, 1.0, np.minimum(x, 30.0))
    em1 = np.expm1(safe)
    den = em1 - safe
    lg = np.log(den) - 2 * np.log(np.abs(safe))
    sl = theta * em1 / den if slope else None
    if big.any():
        top = np.maximum(x, 30.0)
        tail = (x + 1) * np.exp(-top)
        lg = np.where(big, x + np.log1p(-tail) - 2 * np.log(top), lg)
        if sl is not None:
            sl = np.where(big, theta / (1 - tail), sl)
    if small.any():
        lg = np.where(small, np.log(0.5 + x / 6 + x * x / 24), lg)
        if sl is not None:
            sl = np.where(small, 2 / h + theta / 3, sl)
    return lg, sl


def solve_threshold(base: np.ndarray, theta: np.ndarray, log_arl0: float, guess: float,
                    shift: float = 0.0) -> float:
    """The ``h`` at which ``sum_i exp(base_i) / ARL_i(h) = 1 / arl0``, where
    ``log ARL_i = 2 log(h + shift) + log g(theta_i (h + shift))`` plus a constant that
    ``base`` carries: a mixture of Wald/Siegmund run lengths (an expected alarm rate).
    Newton from ``guess``, kept inside a bracket (bisection when a step leaves it);
    ``inf`` when even ``H_MAX`` alarms too often."""

    def excess(h: float, slope: bool = True) -> tuple[float, float]:
        # log rate - log budget, and its slope (NaN without ``slope``)
        hp = h + shift
        lg, sl = log_g_slope(theta, hp, slope)
        v = base - 2 * math.log(hp) - lg
        top = float(v.max())
        e = np.exp(v - top)
        total = float(e.sum())
        return (top + math.log(total) + log_arl0,
                -float((e * sl).sum()) / total if sl is not None else math.nan)

    lo, hi = 1e-6, H_MAX
    if excess(hi, False)[0] > 0:
        return math.inf
    f, df = excess(lo, False)
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
        if not lo < nxt < hi:  # a step out of the bracket: bisect (geometrically)
            nxt = math.sqrt(lo * hi) if hi / lo > 4 else 0.5 * (lo + hi)
        if abs(nxt - h) <= 1e-9 * h or hi - lo <= 1e-9 * hi:
            return float(nxt)
        h = nxt
    return float(h)


def log_arl(drift: np.ndarray, h: float) -> np.ndarray:
    """log of Siegmund's run length of a CUSUM on unit-variance normal increments with
    mean ``drift`` (negative: in control, positive: out of control), elementwise:
    ``(e^x - x - 1) / (2 drift^2)`` with ``x = -2 drift (h + 2 rho)``."""
    hp = h + 2 * _RHO
    return math.log(2) + 2 * math.log(hp) + log_g(-2 * np.asarray(drift, dtype=float) * hp)


def log_alarm_rate(k: float, h: float, sigma: float) -> float:
    """log of the expected false alarms per event of a CUSUM with reference value ``k``
    whose in-control mean is off by an unknown ``e ~ N(0, sigma^2)``."""
    if sigma == 0:
        return -log_siegmund_arl0(k, h)
    return float(special.logsumexp(_LOG_W - log_arl(sigma * _T - k, h)))


@functools.lru_cache(maxsize=4096)
def cusum_threshold(k: float, arl0: float, sigma: float = 0.0) -> float:
    """The ``h`` at which one CUSUM with reference value ``k`` has the given ARL0, on
    average over an in-control mean known up to a standard error ``sigma`` (``inf``
    when no ``h`` up to :data:`H_MAX` keeps it)."""
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    if not arl0 > 1:
        raise ValueError(f"arl0 must be > 1, got {arl0!r}")
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    h0 = float(optimize.brentq(lambda h: log_siegmund_arl0(k, h) - math.log(arl0), 1e-6, 1e4))
    if sigma == 0:
        return h0
    # log ARL(e - k) = log 2 + 2 log h' + log g(-2 (e - k) h'): theta = 2 (k - e)
    return solve_threshold(_LOG_W - math.log(2), 2 * (k - sigma * _T), math.log(arl0), h0,
                           shift=2 * _RHO)


def right_ends(reference_sorted: np.ndarray) -> np.ndarray:
    """For each value of a sorted reference, where its run of equal values ends: the
    ``right`` of :func:`normal_scores`."""
    return np.searchsorted(reference_sorted, reference_sorted, side="right")


def normal_scores(reference_sorted: np.ndarray, x: np.ndarray,
                  right: np.ndarray | None = None) -> np.ndarray:
    """Map ``x`` to N(0, 1) scores through the reference's empirical CDF.

    Mid-rank probability integral transform: deterministic, ties (discrete
    features) get the mean of their ranks, so scores stay centred.  NaN stays
    NaN.  Scores are bounded by the reference size (about +-3.7 for 5,000),
    which only makes the CUSUM more conservative.

    ``right`` (:func:`right_ends` of the reference, which must hold no NaN) saves the
    second search: a value's right insertion point is its left one, or the end of the
    run of reference values it equals.
    """
    n = reference_sorted.size
    lo = np.searchsorted(reference_sorted, x, side="left")
    if right is None or n == 0:
        hi = np.searchsorted(reference_sorted, x, side="right")
    else:
        at = np.minimum(lo, n - 1)
        hi = np.where(reference_sorted[at] == x, right[at], lo)
    u = (0.5 * (lo + hi) + 0.5) / (n + 1)
    z = special.ndtri(u)
    return np.where(np.isnan(x), np.nan, z)


def lindley_scan(inc: np.ndarray, s0: float, run: int,
                 h: float) -> tuple[list[tuple[int, float, int]], float, int]:
    """One CUSUM over a batch of increments (NaN: no observation, the statistic stays).

    ``S_t = max(0, S_{t-1} + inc_t)``, alarm when ``S_t > h``, then restart at 0.
    Returns the alarms as (row, statistic, run length), and the final statistic and
    run length (rows since the statistic last left zero) to carry into the next batch.
    """
    out: list[tuple[int, float, int]] = []
    start = 0
    while start < inc.size:
        # bounded blocks: a restart after an alarm re-scans at most one block
        seg = inc[start:start + BLOCK]
        c = np.cumsum(np.where(np.isnan(seg), 0.0, seg))
        stat = c - np.minimum(np.minimum.accumulate(c), -s0)
        hit = np.flatnonzero(stat > h)
        end = int(hit[0]) if hit.size else seg.size - 1
        zeros = np.flatnonzero(stat[: end + 1] <= 0.0)
        run = end - int(zeros[-1]) if zeros.size else run + end + 1
        if hit.size == 0:
            s0 = float(stat[-1])
            start += seg.size
            continue
        out.append((start + end, float(stat[end]), run))
        start, s0, run = start + end + 1, 0.0, 0
    return out, s0, run


def lindley_scans(inc: np.ndarray, s0: np.ndarray, run: np.ndarray,
                  h: np.ndarray) -> tuple[list[list[tuple[int, float, int]]], np.ndarray,
                                          np.ndarray]:
    """:func:`lindley_scan` of every column of ``inc`` (rows x CUSUMs) at once, each with
    its own ``s0``, ``run`` and ``h``: the same alarms, statistics and run lengths to the
    last bit (the same cumulative sums, column by column, over the same blocks).  Columns
    run side by side up to their first alarm; a column that alarmed goes on alone
    (:func:`lindley_scan`, whose blocks start after its restart, as they did).  Returns
    the alarms per column and the final statistics and run lengths."""
    rows, m = inc.shape
    s0 = np.array(s0, dtype=float)
    run = np.array(run, dtype=np.int64)
    h = np.asarray(h, dtype=float)
    out: list[list[tuple[int, float, int]]] = [[] for _ in range(m)]
    active = np.arange(m)
    start = 0
    while start < rows and active.size:
        seg = inc[start:start + BLOCK][:, active]
        c = np.cumsum(np.where(np.isnan(seg), 0.0, seg), axis=0)
        stat = c - np.minimum(np.minimum.accumulate(c, axis=0), -s0[active])
        over = stat > h[active]
        hit = over.any(axis=0)
        zero = stat <= 0.0
        size = seg.shape[0]
        quiet = active[~hit]
        qz = zero[:, ~hit]
        last = size - 1 - np.argmax(qz[::-1], axis=0)  # the last row at zero
        run[quiet] = np.where(qz.any(axis=0), size - 1 - last, run[quiet] + size)
        s0[quiet] = stat[-1, ~hit]
        for i in np.flatnonzero(hit).tolist():
            col = int(active[i])
            end = int(np.argmax(over[:, i]))
            zeros = np.flatnonzero(zero[: end + 1, i])
            r = end - int(zeros[-1]) if zeros.size else int(run[col]) + end + 1
            out[col].append((start + end, float(stat[end, i]), r))
            after = start + end + 1
            rest, s0[col], run[col] = lindley_scan(inc[after:, col], 0.0, 0, float(h[col]))
            out[col] += [(after + row, st, rl) for row, st, rl in rest]
        active = quiet
        start += size
    return out, s0, run


def per_stream(arl0: float | Sequence[float], streams: int) -> list[float]:
    """One ARL0 per stream, from one for all or one each; each must be > 1."""
    out = ([float(arl0)] * streams if isinstance(arl0, int | float)
           else [float(a) for a in arl0])
    if len(out) != streams or any(not a > 1 for a in out):
        raise ValueError(f"arl0 must be one value > 1, or {streams} of them, got {arl0!r}")
    return out


@dataclass(frozen=True)
class Alarm:
    row: int  # index into the batch
    stream: int
    k: float
    direction: int  # +1: the mean went up, -1: down
    statistic: float
    threshold: float
    run_length: int  # rows since the statistic last left zero: where the change began


class CusumBank:
    """``streams`` x ``ks`` x directions CUSUMs on N(0,1) scores, updated per batch.

    ``directions[s]`` is +1 (only increases matter, e.g. latency), -1, or 0
    (both).  NaN scores (a missing value) leave a stream's statistics as they
    are.  After an alarm the alarming CUSUM restarts from zero.

    ``sigma[s]`` is the standard error of stream ``s``'s in-control mean (0: known
    exactly); its CUSUMs run on ``z - center[s]`` and their thresholds keep
    ``arl0`` on average over that error.  :meth:`retune` sharpens both.

    ``weights[j]`` shares each stream's false-alarm rate unevenly over the ``ks``:
    the CUSUMs with ``ks[j]`` get ``arl0 / weights[j]``, the weights scaled to mean 1,
    so a stream spends what ``len(ks)`` CUSUMs of ``arl0`` each would (None: evenly).

    ``scale[s]`` (>= 1) stretches stream ``s``'s reference values: its CUSUMs run with
    ``ks * scale[s]`` (the shares stay those of ``ks``), for a stream whose smallest
    change worth an alarm is larger than the bank's (None: 1 for every stream).
    """

    def __init__(self, streams: int, ks: Sequence[float], arl0: float | Sequence[float],
                 directions: Sequence[int] | None = None,
                 sigma: Sequence[float] | None = None,
                 weights: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None) -> None:
        if streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams!r}")
        if not ks or any(not k > 0 for k in ks):
            raise ValueError(f"ks must be positive reference values, got {ks!r}")
        dirs = list(directions) if directions is not None else [0] * streams
        if len(dirs) != streams or any(d not in (-1, 0, 1) for d in dirs):
            raise ValueError(f"directions must be {streams} values in -1, 0, 1, got {dirs!r}")
        sig = [float(x) for x in sigma] if sigma is not None else [0.0] * streams
        if len(sig) != streams or any(not (x >= 0 and math.isfinite(x)) for x in sig):
            raise ValueError(f"sigma must be {streams} finite values >= 0, got {sig!r}")
        w = [float(x) for x in weights] if weights is not None else [1.0] * len(ks)
        if len(w) != len(ks) or any(not (x > 0 and math.isfinite(x)) for x in w):
            raise ValueError(f"weights must be {len(ks)} finite values > 0, got {weights!r}")
        sc = [float(x) for x in scale] if scale is not None else [1.0] * streams
        if len(sc) != streams or any(not (x >= 1 and math.isfinite(x)) for x in sc):
            raise ValueError(f"scale must be {streams} finite values >= 1, got {scale!r}")
        self.ks = np.asarray(ks, dtype=float)
        self.scale = sc
        # k[s, j]: the reference value of stream s's CUSUMs with ks[j]
        self.k = np.asarray(sc)[:, None] * self.ks[None, :]
        self.weights = w  # as given: the state keeps these, so thresholds restore exactly
        self._share = np.asarray(w) / np.mean(w)
        self.arl0 = per_stream(arl0, streams)
        self.directions = np.asarray(dirs, dtype=int)
        self.center = np.zeros(streams)
        self.sigma = np.asarray(sig, dtype=float)
        # h[s, j]: the threshold of stream s's CUSUMs with ks[j]
        self.h = np.array([self._thresholds(s, a, x) for s, (a, x) in
                           enumerate(zip(self.arl0, self.sigma, strict=True))])
        # state[d, s, j]: d=0 upward, d=1 downward CUSUM of stream s with ks[j]
        self.state = np.zeros((2, streams, len(ks)))
        self.run = np.zeros((2, streams, len(ks)), dtype=np.int64)  # current excursion length
        self.n = 0
        # the running CUSUMs as columns, in the order (direction, stream, k): which
        # direction (0 up, 1 down), its sign, stream and k each column is
        self._cols = [(d, sign, s, j) for d, sign in enumerate((1, -1))
                      for s in range(streams) if dirs[s] != -sign for j in range(len(ks))]
        self._d, self._sign, self._s, self._j = (
            np.asarray(v, dtype=np.int64) for v in zip(*self._cols, strict=True))

    @property
    def cusums(self) -> int:
        """How many one-sided CUSUMs run (for splitting a false-alarm budget)."""
        return int(sum(2 if d == 0 else 1 for d in self.directions)) * len(self.ks)

    def cusum_arl0(self, stream: int) -> np.ndarray:
        """The ARL0 each one-sided CUSUM of ``stream`` keeps, per k: its share of the
        stream's budget."""
        return self.arl0[stream] / self._share

    def retune(self, stream: int, center: float, sigma: float) -> None:
        """A sharper estimate of one stream's in-control mean: its CUSUMs run on
        ``z - center`` from now on, with thresholds for the new ``sigma``; their
        statistics carry over."""
        if not (math.isfinite(center) and sigma >= 0 and math.isfinite(sigma)):
            raise ValueError(f"need a finite center and sigma >= 0, got {center!r}, {sigma!r}")
        self.center[stream] = float(center)
        self.sigma[stream] = float(sigma)
        self.h[stream] = self._thresholds(stream, self.arl0[stream], float(sigma))

    def _thresholds(self, stream: int, arl0: float, sigma: float) -> list[float]:
        """One stream's thresholds, per k: its ``arl0`` shared by the weights."""
        return [cusum_threshold(float(k), float(a), sigma) for k, a in
                zip(self.k[stream], arl0 / self._share, strict=True)]

    def update(self, z: np.ndarray) -> list[Alarm]:
        """Feed a batch of scores (rows x streams); returns the alarms, in row order."""
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != self.state.shape[1]:
            raise ValueError(f"z must be (rows, {self.state.shape[1]}), got {z.shape}")
        d_, sign_, s_, j_ = self._d, self._sign, self._s, self._j  # one column per CUSUM
        inc = sign_ * (z - self.center)[:, s_] - self.k[s_, j_]
        h = self.h[s_, j_]
        hits, state, run = lindley_scans(inc, self.state[d_, s_, j_], self.run[d_, s_, j_], h)
        self.state[d_, s_, j_] = state
        self.run[d_, s_, j_] = run
        alarms = [Alarm(row, s, float(self.k[s, j]), sign, stat, float(h[c]), rl)
                  for c, (_, sign, s, j) in enumerate(self._cols) for row, stat, rl in hits[c]]
        self.n += z.shape[0]
        alarms.sort(key=lambda a: (a.row, a.stream, a.k))
        return alarms

    def to_state(self) -> dict[str, Any]:
        return {"ks": self.ks.tolist(), "weights": self.weights, "scale": self.scale,
                "arl0": self.arl0,
                "directions": self.directions.tolist(), "center": self.center.tolist(),
                "sigma": self.sigma.tolist(),
                "state": self.state.tolist(), "run": self.run.tolist(), "n": self.n}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> CusumBank:
        """Restores a bank; a state from before centers existed (no ``center``,
        ``sigma``) is a bank whose in-control means were taken as known, as then, and
        one from before weights (no ``weights``) shares its budget evenly, as then, and
        one from before scales (no ``scale``) runs every stream on ``ks``, as then."""
        streams = len(s["directions"])
        bank = cls(streams, s["ks"], s["arl0"], s["directions"],
                   s.get("sigma", [0.0] * streams), s.get("weights"), s.get("scale"))
        bank.center = np.asarray(s.get("center", [0.0] * streams), dtype=float)
        bank.state = np.asarray(s["state"], dtype=float)
        bank.run = np.asarray(s["run"], dtype=np.int64)
        bank.n = int(s["n"])
        return bank
