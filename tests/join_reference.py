# fae88db's monitor/join.py, kept as the reference of tests/test_join_columns.py; two changes
# since, bugs the comparison found in it: held labels expire and are evicted by the oldest
# *live* one (prune_label_heap), and an id that expired and came again with the same event
# time is handed out by ``due`` once, not twice (its expired deadline entry was stale).
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
order, the predictions older than a cutoff the caller chooses (``watermark -
deadline``, the deadline far shorter than the TTL), with the event time of
their label, or NaN if none has joined yet -- so the caller can tell on-time
labels from overdue ones long before a prediction expires.  It keeps a second
heap of the predictions not yet handed out and, for those that joined, their
label time; both are trimmed at expiry and eviction.

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

Cost: one Python-level pass per input row (dict lookups and a heap push);
expiry and eviction pop from per-model heaps ordered by event time, so they
touch only the rows they remove.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from monitor.batch import LabelColumns, PredictionColumns
from monitor.codec import f64_from_text, f64_to_text, object_array

MAX_EARLY_TOTAL = 2_000_000  # early-buffer rows across all unlabelled models (~180 MB)

_COUNTERS = ("predictions", "labels", "joined", "unlabelled", "orphan_labels", "evicted",
             "evicted_labels", "duplicate_labels", "duplicate_predictions")





def _ts(entry: tuple[float, float, Any] | float | None) -> float | None:
    """The prediction time of a ``preds`` value (pending tuple or tombstone)."""
    if entry is None:
        return None
    return entry[0] if type(entry) is tuple else entry  # type: ignore[index,return-value]


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


@dataclass
class _ModelJoin:
    # id -> (pred_ts, prediction, prediction_class) while waiting for a label, then
    # id -> pred_ts (a float tombstone) once joined, to recognise duplicate labels
    preds: dict[Any, tuple[float, float, Any] | float] = field(default_factory=dict)
    n_pending: int = 0  # tuple values in preds
    # (pred_ts, id) for every key of preds, exactly once
    pheap: list[tuple[float, Any]] = field(default_factory=list)
    # id -> (label_ts, label, label_class): labels waiting for their prediction
    held: dict[Any, tuple[float, float, Any]] = field(default_factory=dict)
    # (label_ts, id) for held labels; may contain stale entries (joined since)
    lheap: list[tuple[float, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    since_expire: ExpiryStats = field(default_factory=ExpiryStats)
    delays: np.ndarray | None = None  # ring buffer
    # (pred_ts, id) of predictions not yet handed out by ``due``; may hold stale entries
    dheap: list[tuple[float, Any]] = field(default_factory=list)
    labelled_at: dict[Any, float] = field(default_factory=dict)  # id -> label_ts, joined
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

    def pop_oldest_prediction(self) -> bool:
        """Drop the oldest remembered prediction id; True if it was still pending."""
        _, pid = heapq.heappop(self.pheap)
        self.labelled_at.pop(pid, None)
        if type(self.preds.pop(pid)) is tuple:
            self.n_pending -= 1
            return True
        return False

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

    def compact_due(self) -> None:
        """Drop the deadline heap's stale entries (expired or evicted predictions)."""
        if len(self.dheap) > 2 * len(self.pheap) + 1024:
            self.dheap = [(t, k) for t, k in self.dheap if _ts(self.preds.get(k)) == t]
            heapq.heapify(self.dheap)

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
        ts = cols.ts[keep].tolist()
        ids = cols.ids[keep].tolist()
        pred = cols.prediction[keep].tolist()
        pcls = cols.prediction_class[keep].tolist()
        remembered, held, pheap, dheap, push = m.preds, m.held, m.pheap, m.dheap, heapq.heappush
        labelled_at = m.labelled_at
        out_rows: list[int] = []
        out_labels: list[tuple[float, float, Any]] = []
        dup = 0
        for i, (pid, t, p, c) in enumerate(zip(ids, ts, pred, pcls, strict=True)):
            if pid in remembered:
                dup += 1
                continue
            lab = held.pop(pid, None)
            if lab is None:
                remembered[pid] = (t, p, c)
            else:  # the label came first: join now
                remembered[pid] = t
                labelled_at[pid] = lab[0]
                out_rows.append(i)
                out_labels.append(lab)
            push(pheap, (t, pid))
            push(dheap, (t, pid))
        m.n_pending += len(ids) - dup - len(out_rows)
        m.counts["predictions"] += len(ids) - dup
        m.counts["duplicate_predictions"] += dup
        if out_rows:
            m.compact_labels()
        self._enforce_prediction_bound()
        rows = np.asarray(out_rows, dtype=np.int64)
        if not out_labels:
            return Joined.empty(model)
        held_cols = _rows(out_labels)
        return self._emit(model, m, object_array(ids)[rows], np.asarray(ts, dtype=np.float64)[rows],
                          held_cols[:, 0].astype(np.float64),
                          np.asarray(pred, dtype=np.float64)[rows], object_array(pcls)[rows],
                          held_cols[:, 1].astype(np.float64), held_cols[:, 2].copy())

    def add_labels(self, model: str, labels: LabelColumns) -> Joined:
        """Join labels to pending predictions; hold the ones that came first."""
        m = self._model(model)
        keep = np.isfinite(labels.ts)
        if not keep.all():
            labels = LabelColumns(model, labels.ts[keep], labels.ids[keep], labels.label[keep],
                                  labels.label_class[keep])
        ts = labels.ts.tolist()
        ids = labels.ids.tolist()
        lab = labels.label.tolist()
        lcls = labels.label_class.tolist()
        remembered, held, lheap, push = m.preds, m.held, m.lheap, heapq.heappush
        rows: list[int] = []
        preds: list[tuple[float, float, Any]] = []
        dup = 0
        for i, (lid, t) in enumerate(zip(ids, ts, strict=True)):
            p = remembered.get(lid)
            if p is None:
                if lid in held:
                    dup += 1
                else:
                    held[lid] = (t, lab[i], lcls[i])
                    push(lheap, (t, lid))
            elif type(p) is tuple:
                remembered[lid] = p[0]  # tombstone; its heap entry (pred_ts, id) stays valid
                m.labelled_at[lid] = t
                rows.append(i)
                preds.append(p)
            else:
                dup += 1
        m.n_pending -= len(rows)
        m.counts["labels"] += len(ids)
        m.counts["duplicate_labels"] += dup
        self._enforce_label_bound()
        if not preds:
            return Joined.empty(model)
        idx = np.asarray(rows, dtype=np.int64)
        pred_cols = _rows(preds)
        return self._emit(model, m, np.asarray(labels.ids, dtype=object)[idx],
                          pred_cols[:, 0].astype(np.float64),
                          np.asarray(labels.ts, dtype=np.float64)[idx],
                          pred_cols[:, 1].astype(np.float64), pred_cols[:, 2].copy(),
                          np.asarray(labels.label, dtype=np.float64)[idx],
                          np.asarray(labels.label_class, dtype=object)[idx])

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
        sorted by event time: ``(pred_ts, label_ts)``, ``label_ts`` NaN where no label
        has joined yet.  Predictions expired or evicted first are not handed out.

        Call it before :meth:`expire` with a cutoff no older than ``watermark - ttl``,
        or predictions expire before their deadline is looked at."""
        m = self._models.get(model)
        if m is None:
            return np.empty(0), np.empty(0)
        m.due_cut = max(m.due_cut, float(cutoff))
        pts: list[float] = []
        lts: list[float] = []
        dheap, preds, labelled_at, pop = m.dheap, m.preds, m.labelled_at, heapq.heappop
        last = None
        while dheap and dheap[0][0] < cutoff:
            ts, pid = pop(dheap)
            entry = preds.get(pid)
            if _ts(entry) != ts or (ts, pid) == last:
                continue  # expired or evicted (perhaps the id came again since)
            last = (ts, pid)  # an id expired and sent again at the same time: once
            pts.append(ts)
            if type(entry) is tuple:
                lts.append(np.nan)
            else:  # joined; a state saved before label times were kept: taken as on time
                lts.append(labelled_at.pop(pid, ts))
        m.compact_due()
        return np.asarray(pts, dtype=np.float64), np.asarray(lts, dtype=np.float64)

    # -- expiry and memory bound --------------------------------------------------------

    def expire(self, watermark: float) -> dict[str, ExpiryStats]:
        """Drop predictions and held labels with event time < ``watermark - ttl``.

        Returns, per model, what was dropped now and what was evicted since the
        previous call."""
        out: dict[str, ExpiryStats] = {}
        for name, m in self._models.items():
            cutoff = float(watermark) - self.ttl(name)
            s, m.since_expire = m.since_expire, ExpiryStats()
            while m.pheap and m.pheap[0][0] < cutoff:
                s.unlabelled += m.pop_oldest_prediction()
            m.compact_due()
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
        excess = sum(len(m.pheap) for m in self._models.values()) - self.max_pending
        while excess > 0:
            m = min((m for m in self._models.values() if m.pheap), key=lambda m: m.pheap[0])
            if m.pop_oldest_prediction():
                m.counts["evicted"] += 1
                m.since_expire.evicted += 1
            excess -= 1

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
            p_ids = [k for k, v in m.preds.items() if type(v) is tuple]
            p_vals = [v for v in m.preds.values() if type(v) is tuple]
            done = {k: v for k, v in m.preds.items() if type(v) is not tuple}
            h_ids = list(m.held)
            h_vals = list(m.held.values())
            delays = None
            if m.delays is not None:  # oldest first, so the ring restarts at 0
                order = (m.delay_pos - m.delay_n + np.arange(m.delay_n)) % self.delay_window
                delays = f64_to_text(m.delays[order])
            models[name] = {
                "pending_ids": p_ids,
                "pending_ts": f64_to_text([v[0] for v in p_vals]),
                "pending_prediction": f64_to_text([v[1] for v in p_vals]),
                "pending_class": [v[2] for v in p_vals],
                "done_ids": list(done),
                "done_ts": f64_to_text(list(done.values())),
                "held_ids": h_ids,
                "held_ts": f64_to_text([v[0] for v in h_vals]),
                "held_label": f64_to_text([v[1] for v in h_vals]),
                "held_class": [v[2] for v in h_vals],
                "counts": dict(m.counts),
                "since_expire": {f.name: getattr(m.since_expire, f.name)
                                 for f in fields(ExpiryStats)},
                "delays": delays,
                # the predictions ``due`` has not handed out, and the label times of those
                # that joined
                "due_ids": [k for t, k in sorted(m.dheap) if _ts(m.preds.get(k)) == t],
                "due_cut": _finite_or_none(m.due_cut),
                "labelled_ids": list(m.labelled_at),
                "labelled_ts": f64_to_text(list(m.labelled_at.values())),
            }
        early: dict[str, Any] = {}
        for name, e in self._early.items():
            ts, ids, pred, pcls = e.columns()
            early[name] = {"ts": f64_to_text(ts), "ids": ids.tolist(),
                           "prediction": f64_to_text(pred), "class": pcls.tolist(),
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
            p_ts = f64_from_text(ms["pending_ts"]).tolist()
            p_pred = f64_from_text(ms["pending_prediction"]).tolist()
            m.preds = dict(zip(ms["pending_ids"],
                               zip(p_ts, p_pred, ms["pending_class"], strict=True),
                               strict=True))
            m.n_pending = len(m.preds)
            m.preds.update(zip(ms["done_ids"], f64_from_text(ms["done_ts"]).tolist(), strict=True))
            m.pheap = list(zip(p_ts, ms["pending_ids"], strict=True))
            m.pheap += zip(f64_from_text(ms["done_ts"]).tolist(), ms["done_ids"], strict=True)
            heapq.heapify(m.pheap)
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
            if "due_ids" in ms:
                m.dheap = [(_ts(m.preds[k]), k) for k in ms["due_ids"]]  # type: ignore[misc]
                m.due_cut = -np.inf if ms["due_cut"] is None else float(ms["due_cut"])
                m.labelled_at = dict(zip(ms["labelled_ids"],
                                         f64_from_text(ms["labelled_ts"]).tolist(),
                                         strict=True))
            else:  # a state from before deadlines: every remembered prediction is due
                m.dheap = list(m.pheap)
            heapq.heapify(m.dheap)
            j._models[name] = m
        return j
