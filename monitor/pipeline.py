"""The one pipeline behind `run` and `replay`: batches in, alert state changes out.

decode -> per-model windows (event time) -> detectors -> findings ->
attribution -> alert lifecycle -> inhibition + routing -> sink / outbox.

Event time only: the pipeline never reads the wall clock, so replaying a file
gives the same alerts as living through it.  A model that goes silent while
the rest of the stream goes on is found against the stream's watermark.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from alerts.attribution import Attributed, attribute
from alerts.book import AlertBook
from alerts.dispatch import Dispatcher
from alerts.model import Alert, Finding
from detectors.traffic import silence_test, silence_threshold
from monitor.batch import DecodedBatch, PredictionColumns
from monitor.config.types import Config, ModelConfig, MonitorSettings
from monitor.evaluate import Evaluation, dominant_version, evaluate_window
from monitor.events import Decoder
from monitor.join import ExpiryStats, Joined, LabelJoin
from monitor.metrics import Metrics
from monitor.model_metrics import window_drift
from monitor.performance_watch import PerformanceWatch, WatchEvaluation
from monitor.sequential import SeqAlarm, SequentialWatch, alarm_findings
from monitor.versions import VersionWatch, declared_annotation
from monitor.windows import ModelWindows, take

log = logging.getLogger("driftwatch.pipeline")

AlertSink = Callable[[Sequence[Alert]], None]


@dataclass
class ModelState:
    windows: ModelWindows
    first_ts: float = math.inf
    last_ts: float = -math.inf
    rate_per_s: float | None = None  # reference arrival rate, once the reference is full
    # (feature, detector) -> (statistic, p-value, score) of the latest window's drift tests
    drift: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    estimate: dict[str, float] = field(default_factory=dict)  # CBPE: accuracy, reference
    seq: SequentialWatch | None = None
    seq_alarms: list[SeqAlarm] = field(default_factory=list)  # until their window closes

    def to_state(self) -> dict[str, Any]:
        return {"windows": self.windows.to_state(), "first_ts": _finite_or_none(self.first_ts),
                "last_ts": _finite_or_none(self.last_ts), "rate_per_s": self.rate_per_s,
                "drift": [[f, d, *v] for (f, d), v in self.drift.items()],
                "estimate": self.estimate,
                "seq": self.seq.to_state() if self.seq is not None else None,
                "seq_alarms": [a.to_state() for a in self.seq_alarms]}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> ModelState:
        return cls(windows=ModelWindows.from_state(s["windows"]),
                   first_ts=_or(s["first_ts"], math.inf),
                   last_ts=_or(s["last_ts"], -math.inf), rate_per_s=s["rate_per_s"],
                   # a state saved before scores kept the statistic alone: dropped
                   drift={(r[0], r[1]): (r[2], r[3], r[4]) for r in s["drift"] if len(r) == 5},
                   estimate=dict(s.get("estimate", {})),
                   # a state saved when wrong-typed values were counted per window, not
                   # per row ("mismatches"): those counts, with no rows, are dropped
                   seq_alarms=[SeqAlarm(*a) for a in s.get("seq_alarms", [])])

    def restore_seq(self, s: dict[str, Any], settings: MonitorSettings) -> None:
        ref = self.windows.reference.compact()
        if s.get("seq") is not None and ref is not None:
            self.seq = SequentialWatch.from_state(s["seq"], ref, settings)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _or(x: float | None, default: float) -> float:
    return default if x is None else float(x)


def _batch_time(ts: np.ndarray) -> float:
    """A model's clock for this batch: the median, so one bogus timestamp moves nothing."""
    return float(np.median(ts))


class Pipeline:
    def __init__(self, config: Config, metrics: Metrics, dispatcher: Dispatcher,
                 sink: AlertSink | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.sink = sink
        self.decoder = Decoder(
            feature_types={m.name: dict(m.features) for m in config.models},
            max_features=config.defaults.max_features, limits=config.limits,
        )
        self.book = AlertBook(resolve_after=config.defaults.resolve_after_windows)
        self.models: dict[str, ModelState] = {}
        self.watermark = -math.inf
        # labels: joined to predictions by (model, id); before a model's first label
        # event its recent predictions wait in the join's bounded early buffer, and
        # enter the join with that event (models never labelled cost that buffer)
        self.join = self._new_join()
        self.perf: dict[str, PerformanceWatch] = {}
        self._expired_at = -math.inf  # watermark of the last join.expire
        # wall-clock time each model's events last arrived (not state: after a restart
        # every model counts from the restart), for check_stale
        self.arrived: dict[str, float] = {}
        self.started = time.time()
        # what the dispatcher's inhibition sees as firing: this pipeline's alerts, or a
        # daemon's across all its pipelines (one per partition)
        self.everyone: Callable[[], list[Alert]] | None = None
        # the models whose events this pipeline counted, and the invalid events it
        # counted by reason: what its share of the stream counters is, in a checkpoint
        self.seen: set[str] = set()
        self.invalid: dict[str, int] = {}
        self.versions = VersionWatch(config)  # champion/challenger, approvals, memory
        self.dropped: dict[str, int] = {}  # past a [limits] cap, by reason (the same way)
        metrics.track(self)

    def _new_join(self, state: dict[str, Any] | None = None) -> LabelJoin:
        """The label join, with the TTLs of the config (also over a restored state)."""
        join = LabelJoin.from_state(state) if state is not None else LabelJoin()
        join.ttl_seconds = self.config.defaults.label_ttl_seconds
        join.ttls = {m.name: m.settings.label_ttl_seconds for m in self.config.models}
        return join

    # -- inputs ------------------------------------------------------------
    def process_messages(self, values: Iterable[bytes], default_type: str | None) -> list[Alert]:
        return self.process(self.decoder.decode_messages(values, default_type))

    def process_lines(self, lines: Iterable[bytes]) -> list[Alert]:
        return self.process(self.decoder.decode_lines(lines))

    def process(self, batch: DecodedBatch) -> list[Alert]:
        """Fold one decoded batch in; returns the alert state changes it caused."""
        m = self.metrics
        for reason, n in batch.invalid.items():
            m.invalid.labels(reason).inc(n)
            self.invalid[reason] = self.invalid.get(reason, 0) + n
        self.seen.update(batch.predictions)
        self.seen.update(batch.labels)
        self.seen.update(model for model, _ in batch.type_mismatches)
        for reason, n in batch.dropped.items():
            m.dropped(reason, n)
            self.dropped[reason] = self.dropped.get(reason, 0) + n
        for model, version in batch.evicted_versions:
            m.forget_version(model, version)
        for reason, raw in batch.invalid_samples:
            log.warning("invalid event", extra={"reason": reason, "sample": raw[:200]})
        for model, labels in batch.labels.items():
            m.events.labels(model, "label").inc(labels.n)
        for (model, feature), n in batch.type_mismatches.items():
            m.type_mismatches.labels(model, feature).inc(n)  # the rows: cols.mismatched
        changes: list[Alert] = []
        for model, cols in batch.predictions.items():
            if cols.n == 0:
                continue
            m.events.labels(model, "prediction").inc(cols.n)
            m.count_predictions(model, cols.versions, cols.error)
            self.arrived[model] = time.time()
            m.latency.observe_many(model, cols.versions, cols.latency_ms)
            changes += self._ingest(model, cols)
            changes += self.versions.predictions(model, cols, self.book)
        changes += self._labels(batch)
        changes += self._check_silence(set(batch.predictions))
        return self._emit(changes)

    # -- labels --------------------------------------------------------------------------
    def _watch(self, model: str) -> PerformanceWatch:
        w = self.perf.get(model)
        if w is None:
            w = self.perf[model] = PerformanceWatch.build(self.config.model(model))
        return w

    def _labels(self, batch: DecodedBatch) -> list[Alert]:
        """Join the batch's predictions and labels, evaluate closed performance
        windows, then expire the join at the watermark and test label coverage."""
        changes: list[Alert] = []
        joined_now: dict[str, int] = {}
        known = set(self.join.models)
        for model in list(batch.predictions) + [m for m in batch.labels
                                                if m not in batch.predictions]:
            cols = batch.predictions.get(model)
            labels = batch.labels.get(model)
            if model not in known and (labels is None or labels.n == 0):
                # no label yet: keep its recent predictions (bounded), for labels that
                # start hours after the predictions
                if cols is not None and cols.n:
                    self.join.add_early(model, cols)
                continue
            mcfg = self.config.model(model)
            w = self._watch(model)
            parts = []
            early = self.join.take_early(model) if model not in known else None
            for c in (early, cols):
                if c is None or c.n == 0:
                    continue
                if c is cols:
                    w.version = dominant_version(c.versions)
                ok = np.isfinite(c.ts) & ~np.asarray(c.error, dtype=bool)
                if ok.any():
                    w.saw_predictions(float(c.ts[ok].min()), self.join.ttl(model))
                    w.late.predictions(c.ts[ok])
                parts.append(self.join.add_predictions(model, c))
            if labels is not None and labels.n:
                parts.append(self.join.add_labels(model, labels))
            # one sequence per batch, in the order the pairs completed (event time of
            # the later of prediction and label): what a one-event-at-a-time join gives
            j = Joined.merge(model, parts)
            if j.n:
                joined_now[model] = joined_now.get(model, 0) + j.n
                self.metrics.labels_joined.labels(model).inc(j.n)
                changes += self.versions.labels(model, j, self.book)
                for ev in w.add(j, mcfg):
                    changes += self._watch_update(ev)
        expired: dict[str, ExpiryStats] = {}
        if self.watermark > self._expired_at:
            self._expired_at = self.watermark
            changes += self._deadlines()
            expired = self.join.expire(self.watermark)
            for model, st in expired.items():
                for reason, n in (("unlabelled", st.unlabelled), ("orphan", st.orphan_labels),
                                  ("evicted", st.evicted + st.evicted_labels)):
                    if n:
                        self.metrics.labels_expired.labels(model, reason).inc(n)
            for model, n in self.join.early_dropped().items():  # never labelled, dropped
                self.metrics.labels_expired.labels(model, "evicted").inc(n)
        for model in set(joined_now) | set(expired):
            lost = expired.get(model)
            w = self._watch(model)
            for ev in w.resolved(joined_now.get(model, 0), lost.unlabelled if lost else 0,
                                 self.watermark, self.config.model(model),
                                 self.join.delay_summary(model).p95, self.join.ttl(model)):
                changes += self._watch_update(ev)
        return changes

    def _deadlines(self) -> list[Alert]:
        """label_delay within minutes: every labelled model's predictions whose label
        deadline the watermark passed, labelled on time or overdue (see
        :class:`~monitor.performance_watch.LabelDeadline`).  Before the deadline is
        learned they are handed out at the TTL, unused, to keep the join small."""
        changes: list[Alert] = []
        for model in self.join.models:
            w, mcfg, ttl = self._watch(model), self.config.model(model), self.join.ttl(model)
            deadline = w.late.learn(self.watermark, ttl, mcfg.settings)
            cut = min(deadline, ttl) if deadline is not None else ttl
            pred_ts, label_ts = self.join.due(model, self.watermark - cut)
            for ev in w.late.resolve(pred_ts, label_ts, mcfg, w.version):
                changes += self._watch_update(ev)
        return changes

    def _watch_update(self, ev: WatchEvaluation) -> list[Alert]:
        if not ev.evaluated and not ev.findings:
            return []
        findings = [replace(f, description=f"{f.description} {self._inputs_note(f.model, ev.now)}")
                    if f.kind == "performance_degradation" else f for f in ev.findings]
        return self.book.update(ev.model, ev.evaluated, self._attribute(ev.model, findings),
                                now=ev.now)

    def _inputs_note(self, model: str, now: float) -> str:
        """What the book knows of the model's inputs and outputs when its accuracy falls:
        the drift alerts firing since ``now`` or before, so a performance alert never
        reads as if the inputs were unchanged while one of them is alerting."""
        drifting: list[str] = []
        for lab in self._firing_drift(model, now):
            if lab["kind"] == "data_drift" and lab.get("feature"):
                seg = f" ({lab['segment']})" if lab.get("segment") else ""
                drifting.append(f"'{lab['feature']}'{seg}")
            elif lab["kind"] == "prediction_drift":
                drifting.append("its predictions")
        if drifting:
            names = ", ".join(dict.fromkeys(drifting))
            return (f"Drifting too (firing): {names}; the accuracy may have fallen with "
                    "that shift, or the relation between inputs and labels moved.")
        return ("No drift alert is firing on its inputs: the relation between inputs and "
                "labels may have moved (concept drift).")

    def _firing_drift(self, model: str, now: float = math.inf) -> list[dict[str, str]]:
        """The labels of the model's drift alerts (input or output) firing by ``now``."""
        return [a.labels for a in self.book.firing()
                if a.labels.get("model") == model and a.starts_at <= now
                and a.labels.get("kind") in ("data_drift", "prediction_drift")]

    # -- per model ---------------------------------------------------------
    def _state(self, model: str) -> ModelState:
        st = self.models.get(model)
        if st is None:
            s = self.config.model(model).settings
            st = ModelState(ModelWindows(s.reference_events, s.window_events, s.window_seconds))
            self.models[model] = st
        return st

    def _ingest(self, model: str, cols: PredictionColumns) -> list[Alert]:
        st = self._state(model)
        prev_ts = st.last_ts
        st.first_ts = min(st.first_ts, float(cols.ts.min()))
        st.last_ts = max(st.last_ts, float(cols.ts.max()))
        self.metrics.last_event.labels(model).set(st.last_ts)
        self.watermark = max(self.watermark, _batch_time(cols.ts))
        was_ready = st.windows.reference_ready
        # the batch's rows that go to the reference, then those of each window it closes
        pos = 0 if was_ready else min(cols.n, st.windows.reference_events
                                      - st.windows.reference.n)
        carried = st.windows.current.n if was_ready else 0
        closed = st.windows.add(cols)
        mcfg = self.config.model(model)
        if not was_ready and st.windows.reference_ready:
            st.rate_per_s = self._reference_rate(st)
            ref = st.windows.reference.compact()
            assert ref is not None
            st.seq = SequentialWatch.build(ref, mcfg.settings)
        changes = self._traffic(model, st, cols.ts, prev_ts)
        version = dominant_version(cols.versions)
        # the CUSUMs see the batch window by window: each window's rows, then its close
        # (a rate's baseline learns from the windows tested clean), so where batches end
        # changes nothing; alarms and window closes are folded in event-time order, so a
        # window that ended before an alarm cannot count as a clean test after it
        for window in closed:
            stop = pos + window.n - carried
            carried = 0
            changes += self._feed(mcfg, version, st, take(cols, pos, stop))
            pos = stop
            ref = st.windows.reference.compact()
            assert ref is not None
            # the label-free accuracy estimate needs the configured task: one inferred
            # from labels would depend on whether this batch's labels came in first
            ev = evaluate_window(mcfg, ref, window)
            self.metrics.windows.labels(model).inc()
            self._record(st, ev, mcfg.settings.alpha)
            # a key the CUSUMs alarmed on inside this window was not tested clean
            seen = [a for a in st.seq_alarms if a.ts <= ev.window[1]]
            st.seq_alarms = [a for a in st.seq_alarms if a.ts > ev.window[1]]
            findings = ev.findings + [f for a in seen for f in alarm_findings(
                mcfg.name, version, a, mcfg.settings.alpha, mcfg.settings.window_events)]
            if st.seq is not None:
                st.seq.window_closed({(k[1], k[2]) for k in ev.evaluated},
                                     {(f.kind, f.feature) for f in findings})
            changes += self.book.update(model, ev.evaluated, self._attribute(model, findings),
                                        now=ev.window[1])
        return changes + self._feed(mcfg, version, st, take(cols, pos, cols.n))

    def _feed(self, mcfg: ModelConfig, version: str, st: ModelState,
              rows: PredictionColumns) -> list[Alert]:
        """Rows to the model's sequential watch; the alarms they raise fire now and wait
        for their window's close (``st.seq_alarms``)."""
        if st.seq is None or rows.n == 0:
            return []
        fresh = st.seq.update(rows)
        st.seq_alarms += fresh
        return self._fire(mcfg, version, fresh)

    def _attribute(self, model: str, findings: list[Finding]) -> list[Attributed]:
        """Attribution, told which of the model's inputs already drift model-wide (an
        alert firing): a reason never says the inputs are unchanged while one does."""
        firing = [lab["feature"] for lab in self._firing_drift(model)
                  if lab["kind"] == "data_drift" and "feature" in lab and "segment" not in lab]
        earlier = [str(x) for a in self.book.firing()
                   if a.labels.get("model") == model
                   and a.labels.get("kind") == "prediction_drift"
                   for x in a.evidence.get("breaks_before", ())]
        return attribute(findings, firing, earlier)

    def _fire(self, mcfg: ModelConfig, version: str, alarms: list[SeqAlarm]) -> list[Alert]:
        """Each alarm's findings, at its own event time.  A prediction alarm's carry the
        input breaks found in its rows, ahead of it: a prediction that moved because a
        feed broke reaches ML engineering as the break's symptom, with the break, not
        data science before the break is known (a field gone because its values came
        wrong-typed is told as retyped from the alarm's own rows: SeqAlarm.broken)."""
        changes: list[Alert] = []
        for a in alarms:
            findings = alarm_findings(mcfg.name, version, a, mcfg.settings.alpha,
                                      mcfg.settings.window_events)
            self._note_held(mcfg.name, findings)
            changes += self.book.update(mcfg.name, [], self._attribute(mcfg.name, findings),
                                        now=a.ts)
        return changes

    def _note_held(self, model: str, findings: list[Finding]) -> None:
        """A later prediction alarm showed the outputs held steady through an input's
        break: the firing prediction alert that was told as that break's symptom keeps
        the evidence (in its state), and the next window re-attributes it -- a lone alarm
        between windows never flips a verdict itself."""
        held = {str(x) for f in findings if f.kind == "prediction_drift"
                for x in f.details.get("breaks_before", ())}
        if not held:
            return
        for a in self.book.firing():
            if a.labels.get("model") == model and a.labels.get("kind") == "prediction_drift":
                a.evidence["breaks_before"] = sorted(
                    held | {str(x) for x in a.evidence.get("breaks_before", ())})

    @staticmethod
    def _reference_rate(st: ModelState) -> float | None:
        ref = st.windows.reference.compact()
        if ref is None or ref.n < 2:
            return None
        span = float(ref.ts.max() - ref.ts.min())
        return (ref.n - 1) / span if span > 0 else None

    @staticmethod
    def _record(st: ModelState, ev: Evaluation, alpha: float) -> None:
        st.drift.update(window_drift(ev.results, alpha))
        for _, r in ev.results:
            if r.detector == "cbpe_accuracy":
                st.estimate = {"accuracy": float(r.details["cur_value"]),
                               "reference": float(r.details["ref_value"])}
        log.info("window evaluated", extra={
            "model": ev.model, "n": ev.n, "window": ev.window,
            "tests": len(ev.results), "findings": [f.kind for f in ev.findings]})

    def _traffic(self, model: str, st: ModelState, ts: np.ndarray,
                 prev_ts: float) -> list[Alert]:
        """traffic_drop from the model's own events: a gap seen inside its
        timestamps fires (at gap start + limit); events arriving resolve."""
        key = (model, "traffic_drop", None, None)
        pts = np.sort(ts if not math.isfinite(prev_ts) else np.append(ts, prev_ts))
        if pts.size < 2 or st.rate_per_s is None:
            return []
        gaps = np.diff(pts)
        i = int(np.argmax(gaps))
        gap, start = float(gaps[i]), float(pts[i])
        changes: list[Alert] = []
        limit = self._silence_limit(model, st.rate_per_s)
        if gap >= limit and not self.book.is_firing(key):
            changes += self._drop(model, st.rate_per_s, start, gap, limit)
        if self.book.is_firing(key):
            changes += self.book.resolve(key, now=float(pts[i + 1]) if gap >= limit
                                         else float(ts.min()))
        return changes

    def check_stale(self, now: float) -> list[Alert]:
        """traffic_drop on the wall clock, for the live daemon: a model whose events stop
        arriving while the daemon runs -- also when every model stops, which the
        event-time check (it needs some other model's events) cannot see."""
        changes: list[Alert] = []
        for model, st in list(self.models.items()):
            if st.rate_per_s is None or self.book.is_firing((model, "traffic_drop", None, None)):
                continue
            silent = now - self.arrived.get(model, self.started)
            limit = self._silence_limit(model, st.rate_per_s)
            if silent >= limit:
                changes += self._drop(model, st.rate_per_s, st.last_ts, silent, limit,
                                      clock="wall-clock")
        return self._emit(changes)

    def _silence_limit(self, model: str, rate_per_s: float) -> float:
        s = self.config.model(model).settings
        return silence_threshold(rate_per_s, s.alpha, s.traffic_gap_min_seconds)

    def _check_silence(self, active: set[str]) -> list[Alert]:
        """traffic_drop: a model silent, in event time, while the stream goes on."""
        changes: list[Alert] = []
        for model, st in self.models.items():
            if st.rate_per_s is None or model in active:
                continue
            gap = self.watermark - st.last_ts
            limit = self._silence_limit(model, st.rate_per_s)
            if gap >= limit and not self.book.is_firing((model, "traffic_drop", None, None)):
                changes += self._drop(model, st.rate_per_s, st.last_ts, gap, limit)
        return changes

    def _drop(self, model: str, rate: float, start: float, gap: float,
              limit: float, clock: str = "event time") -> list[Alert]:
        s = self.config.model(model).settings
        r = silence_test(gap, rate, min_seconds=s.traffic_gap_min_seconds)
        finding = Finding(
            kind="traffic_drop", model=model, model_version="unknown", detector=r.detector,
            statistic=gap, p_value=r.p_value, threshold=s.alpha, reference_n=0,
            current_n=0, window=(start, start + limit), severity="critical",
            summary=f"{model} stopped sending predictions",
            description=(f"no prediction from {model} for {gap:.0f}s of {clock}"
                         + (" while other models kept sending" if clock == "event time"
                            else " while driftwatch kept consuming")
                         + f" (reference rate {rate:.3g}/s; silences over {limit:.0f}s "
                         "are alerts)."),
            details={"gap_seconds": gap, "rate_per_s": rate, "clock": clock},
        )
        return self.book.update(model, [], attribute([finding]), now=start + limit)

    # -- outputs -----------------------------------------------------------
    def notify(self, changes: list[Alert]) -> list[Alert]:
        """Dispatch alert state changes raised outside the stream (the daemon's own)."""
        return self._emit(changes)

    def _emit(self, changes: list[Alert]) -> list[Alert]:
        if not changes:
            return []
        for a in changes:
            self.config.annotations.annotate(a)  # runbook / dashboard links
            if a.status == "firing":
                self.metrics.alert_started(a.labels)
            if (declared := declared_annotation(self.config.model(a.labels.get("model", "")))):
                a.annotations.setdefault("model_declared", declared)  # framework, size
        kept = self.dispatcher.submit(changes, (self.everyone or self.book.firing)())
        for a in kept:
            if a.muted_by is None:
                self.metrics.alert_changes.labels(a.labels.get("kind", ""),
                                                  a.labels.get("team", ""), a.status).inc()
            log.info("alert", extra={"status": a.status, "labels": a.labels,
                                     "muted_by": a.muted_by})
        if self.sink is not None and kept:
            self.sink(kept)
        return kept

    def _label_samples(self) -> Iterable[
            tuple[str, float | None, float | None, float | None, dict[str, float]]]:
        for model, w in list(self.perf.items()):
            d = self.join.delay_summary(model)
            cov = w.latest_coverage if w.latest_coverage is not None else \
                self.join.coverage(model)
            yield model, cov, d.p50, d.p95, dict(w.latest)

    def _version_samples(self) -> Iterable[Any]:
        return self.versions.samples()

    # -- state -------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"version": 1, "watermark": _finite_or_none(self.watermark),
                "decoder": self.decoder.to_state(),
                "book": self.book.to_state(),
                "models": {k: v.to_state() for k, v in self.models.items()},
                "join": self.join.to_state(), "expired_at": _finite_or_none(self._expired_at),
                "performance": {k: w.to_state() for k, w in self.perf.items()},
                "seen": sorted(self.seen), "invalid": self.invalid, "dropped": self.dropped,
                "versions": self.versions.to_state()}

    def load_state(self, s: dict[str, Any]) -> None:
        self.watermark = _or(s["watermark"], -math.inf)
        self.decoder.load_state(s["decoder"], [*s["models"], *s.get("seen", ()),
                                               *s.get("performance", {})])
        self.book = AlertBook.from_state(s["book"])
        self.models = {}
        for name, ms in s["models"].items():
            st = ModelState.from_state(ms)
            st.restore_seq(ms, self.config.model(name).settings)
            self.models[name] = st
        if s.get("join") is not None:  # states saved before labels were joined lack these
            self.join = self._new_join(s["join"])
        self._expired_at = _or(s.get("expired_at"), -math.inf)
        self.perf = {k: PerformanceWatch.from_state(w)
                     for k, w in s.get("performance", {}).items()}
        self.seen = set(s.get("seen", ())) | set(self.models) | set(self.perf)
        self.invalid = {k: int(v) for k, v in s.get("invalid", {}).items()}
        self.versions.load_state(s.get("versions"))
        self.dropped = {k: int(v) for k, v in s.get("dropped", {}).items()}

    def model_names(self) -> set[str]:
        """Every model this pipeline holds state or counts for."""
        return self.seen | set(self.models) | set(self.perf) | set(self.join.models)

    def counters_state(self) -> dict[str, list[list[Any]]]:
        """This pipeline's share of the stream counters (for its checkpoint)."""
        out = self.metrics.counters_state(self.model_names())
        out["invalid"] = [[{"reason": r}, float(n)] for r, n in sorted(self.invalid.items())]
        out["dropped"] = [[{"reason": r}, float(n)] for r, n in sorted(self.dropped.items())]
        return out
