"""Bounded-memory quantiles for latency: a log-bucketed histogram.

Implemented from the idea published as DDSketch (Masson, Rim & Lee, "DDSketch:
a fast and fully-mergeable quantile sketch with relative-error guarantees",
VLDB 2019), in its simplest form: one *fixed* array of buckets.

With ``gamma = (1 + a) / (1 - a)`` (``a`` = ``relative_accuracy``), bucket ``i``
holds the values in ``(gamma**(i-1), gamma**i]`` and reports them all as
``2 * gamma**i / (gamma + 1)``, which is within a relative ``a`` of every value
in the bucket.  The bucket array spans ``[min_value, max_value]``, so its size,
at most ``ceil(log(max_value / min_value) / log(gamma)) + 1`` int64 counters
(1,152 buckets, 9,216 bytes, for the defaults), is fixed at construction and
independent of how many values are added.

Guarantee (tested): ``quantile(q)`` estimates numpy's
``np.quantile(values, q, method="inverted_cdf")`` -- the smallest observed value
``x`` with ``F(x) >= q``, i.e. the order statistic of rank ``max(ceil(q * n), 1)``
-- and, whenever that value lies in ``[min_value, max_value]``, the estimate is
within ``relative_accuracy * x`` of it (up to floating-point rounding, ~1e-12
relative).  Counts are exact, so the bucket holding that rank is found exactly;
only the position inside the bucket is lost.  Estimates are also clamped to
the exact observed minimum and maximum, and ``q = 0`` / ``q = 1`` (ranks 1 and
n) return them exactly.

Outside the range the guarantee does not hold: positive values below
``min_value`` are counted in the lowest bucket, values above ``max_value`` in
the highest (``underflow`` / ``overflow`` say how many).  Values <= 0 go to a
separate zero bucket and report as 0 (exact for zeros; latencies are not
negative).  NaN and +-inf are ignored and counted in ``nan_count``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STATE_VERSION = 1
MAX_BUCKETS = 10_000_000  # refuse configurations that would allocate > 80 MB
_CHUNK = 1 << 20  # add_many works in chunks so its temporaries stay bounded


class LogHistogram:
    """Fixed-size, mergeable log-bucketed histogram with relative-error quantiles."""

    def __init__(self, relative_accuracy: float = 0.01, min_value: float = 1e-3,
                 max_value: float = 1e7) -> None:
        if not (math.isfinite(relative_accuracy) and 0.0 < relative_accuracy < 1.0):
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        if not (math.isfinite(min_value) and math.isfinite(max_value)
                and 0.0 < min_value < max_value):
            raise ValueError(f"need 0 < min_value < max_value (finite), "
                             f"got {min_value!r}, {max_value!r}")
        self.relative_accuracy = float(relative_accuracy)
        self.min_value = float(min_value)
        self.max_value = float(max_value)
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._log_gamma = math.log1p(2.0 * relative_accuracy / (1.0 - relative_accuracy))
        self._offset = math.ceil(math.log(min_value) / self._log_gamma)
        top = math.ceil(math.log(max_value) / self._log_gamma)
        n_buckets = top - self._offset + 1
        if n_buckets > MAX_BUCKETS:
            raise ValueError(f"{n_buckets} buckets needed (> {MAX_BUCKETS}); "
                             "raise relative_accuracy or narrow [min_value, max_value]")
        self._counts = np.zeros(n_buckets, dtype=np.int64)
        self.zero_count = 0
        self.nan_count = 0
        self.underflow = 0
        self.overflow = 0
        self.min = math.inf
        self.max = -math.inf

    # -- size ------------------------------------------------------------------------

    @property
    def n_buckets(self) -> int:
        return int(self._counts.size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the bucket array (the only part that is not O(1))."""
        return int(self._counts.nbytes)

    @property
    def count(self) -> int:
        """Values added, zeros included, NaN/inf excluded."""
        return int(self._counts.sum()) + self.zero_count

    def _same_layout(self, other: LogHistogram) -> bool:
        return (self.relative_accuracy, self.min_value, self.max_value) == (
            other.relative_accuracy, other.min_value, other.max_value)

    # -- adding ----------------------------------------------------------------------

    def _bucket(self, positive: np.ndarray) -> np.ndarray:
        idx = np.ceil(np.log(positive) / self._log_gamma)
        return idx.astype(np.int64) - self._offset

    def add(self, value: float) -> None:
        self.add_many(np.array([value], dtype=float))

    def add_many(self, values: np.ndarray) -> None:
        x = np.asarray(values, dtype=float).ravel()
        for start in range(0, x.size, _CHUNK):
            self._add_chunk(x[start:start + _CHUNK])

    def _add_chunk(self, x: np.ndarray) -> None:
        finite = np.isfinite(x)
        n_finite = int(np.count_nonzero(finite))
        if n_finite < x.size:
            self.nan_count += x.size - n_finite
            x = x[finite]
        if x.size == 0:
            return
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        positive = x[x > 0]
        self.zero_count += x.size - positive.size
        if positive.size == 0:
            return
        idx = self._bucket(positive)
        self.underflow += int(np.count_nonzero(positive < self.min_value))
        self.overflow += int(np.count_nonzero(positive > self.max_value))
        np.clip(idx, 0, self._counts.size - 1, out=idx)
        self._counts += np.bincount(idx, minlength=self._counts.size)

    def merge(self, other: LogHistogram) -> LogHistogram:
        """Add ``other``'s counts into this histogram (in place); returns self."""
        if not isinstance(other, LogHistogram) or not self._same_layout(other):
            raise ValueError("can only merge LogHistograms with the same "
                             "relative_accuracy, min_value and max_value")
        self._counts += other._counts
        self.zero_count += other.zero_count
        self.nan_count += other.nan_count
        self.underflow += other.underflow
        self.overflow += other.overflow
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    # -- queries ---------------------------------------------------------------------

    def _value(self, bucket: np.ndarray) -> np.ndarray:
        return 2.0 * np.exp((bucket + self._offset) * self._log_gamma) / (self._gamma + 1.0)

    def quantile(self, q: float | np.ndarray) -> float | np.ndarray:
        """Estimate of ``np.quantile(values, q, method="inverted_cdf")``; NaN if empty."""
        qa = np.asarray(q, dtype=float)
        if qa.size and not (np.all(qa >= 0.0) and np.all(qa <= 1.0)):
            raise ValueError(f"quantiles must be in [0, 1], got {q!r}")
        n = self.count
        if n == 0:
            out = np.full(qa.shape, np.nan)
        else:
            # numpy's inverted_cdf index, computed the way numpy computes it.
            index = np.clip(np.ceil(n * qa - 1), 0, n - 1).astype(np.int64)
            cum = np.cumsum(self._counts) + self.zero_count
            in_zero = index < self.zero_count
            bucket = np.searchsorted(cum, index + 1, side="left")
            est = np.where(in_zero, 0.0, self._value(bucket))
            out = np.clip(est, self.min, self.max)
            out = np.where(index == 0, self.min, np.where(index == n - 1, self.max, out))
        return float(out) if out.ndim == 0 else out

    def exceedances(self, threshold: float) -> int:
        """How many values exceed ``threshold``, to bucket resolution.

        Exactly the number of values above the upper edge of ``threshold``'s
        bucket, ``gamma ** ceil(log_gamma(threshold))`` (< ``threshold * gamma``):
        exact when ``threshold`` is a bucket edge, otherwise values in
        ``(threshold, edge]`` are not counted.  ``threshold`` 0 counts every
        positive value exactly.  Valid for ``threshold`` in [min_value, max_value];
        below, under-flowed values may be counted; above, 0 is returned.
        """
        t = float(threshold)
        if not (math.isfinite(t) and t >= 0.0):
            raise ValueError(f"threshold must be finite and >= 0, got {threshold!r}")
        if t == 0.0:
            return int(self._counts.sum())
        b = int(self._bucket(np.array([t]))[0])
        if b < 0:
            return int(self._counts.sum())
        return int(self._counts[b + 1:].sum())

    # -- state -----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state; only non-zero buckets are stored."""
        nz = np.flatnonzero(self._counts)
        empty = self.count == 0
        return {
            "kind": "log_histogram", "version": STATE_VERSION,
            "relative_accuracy": self.relative_accuracy,
            "min_value": self.min_value, "max_value": self.max_value,
            "zero_count": self.zero_count, "nan_count": self.nan_count,
            "underflow": self.underflow, "overflow": self.overflow,
            "min": None if empty else self.min, "max": None if empty else self.max,
            "bucket_index": nz.tolist(), "bucket_count": self._counts[nz].tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogHistogram:
        if state.get("kind") != "log_histogram" or state.get("version") != STATE_VERSION:
            raise ValueError("not a version-1 log_histogram state")
        h = cls(state["relative_accuracy"], state["min_value"], state["max_value"])
        idx = np.asarray(state["bucket_index"], dtype=np.int64)
        cnt = np.asarray(state["bucket_count"], dtype=np.int64)
        if (idx.shape != cnt.shape or idx.ndim != 1 or (idx.size and (
                idx.min() < 0 or idx.max() >= h.n_buckets)) or (cnt < 0).any()):
            raise ValueError("corrupt log_histogram state: bad buckets")
        np.add.at(h._counts, idx, cnt)
        for key in ("zero_count", "nan_count", "underflow", "overflow"):
            value = int(state[key])
            if value < 0:
                raise ValueError(f"corrupt log_histogram state: {key} < 0")
            setattr(h, key, value)
        if h.count:
            if state["min"] is None or state["max"] is None:
                raise ValueError("corrupt log_histogram state: min/max missing")
            h.min, h.max = float(state["min"]), float(state["max"])
        return h
