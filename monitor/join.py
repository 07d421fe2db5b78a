"""Joining delayed labels to the predictions they belong to.

Labels join predictions on (``model``, ``id``) (docs/events.md).  Either side may
arrive first:

- a prediction waits (``pending``) until its label arrives, or until it is older
  than ``watermark - ttl_seconds`` -- then it is *expired* and counted as
  unlabelled;
- a label whose prediction has not been seen yet is *held* (an orphan) and
  joined as soon as the prediction arrives -- so :meth:`LabelJoin.add_predictions`
  returns joined pairs too.  Orphans older than ``watermark - ttl_seconds`` are
  dropped and counted.

Duplicates: the first prediction and the first label of an id win.  Joined ids
are remembered (as small tombstones) until the prediction would have expired,
so a late repeated label is counted in ``duplicate_labels`` rather than held as
an orphan.

Memory is bounded: ``max_pending`` caps the remembered prediction ids (pending
plus tombstones, over all models) and, separately, the held labels.  Over the
cap the oldest (by event time) entries are evicted; evicted *pending*
predictions and evicted held labels are counted.  Evicted predictions are left
out of the coverage denominator: we do not know whether they would have been
labelled.

Per model the join tracks label coverage (joined / (joined + expired
unlabelled)) and the label delay (``label_ts - pred_ts``) of the most recent
``delay_window`` joins, for p50/p95.

Deadlines: :meth:`LabelJoin.due` hands out, once each and in prediction-time
order (ties by id), the predictions older than a cutoff the caller chooses
(``watermark - deadline``, the deadline far shorter than the TTL), with the event
time of their label, or NaN if none has joined yet -- so the caller can tell
on-time labels from overdue ones long before a prediction expires.

Models not labelled yet: labels may start hours after a model's first prediction
(labels that always come 3 h late), so every model's predictions are kept from
its first one on, before any label, in a compact columnar *early buffer*
(:meth:`LabelJoin.add_early`: id, event time, prediction), capped per model by
the TTL and by ``max_early`` rows, and all unlabelled models together by
``MAX_EARLY_TOTAL`` (shared evenly; over it the oldest are dropped; both counted
in ``early_expired`` / ``early_evicted``).  A model whose labels never come costs
at most that; when its first label event comes the pipeline moves the buffer
into the join (:meth:`LabelJoin.take_early`), in arrival order, before that
batch's own predictions.

Layout and cost: a model's remembered predictions are rows of numpy columns in
arrival order (id, event time, prediction, class, label time, flag bits: pending,
not handed out by ``due``, alive), ~120 B a row with the id string, against ~300 B
as dicts and heaps of tuples.  Ids are found through a sorted index of 64-bit keys
(Python's ``hash`` of the id, recomputed when a checkpoint loads) plus a small
sorted index of the keys added since, merged when it outgrows an eighth of the
main one: a batch is joined with one ``searchsorted`` per index.  Every key match
is checked against the id itself; an id whose key another live id owns (a
collision, about n**2 / 2**65: 3e-8 for a million ids) is kept in a dict, so a
collision never joins the wrong prediction.  Expiry and ``due`` find their rows
through the least event time of every block of 1,024 rows, so they touch only
the blocks that hold what they remove; dead rows are compacted away once they
outnumber the live ones.  Eviction over ``max_pending`` takes the oldest by
(event time, id, model), as the per-model heaps it replaced did.  Held labels
(labels before their prediction, rare) stay a dict and a heap.  Checkpoints
save the live rows as columns (ids as a list, times as base64 of float64, flags
as bytes); a checkpoint of the older dict-and-heap format is migrated on read.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from monitor.batch import LabelColumns, PredictionColumns
from monitor.codec import f64_from_text, f64_to_text, object_array

MAX_EARLY_TOTAL = 2_000_000  # early-buffer rows across all unlabelled models (~180 MB)

_COUNTERS = ("predictions", "labels", "joined", "unlabelled", "orphan_labels", "evicted",
             "evicted_labels", "duplicate_labels", "duplicate_predictions")





def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _rows(entries: list[tuple[float, float, Any]]) -> np.ndarray:
    """(n, 3) object array of (ts, value, class) entries, without a Python loop."""
    out = np.empty((len(entries), 3), dtype=object)
    out[:] = entries
    return out


@dataclass
class Joined:
    """Newly joined (prediction, label) pairs of one model, as columns."""

    model: str
    ids: np.ndarray  # object: the joined ids
    pred_ts: np.ndarray  # float64
    label_ts: np.ndarray  # float64
    prediction: np.ndarray  # float64 (NaN where the prediction is a class)
    prediction_class: np.ndarray  # object: str or None
    label: np.ndarray  # float64 (NaN where the label is a class)
    label_class: np.ndarray  # object: str or None

    @property
    def n(self) -> int:
        return int(self.pred_ts.shape[0])

    @property
    def delay(self) -> np.ndarray:
        return self.label_ts - self.pred_ts

    @classmethod
    def merge(cls, model: str, parts: list[Joined]) -> Joined:
        """The pairs of ``parts`` as one, in the order they completed: by the event time
        of the later of prediction and label (stable: ties keep the parts' order)."""
        parts = [p for p in parts if p.n]
        if not parts:
            return cls.empty(model)
        if len(parts) == 1:
            j = parts[0]
        else:
            j = cls(model, *(np.concatenate([getattr(p, f.name) for p in parts])
                             for f in fields(cls) if f.name != "model"))
        order = np.argsort(np.maximum(j.pred_ts, j.label_ts), kind="stable")
        return cls(model, *(getattr(j, f.name)[order] for f in fields(cls)
                            if f.name != "model"))

    @classmethod
    def empty(cls, model: str) -> Joined:
        f, o = np.empty(0, dtype=np.float64), np.empty(0, dtype=object)
        return cls(model, o, f, f.copy(), f.copy(), o.copy(), f.copy(), o.copy())


@dataclass
class ExpiryStats:
    """What :meth:`LabelJoin.expire` dropped for one model, plus the evictions since
    the previous ``expire`` call (so the pipeline finds every loss in one place)."""

    unlabelled: int = 0  # predictions expired without a label
    orphan_labels: int = 0  # labels expired without a prediction
    evicted: int = 0  # pending predictions evicted by the memory bound
    evicted_labels: int = 0  # held labels evicted by the memory bound


@dataclass(frozen=True)
class DelaySummary:
    n: int  # delays in the summary (the most recent ``delay_window`` joins)
    p50: float | None
    p95: float | None


_BLOCK = 1024  # rows per block of the per-block least event times
# flag bits of a remembered prediction (the state's "flags" keeps the first two)
_PENDING, _UNDUE, _ALIVE = np.uint8(1), np.uint8(2), np.uint8(4)
_NOT_PENDING, _NOT_UNDUE = np.uint8(0xFE), np.uint8(0xFD)


def _keys(ids: np.ndarray) -> np.ndarray:
    """64-bit index keys of ``ids`` (Python's ``hash``; recomputed on load, never
    saved).  Every key match is checked against the id itself, so a collision costs
    a dict entry (:attr:`_ModelJoin.collide`), never a wrong join."""
    return np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))


def _first(ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each id of ``ids``."""
    n = len(ids)
    if not _repeats(keys):
        return np.ones(n, dtype=bool)
    _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    f = first[inv.reshape(-1)]
    if bool(np.all(ids[f] == ids)):
        return f == np.arange(n)
    seen: set[Any] = set()  # two ids of one key: exactly, by the ids
    out = np.zeros(n, dtype=bool)
    for k, i in enumerate(ids.tolist()):
        if i not in seen:
            seen.add(i)
            out[k] = True
    return out


def _repeats(values: np.ndarray) -> bool:
    """Whether any value of ``values`` occurs twice."""
    s = np.sort(values)
    return bool((s[1:] == s[:-1]).any())


def _obj(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


@dataclass
class _ModelJoin:
    # Remembered predictions: one row each, in arrival order, in columns of which the
    # first ``n`` rows are used.  A row is pending (_PENDING) until its label joins,
    # then a tombstone (to recognise duplicate labels) until it expires or is evicted
    # (_ALIVE cleared); _UNDUE until ``due`` hands it out.
    n: int = 0
    ids: np.ndarray = field(default_factory=lambda: _obj(0))
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    pred: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    pcls: np.ndarray = field(default_factory=lambda: _obj(0))
    lts: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))  # label time
    flags: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))
    n_alive: int = 0  # remembered prediction ids (pending plus tombstones)
    n_pending: int = 0
    # key -> row: a sorted index (main) and a smaller sorted one of the keys added since
    # (delta); each key once, its row perhaps dead (then a new row of that key reuses it)
    main_k: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    main_r: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    delta_k: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    delta_r: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    collide: dict[Any, int] = field(default_factory=dict)  # id -> row: key owned by another id
    # per block of _BLOCK rows, at most the least event time of its undue / alive rows
    bmin_due: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    bmin_alive: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    # id -> (label_ts, label, label_class): labels waiting for their prediction
    held: dict[Any, tuple[float, float, Any]] = field(default_factory=dict)
    # (label_ts, id) for held labels; may contain stale entries (joined since)
    lheap: list[tuple[float, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    since_expire: ExpiryStats = field(default_factory=ExpiryStats)
    delays: np.ndarray | None = None  # ring buffer
    due_cut: float = -np.inf  # the largest cutoff ``due`` was called with
    delay_pos: int = 0
    delay_n: int = 0

    def record_delays(self, delays: np.ndarray, window: int) -> None:
        if self.delays is None:
            self.delays = np.zeros(window, dtype=np.float64)
        d = delays[-window:]
        k = d.shape[0]
        idx = (self.delay_pos + np.arange(k)) % window
        self.delays[idx] = d
        self.delay_pos = (self.delay_pos + k) % window
        self.delay_n = min(window, self.delay_n + k)

    # -- rows -------------------------------------------------------------------------

    def _resize(self, cap: int) -> None:
        n = self.n
        for name in ("ts", "pred", "lts", "flags", "ids", "pcls"):
            old = getattr(self, name)
            new = _obj(cap) if old.dtype == object else np.empty(cap, dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)
        nb = -(-cap // _BLOCK)
        for name in ("bmin_due", "bmin_alive"):
            new = np.full(nb, np.inf)
            old = getattr(self, name)
            k = min(nb, old.shape[0])
            new[:k] = old[:k]
            setattr(self, name, new)

    def append(self, ids: np.ndarray, ts: np.ndarray, pred: np.ndarray, pcls: np.ndarray,
               lts: np.ndarray, flags: np.ndarray) -> np.ndarray:
        """Append rows (``flags`` with _ALIVE); returns their row numbers."""
        a, k = self.n, int(ids.shape[0])
        if a + k > self.ts.shape[0]:
            self._resize(max(a + k, 2 * self.ts.shape[0], _BLOCK))
        b = a + k
        self.ids[a:b] = ids
        self.ts[a:b] = ts
        self.pred[a:b] = pred
        self.pcls[a:b] = pcls
        self.lts[a:b] = lts
        self.flags[a:b] = flags
        self.n = b
        self.n_alive += k
        self.n_pending += int(np.count_nonzero(flags & _PENDING))
        if k:
            self.refresh(np.arange(a // _BLOCK, (b - 1) // _BLOCK + 1))
        return np.arange(a, b, dtype=np.int64)

    def rows_in(self, blocks: np.ndarray) -> np.ndarray:
        idx = (blocks[:, None] * _BLOCK + np.arange(_BLOCK)).ravel()
        return idx[idx < self.n]

    def refresh(self, blocks: np.ndarray) -> None:
        """Recompute the least undue / alive event times of ``blocks``."""
        idx = blocks[:, None] * _BLOCK + np.arange(_BLOCK)
        inside = idx < self.n
        idx = np.where(inside, idx, 0)
        ts, f = self.ts[idx], np.where(inside, self.flags[idx], 0)
        self.bmin_due[blocks] = np.where(f & _UNDUE, ts, np.inf).min(axis=1)
        self.bmin_alive[blocks] = np.where(f & _ALIVE, ts, np.inf).min(axis=1)

    def older(self, bmin: np.ndarray, bit: np.uint8, cutoff: float
              ) -> tuple[np.ndarray, np.ndarray]:
        """(blocks, rows) of the rows with ``bit`` and event time < ``cutoff``."""
        blocks = np.flatnonzero(bmin[:-(-self.n // _BLOCK)] < cutoff)
        idx = self.rows_in(blocks)
        return blocks, idx[((self.flags[idx] & bit) != 0) & (self.ts[idx] < cutoff)]

    def kill(self, rows: np.ndarray) -> int:
        """Forget ``rows`` (expired or evicted); returns how many were pending."""
        pending = int(np.count_nonzero(self.flags[rows] & _PENDING))
        self.flags[rows] = 0
        self.ids[rows] = None
        self.pcls[rows] = None
        self.n_alive -= int(rows.shape[0])
        self.n_pending -= pending
        return pending

    def maybe_compact(self) -> None:
        """Drop dead rows once they outnumber the live ones (renumbers the rows)."""
        dead = self.n - self.n_alive
        if dead <= max(4 * _BLOCK, self.n_alive):
            return
        live = np.flatnonzero(self.flags[:self.n] & _ALIVE)
        remap = np.full(self.n, -1, dtype=np.int64)
        remap[live] = np.arange(live.shape[0])
        k = live.shape[0]
        for name in ("ts", "pred", "lts", "flags", "ids", "pcls"):
            col = getattr(self, name)
            col[:k] = col[live]
            if col.dtype == object:
                col[k:self.n] = None
        self.n = k
        self.collide = {i: int(remap[r]) for i, r in self.collide.items() if remap[r] >= 0}
        indexed = np.ones(k, dtype=bool)
        indexed[list(self.collide.values())] = False
        r = np.flatnonzero(indexed)
        keys = _keys(self.ids[r])  # keys are not stored: recomputed, as on load
        order = np.argsort(keys, kind="stable")
        self.main_k, self.main_r = keys[order], r[order]
        self.delta_k = self.delta_r = np.empty(0, np.int64)
        cap = self.ts.shape[0]
        if cap > 4 * max(k, _BLOCK):
            self._resize(2 * max(k, _BLOCK))
        self.bmin_due[:] = np.inf
        self.bmin_alive[:] = np.inf
        if k:
            self.refresh(np.arange(-(-k // _BLOCK)))

    # -- index ------------------------------------------------------------------------

    def find(self, ids: np.ndarray, keys: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For each id: its live row or -1, and its key's index slot (level 0 none,
        1 main, 2 delta; position; the row it points to, any id, or -1)."""
        k = keys.shape[0]
        slot = np.full(k, -1, dtype=np.int64)
        level = np.zeros(k, dtype=np.int8)
        pos = np.zeros(k, dtype=np.int64)
        for lv, sk, sr in ((1, self.main_k, self.main_r), (2, self.delta_k, self.delta_r)):
            if sk.shape[0]:
                p = np.minimum(np.searchsorted(sk, keys), sk.shape[0] - 1)
                hit = sk[p] == keys
                slot[hit], level[hit], pos[hit] = sr[p[hit]], lv, p[hit]
        rows = slot.copy()
        f = np.flatnonzero(slot >= 0)
        if f.shape[0]:
            r = slot[f]
            ok = ((self.flags[r] & _ALIVE) != 0) & (self.ids[r] == ids[f])
            rows[f[~ok]] = -1
        if self.collide:
            for i in np.flatnonzero(rows < 0).tolist():
                c = self.collide.get(ids[i])
                if c is not None and self.flags[c] & _ALIVE:
                    rows[i] = c
        return rows, level, pos, slot

    def insert(self, ids: np.ndarray, keys: np.ndarray, rows: np.ndarray, level: np.ndarray,
               pos: np.ndarray, slot: np.ndarray) -> None:
        """Index new ``rows`` (distinct ids, not remembered alive) of ``ids``, whose
        keys' slots :meth:`find` gave before."""
        k = keys.shape[0]
        if _repeats(keys):  # two new ids of one key: one at a time
            for i in range(k):
                s = slice(i, i + 1)
                _, lv, p, sl = self.find(ids[s], keys[s])
                self.insert(ids[s], keys[s], rows[s], lv, p, sl)
            return
        inc = np.zeros(k, dtype=bool)
        if self.collide:  # an id there keeps its entry there
            inc = np.fromiter((i in self.collide for i in ids), dtype=bool, count=k)
            for i in np.flatnonzero(inc).tolist():
                self.collide[ids[i]] = int(rows[i])
        has = (slot >= 0) & ~inc
        taken = has & ((self.flags[np.maximum(slot, 0)] & _ALIVE) != 0)  # by another id
        for i in np.flatnonzero(taken).tolist():
            self.collide[ids[i]] = int(rows[i])
        reuse = has & ~taken
        m1, m2 = reuse & (level == 1), reuse & (level == 2)
        self.main_r[pos[m1]] = rows[m1]
        self.delta_r[pos[m2]] = rows[m2]
        add = ~has & ~inc
        if add.any():
            dk = np.concatenate([self.delta_k, keys[add]])
            dr = np.concatenate([self.delta_r, rows[add]])
            order = np.argsort(dk, kind="stable")
            self.delta_k, self.delta_r = dk[order], dr[order]
            if self.delta_k.shape[0] > max(4 * _BLOCK, self.main_k.shape[0] // 8):
                self.merge()

    def merge(self) -> None:
        """Fold the delta index into the main one, dropping keys of dead rows."""
        k = np.concatenate([self.main_k, self.delta_k])
        r = np.concatenate([self.main_r, self.delta_r])
        live = (self.flags[r] & _ALIVE) != 0
        k, r = k[live], r[live]
        order = np.argsort(k, kind="stable")
        self.main_k, self.main_r = k[order], r[order]
        self.delta_k = self.delta_r = np.empty(0, np.int64)

    # -- held labels ------------------------------------------------------------------

    def prune_label_heap(self) -> None:
        """Pop the stale entries (labels joined since they were held) off the top of
        the heap, so its top is the oldest live held label."""
        while self.lheap:
            ts, lid = self.lheap[0]
            entry = self.held.get(lid)
            if entry is not None and entry[0] == ts:
                return
            heapq.heappop(self.lheap)

    def pop_oldest_label(self) -> bool:
        """Drop the oldest live held label (True), skipping stale heap entries."""
        while self.lheap:
            ts, lid = heapq.heappop(self.lheap)
            entry = self.held.get(lid)
            if entry is not None and entry[0] == ts:
                del self.held[lid]
                return True
        return False

    def compact_labels(self) -> None:
        if len(self.lheap) > 2 * len(self.held) + 1024:
            self.lheap = [(v[0], k) for k, v in self.held.items()]
            heapq.heapify(self.lheap)


@dataclass
class _Early:
    """The predictions of a model not labelled yet, as column chunks in arrival order."""

    ts: list[np.ndarray] = field(default_factory=list)  # float64
    ids: list[np.ndarray] = field(default_factory=list)  # object
    prediction: list[np.ndarray] = field(default_factory=list)  # float64
    prediction_class: list[np.ndarray] = field(default_factory=list)  # object
    n: int = 0
    expired: int = 0  # dropped: older than watermark - ttl
    evicted: int = 0  # dropped: over max_early
    dropped_since: int = 0  # both, since the last call of ``early_dropped``

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.ts:
            f, o = np.empty(0, dtype=np.float64), np.empty(0, dtype=object)
            return f, o, f.copy(), o.copy()
        return (np.concatenate(self.ts), np.concatenate(self.ids),
                np.concatenate(self.prediction), np.concatenate(self.prediction_class))

    def keep(self, mask: np.ndarray | slice) -> None:
        ts, ids, pred, pcls = self.columns()
        ts, ids, pred, pcls = ts[mask], ids[mask], pred[mask], pcls[mask]
        self.ts, self.ids, self.prediction, self.prediction_class = [ts], [ids], [pred], [pcls]
        self.n = int(ts.shape[0])

    def append(self, ts: np.ndarray, ids: np.ndarray, pred: np.ndarray,
               pcls: np.ndarray) -> None:
        self.ts.append(ts)
        self.ids.append(ids)
        self.prediction.append(pred)
        self.prediction_class.append(pcls)
        self.n += int(ts.shape[0])
        if len(self.ts) > 64:  # few chunks: cheap to trim and to save
            self.keep(slice(None))

    def drop_first(self, k: int) -> None:
        """Drop the ``k`` oldest rows by arrival (whole chunks first)."""
        cols = (self.ts, self.ids, self.prediction, self.prediction_class)
        while k > 0 and self.ts:
            c = int(self.ts[0].shape[0])
            if c <= k:
                for col in cols:
                    col.pop(0)
                self.n -= c
                k -= c
            else:
                for col in cols:
                    col[0] = col[0][k:]
                self.n -= k
                k = 0

    def expire(self, cutoff: float) -> int:
        """Drop the rows with event time < ``cutoff``; returns how many."""
        if not self.ts or not self.ts[0].shape[0] or self.ts[0][0] >= cutoff:
            return 0  # rows arrive about in time order: the oldest tells
        ts, _, _, _ = self.columns()
        old = ts < cutoff
        k = int(old.sum())
        if k:
            self.keep(~old)
        return k


class LabelJoin:
    """Joins each model's labels to its predictions; see the module docstring."""

    def __init__(self, ttl_seconds: float = 86400, max_pending: int = 1_000_000, *,
                 delay_window: int = 10_000, ttls: Mapping[str, float] | None = None,
                 max_early: int = 300_000) -> None:
        if not ttl_seconds > 0 or any(not t > 0 for t in (ttls or {}).values()):
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds!r}, {ttls!r}")
        if not max_pending >= 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
        if not delay_window >= 1:
            raise ValueError(f"delay_window must be >= 1, got {delay_window!r}")
        self.ttl_seconds = float(ttl_seconds)
        self.ttls = {m: float(t) for m, t in (ttls or {}).items()}  # per-model overrides
        self.max_pending = int(max_pending)
        self.delay_window = int(delay_window)
        if not max_early >= 0:
            raise ValueError(f"max_early must be >= 0, got {max_early!r}")
        self.max_early = int(max_early)
        self._models: dict[str, _ModelJoin] = {}
        self._early: dict[str, _Early] = {}

    def ttl(self, model: str) -> float:
        return self.ttls.get(model, self.ttl_seconds)

    # -- input --------------------------------------------------------------------------

    def _model(self, model: str) -> _ModelJoin:
        m = self._models.get(model)
        if m is None:
            m = self._models[model] = _ModelJoin()
        return m

    def add_early(self, model: str, cols: PredictionColumns) -> None:
        """Keep the predictions of a model that has no label yet (error rows and rows
        without a finite event time are skipped), at most ``max_early`` of them."""
        if model in self._models:
            raise ValueError(f"{model} is labelled: its predictions go to add_predictions")
        keep = ~np.asarray(cols.error, dtype=bool) & np.isfinite(cols.ts)
        e = self._early.get(model)
        if e is None:
            e = self._early[model] = _Early()
        if keep.any():
            e.append(np.asarray(cols.ts[keep], dtype=np.float64),
                     np.asarray(cols.ids[keep], dtype=object),
                     np.asarray(cols.prediction[keep], dtype=np.float64),
                     np.asarray(cols.prediction_class[keep], dtype=object))
        # every unlabelled model shares MAX_EARLY_TOTAL rows, at most max_early each: a
        # fleet whose labels never come costs a bounded amount, however many models
        over = e.n - min(self.max_early, MAX_EARLY_TOTAL // max(1, len(self._early)))
        if over > 0:
            e.drop_first(over)
            e.evicted += over
            e.dropped_since += over

    def take_early(self, model: str) -> PredictionColumns | None:
        """Hand out (and forget) the early buffer of ``model``, in arrival order, as
        prediction columns for :meth:`add_predictions`; None if it holds nothing."""
        e = self._early.pop(model, None)
        if e is None or e.n == 0:
            return None
        ts, ids, pred, pcls = e.columns()
        n = ts.shape[0]
        return PredictionColumns(model, ts, ids, np.full(n, None, dtype=object), pred, pcls,
                                 np.full(n, np.nan), np.zeros(n, dtype=bool))

    def early_dropped(self) -> dict[str, int]:
        """Early-buffer rows dropped (TTL or cap) per model since the previous call."""
        out = {}
        for name, e in self._early.items():
            if e.dropped_since:
                out[name], e.dropped_since = e.dropped_since, 0
        return out

    def add_predictions(self, model: str, cols: PredictionColumns) -> Joined:
        """Remember the model's predictions (error rows carry no prediction and, like
        rows without a finite event time, are skipped); returns the pairs joined with
        labels that were already held."""
        m = self._model(model)
        keep = ~np.asarray(cols.error, dtype=bool) & np.isfinite(cols.ts)
        ids = np.asarray(cols.ids[keep], dtype=object)
        ts = np.asarray(cols.ts[keep], dtype=np.float64)
        pred = np.asarray(cols.prediction[keep], dtype=np.float64)
        pcls = np.asarray(cols.prediction_class[keep], dtype=object)
        k = int(ids.shape[0])
        keys = _keys(ids)
        rows, level, pos, slot = m.find(ids, keys)
        new = (rows < 0) & _first(ids, keys)
        nn = int(np.count_nonzero(new))
        nids, nts = ids[new], ts[new]
        labs: list[tuple[float, float, Any]] = []
        joined = np.zeros(nn, dtype=bool)
        if m.held and nn:  # labels that came first join now
            got = list(map(m.held.pop, nids.tolist(), itertools.repeat(None)))
            joined = np.fromiter(map(operator.is_not, got, itertools.repeat(None)), dtype=bool,
                                 count=nn)
            labs = [g for g in got if g is not None]
        lts = np.full(nn, np.nan)
        if labs:
            lts[joined] = [lab[0] for lab in labs]
        flags = np.where(joined, _ALIVE | _UNDUE, _ALIVE | _UNDUE | _PENDING).astype(np.uint8)
        new_rows = m.append(nids, nts, pred[new], pcls[new], lts, flags)
        m.insert(nids, keys[new], new_rows, level[new], pos[new], slot[new])
        m.counts["predictions"] += nn
        m.counts["duplicate_predictions"] += k - nn
        if labs:
            m.compact_labels()
        self._enforce_prediction_bound()
        if not labs:
            return Joined.empty(model)
        held_cols = _rows(labs)
        return self._emit(model, m, nids[joined], nts[joined],
                          held_cols[:, 0].astype(np.float64), pred[new][joined],
                          pcls[new][joined], held_cols[:, 1].astype(np.float64),
                          held_cols[:, 2].copy())

    def add_labels(self, model: str, labels: LabelColumns) -> Joined:
        """Join labels to pending predictions; hold the ones that came first."""
        m = self._model(model)
        keep = np.isfinite(labels.ts)
        ids = np.asarray(labels.ids[keep], dtype=object)
        ts = np.asarray(labels.ts[keep], dtype=np.float64)
        lab = np.asarray(labels.label[keep], dtype=np.float64)
        lcls = np.asarray(labels.label_class[keep], dtype=object)
        k = int(ids.shape[0])
        rows = m.find(ids, _keys(ids))[0]
        found = np.flatnonzero(rows >= 0)
        join = found[:0]
        if found.shape[0]:
            join = found
            if _repeats(rows[found]):  # each remembered id's first label of the batch
                _, first = np.unique(rows[found], return_index=True)
                join = np.sort(found[first])
            join = join[(m.flags[rows[join]] & _PENDING) != 0]
        dup = found.shape[0] - join.shape[0]
        misses = np.flatnonzero(rows < 0)
        if misses.shape[0]:  # no prediction yet: hold the first label of each id
            held, lheap, push = m.held, m.lheap, heapq.heappush
            for lid, t, v, c in zip(ids[misses].tolist(), ts[misses].tolist(),
                                    lab[misses].tolist(), lcls[misses].tolist(), strict=True):
                if lid in held:
                    dup += 1
                else:
                    held[lid] = (t, v, c)
                    push(lheap, (t, lid))
        r = rows[join]
        m.flags[r] &= _NOT_PENDING  # a tombstone now
        m.lts[r] = ts[join]
        m.n_pending -= int(join.shape[0])
        m.counts["labels"] += k
        m.counts["duplicate_labels"] += dup
        self._enforce_label_bound()
        if not join.shape[0]:
            return Joined.empty(model)
        return self._emit(model, m, ids[join], m.ts[r], ts[join], m.pred[r], m.pcls[r],
                          lab[join], lcls[join])

    def _emit(self, model: str, m: _ModelJoin, ids: np.ndarray, pred_ts: np.ndarray,
              label_ts: np.ndarray, prediction: np.ndarray, prediction_class: np.ndarray,
              label: np.ndarray, label_class: np.ndarray) -> Joined:
        j = Joined(model, ids, pred_ts, label_ts, prediction, prediction_class, label,
                   label_class)
        m.counts["joined"] += j.n
        m.record_delays(j.delay, self.delay_window)
        return j

    # -- deadlines ----------------------------------------------------------------------

    def due(self, model: str, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        """The model's predictions with event time < ``cutoff`` not handed out before,
        sorted by event time (then id): ``(pred_ts, label_ts)``, ``label_ts`` NaN where
        no label has joined yet.  Predictions expired or evicted first are not handed
        out.

        Call it before :meth:`expire` with a cutoff no older than ``watermark - ttl``,
        or predictions expire before their deadline is looked at."""
        m = self._models.get(model)
        if m is None:
            return np.empty(0), np.empty(0)
        m.due_cut = max(m.due_cut, float(cutoff))
        blocks, sel = m.older(m.bmin_due, _UNDUE, cutoff)
        if not sel.shape[0]:
            return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
        sel = sel[np.argsort(m.ts[sel], kind="stable")]
        t = m.ts[sel]
        if (t[1:] == t[:-1]).any():  # ties of event time: by id, as (ts, id) pairs sort
            ts_, ids_ = m.ts, m.ids
            sel = np.asarray(sorted(sel.tolist(), key=lambda r: (ts_[r], ids_[r])),
                             dtype=np.int64)
            t = m.ts[sel]
        f = m.flags[sel]
        lts = np.where(f & _PENDING, np.nan, m.lts[sel])
        m.flags[sel] = f & _NOT_UNDUE
        m.refresh(blocks)
        return t, lts

    # -- expiry and memory bound --------------------------------------------------------

    def expire(self, watermark: float) -> dict[str, ExpiryStats]:
        """Drop predictions and held labels with event time < ``watermark - ttl``.

        Returns, per model, what was dropped now and what was evicted since the
        previous call."""
        out: dict[str, ExpiryStats] = {}
        for name, m in self._models.items():
            cutoff = float(watermark) - self.ttl(name)
            s, m.since_expire = m.since_expire, ExpiryStats()
            blocks, old = m.older(m.bmin_alive, _ALIVE, cutoff)
            if old.shape[0]:
                s.unlabelled += m.kill(old)
                m.refresh(blocks)
                m.maybe_compact()
            # a stale top (a label joined since) must not stand for the live one below
            # it: only live labels older than the cutoff expire
            m.prune_label_heap()
            while m.lheap and m.lheap[0][0] < cutoff:
                s.orphan_labels += m.pop_oldest_label()
                m.prune_label_heap()
            m.compact_labels()
            m.counts["unlabelled"] += s.unlabelled
            m.counts["orphan_labels"] += s.orphan_labels
            out[name] = s
        for name, e in self._early.items():
            k = e.expire(float(watermark) - self.ttl(name))
            e.expired += k
            e.dropped_since += k
        return out

    def _enforce_prediction_bound(self) -> None:
        """Over ``max_pending`` remembered ids (all models): forget the oldest, by
        (event time, id, model), as popping the least of per-model heaps would."""
        models = list(self._models.values())
        excess = sum(m.n_alive for m in models) - self.max_pending
        if excess <= 0:
            return
        rows = [np.flatnonzero(m.flags[:m.n] & _ALIVE) for m in models]
        ts = np.concatenate([m.ts[r] for m, r in zip(models, rows, strict=True)])
        owner = np.repeat(np.arange(len(models)), [r.shape[0] for r in rows])
        row = np.concatenate(rows)
        go = np.ones(ts.shape[0], dtype=bool)
        if excess < ts.shape[0]:
            thr = np.partition(ts, excess - 1)[excess - 1]
            go = ts < thr
            ties = np.flatnonzero(ts == thr).tolist()
            ties.sort(key=lambda i: (models[owner[i]].ids[row[i]], owner[i]))
            go[ties[:excess - int(np.count_nonzero(go))]] = True
        for i, m in enumerate(models):
            r = row[go & (owner == i)]
            if r.shape[0]:
                evicted = m.kill(r)
                m.counts["evicted"] += evicted
                m.since_expire.evicted += evicted
                m.maybe_compact()

    def _enforce_label_bound(self) -> None:
        excess = sum(len(m.held) for m in self._models.values()) - self.max_pending
        while excess > 0:
            for m in self._models.values():
                m.prune_label_heap()
            m = min((m for m in self._models.values() if m.held),
                    key=lambda m: m.lheap[0])
            if m.pop_oldest_label():
                m.counts["evicted_labels"] += 1
                m.since_expire.evicted_labels += 1
                excess -= 1

    # -- what the pipeline exposes ------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return list(self._models)

    @property
    def early_models(self) -> list[str]:
        """Models with predictions but no label yet (an early buffer)."""
        return list(self._early)

    def counts(self, model: str) -> dict[str, int]:
        """Cumulative counters of ``model`` plus current ``pending`` / ``held`` sizes
        (and, before its first label, the ``early`` buffer's size and drops)."""
        m = self._models.get(model)
        e = self._early.get(model)
        early = ({"early": e.n, "early_expired": e.expired, "early_evicted": e.evicted}
                 if e is not None else {})
        if m is None:
            return {**dict.fromkeys(_COUNTERS, 0), "pending": 0, "held": 0, **early}
        return {**m.counts, "pending": m.n_pending, "held": len(m.held), **early}

    def coverage(self, model: str) -> float | None:
        """joined / (joined + expired unlabelled); None before any prediction resolved."""
        m = self._models.get(model)
        if m is None:
            return None
        resolved = m.counts["joined"] + m.counts["unlabelled"]
        return m.counts["joined"] / resolved if resolved else None

    def delay_summary(self, model: str) -> DelaySummary:
        """p50/p95 of ``label_ts - pred_ts`` over the most recent joins."""
        m = self._models.get(model)
        if m is None or m.delays is None or m.delay_n == 0:
            return DelaySummary(0, None, None)
        d = m.delays[:m.delay_n]
        p50, p95 = np.quantile(d, [0.5, 0.95])
        return DelaySummary(m.delay_n, float(p50), float(p95))

    # -- state --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for name, m in self._models.items():
            live = np.flatnonzero(m.flags[:m.n] & _ALIVE)
            f = m.flags[live] & (_PENDING | _UNDUE)
            pend = live[(f & _PENDING) != 0]
            pcls = m.pcls[pend].tolist()
            delays = None
            if m.delays is not None:  # oldest first, so the ring restarts at 0
                order = (m.delay_pos - m.delay_n + np.arange(m.delay_n)) % self.delay_window
                delays = f64_to_text(m.delays[order])
            models[name] = {
                # the remembered predictions in arrival order: ids, event times, flags
                # (1 pending, 2 not handed out by ``due`` yet); the prediction and class
                # of the pending ones (class None if all are), the label time of those
                # joined and not handed out yet
                "rows": {"ids": m.ids[live].tolist(), "ts": f64_to_text(m.ts[live]),
                         "flags": base64.b64encode(f.tobytes()).decode(),
                         "prediction": f64_to_text(m.pred[pend]),
                         "class": pcls if any(c is not None for c in pcls) else None,
                         "labelled_ts": f64_to_text(m.lts[live[f == _UNDUE]])},
                "held_ids": list(m.held),
                "held_ts": f64_to_text([v[0] for v in m.held.values()]),
                "held_label": f64_to_text([v[1] for v in m.held.values()]),
                "held_class": [v[2] for v in m.held.values()],
                "counts": dict(m.counts),
                "since_expire": {f.name: getattr(m.since_expire, f.name)
                                 for f in fields(ExpiryStats)},
                "delays": delays,
                "due_cut": _finite_or_none(m.due_cut),
            }
        early: dict[str, Any] = {}
        for name, e in self._early.items():
            ts, ids, pred, pcls_ = e.columns()
            early[name] = {"ts": f64_to_text(ts), "ids": ids.tolist(),
                           "prediction": f64_to_text(pred), "class": pcls_.tolist(),
                           "expired": e.expired, "evicted": e.evicted,
                           "dropped_since": e.dropped_since}
        return {"ttl_seconds": self.ttl_seconds, "max_pending": self.max_pending,
                "delay_window": self.delay_window, "max_early": self.max_early,
                "models": models, "early": early}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> LabelJoin:
        j = cls(s["ttl_seconds"], s["max_pending"], delay_window=s["delay_window"],
                max_early=s.get("max_early", 300_000))
        # a state from before early buffers has none: those models start buffering now
        for name, es in s.get("early", {}).items():
            ts = f64_from_text(es["ts"])
            j._early[name] = _Early([ts], [object_array(es["ids"])],
                                    [f64_from_text(es["prediction"])],
                                    [object_array(es["class"])], int(ts.shape[0]),
                                    int(es["expired"]), int(es["evicted"]),
                                    int(es["dropped_since"]))
        for name, ms in s["models"].items():
            m = _ModelJoin()
            ids, ts, flags, pred, pcls, lts = (_rows_state(ms["rows"]) if "rows" in ms
                                               else _rows_from_old_state(ms))
            rows = m.append(ids, ts, pred, pcls, lts, flags | _ALIVE)
            keys = _keys(ids)
            k = keys.shape[0]
            m.insert(ids, keys, rows, np.zeros(k, np.int8), np.zeros(k, np.int64),
                     np.full(k, -1, np.int64))
            m.merge()
            h_ts = f64_from_text(ms["held_ts"]).tolist()
            h_lab = f64_from_text(ms["held_label"]).tolist()
            m.held = dict(zip(ms["held_ids"], zip(h_ts, h_lab, ms["held_class"], strict=True),
                              strict=True))
            m.lheap = [(v[0], k) for k, v in m.held.items()]
            heapq.heapify(m.lheap)
            m.counts = {**dict.fromkeys(_COUNTERS, 0), **ms["counts"]}
            m.since_expire = ExpiryStats(**ms["since_expire"])
            if ms["delays"] is not None:
                d = f64_from_text(ms["delays"])
                m.delays = np.zeros(j.delay_window, dtype=np.float64)
                m.delays[:d.shape[0]] = d
                m.delay_n = int(d.shape[0])
                m.delay_pos = m.delay_n % j.delay_window
            if ms.get("due_cut") is not None:
                m.due_cut = float(ms["due_cut"])
            j._models[name] = m
        return j


_Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _rows_state(rs: dict[str, Any]) -> _Rows:
    """(ids, ts, flags, prediction, class, label time) of a saved model's rows."""
    ids = object_array(rs["ids"])
    ts = f64_from_text(rs["ts"])
    flags = np.frombuffer(base64.b64decode(rs["flags"]), dtype=np.uint8).copy()
    n = ts.shape[0]
    pend = (flags & _PENDING) != 0
    pred = np.full(n, np.nan)
    pred[pend] = f64_from_text(rs["prediction"])
    pcls = _obj(n)
    if rs["class"] is not None:
        pcls[pend] = object_array(rs["class"])
    lts = np.full(n, np.nan)
    lts[flags == _UNDUE] = f64_from_text(rs["labelled_ts"])
    return ids, ts, flags, pred, pcls, lts


def _rows_from_old_state(ms: dict[str, Any]) -> _Rows:
    """The rows of a state saved before they were columns (pending and joined ids in
    dicts, heaps of the ids not handed out by ``due``): migrated on read."""
    p_ts, d_ts = f64_from_text(ms["pending_ts"]), f64_from_text(ms["done_ts"])
    n_p, n = p_ts.shape[0], p_ts.shape[0] + d_ts.shape[0]
    ids = object_array([*ms["pending_ids"], *ms["done_ids"]])
    ts = np.concatenate([p_ts, d_ts])
    pred = np.full(n, np.nan)
    pred[:n_p] = f64_from_text(ms["pending_prediction"])
    pcls = _obj(n)
    pcls[:n_p] = object_array(ms["pending_class"])
    flags = np.zeros(n, dtype=np.uint8)
    flags[:n_p] = _PENDING
    lts = ts.copy()  # joined, label time unknown (saved before they were kept): on time
    if "due_ids" in ms:
        due = set(ms["due_ids"])
        flags[np.fromiter((i in due for i in ids), dtype=bool, count=n)] |= _UNDUE
        labelled = dict(zip(ms["labelled_ids"], f64_from_text(ms["labelled_ts"]).tolist(),
                            strict=True))
        lts[n_p:] = [labelled.get(i, t) for i, t in zip(ms["done_ids"], d_ts.tolist(),
                                                         strict=True)]
    else:  # a state from before deadlines: every remembered prediction is due
        flags |= _UNDUE
    return ids, ts, flags, pred, pcls, lts
