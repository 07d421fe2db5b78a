"""A two-window scan for small mean shifts: the recent past against everything before it.

Every ``clock`` observations the scan compares the mean of the last ``n1``
observations with the mean of all earlier ones (since the last reset), for
every ``n1`` on a geometric grid from ``min_window`` to ``max_window``
(``per_octave`` sizes per doubling, each a whole number of ``clock`` blocks).
The statistic of one cut is the two-sample log-likelihood ratio of a mean
shift, ``t^2 / 2`` with the pooled within-window variance::

    (m1 - m0)^2 / (v * (1/n0 + 1/n1)) / 2       alarm when the largest > threshold

This is ADWIN's comparison (River's ADWIN is the same cut test with a bound of
Bernstein's form in place of ``t``).  The shortest window is long (1,024 by
default): a scan's false alarms come mostly from its short windows, and a
CUSUM bank already catches the large shifts those would see.  It compares the
stream with its own past, so a scale whose centre is only known to
``1/sqrt(n)`` costs it nothing, where a CUSUM must raise its threshold.

Measured (``benchmarks/research/RESULTS_scan.md``, 100 seeds, 0.044 false alarms per
million): alone at a feature's whole rate the scan beats the daemon's CUSUM
bank on a +0.1 sigma shift (median delay 2,463 events against 2,626) and loses
on every larger one (+1 sigma: 159 against 34).  Given half the rate in place
of the bank's smallest-k pair it loses the +0.1 sigma shift (2,895).  So it is
a detector in the suite, not wired into the daemon's per-feature bank.

``threshold`` is a log-likelihood ratio; its false-alarm rate has no closed
form here (the grid, the clock and ``min_reference`` all enter), so it is
measured: ``benchmarks/research/scan_power.py`` finds it on simulated stationary
streams for a stated rate.  Sums are kept of the observations minus the first
one after a reset, so a constant stream has exactly zero variance and never
alarms.  Memory: two floats per ``clock`` block of ``max_window``.

Pure statistics: numpy and the standard library only, no I/O.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.research.lib.sequential import (
    SequentialDetector,
    _check_direction,
    _check_int,
    _check_real,
    _prepend_accumulate,
)


def window_blocks(min_window: int, max_window: int, clock: int, per_octave: int) -> list[int]:
    """The scan's recent-window sizes, in ``clock`` blocks: geometric from ``min_window``
    to ``max_window`` with ``per_octave`` sizes per doubling, rounded to whole blocks."""
    lo, hi = max(1, math.ceil(min_window / clock)), max_window // clock
    out: list[int] = []
    i = 0
    while True:
        b = round(lo * 2 ** (i / per_octave))
        if b > hi:
            return out
        if not out or b > out[-1]:
            out.append(b)
        i += 1


def cut_statistics(sums: np.ndarray, squares: np.ndarray, ends: np.ndarray, n: np.ndarray,
                   grid: np.ndarray, clock: int, min_reference: int, sign: int = 0
                   ) -> np.ndarray:
    """The largest cut statistic at each check (0 where no cut qualifies).

    ``sums[k]`` and ``squares[k]`` are prefix sums (of the observations minus the first
    one, and of their squares) over whole ``clock`` blocks; a check at ``ends[i]`` has
    seen the blocks up to that index and ``n[i]`` observations in all, so the recent
    window of ``j`` blocks (``j`` in ``grid``) is ``ends - j .. ends`` and the reference
    everything before.  Elementwise arithmetic only, so a check's number does not depend
    on which other checks are computed with it."""
    ends = np.asarray(ends, dtype=np.int64)[:, None]
    j = np.asarray(grid, dtype=np.int64)[None, :]
    n = np.asarray(n, dtype=np.float64)[:, None]
    n1 = (j * clock).astype(np.float64)
    n0 = n - n1
    ok = (ends - j >= 0) & (n0 >= min_reference)
    lo = np.where(ok, ends - j, 0)
    s0, q0 = sums[lo], squares[lo]
    s1, q1 = sums[ends] - s0, squares[ends] - q0
    with np.errstate(divide="ignore", invalid="ignore"):
        v = ((q0 - s0 * s0 / n0) + (q1 - s1 * s1 / n1)) / (n - 2.0)
        diff = s1 / n1 - s0 / n0
        if sign:
            diff = np.maximum(sign * diff, 0.0)
        stat = np.where(ok & (v > 0.0), diff * diff / (v * (1.0 / n0 + 1.0 / n1)) / 2.0, 0.0)
    return stat.max(axis=1, initial=0.0)


def _row_sums(first: float, rows: np.ndarray) -> np.ndarray:
    """Running sums along each row starting from ``first`` (sequential, as a Python loop
    adds), last column dropped: ``out[:, -1]`` is each row's total."""
    buf = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.float64)
    buf[:, 0] = first
    buf[:, 1:] = rows
    return np.add.accumulate(buf, axis=1)[:, 1:]


class MeanShiftScan(SequentialDetector):
    """Two-window mean-shift scan (see the module docstring)."""

    name = "mean_shift_scan"

    def __init__(self, threshold: float = 13.0, direction: str = "both", *,
                 min_window: int = 1024, max_window: int = 65536, per_octave: int = 4,
                 clock: int = 32, min_reference: int = 1000) -> None:
        self.threshold = _check_real("threshold", threshold, lo=0.0, lo_open=True)
        self.direction = _check_direction(direction)
        self.clock = _check_int("clock", clock, lo=1)
        self.min_window = _check_int("min_window", min_window, lo=2)
        self.max_window = _check_int("max_window", max_window, lo=self.min_window)
        if self.max_window // self.clock < math.ceil(self.min_window / self.clock):
            raise ValueError(f"max_window must hold a whole clock block ({self.clock}) "
                             f"at or above min_window ({self.min_window}), got {max_window!r}")
        self.per_octave = _check_int("per_octave", per_octave, lo=1)
        self.min_reference = _check_int("min_reference", min_reference, lo=2)
        self.grid = np.asarray(window_blocks(self.min_window, self.max_window, self.clock,
                                             self.per_octave), dtype=np.int64)
        self._keep = int(self.grid[-1]) + 1  # prefix sums a check can reach back to
        self._sign = {"both": 0, "increase": 1, "decrease": -1}[self.direction]
        super().__init__()

    def _params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "direction": self.direction,
                "min_window": self.min_window, "max_window": self.max_window,
                "per_octave": self.per_octave, "clock": self.clock,
                "min_reference": self.min_reference}

    def _clear(self) -> None:
        self.n = 0
        self.statistic = 0.0  # the largest cut statistic at the last check
        self._shift: float | None = None
        self._cur = [0.0, 0.0, 0]  # the block being filled: sum, sum of squares, count
        self._sums = [0.0]  # prefix sums over whole blocks, the last ``_keep`` of them
        self._squares = [0.0]

    def _get_state(self) -> dict[str, Any]:
        return {"shift": self._shift, "current": list(self._cur), "sums": list(self._sums),
                "squares": list(self._squares), "statistic": self.statistic}

    def _set_state(self, s: dict[str, Any]) -> None:
        self._shift = None if s["shift"] is None else float(s["shift"])
        self._cur = [float(s["current"][0]), float(s["current"][1]), int(s["current"][2])]
        self._sums = [float(v) for v in s["sums"]]
        self._squares = [float(v) for v in s["squares"]]
        self.statistic = float(s["statistic"])

    def _statistics(self, sums: np.ndarray, squares: np.ndarray, ends: np.ndarray,
                    n: np.ndarray) -> np.ndarray:
        return cut_statistics(sums, squares, ends, n, self.grid, self.clock,
                              self.min_reference, self._sign)

    def _step(self, x: float) -> bool:
        if self._shift is None:
            self._shift = x
        d = x - self._shift
        cur = self._cur
        cur[0] += d
        cur[1] += d * d
        cur[2] += 1
        self.n += 1
        if cur[2] < self.clock:
            return False
        self._sums.append(self._sums[-1] + cur[0])
        self._squares.append(self._squares[-1] + cur[1])
        self._cur = [0.0, 0.0, 0]
        if len(self._sums) > self._keep:
            del self._sums[0], self._squares[0]
        end = np.asarray([len(self._sums) - 1])
        self.statistic = float(self._statistics(np.asarray(self._sums),
                                                np.asarray(self._squares), end,
                                                np.asarray([float(self.n)]))[0])
        return self.statistic > self.threshold

    def _scan(self, block: np.ndarray) -> int:
        if block.size == 0:
            return -1
        if self._shift is None:
            self._shift = float(block[0])
        c = self.clock
        d = block - self._shift
        cur = self._cur
        filled = int(cur[2])
        head = min(c - filled, d.size)  # completes the block being filled (if it can)
        s = _prepend_accumulate(np.add, cur[0], d[:head])
        q = _prepend_accumulate(np.add, cur[1], d[:head] * d[:head])
        if filled + head < c:
            self._cur = [float(s[-1]), float(q[-1]), filled + head]
            self.n += head
            return -1
        whole = (d.size - head) // c
        rows = d[head:head + whole * c].reshape(whole, c)
        block_s = np.concatenate([s[-1:], _row_sums(0.0, rows)[:, -1]])
        block_q = np.concatenate([q[-1:], _row_sums(0.0, rows * rows)[:, -1]])
        sums = np.concatenate([self._sums, _prepend_accumulate(np.add, self._sums[-1], block_s)])
        squares = np.concatenate([self._squares,
                                  _prepend_accumulate(np.add, self._squares[-1], block_q)])
        # a check at each completed block; every window of the grid reaches back at most
        # _keep - 1 blocks, which the held prefix sums cover (the scalar path's reach)
        checks = np.arange(whole + 1)
        stats = self._statistics(sums, squares, len(self._sums) + checks,
                                 (self.n + head + checks * c).astype(np.float64))
        hit = np.flatnonzero(stats > self.threshold)
        if hit.size:
            return int(head - 1 + hit[0] * c)
        rest = d[head + whole * c:]
        rs = _prepend_accumulate(np.add, 0.0, rest)
        rq = _prepend_accumulate(np.add, 0.0, rest * rest)
        self._cur = [float(rs[-1]), float(rq[-1]), rest.size] if rest.size else [0.0, 0.0, 0]
        self._sums = sums[-self._keep:].tolist()
        self._squares = squares[-self._keep:].tolist()
        self.n += d.size
        self.statistic = float(stats[-1])
        return -1


def scan_statistics(det: MeanShiftScan, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observations seen, largest cut statistic) at every check a fresh ``det`` would
    make on ``xs`` (finite) if it never alarmed: the numbers its ``statistic`` takes, for
    measuring a threshold on whole streams at once."""
    c = det.clock
    d = np.asarray(xs, dtype=np.float64)
    d = d - d[0]
    rows = d[: d.size // c * c].reshape(-1, c)
    sums = _prepend_accumulate(np.add, 0.0, _row_sums(0.0, rows)[:, -1])
    squares = _prepend_accumulate(np.add, 0.0, _row_sums(0.0, rows * rows)[:, -1])
    sums, squares = np.concatenate([[0.0], sums]), np.concatenate([[0.0], squares])
    ends = np.arange(1, rows.shape[0] + 1)
    n = (ends * c).astype(np.float64)
    out = np.empty(ends.size)
    for lo in range(0, ends.size, 4096):  # bounded temporaries on long streams
        out[lo:lo + 4096] = det._statistics(sums, squares, ends[lo:lo + 4096], n[lo:lo + 4096])
    return n.astype(np.int64), out
