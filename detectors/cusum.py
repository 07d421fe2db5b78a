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

The update is vectorised over a batch: with ``C_t = sum_{i<=t} (z_i - k)``,
``S_t = C_t - min(-S_0, min_{j<=t} C_j)`` (Lindley's recursion in closed
form), so a batch costs a few cumulative sums, whatever its length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

BLOCK = 4096
_RHO = 0.583  # Siegmund's correction: the overshoot of a normal random walk


def log_wald_numerator(x: float) -> float:
    """``log(e^x - x - 1)``, the numerator of Siegmund's and Wald's ARL approximations,
    without overflow for large ``x``."""
    return x + math.log1p(-(x + 1) * math.exp(-x)) if x > 30 else math.log(math.expm1(x) - x)


def log_siegmund_arl0(k: float, h: float) -> float:
    """log of the in-control ARL of a one-sided normal CUSUM (Siegmund 1985)."""
    return log_wald_numerator(2 * k * (h + 2 * _RHO)) - math.log(2 * k * k)


def siegmund_arl0(k: float, h: float) -> float:
    return math.exp(log_siegmund_arl0(k, h))


def cusum_threshold(k: float, arl0: float) -> float:
    """The ``h`` at which one CUSUM with reference value ``k`` has the given ARL0."""
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    if not arl0 > 1:
        raise ValueError(f"arl0 must be > 1, got {arl0!r}")
    target = math.log(arl0)
    return float(optimize.brentq(lambda h: log_siegmund_arl0(k, h) - target,
                                 1e-6, 1e4))


def normal_scores(reference_sorted: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Map ``x`` to N(0, 1) scores through the reference's empirical CDF.

    Mid-rank probability integral transform: deterministic, ties (discrete
    features) get the mean of their ranks, so scores stay centred.  NaN stays
    NaN.  Scores are bounded by the reference size (about +-3.7 for 5,000),
    which only makes the CUSUM more conservative.
    """
    n = reference_sorted.size
    lo = np.searchsorted(reference_sorted, x, side="left")
    hi = np.searchsorted(reference_sorted, x, side="right")
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
    """

    def __init__(self, streams: int, ks: Sequence[float], arl0: float,
                 directions: Sequence[int] | None = None) -> None:
        if streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams!r}")
        if not ks or any(not k > 0 for k in ks):
            raise ValueError(f"ks must be positive reference values, got {ks!r}")
        dirs = list(directions) if directions is not None else [0] * streams
        if len(dirs) != streams or any(d not in (-1, 0, 1) for d in dirs):
            raise ValueError(f"directions must be {streams} values in -1, 0, 1, got {dirs!r}")
        self.ks = np.asarray(ks, dtype=float)
        self.arl0 = float(arl0)
        self.h = np.array([cusum_threshold(k, arl0) for k in ks])
        self.directions = np.asarray(dirs, dtype=int)
        # state[d, s, j]: d=0 upward, d=1 downward CUSUM of stream s with ks[j]
        self.state = np.zeros((2, streams, len(ks)))
        self.run = np.zeros((2, streams, len(ks)), dtype=np.int64)  # current excursion length
        self.n = 0

    @property
    def cusums(self) -> int:
        """How many one-sided CUSUMs run (for splitting a false-alarm budget)."""
        return int(sum(2 if d == 0 else 1 for d in self.directions)) * len(self.ks)

    def update(self, z: np.ndarray) -> list[Alarm]:
        """Feed a batch of scores (rows x streams); returns the alarms, in row order."""
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != self.state.shape[1]:
            raise ValueError(f"z must be (rows, {self.state.shape[1]}), got {z.shape}")
        alarms: list[Alarm] = []
        for d, sign in enumerate((1, -1)):
            for s in range(z.shape[1]):
                if self.directions[s] == -sign:
                    continue
                col = sign * z[:, s]
                for j, k in enumerate(self.ks):
                    alarms += self._run(col, d, s, j, k, sign)
        self.n += z.shape[0]
        alarms.sort(key=lambda a: (a.row, a.stream, a.k))
        return alarms

    def _run(self, col: np.ndarray, d: int, s: int, j: int, k: float,
             sign: int) -> list[Alarm]:
        hits, self.state[d, s, j], self.run[d, s, j] = lindley_scan(
            col - k, float(self.state[d, s, j]), int(self.run[d, s, j]), float(self.h[j]))
        return [Alarm(row, s, float(k), sign, stat, float(self.h[j]), run)
                for row, stat, run in hits]

    def to_state(self) -> dict[str, Any]:
        return {"ks": self.ks.tolist(), "arl0": self.arl0,
                "directions": self.directions.tolist(),
                "state": self.state.tolist(), "run": self.run.tolist(), "n": self.n}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> CusumBank:
        bank = cls(len(s["directions"]), s["ks"], s["arl0"], s["directions"])
        bank.state = np.asarray(s["state"], dtype=float)
        bank.run = np.asarray(s["run"], dtype=np.int64)
        bank.n = int(s["n"])
        return bank
