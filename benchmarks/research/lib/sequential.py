"""Streaming (sequential) change detectors behind one interface.

Every detector is a :class:`SequentialDetector`:

- ``update(x) -> bool`` feeds one observation and returns True when a change is
  detected *at* it.  After an alarm the detector resets itself (as River's
  detectors do), so it is immediately ready to detect the next change.
- ``update_many(xs) -> np.ndarray`` feeds a batch and returns the int64 indices
  into ``xs`` at which alarms fired.  It gives exactly the same alarms and the same
  final state (bit for bit) as calling ``update`` in a loop: where the algorithm
  allows, the vectorised path performs the very same floating-point operations in
  the same order (sequential ``np.cumsum`` / ``np.minimum.accumulate`` instead of a
  Python running sum / min, elementwise ``+ - * / sqrt``, which are correctly
  rounded in numpy and Python alike; transcendental functions are evaluated with
  ``math`` on both paths).  Batches are scanned block by block, and a block is
  abandoned at its first alarm, so frequent alarms never cost quadratic time.
- ``to_state()`` returns plain JSON types (strict JSON: no NaN/Infinity);
  ``from_state(state)`` restores a detector that continues identically.
  ``SequentialDetector.from_state`` dispatches on ``state["name"]``.
- ``reset()`` restores the freshly constructed state; ``n`` counts observations
  since the last reset (manual or after an alarm).

Bad input policy: non-finite observations (NaN, +-inf) are *ignored* and counted in
``ignored`` (lifetime counter, survives alarm resets; cleared by ``reset()``) - the
daemon must not crash on a broken feed.  The error-stream detectors (DDM, EDDM,
HDDM_A) take 0/1 observations; a finite value that is neither 0 nor 1 is a wiring
bug and raises ValueError (``update_many`` validates the whole batch before
touching any state).

Pure statistics: numpy and the standard library only, no I/O.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self, cast

import numpy as np

__all__ = [
    "ADWIN",
    "CUSUM",
    "DDM",
    "EDDM",
    "HDDM_A",
    "PageHinkley",
    "SequentialDetector",
]

_MIN_BLOCK = 256
_MAX_BLOCK = 1 << 16
_DIRECTIONS = ("increase", "decrease", "both")


# -- parameter validation -------------------------------------------------------------


def _check_real(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    lo_ok = lo is None or (v > lo if lo_open else v >= lo)
    hi_ok = hi is None or (v < hi if hi_open else v <= hi)
    if not (math.isfinite(v) and lo_ok and hi_ok):
        left = "-inf" if lo is None else f"{lo!r}"
        right = "inf" if hi is None else f"{hi!r}"
        interval = f"{'(' if lo_open or lo is None else '['}{left}, {right}" \
                   f"{')' if hi_open or hi is None else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return v


def _check_int(name: str, value: Any, *, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if int(value) < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _check_direction(value: Any) -> str:
    if value not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {value!r}")
    return str(value)


def _first_true(mask: np.ndarray) -> int:
    """Index of the first True in ``mask``, or -1."""
    i = int(np.argmax(mask)) if mask.size else 0
    return i if mask.size and mask[i] else -1


def _last_index_where(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the latest True at or before it (-1 if none)."""
    return np.maximum.accumulate(np.where(mask, np.arange(mask.size), -1))


def _prepend_accumulate(ufunc: np.ufunc, first: float, values: np.ndarray) -> np.ndarray:
    """``ufunc.accumulate`` of ``[first, *values]`` minus the first element: sequential,
    so bitwise equal to folding ``ufunc`` over a Python loop starting at ``first``."""
    buf = np.empty(values.size + 1, dtype=np.float64)
    buf[0] = first
    buf[1:] = values
    return ufunc.accumulate(buf)[1:]


# -- the interface --------------------------------------------------------------------


class SequentialDetector(ABC):
    """A streaming change detector; see the module docstring for the contract."""

    name: ClassVar[str]
    binary: ClassVar[bool] = False  # True: observations must be 0/1
    _registry: ClassVar[dict[str, type[SequentialDetector]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            SequentialDetector._registry[cls.name] = cls

    def __init__(self) -> None:
        self.n = 0
        self.ignored = 0
        self._clear()

    # public API ----------------------------------------------------------------------

    def update(self, x: float) -> bool:
        """Feed one observation; True when a change is detected at it."""
        x = float(x)
        if not math.isfinite(x):
            self.ignored += 1
            return False
        if self.binary and x != 0.0 and x != 1.0:
            raise ValueError(f"{self.name} observations must be 0 or 1, got {x!r}")
        if self._step(x):
            self._clear()
            return True
        return False

    def update_many(self, xs: np.ndarray) -> np.ndarray:
        """Feed a batch; int64 indices into ``xs`` where alarms fired."""
        arr = np.asarray(xs, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"xs must be one-dimensional, got shape {arr.shape}")
        finite = np.isfinite(arr)
        positions = None
        if not finite.all():
            positions = np.flatnonzero(finite)
            arr = arr[finite]
        if self.binary:
            bad = (arr != 0.0) & (arr != 1.0)
            if bad.any():
                raise ValueError(f"{self.name} observations must be 0 or 1, "
                                 f"got {arr[int(np.argmax(bad))]!r}")
        if positions is not None:
            self.ignored += int(finite.size - positions.size)
        alarms: list[int] = []
        pos, size = 0, _MIN_BLOCK
        while pos < arr.size:
            block = arr[pos:pos + size]
            i = self._scan(block)
            if i >= 0:
                alarms.append(pos + i)
                self._clear()
                pos += i + 1
                size = _MIN_BLOCK
            else:
                pos += block.size
                size = min(2 * size, _MAX_BLOCK)
        out = np.asarray(alarms, dtype=np.int64)
        return out if positions is None else positions[out].astype(np.int64)

    def reset(self) -> None:
        """Back to the freshly constructed state (``ignored`` included)."""
        self.ignored = 0
        self._clear()

    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "params": self._params(), "n": self.n,
                "ignored": self.ignored, "state": self._get_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        name: Any = state.get("name")
        target = SequentialDetector._registry.get(name) if cls is SequentialDetector else cls
        if target is None or target.name != name:
            raise ValueError(f"state name must be {getattr(cls, 'name', 'a detector name')!r}, "
                             f"got {name!r}")
        obj = target(**state["params"])
        obj._set_state(state["state"])
        obj.n = int(state["n"])
        obj.ignored = int(state["ignored"])
        return obj  # type: ignore[return-value]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    # implementation hooks ------------------------------------------------------------

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """Constructor arguments (plain JSON types)."""

    @abstractmethod
    def _clear(self) -> None:
        """Forget everything learnt since the last reset; sets ``n = 0``."""

    @abstractmethod
    def _step(self, x: float) -> bool:
        """Consume one valid observation; True on alarm (the caller then resets)."""

    @abstractmethod
    def _get_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _set_state(self, s: dict[str, Any]) -> None: ...

    def _scan(self, block: np.ndarray) -> int:
        """Consume ``block`` up to and including its first alarm; return that alarm's
        index (state then reset by the caller) or -1.  Default: the scalar loop."""
        step = self._step
        for i, x in enumerate(block.tolist()):
            if step(x):
                return i
        return -1


# -- ADWIN ----------------------------------------------------------------------------


def _adwin_rows_alarm(sizes: np.ndarray, totals: np.ndarray, variances: np.ndarray,
                      widths: list[int], delta: float, min_len: int) -> np.ndarray:
    """ADWIN cut test for a batch of windows, one per row (buckets oldest first,
    zero-size padding allowed anywhere).  True where some split W = W0 | W1 at a
    bucket boundary has |mean(W0) - mean(W1)| >= eps_cut.

    Row results do not depend on the batch (padding adds exact zeros, everything
    else is elementwise or a sequential accumulate), which is what makes
    ``update`` and ``update_many`` agree bit for bit."""
    w = np.asarray(widths, dtype=np.float64)[:, None]
    n0 = np.cumsum(sizes, axis=1)
    u0 = np.cumsum(totals, axis=1)
    total = u0[:, -1:]
    mean = total / w
    dev = totals - sizes * mean
    between = dev * dev / np.where(sizes > 0, sizes, 1.0)
    var_w = np.cumsum(variances + between, axis=1)[:, -1:] / w  # law of total variance
    n1 = w - n0
    u1 = total - u0
    valid = (n0 >= min_len) & (n1 >= min_len)
    safe0 = np.where(valid, n0, float(min_len))
    safe1 = np.where(valid, n1, float(min_len))
    delta_mean = np.abs(u0 / safe0 - u1 / safe1)
    # delta' = delta / ln(W) as in MOA / River; math.log on both paths (not np.log).
    dprime = np.array([math.log(2.0 * math.log(wi) / delta) for wi in widths])[:, None]
    m_recip = 1.0 / (safe0 - min_len + 1.0) + 1.0 / (safe1 - min_len + 1.0)
    eps = np.sqrt(2.0 * m_recip * var_w * dprime) + (2.0 / 3.0) * dprime * m_recip
    return np.any(valid & (delta_mean >= eps), axis=1)


def _adwin_row_alarm(sizes: list[float], totals: list[float], variances: list[float],
                     width: int, delta: float, min_len: int) -> bool:
    """One row of :func:`_adwin_rows_alarm` in plain Python (no numpy call overhead on
    the per-observation path), performing the same operations in the same order."""
    w = float(width)
    total = 0.0
    for t in totals:
        total += t
    mean = total / w
    acc = 0.0
    for s, t, v in zip(sizes, totals, variances, strict=True):
        dev = t - s * mean
        acc += v + dev * dev / s
    var_w = acc / w
    dprime = math.log(2.0 * math.log(width) / delta)
    c = (2.0 / 3.0) * dprime
    n0 = u0 = 0.0
    for s, t in zip(sizes, totals, strict=True):
        n0 += s
        u0 += t
        n1 = w - n0
        if n0 < min_len or n1 < min_len:
            continue
        m_recip = 1.0 / (n0 - min_len + 1.0) + 1.0 / (n1 - min_len + 1.0)
        eps = math.sqrt(2.0 * m_recip * var_w * dprime) + c * m_recip
        if abs(u0 / n0 - (total - u0) / n1) >= eps:
            return True
    return False


def _merge(ta, va, tb, vb, size):
    """Merge two adjacent buckets of ``size`` observations each (scalars or arrays):
    total and sum of squared deviations (Chan et al.)."""
    d = ta / size - tb / size
    return ta + tb, (va + vb) + (size * 0.5) * (d * d)


def _adwin_created(t: np.ndarray, levels: int, m: int) -> list[np.ndarray]:
    """B_L(t): number of level-L buckets ever created after t insertions (merging the two
    oldest of M+1 buckets of a level is a deterministic function of t)."""
    out = [t]
    for _ in range(1, levels + 1):
        out.append(np.maximum(0, (out[-1] - m + 1) // 2))
    return out


class ADWIN(SequentialDetector):
    """ADWIN2 (Bifet & Gavaldà 2007): adaptive window kept as an exponential histogram
    (at most ``max_buckets`` buckets of each size 2^L, so O(M log W) memory); every
    ``clock`` observations past ``grace_period`` every bucket boundary is tried as a
    cut, with the variance-based bound of the paper (Thm 3.1) and delta' = delta/ln W.

    On an alarm the whole window is dropped (River >= 0.19 does the same)."""

    name = "adwin"

    def __init__(self, delta: float = 0.002, *, clock: int = 32, max_buckets: int = 5,
                 min_window_length: int = 5, grace_period: int = 10) -> None:
        self.delta = _check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        self.clock = _check_int("clock", clock, lo=1)
        self.max_buckets = _check_int("max_buckets", max_buckets, lo=2)
        self.min_window_length = _check_int("min_window_length", min_window_length, lo=1)
        self.grace_period = _check_int("grace_period", grace_period, lo=0)
        super().__init__()

    def _params(self) -> dict[str, Any]:
        return {"delta": self.delta, "clock": self.clock, "max_buckets": self.max_buckets,
                "min_window_length": self.min_window_length, "grace_period": self.grace_period}

    def _clear(self) -> None:
        self.n = 0
        self._tot: list[list[float]] = []  # per level, oldest first
        self._var: list[list[float]] = []

    @property
    def width(self) -> int:
        return self.n

    @property
    def estimation(self) -> float:
        return math.fsum(math.fsum(t) for t in self._tot) / self.n if self.n else 0.0

    @property
    def n_buckets(self) -> int:
        return sum(len(t) for t in self._tot)

    def _get_state(self) -> dict[str, Any]:
        return {"totals": [list(t) for t in self._tot], "variances": [list(v) for v in self._var]}

    def _set_state(self, s: dict[str, Any]) -> None:
        self._tot = [[float(x) for x in t] for t in s["totals"]]
        self._var = [[float(x) for x in v] for v in s["variances"]]

    def _due(self, t: int) -> bool:
        return t % self.clock == 0 and t > self.grace_period and t >= 2 * self.min_window_length

    def _step(self, x: float) -> bool:
        tot, var, m = self._tot, self._var, self.max_buckets
        if not tot:
            tot.append([])
            var.append([])
        tot[0].append(x)
        var[0].append(0.0)
        level = 0
        while len(tot[level]) == m + 1:
            ta, tb = tot[level].pop(0), tot[level].pop(0)
            va, vb = var[level].pop(0), var[level].pop(0)
            t, v = _merge(ta, va, tb, vb, float(1 << level))
            if level + 1 == len(tot):
                tot.append([])
                var.append([])
            tot[level + 1].append(t)
            var[level + 1].append(v)
            level += 1
        self.n += 1
        if not self._due(self.n):
            return False
        sizes, totals, variances = [], [], []
        for lv in range(len(tot) - 1, -1, -1):
            sizes.extend([float(1 << lv)] * len(tot[lv]))
            totals.extend(tot[lv])
            variances.extend(var[lv])
        return _adwin_row_alarm(sizes, totals, variances, self.n, self.delta,
                                self.min_window_length)

    def _scan(self, block: np.ndarray) -> int:
        m, t0, nb = self.max_buckets, self.n, block.size
        # Every bucket any level will hold during this block, as aligned pairwise sums:
        # seq[L] starts at the oldest level-L bucket currently held.
        seq_t: list[np.ndarray] = []
        seq_v: list[np.ndarray] = []
        below_t: np.ndarray | None = None
        below_v: np.ndarray | None = None
        level = 0
        while True:
            held_t = self._tot[level] if level < len(self._tot) else []
            held_v = self._var[level] if level < len(self._var) else []
            if below_t is None or below_v is None:  # level 0
                new_t, new_v = block, np.zeros(nb)
            else:
                k = below_t.size // 2
                new_t, new_v = _merge(below_t[0:2 * k:2], below_v[0:2 * k:2], below_t[1:2 * k:2],
                                      below_v[1:2 * k:2], float(1 << (level - 1)))
            cur_t = np.concatenate([np.asarray(held_t, dtype=np.float64), new_t])
            cur_v = np.concatenate([np.asarray(held_v, dtype=np.float64), new_v])
            if cur_t.size == 0 and level >= len(self._tot):
                break
            seq_t.append(cur_t)
            seq_v.append(cur_v)
            below_t, below_v = cur_t, cur_v
            level += 1
        n_levels = len(seq_t)
        base = _adwin_created(np.array([t0], dtype=np.int64), n_levels, m)
        start = [int(2 * base[lv + 1][0]) for lv in range(n_levels)]  # abs index of seq[L][0]

        ts = np.arange(t0 + 1, t0 + nb + 1, dtype=np.int64)
        due = (ts % self.clock == 0) & (ts > self.grace_period) & (ts >= 2 * self.min_window_length)
        checks = ts[due]
        for c0 in range(0, checks.size, 4096):
            tc = checks[c0:c0 + 4096]
            created = _adwin_created(tc, n_levels, m)
            cols_s, cols_t, cols_v = [], [], []
            slot = np.arange(m)
            for lv in range(n_levels - 1, -1, -1):
                lo = 2 * created[lv + 1] - start[lv]
                cnt = created[lv] - 2 * created[lv + 1]
                ok = slot[None, :] < cnt[:, None]
                cols_s.append(np.where(ok, float(1 << lv), 0.0))
                if seq_t[lv].size:
                    idx = np.clip(lo[:, None] + slot[None, :], 0, seq_t[lv].size - 1)
                    cols_t.append(np.where(ok, seq_t[lv][idx], 0.0))
                    cols_v.append(np.where(ok, seq_v[lv][idx], 0.0))
                else:
                    cols_t.append(np.zeros(ok.shape))
                    cols_v.append(np.zeros(ok.shape))
            alarm = _adwin_rows_alarm(np.hstack(cols_s), np.hstack(cols_t), np.hstack(cols_v),
                                      tc.tolist(), self.delta, self.min_window_length)
            first = _first_true(alarm)
            if first >= 0:
                return int(tc[first] - t0 - 1)  # caller resets: no state to commit
        # No alarm: the histogram after the last observation of the block.
        t_end = t0 + nb
        created = _adwin_created(np.array([t_end], dtype=np.int64), n_levels, m)
        tot, var = [], []
        for lv in range(n_levels):
            begin = int(2 * created[lv + 1][0]) - start[lv]
            end = int(created[lv][0]) - start[lv]
            tot.append(seq_t[lv][begin:end].tolist())
            var.append(seq_v[lv][begin:end].tolist())
        while tot and not tot[-1]:
            tot.pop()
            var.pop()
        self._tot, self._var, self.n = tot, var, t_end
        return -1


# -- Page-Hinkley ---------------------------------------------------------------------


class PageHinkley(SequentialDetector):
    """Page-Hinkley test on deviations from the running mean (since reset).

    m_t = alpha * m_{t-1} + (x_t - mean_t - delta) and an alarm when
    m_t - min(0, min_s m_s) > threshold (``increase``); mirrored with +delta for
    ``decrease``.  ``alpha`` < 1 is River's fading factor; with the default
    ``alpha=1`` (the classical test) ``update_many`` is vectorised, otherwise it runs
    the exact scalar loop.  No alarm before ``min_n`` observations."""

    name = "page_hinkley"

    def __init__(self, delta: float = 0.005, threshold: float = 50.0, alpha: float = 1.0,
                 direction: str = "both", *, min_n: int = 30) -> None:
        self.delta = _check_real("delta", delta, lo=0.0)
        self.threshold = _check_real("threshold", threshold, lo=0.0, lo_open=True)
        self.alpha = _check_real("alpha", alpha, lo=0.0, hi=1.0, lo_open=True)
        self.direction = _check_direction(direction)
        self.min_n = _check_int("min_n", min_n, lo=1)
        self._inc = direction in ("increase", "both")
        self._dec = direction in ("decrease", "both")
        super().__init__()

    def _params(self) -> dict[str, Any]:
        return {"delta": self.delta, "threshold": self.threshold, "alpha": self.alpha,
                "direction": self.direction, "min_n": self.min_n}

    def _clear(self) -> None:
        self.n = 0
        self._sx = 0.0  # running sum (mean = sx / n)
        self._si = 0.0  # cumulative sum for increases, and its running minimum
        self._mi = 0.0
        self._sd = 0.0  # cumulative sum for decreases, and its running maximum
        self._md = 0.0

    def _get_state(self) -> dict[str, Any]:
        return {"sum": self._sx, "s_inc": self._si, "min_inc": self._mi, "s_dec": self._sd,
                "max_dec": self._md}

    def _set_state(self, s: dict[str, Any]) -> None:
        self._sx, self._si, self._mi = float(s["sum"]), float(s["s_inc"]), float(s["min_inc"])
        self._sd, self._md = float(s["s_dec"]), float(s["max_dec"])

    def _step(self, x: float) -> bool:
        self.n += 1
        self._sx += x
        dev = x - self._sx / self.n
        self._si = self.alpha * self._si + (dev - self.delta)
        self._sd = self.alpha * self._sd + (dev + self.delta)
        if self._si < self._mi:
            self._mi = self._si
        if self._sd > self._md:
            self._md = self._sd
        if self.n < self.min_n:
            return False
        return ((self._inc and self._si - self._mi > self.threshold)
                or (self._dec and self._md - self._sd > self.threshold))

    def _scan(self, block: np.ndarray) -> int:
        if self.alpha != 1.0:
            return super()._scan(block)
        n = self.n + np.arange(1, block.size + 1, dtype=np.int64)
        sx = _prepend_accumulate(np.add, self._sx, block)
        dev = block - sx / n
        si = _prepend_accumulate(np.add, self._si, dev - self.delta)
        sd = _prepend_accumulate(np.add, self._sd, dev + self.delta)
        mi = _prepend_accumulate(np.minimum, self._mi, si)
        md = _prepend_accumulate(np.maximum, self._md, sd)
        hit = np.zeros(block.size, dtype=bool)
        if self._inc:
            hit |= si - mi > self.threshold
        if self._dec:
            hit |= md - sd > self.threshold
        first = _first_true(hit & (n >= self.min_n))
        if first >= 0:
            return first
        self.n = int(n[-1])
        self._sx, self._si, self._sd = float(sx[-1]), float(si[-1]), float(sd[-1])
        self._mi, self._md = float(mi[-1]), float(md[-1])
        return -1


# -- CUSUM ----------------------------------------------------------------------------


class CUSUM(SequentialDetector):
    """Standardised two-sided Page CUSUM: z = (x - target_mean) / target_std,
    S+ = max(0, S+ + z - k), S- = max(0, S- - z - k), alarm when S > h.

    S+ is computed as W - min(0, min W) with W the running sum of (z - k) - the same
    quantity, in a form that vectorises exactly.  A target left as None is estimated
    from the first ``warmup`` observations after every reset (mean, sample std); a
    constant warm-up gets a tiny std floor, so any later change alarms at once.
    Defaults k=0.5, h=5 give ARL0 ~ 465 (two-sided) and ~10 observations for a 1 sigma
    shift."""

    name = "cusum"

    def __init__(self, target_mean: float | None = None, target_std: float | None = None,
                 k: float = 0.5, h: float = 5.0, direction: str = "both", *,
                 warmup: int = 100) -> None:
        self.target_mean = None if target_mean is None else _check_real("target_mean",
                                                                         target_mean)
        self.target_std = None if target_std is None else _check_real(
            "target_std", target_std, lo=0.0, lo_open=True)
        self.k = _check_real("k", k, lo=0.0)
        self.h = _check_real("h", h, lo=0.0, lo_open=True)
        self.direction = _check_direction(direction)
        self.warmup = _check_int("warmup", warmup, lo=2)
        self._inc = direction in ("increase", "both")
        self._dec = direction in ("decrease", "both")
        super().__init__()

    def _params(self) -> dict[str, Any]:
        return {"target_mean": self.target_mean, "target_std": self.target_std, "k": self.k,
                "h": self.h, "direction": self.direction, "warmup": self.warmup}

    def _clear(self) -> None:
        self.n = 0
        self.mean = self.target_mean
        self.std = self.target_std
        self._buf: list[float] = []
        self._wu = self._mu = self._wd = self._md = 0.0

    @property
    def warming_up(self) -> bool:
        return self.mean is None or self.std is None

    @property
    def statistic(self) -> tuple[float, float]:
        """(S+, S-)."""
        return self._wu - self._mu, self._wd - self._md

    def _get_state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "warmup_values": list(self._buf),
                "w_up": self._wu, "min_up": self._mu, "w_down": self._wd, "min_down": self._md}

    def _set_state(self, s: dict[str, Any]) -> None:
        self.mean = None if s["mean"] is None else float(s["mean"])
        self.std = None if s["std"] is None else float(s["std"])
        self._buf = [float(v) for v in s["warmup_values"]]
        self._wu, self._mu = float(s["w_up"]), float(s["min_up"])
        self._wd, self._md = float(s["w_down"]), float(s["min_down"])

    def _finish_warmup(self) -> None:
        buf = self._buf
        if max(buf) == min(buf):
            mu, sd = buf[0], 0.0
        else:
            mu = math.fsum(buf) / len(buf)
            sd = math.sqrt(math.fsum((v - mu) * (v - mu) for v in buf) / (len(buf) - 1))
        if self.mean is None:
            self.mean = mu
        if self.std is None:
            self.std = max(sd, 1e-12 * max(1.0, abs(self.mean)))
        self._buf = []

    def _step(self, x: float) -> bool:
        self.n += 1
        if self.mean is None or self.std is None:
            self._buf.append(x)
            if len(self._buf) == self.warmup:
                self._finish_warmup()
            return False
        z = (x - self.mean) / self.std
        self._wu += z - self.k
        if self._wu < self._mu:
            self._mu = self._wu
        self._wd += -z - self.k
        if self._wd < self._md:
            self._md = self._wd
        return ((self._inc and self._wu - self._mu > self.h)
                or (self._dec and self._wd - self._md > self.h))

    def _scan(self, block: np.ndarray) -> int:
        off = 0
        if self.mean is None or self.std is None:
            off = min(self.warmup - len(self._buf), block.size)
            self._buf.extend(block[:off].tolist())
            self.n += off
            if len(self._buf) == self.warmup:
                self._finish_warmup()
            if off == block.size:
                return -1
        rest = block[off:]
        z = (rest - cast(float, self.mean)) / cast(float, self.std)
        wu = _prepend_accumulate(np.add, self._wu, z - self.k)
        mu = _prepend_accumulate(np.minimum, self._mu, wu)
        wd = _prepend_accumulate(np.add, self._wd, -z - self.k)
        md = _prepend_accumulate(np.minimum, self._md, wd)
        hit = np.zeros(rest.size, dtype=bool)
        if self._inc:
            hit |= wu - mu > self.h
        if self._dec:
            hit |= wd - md > self.h
        first = _first_true(hit)
        if first >= 0:
            return off + first
        self.n += rest.size
        self._wu, self._mu = float(wu[-1]), float(mu[-1])
        self._wd, self._md = float(wd[-1]), float(md[-1])
        return -1


# -- error-rate detectors (0/1 streams) -----------------------------------------------


class DDM(SequentialDetector):
    """Drift Detection Method (Gama et al. 2004) on a 0/1 error stream: p = error rate
    since reset, s = sqrt(p(1-p)/n); after ``min_n`` observations track the minimum of
    p + s, warn at p + s > p_min + warning*s_min, alarm at p_min + drift*s_min.
    (If the first ``min_n`` observations hold no error, s_min = 0 and the first error
    alarms - a known DDM trait kept for fidelity with the paper and River.)"""

    name = "ddm"
    binary = True

    def __init__(self, warning: float = 2.0, drift: float = 3.0, min_n: int = 30) -> None:
        self.warning = _check_real("warning", warning, lo=0.0, lo_open=True)
        self.drift = _check_real("drift", drift, lo=self.warning)
        self.min_n = _check_int("min_n", min_n, lo=1)
        super().__init__()

    def _params(self) -> dict[str, Any]:
        return {"warning": self.warning, "drift": self.drift, "min_n": self.min_n}

    def _clear(self) -> None:
        self.n = 0
        self._errors = 0
        self._pmin: float | None = None
        self._smin: float | None = None
        self.warning_detected = False

    @property
    def error_rate(self) -> float:
        return self._errors / self.n if self.n else 0.0

    def _get_state(self) -> dict[str, Any]:
        return {"errors": self._errors, "p_min": self._pmin, "s_min": self._smin,
                "warning": self.warning_detected}

    def _set_state(self, s: dict[str, Any]) -> None:
        self._errors = int(s["errors"])
        self._pmin = None if s["p_min"] is None else float(s["p_min"])
        self._smin = None if s["s_min"] is None else float(s["s_min"])
        self.warning_detected = bool(s["warning"])

    def _step(self, x: float) -> bool:
        self.n += 1
        if x == 1.0:
            self._errors += 1
        if self.n <= self.min_n:
            return False
        p = self._errors / self.n
        s = math.sqrt(p * (1.0 - p) / self.n)
        ps = p + s
        if self._pmin is None or ps <= self._pmin + cast(float, self._smin):
            self._pmin, self._smin = p, s
        smin = cast(float, self._smin)
        if ps > self._pmin + self.drift * smin:
            return True
        self.warning_detected = ps > self._pmin + self.warning * smin
        return False

    def _scan(self, block: np.ndarray) -> int:
        n = self.n + np.arange(1, block.size + 1, dtype=np.int64)
        errors = self._errors + np.cumsum(block == 1.0, dtype=np.int64)
        elig = n > self.min_n
        p = errors / n
        s = np.sqrt(p * (1.0 - p) / n)
        ps = p + s
        ps0 = math.inf if self._pmin is None else self._pmin + cast(float, self._smin)
        prev = _prepend_accumulate(np.minimum, ps0, np.where(elig, ps, math.inf))
        prev = np.concatenate([[ps0], prev[:-1]])
        new = elig & (ps <= prev)
        last = _last_index_where(new)
        have = last >= 0
        at = np.maximum(last, 0)
        pmin = np.where(have, p[at], math.nan if self._pmin is None else self._pmin)
        smin = np.where(have, s[at], math.nan if self._smin is None else self._smin)
        drift = elig & (ps > pmin + self.drift * smin)
        first = _first_true(drift)
        if first >= 0:
            return first
        self.n, self._errors = int(n[-1]), int(errors[-1])
        if have[-1]:
            self._pmin, self._smin = float(pmin[-1]), float(smin[-1])
        if elig[-1]:
            self.warning_detected = bool(ps[-1] > pmin[-1] + self.warning * smin[-1])
        return -1


class EDDM(SequentialDetector):
    """Early Drift Detection Method (Baena-García et al. 2006): watches the distance
    between consecutive errors; p' = its mean, s' = its (sample) std.  After ``min_n``
    observations the maximum of p' + 2s' is tracked; once more than ``min_n`` errors
    were seen, (p' + 2s') / max below ``beta`` alarms, below ``alpha`` warns.
    Semantics follow River's EDDM (its ``warm_start`` is ``min_n``)."""

    name = "eddm"
    binary = True

    def __init__(self, alpha: float = 0.95, beta: float = 0.9, min_n: int = 30) -> None:
        self.alpha = _check_real("alpha", alpha, lo=0.0, hi=1.0, lo_open=True)
        self.beta = _check_real("beta", beta, lo=0.0, hi=self.alpha, lo_open=True)
        self.min_n = _check_int("min_n", min_n, lo=1)
        super().__init__()

    def _params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "min_n": self.min_n}

    def _clear(self) -> None:
        self.n = 0
        self._errors = 0
        self._last = 0  # n at the last error
        self._s1 = 0.0  # sum of distances, of squared distances
        self._s2 = 0.0
        self._max = -1.0
        self.warning_detected = False

    def _get_state(self) -> dict[str, Any]:
        return {"errors": self._errors, "last_error": self._last, "sum_d": self._s1,
                "sum_d2": self._s2, "max_p2s": self._max, "warning": self.warning_detected}

    def _set_state(self, s: dict[str, Any]) -> None:
        self._errors, self._last = int(s["errors"]), int(s["last_error"])
        self._s1, self._s2, self._max = float(s["sum_d"]), float(s["sum_d2"]), float(s["max_p2s"])
        self.warning_detected = bool(s["warning"])

    def _step(self, x: float) -> bool:
        self.n += 1
        if x != 1.0:
            return False
        self._errors += 1
        d = float(self.n - self._last)
        self._last = self.n
        self._s1 += d
        self._s2 += d * d
        j = self._errors
        mean = self._s1 / j
        var = (self._s2 - self._s1 * mean) / max(j - 1, 1)
        p2s = mean + 2.0 * math.sqrt(max(var, 0.0))
        if self.n <= self.min_n:
            return False
        if p2s > self._max:
            self._max = p2s
            self.warning_detected = False
        elif j > self.min_n:
            level = p2s / self._max
            if level < self.beta:
                return True
            self.warning_detected = level < self.alpha
        return False

    def _scan(self, block: np.ndarray) -> int:
        pos = np.flatnonzero(block == 1.0)
        if pos.size == 0:
            self.n += block.size
            return -1
        n_at = self.n + 1 + pos
        d = np.diff(n_at, prepend=self._last).astype(np.float64)
        s1 = _prepend_accumulate(np.add, self._s1, d)
        s2 = _prepend_accumulate(np.add, self._s2, d * d)
        j = self._errors + np.arange(1, pos.size + 1, dtype=np.int64)
        mean = s1 / j
        var = (s2 - s1 * mean) / np.maximum(j - 1, 1)
        p2s = mean + 2.0 * np.sqrt(np.maximum(var, 0.0))
        elig = n_at > self.min_n
        cm = _prepend_accumulate(np.maximum, self._max, np.where(elig, p2s, -math.inf))
        prev = np.concatenate([[self._max], cm[:-1]])
        new = elig & (p2s > prev)
        tested = elig & ~new & (j > self.min_n)
        level = p2s / np.where(tested, prev, 1.0)
        first = _first_true(tested & (level < self.beta))
        if first >= 0:
            return int(pos[first])
        self.n += block.size
        self._errors, self._last = int(j[-1]), int(n_at[-1])
        self._s1, self._s2, self._max = float(s1[-1]), float(s2[-1]), float(cm[-1])
        decided = np.flatnonzero(new | tested)
        if decided.size:
            i = int(decided[-1])
            self.warning_detected = bool(tested[i] and level[i] < self.alpha)
        return -1


class HDDM_A(SequentialDetector):  # noqa: N801 - the method's published name
    """HDDM with the A-test (Frías-Blanco et al. 2015): Hoeffding-bound comparison of
    the error rate since reset with its rate at the cut point that minimised
    mean + eps(n) (``two_sided``: also a cut maximising mean - eps(n) for decreases).
    Semantics follow River's HDDM_A."""

    name = "hddm_a"
    binary = True

    def __init__(self, drift_confidence: float = 0.001, warning_confidence: float = 0.005,
                 two_sided: bool = False) -> None:
        self.drift_confidence = _check_real("drift_confidence", drift_confidence, lo=0.0,
                                            hi=1.0, lo_open=True, hi_open=True)
        self.warning_confidence = _check_real("warning_confidence", warning_confidence,
                                              lo=self.drift_confidence, hi=1.0, hi_open=True)
        if not isinstance(two_sided, bool):
            raise ValueError(f"two_sided must be a bool, got {two_sided!r}")
        self.two_sided = two_sided
        self._lb = math.log(1.0 / self.drift_confidence)
        self._ld = math.log(2.0 / self.drift_confidence)
        self._lw = math.log(2.0 / self.warning_confidence)
        super().__init__()

    def _params(self) -> dict[str, Any]:
        return {"drift_confidence": self.drift_confidence,
                "warning_confidence": self.warning_confidence, "two_sided": self.two_sided}

    def _clear(self) -> None:
        self.n = 0
        self._errors = 0
        self._lo_n = self._lo_k = 0  # cut point for increases (n, errors); n = 0: none
        self._hi_n = self._hi_k = 0  # cut point for decreases
        self.warning_detected = False

    def _get_state(self) -> dict[str, Any]:
        return {"errors": self._errors, "cut_inc": [self._lo_n, self._lo_k],
                "cut_dec": [self._hi_n, self._hi_k], "warning": self.warning_detected}

    def _set_state(self, s: dict[str, Any]) -> None:
        self._errors = int(s["errors"])
        self._lo_n, self._lo_k = (int(v) for v in s["cut_inc"])
        self._hi_n, self._hi_k = (int(v) for v in s["cut_dec"])
        self.warning_detected = bool(s["warning"])

    def _bound(self, n):
        return np.sqrt(1.0 / (2 * n) * self._lb) if isinstance(n, np.ndarray) \
            else math.sqrt(1.0 / (2 * n) * self._lb)

    def _step(self, x: float) -> bool:
        self.n += 1
        if x == 1.0:
            self._errors += 1
        n, k = self.n, self._errors
        mean, eps = k / n, self._bound(n)
        if self._lo_n == 0 or self._lo_k / self._lo_n + self._bound(self._lo_n) >= mean + eps:
            self._lo_n, self._lo_k = n, k
        if self._hi_n == 0 or self._hi_k / self._hi_n - self._bound(self._hi_n) <= mean - eps:
            self._hi_n, self._hi_k = n, k

        def gap(cut_n: int, diff: float, log_term: float) -> bool:
            if cut_n == n:
                return False
            m = (n - cut_n) / cut_n * (1.0 / n)
            return diff >= math.sqrt(m / 2 * log_term)

        up = mean - self._lo_k / self._lo_n
        down = self._hi_k / self._hi_n - mean
        if gap(self._lo_n, up, self._ld) or (self.two_sided and gap(self._hi_n, down, self._ld)):
            return True
        self.warning_detected = gap(self._lo_n, up, self._lw) or (
            self.two_sided and gap(self._hi_n, down, self._lw))
        return False

    @staticmethod
    def _cut(better: np.ndarray, cut_n: int, cut_k: int, n: np.ndarray,
             k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cut point after each observation: the latest running arg-min of ``score``
        (ties move the cut forward, as the scalar ``>=`` / ``<=`` tests do)."""
        last = _last_index_where(better)
        have = last >= 0
        at = np.maximum(last, 0)
        return np.where(have, n[at], cut_n), np.where(have, k[at], cut_k)

    def _scan(self, block: np.ndarray) -> int:
        n = self.n + np.arange(1, block.size + 1, dtype=np.int64)
        k = self._errors + np.cumsum(block == 1.0, dtype=np.int64)
        mean = k / n
        eps = self._bound(n)
        f = mean + eps
        g = mean - eps
        f0 = math.inf if self._lo_n == 0 else self._lo_k / self._lo_n + self._bound(self._lo_n)
        g0 = -math.inf if self._hi_n == 0 else self._hi_k / self._hi_n - self._bound(self._hi_n)
        fmin = _prepend_accumulate(np.minimum, f0, f)
        gmax = _prepend_accumulate(np.maximum, g0, g)
        lo_n, lo_k = self._cut(f <= np.concatenate([[f0], fmin[:-1]]), self._lo_n, self._lo_k,
                               n, k)
        hi_n, hi_k = self._cut(g >= np.concatenate([[g0], gmax[:-1]]), self._hi_n, self._hi_k,
                               n, k)

        def gap(cut_n: np.ndarray, diff: np.ndarray, log_term: float) -> np.ndarray:
            differ = cut_n != n
            safe = np.where(differ, cut_n, 1)
            m = (n - safe) / safe * (1.0 / n)
            return differ & (diff >= np.sqrt(np.maximum(m, 0.0) / 2 * log_term))

        up = mean - lo_k / lo_n
        down = hi_k / hi_n - mean
        drift = gap(lo_n, up, self._ld)
        warn = gap(lo_n, up, self._lw)
        if self.two_sided:
            drift |= gap(hi_n, down, self._ld)
            warn |= gap(hi_n, down, self._lw)
        first = _first_true(drift)
        if first >= 0:
            return first
        self.n, self._errors = int(n[-1]), int(k[-1])
        self._lo_n, self._lo_k = int(lo_n[-1]), int(lo_k[-1])
        self._hi_n, self._hi_k = int(hi_n[-1]), int(hi_k[-1])
        self.warning_detected = bool(warn[-1])
        return -1
