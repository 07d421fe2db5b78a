"""Per-model gauges read from the pipelines at scrape time.

What a dashboard needs to answer "is it the model or the infrastructure, and
since when", in series whose values compare:

* ``driftwatch_drift_score{model,feature}``: how close each input (and the
  outputs, ``__prediction__``; the numeric inputs jointly, ``__joint__``) is to
  an alarm, 1.0 being the alarm, whichever detector gets closest: the latest
  window's tests (:func:`window_drift`) and the live CUSUMs
  (:func:`sequential_scores`) alike.
* the raw statistics, one metric per detector (each its own unit:
  ``driftwatch_drift_ks_statistic`` is a KS distance, ``..._chi2_statistic`` a
  chi-square) and the p-values, their own gauge.
* alert state: firing (notified) and suppressed (inhibited, silenced) by model.
* warm-up progress, and the contract and reference values beside the live ones.

Nothing here writes to a pipeline except the cached reference summary; every
read tolerates the pipeline thread changing state under it (copies first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.sequential import LATENCY, PREDICTION, stream_key

JOINT = "__joint__"  # the feature label of the joint (multivariate) drift test
DRIFT_KINDS = ("data_drift", "prediction_drift")
# the window drift detectors, each with its own statistic metric (its own unit)
DRIFT_DETECTORS: dict[str, str] = {
    "ks": "Kolmogorov-Smirnov distance D (0-1)",
    "cvm": "Cramer-von Mises two-sample statistic T",
    "ad": "Anderson-Darling k-sample statistic",
    "wasserstein": "Wasserstein-1 distance over the reference's scale",
    "psi": "population stability index of a numeric feature",
    "js": "Jensen-Shannon G statistic of a numeric feature",
    "hellinger": "Hellinger test statistic of a numeric feature",
    "chi2": "chi-square statistic over categories",
    "tv": "chi-square statistic of the total-variation test",
    "psi_cat": "population stability index of a categorical feature",
    "js_cat": "Jensen-Shannon G statistic of a categorical feature",
    "pca_reconstruction": "PCA reconstruction-error statistic of the numeric features",
    "mmd": "maximum mean discrepancy statistic of the numeric features",
    "cbpe_accuracy": "Welch t of the confidence-based accuracy estimate (CBPE)",
}
MIN_P = 1e-300  # p-values are floored here before their logarithm (score at most ~60/-log alpha)


def statistic_metric(detector: str) -> str:
    return f"driftwatch_drift_{detector}_statistic"


def drift_feature(kind: str, feature: str | None) -> str:
    """The ``feature`` label of a drift test or stream."""
    if feature is not None:
        return feature
    return PREDICTION if kind == "prediction_drift" else JOINT


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values: ``adjusted[i] <= alpha`` exactly when Holm's
    procedure at ``alpha`` rejects test ``i`` (:func:`detectors.budget.holm`)."""
    m = len(p_values)
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(np.argsort(np.asarray(p_values, dtype=float), kind="stable")):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[int(i)] = running
    return out


def window_score(p_adjusted: float, effect: float, min_effect: float, alpha: float) -> float:
    """A window test's distance to its alarm, 1.0 at the alarm: it alarms when its Holm
    adjusted p-value is at most ``alpha`` *and* its effect at least ``min_effect``, so
    the score is the smaller of ``log p / log alpha`` and ``effect / min_effect``."""
    p = min(1.0, max(MIN_P, p_adjusted))
    score = math.log(p) / math.log(alpha)
    if min_effect > 0:
        score = min(score, max(0.0, effect) / min_effect)
    return max(0.0, score)


def window_drift(results: list[tuple[Any, Any]], alpha: float
                 ) -> dict[tuple[str, str], tuple[float, float, float]]:
    """The drift tests of one evaluated window: (feature, detector) -> (statistic,
    p-value, score).  ``results`` are the window's ``(key, TestResult)``, every test of
    its Holm family, so the adjustment is the one the window's verdict used."""
    adjusted = holm_adjusted([float(r.p_value) for _, r in results])
    out: dict[tuple[str, str], tuple[float, float, float]] = {}
    for ((_, kind, feature, _), r), p_adj in zip(results, adjusted, strict=True):
        if kind not in DRIFT_KINDS:
            continue
        score = window_score(p_adj, float(r.effect), float(r.min_effect), alpha)
        out[(drift_feature(kind, feature), str(r.detector))] = (
            float(r.statistic), float(r.p_value), score)
    return out


def sequential_scores(seq: Any, pending: Iterable[Any]) -> dict[str, float]:
    """The live CUSUMs' distance to an alarm per drift feature, 1.0 at the alarm: the
    largest ``statistic / threshold`` among each feature's CUSUMs (a CUSUM that alarmed
    restarts from zero, so an alarm still waiting for its window's close -- ``pending``,
    ``ModelState.seq_alarms`` -- holds its own ratio until then)."""
    out: dict[str, float] = {}

    def put(kind: str, feature: str | None, value: float) -> None:
        if kind in DRIFT_KINDS and math.isfinite(value):
            f = drift_feature(kind, feature)
            out[f] = max(out.get(f, 0.0), value)

    if seq is not None:
        bank = seq.bank
        if bank is not None:
            ratio = np.max(np.asarray(bank.state) / np.asarray(bank.h)[None, :, :], axis=(0, 2))
            for stream, value in zip(list(seq.streams), ratio.tolist(), strict=False):
                if stream != LATENCY:
                    put(*stream_key(stream), float(value))
        rates = seq.rate_bank
        if rates is not None:
            state = np.asarray(rates.state)
            for i, row in enumerate(list(rates.cusums)[:state.size]):
                r = seq.rates[row[0]]
                put(r.kind, r.feature, float(state[i]) / row[4])
    for a in list(pending):
        if a.threshold > 0:
            put(a.kind, a.feature, a.statistic / a.threshold)
    return out


def reference_values(ref: Any) -> dict[str, float]:
    """Serving latency quantiles (seconds) and error rate of a reference's rows."""
    out: dict[str, float] = {}
    lat = np.asarray(ref.latency_ms, dtype=float)
    lat = lat[np.isfinite(lat)]
    if lat.size:
        for q, name in ((0.5, "latency_p50_seconds"), (0.95, "latency_p95_seconds"),
                        (0.99, "latency_p99_seconds")):
            out[name] = float(np.quantile(lat, q)) / 1000.0
    if ref.n:
        out["error_rate"] = float(np.asarray(ref.error, dtype=float).mean())
    return out


def _model_reference(st: Any) -> dict[str, float]:
    """The model's reference summary, computed once its reference is full (and kept on
    the model's state; the pipeline compacts a full reference to one chunk itself)."""
    cached = getattr(st, "_reference_values", None)
    if cached is not None:
        return dict(cached)
    frame = st.windows.reference
    if not st.windows.reference_ready or len(frame.chunks) != 1:
        return {}
    values = reference_values(frame.chunks[0])
    st._reference_values = values
    return dict(values)


def contract_values(contract: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    if contract.accuracy_min is not None:
        out["accuracy"] = float(contract.accuracy_min)
    if contract.latency_p95_ms is not None:
        out["latency_p95_seconds"] = float(contract.latency_p95_ms) / 1000.0
    if contract.error_rate_max is not None:
        out["error_rate"] = float(contract.error_rate_max)
    return out


def _firing(pipeline: Any) -> list[Any]:
    """The pipeline's firing alerts; the book may change under a scrape (its dict read
    in Python code): read again then."""
    for _ in range(5):
        try:
            return list(pipeline.book.firing())
        except RuntimeError:  # dictionary changed size during iteration
            continue
    return []


def _suppressed(pipeline: Any) -> dict[tuple[str, float], str]:
    """The alerts the dispatcher holds muted: (fingerprint, startsAt) -> reason."""
    return {(a.fingerprint, a.starts_at):
            "inhibited" if "inhibited_by" in (a.muted_by or {}) else "silenced"
            for a in pipeline.dispatcher.muted()}


class ModelStateCollector(Collector):
    """Every per-model gauge of the pipelines ``pipelines()`` returns."""

    def __init__(self, pipelines: Callable[[], list[Any]]) -> None:
        self._pipelines = pipelines

    def collect(self) -> Iterable[GaugeMetricFamily]:
        score = GaugeMetricFamily(
            "driftwatch_drift_score",
            "How close each feature is to a drift alarm (1 = alarm), the largest of the "
            "latest window's tests (Holm-adjusted p-value and effect against their floors) "
            "and the live CUSUMs (statistic / threshold).", labels=["model", "feature"])
        p_value = GaugeMetricFamily(
            "driftwatch_drift_p_value",
            "p-value of the latest window's drift test (unadjusted).",
            labels=["model", "feature", "detector"])
        stats = {d: GaugeMetricFamily(
            statistic_metric(d), f"Latest window's drift statistic: {text}.",
            labels=["model", "feature"]) for d, text in DRIFT_DETECTORS.items()}
        firing = GaugeMetricFamily(
            "driftwatch_alerts_firing",
            "Alerts firing and notified (not inhibited nor silenced).",
            labels=["model", "kind", "team", "fault"])
        suppressed = GaugeMetricFamily(
            "driftwatch_alerts_suppressed",
            "Alerts firing but muted: inhibited by another alert or silenced.",
            labels=["model", "kind", "team", "fault", "reason"])
        collected = GaugeMetricFamily(
            "driftwatch_reference_events",
            "Prediction events in the model's reference so far (warm-up).", labels=["model"])
        needed = GaugeMetricFamily(
            "driftwatch_reference_events_required",
            "Prediction events the model's reference needs before any test runs.",
            labels=["model"])
        contract = GaugeMetricFamily(
            "driftwatch_model_contract",
            "The model's contract (accuracy: minimum; latency_p95_seconds, error_rate: "
            "maximum).", labels=["model", "metric"])
        reference = GaugeMetricFamily(
            "driftwatch_model_reference",
            "The same measures over the model's reference (labels: its performance "
            "reference; estimated_accuracy: CBPE on the reference's scores).",
            labels=["model", "metric"])
        estimate = GaugeMetricFamily(
            "driftwatch_performance_estimate",
            "Label-free performance estimate of the latest window (CBPE accuracy of a "
            "binary classifier, from its own probabilities).", labels=["model", "metric"])
        alerts: dict[tuple[str, ...], int] = {}
        muted: dict[tuple[str, ...], int] = {}
        for p in self._pipelines():
            held = _suppressed(p)
            for a in _firing(p):
                lab = a.labels
                key = (lab.get("model", ""), lab.get("kind", ""), lab.get("team", ""),
                       lab.get("fault", ""))
                why = held.get((a.fingerprint, a.starts_at))
                if why is None:
                    alerts[key] = alerts.get(key, 0) + 1
                else:
                    muted[(*key, why)] = muted.get((*key, why), 0) + 1
            perf = dict(p.perf)
            for model, st in list(p.models.items()):
                mcfg = p.config.model(model)
                collected.add_metric([model], float(min(st.windows.reference.n,
                                                        st.windows.reference_events)))
                needed.add_metric([model], float(st.windows.reference_events))
                scores = sequential_scores(st.seq, st.seq_alarms)
                for (feature, detector), (stat, p_val, s) in sorted(dict(st.drift).items()):
                    scores[feature] = max(scores.get(feature, 0.0), s)
                    if detector in stats and math.isfinite(stat):
                        stats[detector].add_metric([model, feature], stat)
                    if math.isfinite(p_val):
                        p_value.add_metric([model, feature, detector], p_val)
                for feature, s in sorted(scores.items()):
                    score.add_metric([model, feature], s)
                for metric, v in sorted(contract_values(mcfg.contract).items()):
                    contract.add_metric([model, metric], v)
                ref = _model_reference(st)
                w = perf.get(model)
                if w is not None and w.reference:
                    ref.update({k: float(v) for k, v in w.reference.items()
                                if isinstance(v, int | float) and k in w.latest})
                est = dict(st.estimate)
                if "reference" in est:
                    ref["estimated_accuracy"] = est.pop("reference")
                for metric, v in sorted(ref.items()):
                    if math.isfinite(v):
                        reference.add_metric([model, metric], v)
                for metric, v in sorted(est.items()):
                    estimate.add_metric([model, metric], v)
        for labels, n in sorted(alerts.items()):
            firing.add_metric(list(labels), n)
        for labels, n in sorted(muted.items()):
            suppressed.add_metric(list(labels), n)
        yield score
        yield p_value
        yield from stats.values()
        yield firing
        yield suppressed
        yield collected
        yield needed
        yield contract
        yield reference
        yield estimate


class LagCollector(Collector):
    """``driftwatch_kafka_consumer_lag{topic,partition}``: messages in each assigned
    partition past the last one processed, as the consumer loop last saw them."""

    def __init__(self, lags: Callable[[], dict[tuple[str, int], int]]) -> None:
        self._lags = lags

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "driftwatch_kafka_consumer_lag",
            "Messages in each assigned partition not processed yet (high watermark - "
            "position), as of the consumer's last fetch.", labels=["topic", "partition"])
        for (topic, partition), lag in sorted(self._lags().items()):
            fam.add_metric([topic, str(partition)], float(lag))
        yield fam
