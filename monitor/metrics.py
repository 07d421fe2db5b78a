"""Prometheus metrics.  Every metric takes the injected ``registry``.

Counters are updated once per batch (``inc(n)``), never per event.  The
serving-latency histogram is accumulated with numpy per batch and exposed by a
collector at scrape time; so are drift scores, alert states, warm-up, contract
and reference values (:mod:`monitor.model_metrics`) and the consumer lag, read
from the pipelines' state when Prometheus asks.  docs/dashboards.md lists every
metric; a test keeps that list equal to what ``/metrics`` exposes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from monitor.model_metrics import LagCollector, ModelStateCollector
from monitor.versions import VersionCollector

log = logging.getLogger("driftwatch.metrics")

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyHistograms(Collector):
    """``driftwatch_serving_latency_seconds{model,model_version}`` filled in batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._edges = np.array(LATENCY_BUCKETS_S)
        self._data: dict[tuple[str, str], list[Any]] = {}  # -> [bucket counts, sum, count]

    def observe_many(self, model: str, versions: np.ndarray, latency_ms: np.ndarray) -> None:
        ok = np.isfinite(latency_ms)
        if not ok.any():
            return
        secs, vers = latency_ms[ok] / 1000.0, versions[ok]
        for version in set(vers.tolist()):
            v = secs[vers == version]
            counts = np.bincount(np.searchsorted(self._edges, v, side="left"),
                                 minlength=len(self._edges) + 1)
            with self._lock:
                entry = self._data.setdefault((model, str(version)),
                                              [np.zeros(len(self._edges) + 1, np.int64), 0.0, 0])
                entry[0] += counts
                entry[1] += float(v.sum())
                entry[2] += int(v.size)

    def forget_version(self, model: str, version: str) -> None:
        with self._lock:
            self._data.pop((model, version), None)

    def forget(self, models: set[str]) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] in models]:
                del self._data[key]

    def collect(self) -> Iterable[HistogramMetricFamily]:
        fam = HistogramMetricFamily("driftwatch_serving_latency_seconds",
                                    "Serving latency reported in prediction events.",
                                    labels=["model", "model_version"])
        with self._lock:
            items = [(k, v[0].copy(), v[1]) for k, v in self._data.items()]
        for (model, version), counts, total in items:
            cum = np.cumsum(counts)
            buckets = [(repr(e), float(c))
                       for e, c in zip(LATENCY_BUCKETS_S, cum[:-1], strict=True)]
            buckets.append(("+Inf", float(cum[-1])))
            fam.add_metric([model, version], buckets, total)
        yield fam


class LabelStateCollector(Collector):
    """Label and model-quality gauges, read from the pipeline at scrape time.

    ``samples()`` yields ``(model, coverage, delay_p50, delay_p95, {metric: value})``;
    None values are left out."""

    def __init__(self, samples: Callable[[], Iterable[
            tuple[str, float | None, float | None, float | None, dict[str, float]]]]) -> None:
        self._samples = samples

    def collect(self) -> Iterable[GaugeMetricFamily]:
        coverage = GaugeMetricFamily(
            "driftwatch_label_coverage",
            "Share of resolved predictions that got a label (latest coverage window; "
            "cumulative before the first).", labels=["model"])
        delay = GaugeMetricFamily(
            "driftwatch_label_delay_seconds",
            "Label delay (label ts - prediction ts) percentiles over the most recent joins.",
            labels=["model", "percentile"])
        perf = GaugeMetricFamily(
            "driftwatch_performance",
            "Model quality against ground truth in the latest performance window.",
            labels=["model", "metric"])
        for model, cov, p50, p95, values in self._samples():
            if cov is not None:
                coverage.add_metric([model], cov)
            if p50 is not None:
                delay.add_metric([model, "50"], p50)
            if p95 is not None:
                delay.add_metric([model, "95"], p95)
            for metric, value in sorted(values.items()):
                perf.add_metric([model, metric], value)
        yield coverage
        yield delay
        yield perf


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # no *_created series beside each counter: a gauge per series that no panel reads
        # (and whose presence would depend on which counters have counted yet)
        disable_created_metrics()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter("driftwatch_events", "Valid events consumed.",
                              ["model", "type"], registry=r)
        self.invalid = Counter("driftwatch_events_invalid", "Events rejected, by reason.",
                               ["reason"], registry=r)
        self.drops = Counter(
            "driftwatch_dropped",
            "Things past a [limits] cap (or defaults.max_features), dropped and not "
            "remembered, by reason.", ["reason"], registry=r)
        self._capped: set[str] = set()  # reasons already logged
        self.type_mismatches = Counter(
            "driftwatch_type_mismatches", "Feature values of the wrong type, dropped.",
            ["model", "feature"], registry=r)
        self.windows = Counter("driftwatch_windows_evaluated", "Windows evaluated.",
                               ["model"], registry=r)
        self.alert_changes = Counter("driftwatch_alert_state_changes",
                                     "Alert state changes after inhibition.",
                                     ["kind", "team", "status"], registry=r)
        self.muted = Counter("driftwatch_alerts_muted",
                             "Firing alerts not notified: inhibited by another alert or silenced.",
                             ["kind", "reason"], registry=r)
        self.notifications = Counter("driftwatch_notifications",
                                     "Notification attempts by receiver, integration and outcome.",
                                     ["receiver", "integration", "outcome"], registry=r)
        self.last_event = Gauge("driftwatch_last_event_timestamp_seconds",
                                "Event time of the newest event per model.", ["model"],
                                registry=r)
        self.batches = Counter("driftwatch_batches", "Batches processed.", ["source"],
                               registry=r)
        self.batch_errors = Counter(
            "driftwatch_batch_errors",
            "Batches the pipeline failed on (logged with a traceback; the daemon goes on).",
            ["source"], registry=r)
        self.labels_joined = Counter("driftwatch_labels_joined",
                                     "Labels joined to their prediction.", ["model"],
                                     registry=r)
        self.labels_expired = Counter(
            "driftwatch_labels_expired",
            "Join entries dropped: predictions never labelled (unlabelled), labels whose "
            "prediction never came (orphan), entries evicted by the memory bound (evicted).",
            ["model", "reason"], registry=r)
        self.checkpoint_time = Gauge(
            "driftwatch_last_checkpoint_timestamp_seconds",
            "When state and offsets were last stored together (0: never).", registry=r)
        self.checkpoint_failures = Counter(
            "driftwatch_checkpoint_failures", "Checkpoints the store refused (nothing committed).",
            registry=r)
        self.active = Gauge("driftwatch_active",
                            "1 while this daemon owns partitions and consumes them.",
                            registry=r)
        self.ready = Gauge("driftwatch_ready",
                           "1 while /readyz answers ready (assigned, connected, store up).",
                           registry=r)
        self.outbox_pending = Gauge(
            "driftwatch_outbox_pending",
            "Notifications waiting in the outbox (due or backing off; NaN: store down).",
            registry=r)
        self.predictions = Counter(
            "driftwatch_predictions", "Valid prediction events by model version and status "
            "(ok, error: serving failed).", ["model", "model_version", "status"], registry=r)
        self.alert_starts = Counter(
            "driftwatch_alert_starts",
            "Alerts that started firing (muted ones too): annotations on the dashboards.",
            ["model", "kind", "team", "fault"], registry=r)
        build = Info("driftwatch_build", "The running driftwatch.", registry=r)
        build.info({"version": _version(), "python_version": platform.python_version()})
        # the standard collectors, on this registry (the default one is not served)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._lags: dict[tuple[str, int], int] = {}
        r.register(LagCollector(self.lags))
        self.latency = LatencyHistograms()
        r.register(self.latency)
        # the pipelines whose state the scrape-time gauges read (a daemon runs one per
        # partition it owns): one collector over all of them, so each family is one
        self._sources: list[Any] = []
        self._sources_lock = threading.Lock()
        r.register(ModelStateCollector(self.pipelines))
        r.register(LabelStateCollector(self._each("_label_samples")))
        r.register(VersionCollector(self._each("_version_samples")))

    def track(self, pipeline: Any) -> None:
        """Read ``pipeline``'s drift, firing and label gauges at scrape time."""
        with self._sources_lock:
            self._sources.append(pipeline)

    def untrack(self, pipeline: Any) -> None:
        with self._sources_lock:
            self._sources = [p for p in self._sources if p is not pipeline]

    def pipelines(self) -> list[Any]:
        with self._sources_lock:
            return list(self._sources)

    def set_lags(self, lags: Mapping[tuple[str, int], int]) -> None:
        """The consumer lag per (topic, partition) as the consumer loop last saw it."""
        self._lags = dict(lags)

    def lags(self) -> dict[tuple[str, int], int]:
        return self._lags

    def set_outbox(self, pending: Callable[[], int]) -> None:
        """Read the outbox backlog at scrape time (NaN while the store cannot answer)."""
        def read() -> float:
            try:
                return float(pending())
            except Exception:
                return math.nan
        self.outbox_pending.set_function(read)

    def forget_version(self, model: str, version: str) -> None:
        """A version evicted by ``[limits] max_versions_per_model``: its series go."""
        self.latency.forget_version(model, version)
        for status in ("ok", "error"):
            with contextlib.suppress(KeyError):  # never counted with that status
                self.predictions.remove(model, version, status)

    def count_predictions(self, model: str, versions: np.ndarray, error: np.ndarray) -> None:
        """One batch's predictions of ``model``, by version and status."""
        err = np.asarray(error, dtype=bool)
        vers = np.asarray(versions).astype(str)
        for version in np.unique(vers).tolist():
            mine = vers == version
            n_err = int(np.count_nonzero(err & mine))
            n_ok = int(np.count_nonzero(mine)) - n_err
            if n_ok:
                self.predictions.labels(model, version, "ok").inc(n_ok)
            if n_err:
                self.predictions.labels(model, version, "error").inc(n_err)

    def alert_started(self, labels: Mapping[str, str]) -> None:
        self.alert_starts.labels(labels.get("model", ""), labels.get("kind", ""),
                                 labels.get("team", ""), labels.get("fault", "")).inc()

    def _each(self, method: str) -> Callable[[], Iterable[Any]]:
        def samples() -> Iterable[Any]:
            with self._sources_lock:
                sources = list(self._sources)
            for p in sources:
                yield from getattr(p, method)()
        return samples

    # counters that count the stream itself: part of a checkpoint, so that after a
    # restart they go on from the checkpoint instead of from zero (events replayed
    # since the checkpoint are then counted once, not twice)
    def _stream_counters(self) -> dict[str, Counter]:
        return {"events": self.events, "invalid": self.invalid, "dropped": self.drops,
                "predictions": self.predictions,
                "type_mismatches": self.type_mismatches, "windows": self.windows,
                "labels_joined": self.labels_joined, "labels_expired": self.labels_expired}

    def counters_state(self, models: set[str] | None = None) -> dict[str, list[list[Any]]]:
        """The stream counters' values; with ``models``, only the series of those models
        (and none without a model label)."""
        out: dict[str, list[list[Any]]] = {}
        for name, c in self._stream_counters().items():
            out[name] = [[dict(s.labels), s.value] for m in c.collect() for s in m.samples
                         if s.name.endswith("_total")
                         and (models is None or s.labels.get("model") in models)]
        return out

    def restore_counters(self, state: dict[str, list[list[Any]]]) -> None:
        """Add a checkpoint's counts to the stream counters (call on series this process
        has not counted yet: a fresh Metrics, or models it just took over)."""
        counters = self._stream_counters()
        for name, rows in state.items():
            c = counters.get(name)
            if c is None:
                continue
            for labels, value in rows:
                c.labels(**labels).inc(value)

    def forget_models(self, models: set[str]) -> None:
        """Drop every series of these models: another daemon owns them now and exports
        them (summed over daemons, each model is then counted once)."""
        for metric in (*self._stream_counters().values(), self.last_event):
            names = list(metric._labelnames)
            if "model" not in names:
                continue
            for fam in metric.collect():
                keys = {tuple(s.labels[n] for n in names) for s in fam.samples
                        if s.labels.get("model") in models}
                for key in keys:
                    metric.remove(*key)
        self.latency.forget(models)

    def dropped(self, reason: str, n: int) -> None:
        """Count ``n`` drops past a cap; the first drop of each reason is logged once."""
        self.drops.labels(reason).inc(n)
        if reason not in self._capped:
            self._capped.add(reason)
            from monitor.limits import DROP_REASONS

            log.warning("cap reached: dropping what is past it (counted in "
                        "driftwatch_dropped_total; logged once)",
                        extra={"reason": reason, "key": DROP_REASONS.get(reason, "")})

    def notification_result(self, receiver: str, integration: str, outcome: str) -> None:
        self.notifications.labels(receiver, integration, outcome).inc()


def _version() -> str:
    try:
        return metadata.version("driftwatch")
    except metadata.PackageNotFoundError:
        return "unknown"
