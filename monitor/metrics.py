"""Prometheus metrics.  Every metric takes the injected ``registry``.

Counters are updated once per batch (``inc(n)``), never per event.  The
serving-latency histogram is accumulated with numpy per batch and exposed by a
collector at scrape time; so are drift statistics and firing alerts, which are
read from the pipeline's state when Prometheus asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

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


class StateCollector(Collector):
    """Gauges read from the pipeline at scrape time through callbacks."""

    def __init__(self, drift: Callable[[], Iterable[tuple[str, str, str, float]]],
                 firing: Callable[[], Iterable[tuple[str, str, str]]]) -> None:
        self._drift = drift
        self._firing = firing

    def collect(self) -> Iterable[GaugeMetricFamily]:
        stat = GaugeMetricFamily(
            "driftwatch_drift_statistic",
            "Latest drift statistic per model and feature (KS distance or total variation).",
            labels=["model", "feature", "detector"])
        for model, feature, detector, value in self._drift():
            stat.add_metric([model, feature, detector], value)
        yield stat
        firing = GaugeMetricFamily("driftwatch_alerts_firing",
                                   "Alerts currently firing, by fault class, team and kind.",
                                   labels=["fault", "team", "kind"])
        counts: dict[tuple[str, str, str], int] = {}
        for key in self._firing():
            counts[key] = counts.get(key, 0) + 1
        for key, n in sorted(counts.items()):
            firing.add_metric(list(key), n)
        yield firing


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
            "Label delay (label ts - prediction ts) quantiles over the most recent joins.",
            labels=["model", "quantile"])
        perf = GaugeMetricFamily(
            "driftwatch_performance",
            "Model quality against ground truth in the latest performance window.",
            labels=["model", "metric"])
        for model, cov, p50, p95, values in self._samples():
            if cov is not None:
                coverage.add_metric([model], cov)
            if p50 is not None:
                delay.add_metric([model, "0.5"], p50)
            if p95 is not None:
                delay.add_metric([model, "0.95"], p95)
            for metric, value in sorted(values.items()):
                perf.add_metric([model, metric], value)
        yield coverage
        yield delay
        yield perf


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter("driftwatch_events", "Valid events consumed.",
                              ["model", "type"], registry=r)
        self.invalid = Counter("driftwatch_events_invalid", "Events rejected, by reason.",
                               ["reason"], registry=r)
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
                            "1 while this daemon holds its consumer group's lease and consumes.",
                            registry=r)
        self.latency = LatencyHistograms()
        r.register(self.latency)

    # counters that count the stream itself: part of a checkpoint, so that after a
    # restart they go on from the checkpoint instead of from zero (events replayed
    # since the checkpoint are then counted once, not twice)
    def _stream_counters(self) -> dict[str, Counter]:
        return {"events": self.events, "invalid": self.invalid,
                "type_mismatches": self.type_mismatches, "windows": self.windows,
                "labels_joined": self.labels_joined, "labels_expired": self.labels_expired}

    def counters_state(self) -> dict[str, list[list[Any]]]:
        out: dict[str, list[list[Any]]] = {}
        for name, c in self._stream_counters().items():
            out[name] = [[dict(s.labels), s.value] for m in c.collect() for s in m.samples
                         if s.name.endswith("_total")]
        return out

    def restore_counters(self, state: dict[str, list[list[Any]]]) -> None:
        """Set the stream counters to a checkpoint's values (call on a fresh Metrics)."""
        counters = self._stream_counters()
        for name, rows in state.items():
            c = counters.get(name)
            for labels, value in rows if c is not None else ():
                c.labels(**labels).inc(value)

    def attach_state(self, collector: Collector) -> None:
        self.registry.register(collector)

    def notification_result(self, receiver: str, integration: str, outcome: str) -> None:
        self.notifications.labels(receiver, integration, outcome).inc()
