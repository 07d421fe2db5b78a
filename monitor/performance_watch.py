"""Model quality against ground truth, once delayed labels join their predictions.

One :class:`PerformanceWatch` per model, fed by the pipeline with the pairs
:class:`~monitor.join.LabelJoin` returns and with what the join expires.

**Performance** (kind ``performance_degradation``, a model fault).  Joined
(prediction, label) pairs accumulate in the order they join, sorted by
prediction time inside each batch:

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
An alarm fires at once and is folded into the next window's findings, so that
window cannot count as clean; alarms and windows are handed on in prediction-
time order, so a window that ended before an alarm cannot resolve it.

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
whose reference coverage is 0 is never tested.  Labels stopping are therefore seen
about one TTL after the last label, when their predictions start to expire.

Everything round-trips through plain JSON (:meth:`PerformanceWatch.to_state`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alerts.model import Finding
from detectors.bernoulli import BernoulliBank
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
from monitor.config_types import ModelConfig
from monitor.join import Joined
from monitor.rate_streams import rise_parameters
from monitor.sequential import retune_grown

log = logging.getLogger("driftwatch.performance")

Key = tuple[str, str, str | None, str | None]

MIN_PAIRS = 200  # smallest performance reference / window, in joined pairs
RECENT_PAIRS = 500  # labelled predictions an alarm's "recent error rate" covers
STATE_VERSION = 2

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
        order = np.argsort(j.pred_ts, kind="stable")
        return cls(j.pred_ts[order], j.label_ts[order], j.prediction[order],
                   np.asarray(j.prediction_class, dtype=object)[order], j.label[order],
                   np.asarray(j.label_class, dtype=object)[order])

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
    recent_wrong: list[float] = field(default_factory=list)
    alarms: list[list[float]] = field(default_factory=list)  # [pred_ts, stat, h, p1, recent]
    # the CUSUMs' baseline, [wrong, pairs]: the reference plus every window that tested
    # clean with no alarm in it (None: a state from before baselines, rate taken as known)
    baseline: list[float] | None = None

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
        # (prediction time, evaluation): the CUSUMs' alarms and the windows that closed,
        # handed on in prediction-time order -- a window that ended before an alarm must
        # not count as a clean test after it (it would resolve the alert, and the window
        # that holds the alarm would fire it a second time)
        timed: list[tuple[float, WatchEvaluation]] = []
        if self.errors is not None and pairs.n:
            timed += self._sequential(pairs, mcfg)
        while self.buffered >= self.window_n:
            allp = Pairs.concat(self.buffer)
            cur = allp.take(slice(0, self.window_n))
            rest = allp.take(slice(self.window_n, None))
            self.buffer, self.buffered = ([rest] if rest.n else []), rest.n
            timed.append((float(np.max(cur.pred_ts)), self._evaluate(cur, mcfg)))
        return out + [ev for _, ev in sorted(timed, key=lambda t: t[0])]

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
                    mcfg: ModelConfig) -> list[tuple[float, WatchEvaluation]]:
        assert self.errors is not None and self.task is not None
        x = wrong(self.task, pairs)
        out = []
        for a in self.errors.update(x[:, None]):
            recent = np.concatenate([self.recent_wrong, x[: a.row + 1]])[-RECENT_PAIRS:]
            alarm = [float(pairs.pred_ts[a.row]), a.statistic, a.threshold, a.p1,
                     float(recent.mean())]
            self.alarms.append(alarm)
            ev = WatchEvaluation(self.model, now=float(pairs.label_ts[a.row]))
            ev.findings.append(self._alarm_finding(alarm, mcfg))
            out.append((alarm[0], ev))
        self.recent_wrong = np.concatenate([self.recent_wrong, x])[-RECENT_PAIRS:].tolist()
        return out

    def _alarm_finding(self, alarm: list[float], mcfg: ModelConfig) -> Finding:
        ts, stat, h, p1, recent = alarm
        s = mcfg.settings
        return Finding(
            kind="performance_degradation", model=self.model, model_version=self.version,
            detector="bernoulli_cusum", statistic=stat, p_value=s.alpha / self._span(mcfg),
            threshold=h, reference_n=self.reference_n, current_n=0, window=(ts, ts),
            summary=f"{self.model} accuracy fell against ground truth",
            description=(
                f"{self.model} got {self.ref_error_rate:.1%} of its labelled predictions wrong "
                f"in the reference, {recent:.1%} of the latest {RECENT_PAIRS} (sequential "
                f"Bernoulli CUSUM sized for a rise to {p1:.1%} crossed its threshold: "
                f"{stat:.3g} > {h:.3g}); the inputs may look unchanged: the relation between "
                f"inputs and labels moved."),
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
        # an alarm inside this window: the window cannot count as clean
        seen = [a for a in self.alarms if a[0] <= window[1]]
        self.alarms = [a for a in self.alarms if a[0] > window[1]]
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
                "baseline": self.baseline}

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
                   recent_wrong=f64_from_text(s["recent_wrong"]).tolist(),
                   alarms=[list(a) for a in s["alarms"]],
                   baseline=(list(s["baseline"]) if s.get("baseline") is not None
                             else None))
