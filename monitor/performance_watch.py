"""Model quality against ground truth, once delayed labels join their predictions.

One :class:`PerformanceWatch` per model, fed by the pipeline with the pairs
:class:`~monitor.join.LabelJoin` returns and with what the join expires.

**Performance** (kind ``performance_degradation``, a model fault).  Joined
(prediction, label) pairs accumulate in the order they complete (the event time
of the later of prediction and label: :meth:`~monitor.join.Joined.merge`), so
where a batch ends changes nothing:

- the *reference* is the first ``max(200, reference_events // 2)`` valid pairs
  (half the prediction reference: labels are scarcer than predictions, and 200
  is the smallest sample whose accuracy CI is narrower than +-0.05);
- then every tumbling *window* of ``max(200, window_events // 2)`` pairs runs
  :func:`~detectors.performance.performance_test` against the reference on the
  task's primary metrics (binary: accuracy and ROC AUC; multiclass: accuracy;
  regression: MAE) and, for classifiers with ``contract.accuracy_min``,
  :func:`~detectors.performance.contract_test` (severity ``critical``).  The
  window's tests are one Holm family at ``alpha`` scaled to the window's
  length (``alpha * window / window_events``: half of it with the defaults),
  so the watch spends ``alpha`` per ``window_events`` pairs, the rate the
  model's own windows spend per event; a window with fewer than
  ``max(min_window_events, 30)`` valid pairs is not tested.

For classifiers a Bernoulli CUSUM (:class:`~detectors.bernoulli.BernoulliBank`)
also follows the 0/1 stream "this labelled prediction was wrong" pair by
pair, so an abrupt concept change (the label function switches under
unchanged inputs) is caught before a window fills.  Its in-control rate is
the posterior mean of its baseline's error rate -- the reference, plus
every window that tested clean with no alarm in it, for as long as the model
runs (retuned as :func:`~monitor.sequential.retune_due` says) -- and its
thresholds keep the budget at that rate and on average over the rate's
posterior (a 2,500-pair reference that happened to see few errors otherwise
pages on a stationary stream); its alternatives sit at the accuracy effect
floor's half and twice the floor; it spends the same false-alarm rate as the
windows (``alpha`` per ``window_events`` pairs, split over its CUSUMs).
An alarm fires at once and is folded into the findings of the window that holds
its pair, so that window cannot count as clean; alarms and windows are handed on
in the pairs' order, so a window that ended before an alarm cannot resolve it.

The task is ``ModelConfig.task`` or, when unset, inferred from the reference
pairs: class strings -> multiclass; numeric predictions in [0, 1] with labels
in {0, 1} -> binary; anything else -> regression.  Pairs that do not fit the
task (a label of 2 for a binary model, a class string for a regression) are
dropped and counted in ``invalid``; they never reach a metric.

**Label delay** (kind ``label_delay``, an infrastructure fault).  Label
coverage is the share of *resolved* predictions that were labelled: a
prediction resolves when its label joins, or when the join expires it
unlabelled (``watermark - ttl``).  Counting starts one TTL after the model's
first prediction (before that nothing can have expired, so every resolution is
a join and coverage would read 100 %), from the second expiry past that point.
The first ``reference`` resolutions give the expected coverage; every later
tumbling window of ``window`` resolutions runs
:func:`~detectors.performance.label_delay_test` (exact binomial, default effect
floor: half the labels missing) at the performance windows' level.  A model
whose reference coverage is 0 is never tested.  This coverage test runs only
while the label deadline below is not learned (or has nothing to watch): once
it is, it sees everything coverage would, and sooner.

**Label deadline** (also ``label_delay``): labels that stop, or come far later
than they used to, are seen within minutes of event time, not a TTL later.
:class:`LabelDeadline` learns the model's label delays from a *cohort*, the
first ``reference`` predictions the join remembers, and waits until that
cohort has had time to be labelled (below), so labels that come hours late
are in the reference instead of being censored out of it (the first labels to
join are the fastest ones).  From it:

- the *deadline* ``D = min(ttl, max(label_deadline_min_seconds,
  label_deadline_factor x p99))`` of the cohort's label delays (defaults:
  15 min, 5 x p99, the 24 h TTL).  The cohort is learned once the watermark is
  ``D`` (as computed from the labels seen so far) past its last prediction, or
  a TTL past it; with fewer than ``MIN_LABELLED`` labels it gets no deadline.
  Delays bounded by ``B`` settle at ``max(floor, factor x B)``; delays with a
  long tail (which a truncated sample never finishes showing) settle at the TTL;
- every later prediction is *overdue* when no label joined within ``D`` of it
  (still unlabelled, or labelled later than that).  The pipeline hands each
  prediction over once, in prediction-time order, as the watermark passes its
  deadline (:meth:`~monitor.join.LabelJoin.due`), every batch -- so the test
  runs while predictions keep arriving without labels;
- a Bernoulli CUSUM follows the 0/1 stream "overdue".  Its in-control rate is
  the posterior mean of the cohort's overdue share at ``D`` (the predictions
  never labelled, or labelled later than ``D``); its effect floor is half the
  cohort's on-time labels late or missing (it tolerates a quarter: the
  alternative of :func:`~monitor.rate_streams.rise_parameters`), and it
  spends ``alpha`` per ``window_events`` predictions, like every other CUSUM of
  the model.  Overdue predictions are taken as independent given the rate:
  labels that arrive in batches must arrive within ``D`` in the reference to
  be normal, and then they are.  An alarm pages only once its *episode* (the
  CUSUM's alarms since it last drained to zero on an on-time label) holds
  ``MIN_OVERDUE`` overdue predictions: a handful of labels lost together is
  strong evidence against a loss rate of a few per ten thousand, but not worth
  a page.  Its ``startsAt`` is the moment the episode's first overdue
  prediction crossed its deadline.  Labels stopping at event time ``S`` for a
  model labelled within a minute page about ``S + 15 min`` with the defaults;
  labels that go from seconds to hours late page the same way (they miss the
  deadline); labels that always came 3 h late have a ~16 h deadline and are
  normal.
- tumbling windows of ``window`` deadline resolutions test the key: a window
  with no alarm, whose CUSUM ends below half its threshold, is clean (the book
  resolves after ``resolve_after_windows`` of them: labels back on time).

Everything round-trips through plain JSON (:meth:`PerformanceWatch.to_state`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alerts.model import Finding, rfc3339
from detectors.bernoulli import BernoulliBank, RateAlarm
from detectors.budget import holm
from detectors.performance import (
    DEFAULT_MIN_EFFECT,
    MIN_N,
    binary_metrics,
    contract_test,
    label_delay_test,
    multiclass_metrics,
    performance_test,
    regression_metrics,
)
from detectors.result import TestResult
from monitor.codec import f64_from_text, f64_to_text, object_array
from monitor.config.types import ModelConfig, MonitorSettings
from monitor.join import Joined
from monitor.rate_streams import rise_parameters
from monitor.sequential import last_rows, retune_grown

log = logging.getLogger("driftwatch.performance")

Key = tuple[str, str, str | None, str | None]

MIN_PAIRS = 200  # smallest performance reference / window, in joined pairs
RECENT_PAIRS = 500  # labelled predictions an alarm's "recent error rate" covers
STATE_VERSION = 2
MIN_LABELLED = 100  # cohort labels needed for a deadline (a p99 of fewer is the maximum)
DELAY_QUANTILE = 0.99  # the cohort's label delay the deadline is a multiple of
LATE_MIN_EFFECT = 0.5  # relative: half the cohort's on-time labels late or missing
RECENT_ROWS = 2_000  # deadline resolutions kept to describe an alarm's run
MIN_OVERDUE = 10  # overdue predictions in an episode before its alarm pages

BINARY, MULTICLASS, REGRESSION = "binary_classification", "multiclass", "regression"
PRIMARY = {BINARY: ("accuracy", "auc"), MULTICLASS: ("accuracy",), REGRESSION: ("mae",)}
# metrics exposed as driftwatch_performance{model,metric}
GAUGES = {BINARY: ("accuracy", "auc", "f1", "log_loss"), MULTICLASS: ("accuracy", "macro_f1"),
          REGRESSION: ("mae", "rmse")}


def _error_parameters(hits: float, n: float) -> tuple[float, tuple[float, ...]]:
    """The misclassification CUSUMs' in-control rate and alternatives: a rate watched
    for rises of the accuracy effect floor."""
    return rise_parameters(hits, n, DEFAULT_MIN_EFFECT["accuracy"])


def error_bank(counts: list[float], span: float, alpha: float) -> BernoulliBank | None:
    """The misclassification CUSUMs for a baseline of ``counts`` (wrong, pairs), spending
    ``alpha`` per ``span`` pairs over its CUSUMs; None when no alternative fits."""
    p0, p1 = _error_parameters(*counts)
    return BernoulliBank([p0], [p1], span / alpha * len(p1), [counts]) if p1 else None


def grow_error_baseline(bank: BernoulliBank, baseline: list[float], wrong_now: np.ndarray,
                        reference_n: float) -> list[float]:
    """A clean window's 0/1 "wrong" column joins the baseline; the CUSUMs are retuned to
    the sharper rate when due.  Returns the grown baseline."""
    grown = [baseline[0] + float(wrong_now.sum()), baseline[1] + float(wrong_now.size)]
    retune_grown(bank, 0, grown, _error_parameters, reference_n)
    return grown


def reference_size(reference_events: int) -> int:
    return max(MIN_PAIRS, reference_events // 2)


def window_size(window_events: int) -> int:
    return max(MIN_PAIRS, window_events // 2)


# -- JSON helpers ---------------------------------------------------------------------------





def _clean(v: Any) -> Any:
    """JSON-clean copy of a metrics dict: NaN/inf -> None, numpy -> Python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _unclean(v: Any) -> Any:
    """Inverse of :func:`_clean` for metrics dicts (None -> NaN)."""
    if isinstance(v, dict):
        return {k: _unclean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unclean(x) for x in v]
    return math.nan if v is None else v


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, int | float) and math.isfinite(x) else "n/a"


def _ci(ci: Any) -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return ""
    return f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"


# -- pairs ----------------------------------------------------------------------------------


@dataclass
class Pairs:
    """Joined pairs as columns (the subset of :class:`Joined` the metrics need)."""

    pred_ts: np.ndarray
    label_ts: np.ndarray
    prediction: np.ndarray
    prediction_class: np.ndarray
    label: np.ndarray
    label_class: np.ndarray

    @property
    def n(self) -> int:
        return int(self.pred_ts.shape[0])

    @classmethod
    def empty(cls) -> Pairs:
        f = np.empty(0, dtype=np.float64)
        o = np.empty(0, dtype=object)
        return cls(f, f.copy(), f.copy(), o, f.copy(), o.copy())

    @classmethod
    def from_joined(cls, j: Joined) -> Pairs:
        """In the join's order (the order the pairs completed)."""
        return cls(j.pred_ts, j.label_ts, j.prediction,
                   np.asarray(j.prediction_class, dtype=object), j.label,
                   np.asarray(j.label_class, dtype=object))

    def take(self, idx: Any) -> Pairs:
        return Pairs(self.pred_ts[idx], self.label_ts[idx], self.prediction[idx],
                     self.prediction_class[idx], self.label[idx], self.label_class[idx])

    @staticmethod
    def concat(parts: list[Pairs]) -> Pairs:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return Pairs.empty()
        return Pairs(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in ("pred_ts", "label_ts", "prediction", "prediction_class",
                                 "label", "label_class")))

    def to_state(self) -> dict[str, Any]:
        return {"pred_ts": f64_to_text(self.pred_ts), "label_ts": f64_to_text(self.label_ts),
                "prediction": f64_to_text(self.prediction),
                "prediction_class": self.prediction_class.tolist(),
                "label": f64_to_text(self.label), "label_class": self.label_class.tolist()}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Pairs:
        return cls(f64_from_text(s["pred_ts"]), f64_from_text(s["label_ts"]),
                   f64_from_text(s["prediction"]), object_array(s["prediction_class"]),
                   f64_from_text(s["label"]), object_array(s["label_class"]))


def infer_task(p: Pairs) -> str:
    """Class strings -> multiclass; P(positive) in [0, 1] vs 0/1 labels -> binary;
    anything else numeric -> regression."""
    if any(c is not None for c in p.prediction_class.tolist()):
        return MULTICLASS
    pred, lab = p.prediction, p.label
    ok = np.isfinite(pred) & np.isfinite(lab)
    if ok.any() and ((pred[ok] >= 0) & (pred[ok] <= 1)).all() and np.isin(lab[ok], (0, 1)).all():
        return BINARY
    return REGRESSION


def _as_class(num: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Class strings, numbers formatted as classes (1.0 -> "1"); None where neither."""
    out = cls.copy()
    for i in np.flatnonzero(np.array([c is None for c in out.tolist()], dtype=bool)):
        x = float(num[i])
        if math.isfinite(x):
            out[i] = str(int(x)) if x.is_integer() else repr(x)
    return out


def valid_rows(task: str, p: Pairs) -> np.ndarray:
    """Boolean mask of the pairs the task's metric functions accept."""
    if task == BINARY:
        return ((p.prediction >= 0) & (p.prediction <= 1) & np.isin(p.label, (0.0, 1.0)))
    if task == MULTICLASS:
        pc, lc = _as_class(p.prediction, p.prediction_class), _as_class(p.label, p.label_class)
        return np.array([a is not None and b is not None
                         for a, b in zip(pc.tolist(), lc.tolist(), strict=True)], dtype=bool)
    return np.isfinite(p.prediction) & np.isfinite(p.label)


def metrics_of(task: str, p: Pairs) -> dict[str, Any]:
    if task == BINARY:
        return binary_metrics(p.prediction, p.label)
    if task == MULTICLASS:
        return multiclass_metrics(_as_class(p.prediction, p.prediction_class),
                                  _as_class(p.label, p.label_class))
    return regression_metrics(p.prediction, p.label)


def wrong(task: str, p: Pairs) -> np.ndarray:
    """1.0 where a classifier's prediction missed its label (binary: at 0.5)."""
    if task == BINARY:
        return ((p.prediction >= 0.5) != (p.label == 1.0)).astype(float)
    pc, lc = _as_class(p.prediction, p.prediction_class), _as_class(p.label, p.label_class)
    return (pc != lc).astype(float)


def _dur(seconds: float) -> str:
    """A duration for people: ``42 s``, ``15 min``, ``3.2 h``."""
    a = abs(seconds)
    if a < 120:
        return f"{seconds:.0f} s"
    if a < 7_200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3_600:.1f} h"


def _time(ts: float) -> str:
    return rfc3339(ts) or "n/a"


# -- window outcome -------------------------------------------------------------------------


@dataclass
class WatchEvaluation:
    """One closed performance or coverage window: keys tested, findings, event time."""

    model: str
    now: float
    evaluated: list[Key] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _perf_text(model: str, r: TestResult) -> tuple[str, str]:
    d = r.details
    if r.detector == "accuracy_contract":
        return (f"{model} accuracy is below its contract",
                f"accuracy {_fmt(d['cur_value'])}{_ci(d.get('cur_ci'))} on {r.current_n} "
                f"labelled predictions is below the contracted minimum "
                f"{_fmt(d['accuracy_min'])} (exact binomial test, p={r.p_value:.2g}).")
    metric = str(d.get("metric", r.detector))
    name = {"accuracy": "accuracy", "auc": "ROC AUC", "mae": "MAE"}.get(metric, metric)
    change = (f"{name} {_fmt(d['ref_value'])}{_ci(d.get('ref_ci'))} → "
              f"{_fmt(d['cur_value'])}{_ci(d.get('cur_ci'))}")
    if metric == "mae":
        change += f" (+{d.get('relative_increase', math.nan):.0%})"
    worse = "rose" if metric == "mae" else "fell"
    margin = float(d.get("margin", 0.0))
    null = ""
    if margin > 0:  # the test's null: worse by at most this much
        null = (f" against a rise of at most {margin:.0%}" if metric == "mae"
                else f" against a drop of at most {_fmt(margin)}")
    return (f"{model} {name} {worse} against ground truth",
            f"{change} on {r.current_n} labelled predictions vs {r.reference_n} in the "
            f"reference ({d.get('method', r.detector)} test{null}, p={r.p_value:.2g}).")


# -- label deadline -------------------------------------------------------------------------


@dataclass
class LabelDeadline:
    """Overdue labels, within minutes: see the module docstring ("Label deadline").

    Fed by the pipeline: :meth:`predictions` (prediction times handed to the join),
    :meth:`joined` (the pairs the join returns), :meth:`learn` (as the watermark
    moves) and :meth:`resolve` (what :meth:`~monitor.join.LabelJoin.due` hands out
    at ``watermark - deadline``)."""

    model: str
    cohort_size: int  # predictions in the delay reference
    window_n: int  # deadline resolutions per tested window
    seen: int = 0  # cohort predictions counted so far
    cohort_end: float | None = None  # prediction time of the cohort's last prediction
    # its joins while learning (float64: a list of floats is 4 x the size)
    cohort_ts: np.ndarray = field(default_factory=lambda: np.empty(0))
    cohort_delays: np.ndarray = field(default_factory=lambda: np.empty(0))
    # learned: n, labelled, on_time, p50, p95, p99, deadline (None: no deadline), ...
    reference: dict[str, Any] | None = None
    bank: BernoulliBank | None = None
    rows: int = 0  # resolutions in the current window
    dirty: bool = False  # the current window holds an alarm
    paged: bool = False  # ... that paged
    episode: float | None = None  # first overdue prediction time of the alarms' episode
    resolved_n: int = 0  # resolutions since the reference, and how many were overdue
    overdue_n: int = 0
    # the last RECENT_ROWS resolutions (float64: a list of floats is 4 x the size)
    recent_ts: np.ndarray = field(default_factory=lambda: np.empty(0))
    recent_late: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def deadline(self) -> float | None:
        """Seconds after its prediction a label is overdue; None until learned."""
        return None if self.reference is None else self.reference["deadline"]

    @property
    def active(self) -> bool:
        """Is the overdue CUSUM watching (a deadline and an alternative to watch for)?"""
        return self.bank is not None

    # -- the cohort ----------------------------------------------------------------------

    def predictions(self, ts: np.ndarray) -> None:
        """Count predictions (event times) handed to the join into the cohort."""
        ts = np.asarray(ts, dtype=np.float64)
        ts = ts[np.isfinite(ts)]
        if self.reference is not None or ts.size == 0:
            return
        if self.cohort_end is None:
            if self.seen + ts.size < self.cohort_size:
                self.seen += int(ts.size)
                return
            end = float(np.sort(ts)[self.cohort_size - self.seen - 1])
            self.cohort_end = end
            keep = self.cohort_ts <= end
            self.cohort_ts, self.cohort_delays = self.cohort_ts[keep], self.cohort_delays[keep]
        self.seen += int(np.sum(ts <= self.cohort_end))  # late arrivals of the cohort too

    def joined(self, pred_ts: np.ndarray, label_ts: np.ndarray) -> None:
        """Label delays of the cohort's predictions, while it is being learned."""
        if self.reference is not None or pred_ts.size == 0:
            return
        keep = (pred_ts <= self.cohort_end if self.cohort_end is not None
                else np.ones(pred_ts.shape, dtype=bool))
        f64 = np.float64
        self.cohort_ts = np.concatenate([self.cohort_ts, np.asarray(pred_ts[keep], dtype=f64)])
        self.cohort_delays = np.concatenate(
            [self.cohort_delays, np.asarray(label_ts[keep] - pred_ts[keep], dtype=f64)])

    def learn(self, watermark: float, ttl: float, s: MonitorSettings) -> float | None:
        """Learn the delay reference once the cohort had time to be labelled (see the
        module docstring); returns the deadline (None: none yet, or none at all)."""
        if self.reference is not None:
            return self.deadline
        if self.cohort_end is None or not math.isfinite(watermark):
            return None
        age = watermark - self.cohort_end
        d = np.asarray(self.cohort_delays, dtype=np.float64)
        deadline: float | None = None
        if d.size >= MIN_LABELLED:
            p99 = float(np.quantile(d, DELAY_QUANTILE))
            deadline = min(ttl, max(s.label_deadline_min_seconds, s.label_deadline_factor * p99))
            if age < deadline:
                return None
        elif age < ttl:
            return None
        n = max(self.seen, int(d.size), 1)
        on_time = int(np.sum(d <= deadline)) if deadline is not None else 0
        q = np.quantile(d, [0.5, 0.95, DELAY_QUANTILE]).tolist() if d.size else [None] * 3
        self.reference = {"n": n, "labelled": int(d.size), "on_time": on_time,
                          "p50": q[0], "p95": q[1], "p99": q[2], "deadline": deadline,
                          "factor": s.label_deadline_factor,
                          "floor": s.label_deadline_min_seconds, "ttl": ttl,
                          "learned_at": watermark}
        self.cohort_ts, self.cohort_delays = np.empty(0), np.empty(0)
        log.info("label delay reference ready", extra={"model": self.model, **self.reference})
        if deadline is None:
            return None
        late = float(n - on_time)
        p0, p1 = rise_parameters(late, n, LATE_MIN_EFFECT * (1.0 - late / n))
        if p1:
            span = max(self.window_n, s.window_events)
            self.bank = BernoulliBank([p0], [list(p1)], span / s.alpha * len(p1), [[late, n]])
        return deadline

    # -- deadlines -----------------------------------------------------------------------

    def resolve(self, pred_ts: np.ndarray, label_ts: np.ndarray, mcfg: ModelConfig,
                version: str = "unknown") -> list[WatchEvaluation]:
        """Predictions whose deadline passed, in prediction-time order, with their label
        time (NaN: none): run the CUSUM, close windows.  Returns the alarms (the first
        of each window) and the clean windows, in order."""
        if self.bank is None or self.reference is None or pred_ts.size == 0:
            return []
        if self.cohort_end is not None and pred_ts[0] <= self.cohort_end:
            # the cohort (and what came before it) is the reference, not a test: which
            # of it is still due when the deadline is learned follows the batches
            later = pred_ts > self.cohort_end
            pred_ts, label_ts = pred_ts[later], label_ts[later]
            if pred_ts.size == 0:
                return []
        d = float(self.reference["deadline"])
        late = (np.isnan(label_ts) | (label_ts - pred_ts > d)).astype(np.float64)
        key: Key = (self.model, "label_delay", None, None)
        out: list[WatchEvaluation] = []
        i, n = 0, int(pred_ts.size)
        while i < n:
            j = min(n, i + self.window_n - self.rows)
            ts, x = pred_ts[i:j], late[i:j]
            for row, a in self._step(x):
                self.dirty = True
                ev = self._alarm(row, a.run_length, a.statistic, a.threshold, a.p1, ts, x,
                                 mcfg, version)
                if ev is not None and not self.paged:  # later pages of a window: no news
                    self.paged = True
                    out.append(ev)
            self.recent_ts = last_rows(self.recent_ts, np.asarray(ts, dtype=np.float64),
                                       RECENT_ROWS)
            self.recent_late = last_rows(self.recent_late, x, RECENT_ROWS)
            self.rows += j - i
            self.resolved_n += j - i
            self.overdue_n += int(x.sum())
            if self.rows >= self.window_n:
                calm = all(self.bank.state[k] < c[4] / 2 for k, c in enumerate(self.bank.cusums))
                if calm and not self.dirty:
                    out.append(WatchEvaluation(self.model, now=float(ts[-1]) + d,
                                               evaluated=[key]))
                self.rows, self.dirty, self.paged = 0, False, False
            i = j
        return out

    def _step(self, x: np.ndarray) -> Iterator[tuple[int, RateAlarm]]:
        """Feed the deadline CUSUM ``x`` and yield its alarms with their rows; the
        episode ends at the first row where the CUSUM drained to zero on an on-time
        label.  That row is found row by row, while an episode is open or an alarm
        opens one: wherever the hand-outs (which follow the batches) cut the stream,
        the episodes, and so the pages, are the same."""
        assert self.bank is not None
        bank = self.bank
        saved = bank.state.copy(), bank.run.copy(), bank.n
        alarms = bank.update(x[:, None])
        if self.episode is None and not alarms:
            return  # no episode to end: the batch's update is the rows' updates
        bank.state, bank.run, bank.n = saved
        for r in range(x.size):
            for a in bank.update(x[r:r + 1, None]):
                yield r, a
            if x[r] == 0 and not bank.state.any():  # drained: the episode is over
                self.episode = None

    def _alarm(self, row: int, run_length: int, stat: float, h: float, p1: float,
               ts: np.ndarray, x: np.ndarray, mcfg: ModelConfig,
               version: str) -> WatchEvaluation | None:
        """The page for an alarm at ``row`` of the batch (``ts``, ``x``), or None while
        its episode holds fewer than ``MIN_OVERDUE`` overdue predictions."""
        assert self.reference is not None
        ref, d, s = self.reference, float(self.reference["deadline"]), mcfg.settings
        all_ts = np.concatenate([self.recent_ts, ts[: row + 1]])
        all_x = np.concatenate([self.recent_late, x[: row + 1]])
        run = max(1, min(int(run_length), all_ts.size))
        run_ts, run_x = all_ts[-run:], all_x[-run:]
        if self.episode is None:
            self.episode = (float(run_ts[run_x > 0].min()) if run_x.any()
                            else float(run_ts[-1]))
        inside = all_ts >= self.episode
        run = int(inside.sum())
        run_ts, run_x = all_ts[inside], all_x[inside]
        overdue = int(run_x.sum())
        if overdue < MIN_OVERDUE:
            return None
        first = float(run_ts[run_x > 0].min())
        last = float(run_ts.max())
        at = float(all_ts[-1]) + d  # the alarm's prediction crossed its deadline
        since = first + d  # ... and the run's first overdue one, earlier
        ref_rate = ref["on_time"] / ref["n"]
        cur_rate = 1.0 - overdue / run
        span = max(self.window_n, s.window_events)
        description = (
            f"{overdue} of the {run} predictions of {self.model} made from {_time(first)} to "
            f"{_time(last)} got no label within {_dur(d)} of event time; by {_time(at)} the "
            f"oldest had waited {_dur(at - first)}. In the reference ({ref['labelled']} "
            f"labels for its first {ref['n']} predictions) labels came after p50 "
            f"{_dur(ref['p50'])}, p99 {_dur(ref['p99'])}, and {ref_rate:.1%} of predictions "
            f"were labelled within the deadline (max({_dur(ref['floor'])}, "
            f"{ref['factor']:g} x p99), capped by the {_dur(ref['ttl'])} TTL); "
            f"here {cur_rate:.1%} (sequential Bernoulli CUSUM on the overdue share, sized for "
            f"a rise to {p1:.1%}: {stat:.3g} > {h:.3g}).")
        finding = Finding(
            kind="label_delay", model=self.model, model_version=version,
            detector="label_deadline_cusum", statistic=float(stat),
            p_value=s.alpha / span, threshold=float(h), reference_n=int(ref["n"]),
            current_n=run, window=(first, at),
            summary=f"labels for {self.model} are overdue",
            description=description,
            details={"expected_rate": ref_rate, "cur_rate": cur_rate, "overdue": overdue,
                     "predictions": run, "deadline_seconds": d,
                     "ref_delay_p50": ref["p50"], "ref_delay_p99": ref["p99"],
                     "first_overdue_ts": first, "oldest_wait_seconds": at - first,
                     "p1": p1, "ttl_seconds": ref["ttl"]})
        return WatchEvaluation(self.model, now=since, findings=[finding])

    # -- state ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {"model": self.model, "cohort_size": self.cohort_size,
                "window_n": self.window_n, "seen": self.seen, "cohort_end": self.cohort_end,
                "cohort_ts": f64_to_text(self.cohort_ts),
                "cohort_delays": f64_to_text(self.cohort_delays),
                "reference": self.reference,
                "bank": self.bank.to_state() if self.bank is not None else None,
                "rows": self.rows, "dirty": self.dirty, "paged": self.paged,
                "episode": self.episode, "resolved_n": self.resolved_n,
                "overdue_n": self.overdue_n, "recent_ts": f64_to_text(self.recent_ts),
                "recent_late": f64_to_text(self.recent_late)}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> LabelDeadline:
        return cls(s["model"], int(s["cohort_size"]), int(s["window_n"]), seen=int(s["seen"]),
                   cohort_end=s["cohort_end"],
                   cohort_ts=f64_from_text(s["cohort_ts"]),
                   cohort_delays=f64_from_text(s["cohort_delays"]),
                   reference=s["reference"],
                   bank=BernoulliBank.from_state(s["bank"]) if s["bank"] is not None else None,
                   rows=int(s["rows"]), dirty=bool(s["dirty"]), paged=bool(s["paged"]),
                   episode=s["episode"],
                   resolved_n=int(s["resolved_n"]), overdue_n=int(s["overdue_n"]),
                   recent_ts=f64_from_text(s["recent_ts"]),
                   recent_late=f64_from_text(s["recent_late"]))


# -- the watch ------------------------------------------------------------------------------


@dataclass
class PerformanceWatch:
    model: str
    reference_n: int
    window_n: int
    task: str | None = None
    version: str = "unknown"
    # performance
    reference: dict[str, Any] | None = None  # metrics dict of the reference pairs
    buffer: list[Pairs] = field(default_factory=list)  # reference or current window
    buffered: int = 0
    invalid: int = 0
    windows: int = 0
    latest: dict[str, float] = field(default_factory=dict)  # metric -> latest window value
    # label coverage
    coverage_from: float | None = None  # event time from which resolutions count
    coverage_open: bool = False
    ref_joined: int = 0
    ref_resolved: int = 0
    cur_joined: int = 0
    cur_resolved: int = 0
    expected_rate: float | None = None
    latest_coverage: float | None = None
    # sequential: misclassification CUSUMs, and their alarms until a window closes
    errors: BernoulliBank | None = None
    ref_error_rate: float = math.nan
    recent_wrong: np.ndarray = field(default_factory=lambda: np.empty(0))  # float64
    alarms: list[list[float]] = field(default_factory=list)  # [pred_ts, stat, h, p1, recent]
    # the CUSUMs' baseline, [wrong, pairs]: the reference plus every window that tested
    # clean with no alarm in it (None: a state from before baselines, rate taken as known)
    baseline: list[float] | None = None
    # label deadline: overdue labels within minutes (None: a fresh one)
    deadlines: LabelDeadline | None = None

    def __post_init__(self) -> None:
        if self.deadlines is None:
            self.deadlines = LabelDeadline(self.model, self.reference_n, self.window_n)

    @property
    def late(self) -> LabelDeadline:
        assert self.deadlines is not None
        return self.deadlines

    @classmethod
    def build(cls, mcfg: ModelConfig) -> PerformanceWatch:
        s = mcfg.settings
        return cls(mcfg.name, reference_size(s.reference_events), window_size(s.window_events),
                   task=mcfg.task)

    # -- the budget --------------------------------------------------------------------

    def _span(self, mcfg: ModelConfig) -> int:
        """Observations (labelled pairs, resolutions) per ``alpha`` of false-alarm budget:
        ``window_events``, as for the model's own windows and sequential watch, so the
        performance family spends at the same rate per observation (its windows are
        half as long); a window longer than that gets a whole ``alpha``."""
        return max(self.window_n, mcfg.settings.window_events)

    def _alpha(self, mcfg: ModelConfig) -> float:
        """The level of one performance (or coverage) window's family."""
        return mcfg.settings.alpha * self.window_n / self._span(mcfg)

    # -- performance ---------------------------------------------------------------------

    def add(self, joined: Joined, mcfg: ModelConfig) -> list[WatchEvaluation]:
        """Fold newly joined pairs in; returns the windows that closed."""
        if joined.n == 0:
            return []
        self.late.joined(joined.pred_ts, joined.label_ts)
        pairs = Pairs.from_joined(joined)
        if self.task is not None:
            pairs = self._valid(pairs)
        if pairs.n:
            self.buffer.append(pairs)
            self.buffered += pairs.n
        out: list[WatchEvaluation] = []
        if self.reference is None:
            if self.buffered < self.reference_n:
                return out
            allp = Pairs.concat(self.buffer)
            if self.task is None:
                self.task = infer_task(allp.take(slice(0, self.reference_n)))
                allp = self._valid(allp)
                if allp.n < self.reference_n:
                    self.buffer, self.buffered = [allp], allp.n
                    return out
            ref = allp.take(slice(0, self.reference_n))
            self.reference = metrics_of(self.task, ref)
            rest = allp.take(slice(self.reference_n, None))
            self.buffer, self.buffered = ([rest] if rest.n else []), rest.n
            log.info("performance reference ready", extra={
                "model": self.model, "task": self.task, "n": ref.n,
                "metrics": {m: self.reference.get(m) for m in PRIMARY[self.task]}})
            self._start_sequential(ref, mcfg)
            pairs = rest
        # the CUSUMs' alarms and the windows that closed, in the pairs' order: an alarm
        # belongs to the window that holds its pair (that window cannot count as a
        # clean test), so where a batch ends changes nothing
        pos = 0
        while True:
            unseen = pairs.n - pos  # the last rows of the buffer, not run yet
            if self.buffered - unseen >= self.window_n:
                out.append(self._close_window(mcfg))
                continue
            if unseen == 0:
                break
            take = min(unseen, self.window_n - (self.buffered - unseen))
            if self.errors is not None:
                out += self._sequential(pairs.take(slice(pos, pos + take)), mcfg)
            pos += take
        return out

    def _close_window(self, mcfg: ModelConfig) -> WatchEvaluation:
        allp = Pairs.concat(self.buffer)
        cur = allp.take(slice(0, self.window_n))
        rest = allp.take(slice(self.window_n, None))
        self.buffer, self.buffered = ([rest] if rest.n else []), rest.n
        return self._evaluate(cur, mcfg)

    def _start_sequential(self, ref: Pairs, mcfg: ModelConfig) -> None:
        if self.task not in (BINARY, MULTICLASS):
            return
        w = wrong(self.task, ref)
        self.ref_error_rate = float(w.mean())
        counts = [float(w.sum()), float(w.size)]
        self.errors = error_bank(counts, self._span(mcfg), mcfg.settings.alpha)
        if self.errors is not None:
            self.baseline = counts

    def _grow_baseline(self, cur: Pairs) -> None:
        """A window tested clean with no alarm in it: its pairs join the CUSUMs' baseline,
        and the CUSUMs are retuned to the sharper rate when due."""
        if self.errors is None or self.baseline is None or self.task is None:
            return
        self.baseline = grow_error_baseline(self.errors, self.baseline, wrong(self.task, cur),
                                            self.reference_n)

    def _sequential(self, pairs: Pairs,
                    mcfg: ModelConfig) -> list[WatchEvaluation]:
        assert self.errors is not None and self.task is not None
        x = wrong(self.task, pairs)
        out = []
        for a in self.errors.update(x[:, None]):
            recent = np.concatenate([self.recent_wrong, x[: a.row + 1]])[-RECENT_PAIRS:]
            # the evidence: the baseline the CUSUM was tuned on, and its excursion
            base_n = self.baseline[1] if self.baseline is not None else self.reference_n
            alarm = [float(pairs.pred_ts[a.row]), a.statistic, a.threshold, a.p1,
                     float(recent.mean()), float(base_n), float(a.run_length),
                     float(recent.size)]
            self.alarms.append(alarm)
            ev = WatchEvaluation(self.model, now=float(pairs.label_ts[a.row]))
            ev.findings.append(self._alarm_finding(alarm, mcfg))
            out.append(ev)
        self.recent_wrong = last_rows(self.recent_wrong, np.asarray(x, dtype=np.float64),
                                      RECENT_PAIRS)
        return out

    def _alarm_finding(self, alarm: list[float], mcfg: ModelConfig) -> Finding:
        """An alarm (kept in state as [ts, statistic, h, p1, recent rate, baseline n,
        run length, recent n]; one saved before the last three has 5) as a finding:
        reference_n the pairs of the CUSUM's baseline, current_n its excursion's.  The
        window is the alarm's prediction time only (the excursion's first pair may be
        in an earlier batch, whose times are not kept)."""
        ts, stat, h, p1, recent, *evidence = alarm
        base_n, run, recent_n = (int(x) for x in evidence) if evidence else (
            self.reference_n, 0, RECENT_PAIRS)
        over = f"over the last {run:,} labelled predictions" if run else ""
        s = mcfg.settings
        return Finding(
            kind="performance_degradation", model=self.model, model_version=self.version,
            detector="bernoulli_cusum", statistic=stat, p_value=s.alpha / self._span(mcfg),
            threshold=h, reference_n=base_n, current_n=run, window=(ts, ts),
            summary=f"{self.model} accuracy fell against ground truth",
            description=(
                f"{self.model} got {self.ref_error_rate:.1%} of its labelled predictions wrong "
                f"in the reference, {recent:.1%} of the latest {recent_n:,} (sequential "
                f"Bernoulli CUSUM sized for a rise to {p1:.1%}, on a baseline of {base_n:,} "
                f"labelled predictions, crossed its threshold{' ' + over if over else ''}: "
                f"{stat:.3g} > {h:.3g})."),
            details={"metric": "error_rate", "ref_rate": self.ref_error_rate,
                     "cur_rate": recent, "p1": p1, "task": self.task})

    def _valid(self, pairs: Pairs) -> Pairs:
        assert self.task is not None
        ok = valid_rows(self.task, pairs)
        bad = int(pairs.n - ok.sum())
        if bad:
            self.invalid += bad
            return pairs.take(ok)
        return pairs

    def _evaluate(self, cur: Pairs, mcfg: ModelConfig) -> WatchEvaluation:
        assert self.task is not None and self.reference is not None
        s = mcfg.settings
        window = (float(cur.pred_ts.min()), float(cur.pred_ts.max()))
        ev = WatchEvaluation(self.model, now=float(np.max(cur.label_ts)))
        self.windows += 1
        # an alarm on a pair of this window: the window cannot count as clean
        seen, self.alarms = self.alarms, []
        ev.findings += [self._alarm_finding(a, mcfg) for a in seen]
        if seen:
            ev.evaluated.append((self.model, "performance_degradation", None, None))
        m = metrics_of(self.task, cur)
        self.latest = {k: float(m[k]) for k in GAUGES[self.task]
                       if isinstance(m.get(k), int | float) and math.isfinite(m[k])}
        if cur.n < max(s.min_window_events, MIN_N):
            return ev
        results: list[tuple[TestResult, str]] = [
            (performance_test(self.reference, m, metric=metric), "warning")
            for metric in PRIMARY[self.task]]
        amin = mcfg.contract.accuracy_min
        if amin is not None and self.task in (BINARY, MULTICLASS):
            results.append((contract_test(int(m["correct"]), int(m["n"]), amin), "critical"))
        results = [(r, sev) for r, sev in results if not r.insufficient]
        if not results:
            return ev
        key: Key = (self.model, "performance_degradation", None, None)
        if key not in ev.evaluated:
            ev.evaluated.append(key)
        alpha = self._alpha(mcfg)
        rejected = holm([r.p_value for r, _ in results], alpha)
        hits = [(r, sev) for (r, sev), rej in zip(results, rejected, strict=True)
                if rej and r.effect >= r.min_effect]
        log.info("performance window evaluated", extra={
            "model": self.model, "n": cur.n, "window": window,
            "values": self.latest, "findings": [r.detector for r, _ in hits]})
        if not hits:
            if not seen:
                self._grow_baseline(cur)
            return ev
        # one alert per model: the contract breach (critical) first, then the strongest
        r, sev = min(hits, key=lambda h: (h[1] != "critical", h[0].p_value))
        summary, description = _perf_text(self.model, r)
        others = [h.detector for h, _ in hits if h is not r]
        if others:
            description += f" Also significant: {', '.join(others)}."
        details = dict(r.details)
        details["task"] = self.task
        details["significant"] = [h.detector for h, _ in hits]
        ev.findings.append(Finding(
            kind="performance_degradation", model=self.model, model_version=self.version,
            detector=r.detector, statistic=float(r.statistic), p_value=float(r.p_value),
            threshold=alpha, reference_n=r.reference_n, current_n=r.current_n,
            window=window, summary=summary, description=description, severity=sev,
            details=details))
        return ev

    # -- label coverage ------------------------------------------------------------------

    def saw_predictions(self, first_ts: float, ttl_seconds: float) -> None:
        """The first prediction handed to the join: coverage counts one TTL later."""
        if self.coverage_from is None and math.isfinite(first_ts):
            self.coverage_from = first_ts + ttl_seconds

    def resolved(self, joined: int, unlabelled: int, watermark: float, mcfg: ModelConfig,
                 delay_p95: float | None, ttl_seconds: float) -> list[WatchEvaluation]:
        """Fold in predictions resolved since the last call (labelled or expired)."""
        if (self.coverage_from is None or not math.isfinite(watermark)
                or watermark < self.coverage_from):
            return []
        if not self.coverage_open:
            # the first expiry past coverage_from only reaches back to the first
            # prediction, while its batch's joins span the whole batch: skip it
            self.coverage_open = True
            return []
        if joined + unlabelled == 0:
            return []
        if self.expected_rate is None:
            self.ref_joined += joined
            self.ref_resolved += joined + unlabelled
            self.latest_coverage = self.ref_joined / self.ref_resolved
            if self.ref_resolved >= self.reference_n:
                self.expected_rate = self.ref_joined / self.ref_resolved
            return []
        self.cur_joined += joined
        self.cur_resolved += joined + unlabelled
        if self.cur_resolved < self.window_n:
            return []
        k, n = self.cur_joined, self.cur_resolved
        self.cur_joined = self.cur_resolved = 0
        self.latest_coverage = k / n
        ev = WatchEvaluation(self.model, now=watermark)
        s = mcfg.settings
        if self.late.active:  # the label deadline watches, sooner: coverage is a gauge
            return []
        if self.expected_rate <= 0 or n < max(s.min_window_events, MIN_N):
            return [ev]
        if delay_p95 is not None:  # labels may precede their predictions: delay < 0
            delay_p95 = max(0.0, delay_p95)
        r = label_delay_test(self.expected_rate, k, n, ref_n=self.ref_resolved,
                             delay_p95=delay_p95)
        key: Key = (self.model, "label_delay", None, None)
        ev.evaluated.append(key)
        alpha = self._alpha(mcfg)
        if r.significant(alpha):
            delay = (f"; recent label delay p95 {delay_p95:.0f}s" if delay_p95 is not None
                     else "")
            ev.findings.append(Finding(
                kind="label_delay", model=self.model, model_version=self.version,
                detector=r.detector, statistic=float(r.statistic), p_value=float(r.p_value),
                threshold=alpha, reference_n=r.reference_n, current_n=r.current_n,
                window=(watermark - ttl_seconds, watermark),
                summary=f"labels for {self.model} stopped arriving",
                description=(
                    f"only {k} of the last {n} resolved predictions of {self.model} were "
                    f"labelled: coverage {self.expected_rate:.1%} → {k / n:.1%} "
                    f"(exact binomial test, p={r.p_value:.2g}); a prediction without a label "
                    f"after {ttl_seconds:.0f}s of event time counts as unlabelled{delay}."),
                details={**r.details, "ttl_seconds": ttl_seconds}))
        return [ev]

    # -- state ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        buf = Pairs.concat(self.buffer)
        return {"version": STATE_VERSION, "model": self.model,
                "reference_n": self.reference_n, "window_n": self.window_n,
                "task": self.task, "model_version": self.version,
                "reference": _clean(self.reference), "buffer": buf.to_state(),
                "invalid": self.invalid, "windows": self.windows,
                "latest": _clean(self.latest), "coverage_from": self.coverage_from,
                "coverage_open": self.coverage_open,
                "ref_joined": self.ref_joined, "ref_resolved": self.ref_resolved,
                "cur_joined": self.cur_joined, "cur_resolved": self.cur_resolved,
                "expected_rate": self.expected_rate, "latest_coverage": self.latest_coverage,
                "errors": self.errors.to_state() if self.errors is not None else None,
                "ref_error_rate": _clean(self.ref_error_rate),
                "recent_wrong": f64_to_text(self.recent_wrong), "alarms": self.alarms,
                "baseline": self.baseline, "deadlines": self.late.to_state()}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> PerformanceWatch:
        if s.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported performance watch state {s.get('version')!r}")
        buf = Pairs.from_state(s["buffer"])
        return cls(s["model"], int(s["reference_n"]), int(s["window_n"]), task=s["task"],
                   version=s["model_version"],
                   reference=_unclean(s["reference"]) if s["reference"] is not None else None,
                   buffer=[buf] if buf.n else [], buffered=buf.n, invalid=int(s["invalid"]),
                   windows=int(s["windows"]), latest=dict(s["latest"]),
                   coverage_from=s["coverage_from"],
                   coverage_open=bool(s["coverage_open"]), ref_joined=int(s["ref_joined"]),
                   ref_resolved=int(s["ref_resolved"]), cur_joined=int(s["cur_joined"]),
                   cur_resolved=int(s["cur_resolved"]), expected_rate=s["expected_rate"],
                   latest_coverage=s["latest_coverage"],
                   errors=(BernoulliBank.from_state(s["errors"])
                           if s["errors"] is not None else None),
                   ref_error_rate=_unclean(s["ref_error_rate"]),
                   recent_wrong=f64_from_text(s["recent_wrong"]),
                   alarms=[list(a) for a in s["alarms"]],
                   baseline=(list(s["baseline"]) if s.get("baseline") is not None
                             else None),
                   # a state from before label deadlines: the cohort starts now
                   deadlines=(LabelDeadline.from_state(s["deadlines"])
                              if s.get("deadlines") is not None else None))
