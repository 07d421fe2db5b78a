"""Delayed labels through the real pipeline: performance_degradation and label_delay.

Streams are generated JSON lines (predictions and label events interleaved in
event-time order) fed to ``Pipeline.process_lines`` of an app from
``monitor.app.build``.  The prediction distribution never changes: only the
labels do, so no drift or serving detector has anything to say.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from detectors.bernoulli import rate_thresholds
from monitor.app import App, build
from monitor.config.types import Config, Contract, ModelConfig, MonitorSettings
from monitor.join import Joined
from monitor.performance_watch import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    Pairs,
    PerformanceWatch,
    infer_task,
    reference_size,
    window_size,
)
from tests.scenarios.judge import rounded

T0 = 1_800_000_000.0
INTERVAL = 0.1  # seconds of event time between predictions


def stream(n: int, accuracy: Callable[[np.ndarray], np.ndarray], *, seed: int = 0,
           delay: float = 60.0, label_frac: float = 1.0, label_stop: int | None = None,
           model: str = "churn") -> list[bytes]:
    """Binary classifier traffic: P(positive) ~ Beta(2, 2) (stationary), the label
    agrees with the thresholded prediction with probability ``accuracy(i)``; labels
    follow their prediction after an exponential delay (mean ``delay``; negative:
    the label comes first) and are merged into the stream in event-time order."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    ts = T0 + idx * INTERVAL
    p = rng.beta(2.0, 2.0, n).round(4)
    hat = p >= 0.5
    y = np.where(rng.random(n) < accuracy(idx), hat, ~hat).astype(int)
    labelled = rng.random(n) < label_frac
    if label_stop is not None:
        labelled &= idx < label_stop
    lts = ts + (np.sign(delay) * rng.exponential(abs(delay), n) if delay else 0.0)
    rows = [(t, 0, f'{{"id":"p{i}","model":"{model}","ts":{t!r},"prediction":{q!r},'
                   f'"latency_ms":20.0}}')
            for i, t, q in zip(idx.tolist(), ts.tolist(), p.tolist(), strict=True)]
    li = np.flatnonzero(labelled)
    rows += [(t, 1, f'{{"type":"label","id":"p{i}","model":"{model}","ts":{t!r},"label":{v}}}')
             for i, t, v in zip(li.tolist(), lts[li].tolist(), y[li].tolist(), strict=True)]
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2].encode() for r in rows]


def app_for(config: Config, ttl: float | None = None) -> App:
    if ttl is not None:  # label_ttl_seconds, in [defaults] and every [[models]]
        config = replace(
            config, defaults=replace(config.defaults, label_ttl_seconds=ttl),
            models=tuple(replace(m, settings=replace(m.settings, label_ttl_seconds=ttl))
                         for m in config.models))
    app = build(config, registry=CollectorRegistry(), notify=False)
    assert ttl is None or app.pipeline.join.ttl("churn") == ttl
    return app


def run(app: App, lines: list[bytes], chunk: int = 2_000) -> list[dict]:
    out = []
    for k in range(0, len(lines), chunk):
        out += [a.to_json() for a in app.pipeline.process_lines(lines[k:k + chunk])]
    return out


def sample(app: App, name: str, **labels: str) -> float | None:
    return app.metrics.registry.get_sample_value(name, labels)


def _epoch(rfc: str) -> float:
    return datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()


def step(before: float, after: float, at: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda i: np.where(i < at, before, after)


CONFIG = Config()  # reference_events=5000, window_events=2000: 2500-pair reference, 1000 windows
DROP = stream(30_000, step(0.9, 0.75, 15_000), seed=1)


def test_accuracy_drop_with_delayed_labels_fires_for_data_science() -> None:
    app = app_for(CONFIG, ttl=600)
    alerts = run(app, DROP)
    assert [(a["status"], a["labels"]["kind"]) for a in alerts] == [
        ("firing", "performance_degradation")]
    a = alerts[0]
    assert a["labels"]["team"] == "data-science" and a["labels"]["fault"] == "model"
    assert a["labels"]["severity"] == "warning"
    # the misclassification CUSUM fires first, pair by pair, before a window fills
    assert a["evidence"]["detector"] == "bernoulli_cusum"
    assert "wrong in the reference" in a["annotations"]["description"]
    # its evidence: the baseline the CUSUM was tuned on (at least the 2,500-pair
    # reference) and the labelled predictions of the excursion that raised it
    ev = a["evidence"]
    assert ev["reference_n"] >= 2_500 and ev["current_n"] > 0
    assert f"over the last {ev['current_n']:,} labelled predictions" in \
        a["annotations"]["description"]
    assert "ground truth" in a["annotations"]["attribution"]
    change = T0 + 15_000 * INTERVAL
    assert change <= _epoch(a["startsAt"]) <= change + 2_000 * INTERVAL
    assert a["labels"]["model"] == "churn"
    # metrics
    acc = sample(app, "driftwatch_performance", model="churn", metric="accuracy")
    assert acc is not None and 0.70 < acc < 0.80
    joined = sample(app, "driftwatch_labels_joined_total", model="churn")
    assert joined is not None and joined > 29_000
    p50 = sample(app, "driftwatch_label_delay_seconds", model="churn", percentile="50")
    p95 = sample(app, "driftwatch_label_delay_seconds", model="churn", percentile="95")
    assert p50 is not None and p95 is not None
    assert 35 < p50 < 50 and 150 < p95 < 215  # exponential, mean 60 s
    cov = sample(app, "driftwatch_label_coverage", model="churn")
    assert cov is not None and cov > 0.99


def test_stationary_labelled_stream_raises_nothing() -> None:
    app = app_for(CONFIG, ttl=600)
    lines = stream(200_000, lambda i: np.full(i.size, 0.85), seed=2, label_frac=0.8)
    assert run(app, lines, chunk=5_000) == []
    w = app.pipeline.perf["churn"]
    assert w.task == BINARY and w.windows >= 150
    # label coverage was tested too (partial labelling is not a label delay)
    assert w.expected_rate is not None and 0.78 < w.expected_rate < 0.82
    expired = sample(app, "driftwatch_labels_expired_total", model="churn", reason="unlabelled")
    assert expired is not None and expired > 30_000


def test_labels_that_stop_fire_label_delay_for_ml_engineering() -> None:
    app = app_for(CONFIG, ttl=600)
    lines = stream(40_000, lambda i: np.full(i.size, 0.9), seed=3, label_stop=20_000)
    alerts = run(app, lines)
    assert [(a["status"], a["labels"]["kind"]) for a in alerts] == [("firing", "label_delay")]
    a = alerts[0]
    assert a["labels"]["team"] == "ml-engineering" and a["labels"]["fault"] == "infrastructure"
    stop = T0 + 20_000 * INTERVAL
    # seen about one TTL after the labels stopped
    assert stop + 600 <= _epoch(a["startsAt"]) <= stop + 600 + 300
    assert a["evidence"]["cur_rate"] < 0.1
    cov = sample(app, "driftwatch_label_coverage", model="churn")
    assert cov is not None and cov < 0.1


def test_labels_that_resume_resolve_label_delay() -> None:
    app = app_for(CONFIG, ttl=600)
    lines = stream(40_000, lambda i: np.full(i.size, 0.9), seed=4, label_stop=20_000)
    # labels come back for the last 10k predictions
    later = stream(50_000, lambda i: np.full(i.size, 0.9), seed=4)
    resumed = [ln for ln in later if b'"type":"label"' in ln and int(
        json.loads(ln)["id"][1:]) >= 30_000]
    mixed = sorted(lines + [ln for ln in later if b'"type":"label"' not in ln
                            and int(json.loads(ln)["id"][1:]) >= 40_000] + resumed,
                   key=lambda ln: json.loads(ln)["ts"])
    alerts = run(app, mixed)
    assert [(a["status"], a["labels"]["kind"]) for a in alerts] == [
        ("firing", "label_delay"), ("resolved", "label_delay")]


def test_accuracy_under_contract_is_critical() -> None:
    churn = ModelConfig(name="churn", contract=Contract(accuracy_min=0.85),
                        settings=MonitorSettings())
    app = app_for(Config(models=(churn,)), ttl=600)
    alerts = run(app, stream(8_000, lambda i: np.full(i.size, 0.78), seed=5))
    assert alerts, "no alert"
    a = alerts[0]
    assert a["status"] == "firing" and a["labels"]["kind"] == "performance_degradation"
    assert a["labels"]["severity"] == "critical"
    assert a["evidence"]["detector"] == "accuracy_contract"
    assert "contract" in a["annotations"]["summary"]
    assert a["labels"]["team"] == "data-science"


@pytest.mark.parametrize("cut", [3, 17, 30, 41])  # in the reference, mid-stream, around the drop
def test_state_round_trip_mid_stream_gives_identical_alerts(cut: int) -> None:
    chunk = 1_500
    whole = run(app_for(CONFIG, ttl=600), DROP, chunk=chunk)
    assert whole
    app = app_for(CONFIG, ttl=600)
    out = run(app, DROP[:cut * chunk], chunk=chunk)
    saved = json.loads(json.dumps(app.pipeline.to_state(), allow_nan=False))
    assert saved["join"]["ttl_seconds"] == 600
    app = app_for(CONFIG)  # default TTL: the saved join state must bring 600 back
    app.pipeline.load_state(saved)
    out += run(app, DROP[cut * chunk:], chunk=chunk)
    assert out == whole


def test_labels_before_predictions_still_join() -> None:
    app = app_for(CONFIG, ttl=600)
    lines = stream(12_000, step(0.9, 0.7, 6_000), seed=6, delay=-30.0)
    assert json.loads(lines[0]).get("type") == "label"  # the stream opens with labels
    alerts = run(app, lines, chunk=500)
    counts = app.pipeline.join.counts("churn")
    assert counts["joined"] == 12_000 and counts["orphan_labels"] == 0
    assert [(a["status"], a["labels"]["kind"]) for a in alerts] == [
        ("firing", "performance_degradation")]


def test_unlabelled_models_stay_out_of_the_join() -> None:
    app = app_for(CONFIG)
    lines = [ln for ln in stream(3_000, lambda i: np.full(i.size, 0.9), seed=7)
             if b'"type":"label"' not in ln]
    assert run(app, lines) == []
    assert app.pipeline.join.models == [] and app.pipeline.perf == {}
    # only a bounded buffer of its recent predictions, for labels that may yet come
    assert app.pipeline.join.counts("churn")["early"] == 3_000


def test_labels_that_start_hours_late_join_the_predictions_made_before_them() -> None:
    """Labels 1 h after their predictions: the first hour of predictions waits in the
    early buffer and joins; the accuracy drop is found."""
    app = app_for(CONFIG, ttl=7_200)
    n = 60_000
    rng = np.random.default_rng(11)
    p = rng.beta(2.0, 2.0, n).round(4)
    y = np.where(rng.random(n) < np.where(np.arange(n) < 20_000, 0.9, 0.75), p >= 0.5,
                 p < 0.5).astype(int)
    rows = []
    for i in range(n):
        t = T0 + i * INTERVAL
        rows.append((t, f'{{"id":"p{i}","model":"churn","ts":{t!r},"prediction":{float(p[i])!r},'
                            f'"latency_ms":20.0}}'))
        rows.append((t + 3_600.0, f'{{"type":"label","id":"p{i}","model":"churn",'
                                  f'"ts":{t + 3_600.0!r},"label":{int(y[i])}}}'))
    rows.sort(key=lambda r: r[0])
    lines = [r[1].encode() for r in rows]
    alerts = run(app, lines, chunk=5_000)
    counts = app.pipeline.join.counts("churn")
    assert counts["joined"] == n and counts["orphan_labels"] == 0
    assert [(a["status"], a["labels"]["kind"]) for a in alerts] == [
        ("firing", "performance_degradation")]
    assert _epoch(alerts[0]["startsAt"]) >= T0 + 20_000 * INTERVAL


@pytest.mark.parametrize("lines", [
    pytest.param(stream(24_000, step(0.9, 0.7, 12_000), seed=12, delay=30.0), id="accuracy"),
    # no label in the first 30 s: the first label comes several small batches in
    pytest.param([ln for ln in stream(30_000, lambda i: np.full(i.size, 0.9), seed=13,
                                      delay=20.0, label_stop=12_000)
                  if b'"type":"label"' not in ln or json.loads(ln)["ts"] >= T0 + 30],
                 id="label_stop"),
])
def test_label_side_alerts_do_not_depend_on_the_batch_size(lines: list[bytes]) -> None:
    """The same stream in batches of 97, 1,000 and 20,000 lines: the same alerts (times,
    evidence, text), floats to 9 significant digits."""
    small = CONFIG.defaults
    cfg = replace(CONFIG, defaults=replace(small, reference_events=2_000,
                                           window_events=1_000))
    outs = [rounded(run(app_for(cfg, ttl=300), lines, chunk=c)) for c in (97, 1_000, 20_000)]
    assert outs[0], "no alert"
    assert outs[0] == outs[1] == outs[2]


# -- the watch on its own: tasks --------------------------------------------------------


def _joined(pred: np.ndarray, label: np.ndarray, pred_cls=None, label_cls=None,
            start: int = 0) -> Joined:
    n = len(pred)
    ts = T0 + np.arange(start, start + n, dtype=np.float64)
    none = np.full(n, None, dtype=object)
    return Joined("m", np.array([f"p{i}" for i in range(n)], dtype=object), ts, ts + 5,
                  np.asarray(pred, dtype=np.float64),
                  none if pred_cls is None else np.asarray(pred_cls, dtype=object),
                  np.asarray(label, dtype=np.float64),
                  none if label_cls is None else np.asarray(label_cls, dtype=object))


def _kinds(evs) -> list[tuple[str, str]]:
    return [(f.kind, f.detector) for ev in evs for f in ev.findings]


def test_regression_mae_rise_is_found() -> None:
    mcfg = ModelConfig(name="m")
    w = PerformanceWatch.build(mcfg)
    rng = np.random.default_rng(8)
    y = rng.normal(50, 10, 6_000)
    err = rng.normal(0, 2, 6_000) * np.where(np.arange(6_000) < 4_000, 1.0, 1.5)
    evs = w.add(_joined(y + err, y), mcfg)
    assert w.task == REGRESSION
    assert _kinds(evs) == [("performance_degradation", "mae")] * 2
    assert "MAE" in evs[-1].findings[0].description
    assert "(welch test against a rise of at most 5%, p=" in evs[-1].findings[0].description


def test_multiclass_accuracy_drop_and_invalid_rows() -> None:
    mcfg = ModelConfig(name="m")
    w = PerformanceWatch.build(mcfg)
    rng = np.random.default_rng(9)
    classes = np.array(["a", "b", "c"], dtype=object)
    y = rng.choice(classes, 6_000)
    right = rng.random(6_000) < np.where(np.arange(6_000) < 4_000, 0.9, 0.7)
    pred = np.where(right, y, rng.choice(classes, 6_000))
    pred[:10] = None  # missing predictions are dropped, never crash
    nan = np.full(6_000, np.nan)
    evs = w.add(_joined(nan, nan, pred, y), mcfg)
    assert w.task == MULTICLASS and w.invalid == 10
    assert ("performance_degradation", "accuracy") in _kinds(evs)
    acc = [f for ev in evs for f in ev.findings if f.detector == "accuracy"]
    assert "(z test against a drop of at most 0.01, p=" in acc[0].description


def test_sizes_and_task_inference() -> None:
    assert reference_size(5_000) == 2_500 and reference_size(100) == 200
    assert window_size(2_000) == 1_000 and window_size(50) == 200
    j = _joined(np.array([0.2, 0.9]), np.array([0.0, 1.0]))
    assert infer_task(Pairs.from_joined(j)) == BINARY
    j = _joined(np.array([0.2, 3.0]), np.array([0.0, 1.0]))
    assert infer_task(Pairs.from_joined(j)) == REGRESSION


def test_a_cusum_alarm_is_paged_once_even_when_windows_close_in_its_batch() -> None:
    """Alarms and windows leave the watch in prediction-time order: a window that ended
    before the alarm (closed in the same batch) must not resolve it, or the window that
    holds the alarm would fire it a second time."""
    app = app_for(CONFIG, ttl=600)
    alerts = run(app, DROP, chunk=20_000)  # ~10,000 events a batch: several windows each
    assert [(a["status"], a["labels"]["kind"]) for a in alerts] == [
        ("firing", "performance_degradation")]
    assert alerts[0]["evidence"]["detector"] == "bernoulli_cusum"


def _pairs(rng: np.random.Generator, start: int, wrong: np.ndarray) -> Joined:
    n = wrong.size
    ts = T0 + np.arange(start, start + n) * INTERVAL
    pred = rng.random(n)
    label = np.where(wrong, pred < 0.5, pred >= 0.5).astype(float)
    none = np.full(n, None, dtype=object)
    return Joined("churn", np.arange(start, start + n).astype(str).astype(object), ts,
                  ts + 1.0, pred, none, label, none.copy())


def test_alarms_and_windows_are_returned_in_prediction_time_order() -> None:
    w = PerformanceWatch.build(ModelConfig("churn", task=BINARY))
    rng = np.random.default_rng(4)
    ref = w.reference_n
    assert w.add(_pairs(rng, 0, rng.random(ref) < 0.1), CONFIG.model("churn")) == []
    wrong = rng.random(3 * w.window_n) < 0.1
    wrong[int(2.5 * w.window_n):] = True  # the last half window is all wrong
    evs = w.add(_pairs(rng, ref, wrong), CONFIG.model("churn"))
    kinds = ["alarm" if not e.evaluated else "window" for e in evs]
    # two clean windows, then the CUSUM's alarms (it restarts and alarms on), then the
    # window that holds them
    assert kinds[:2] == ["window", "window"] and kinds[-1] == "window"
    assert len(kinds) > 3 and set(kinds[2:-1]) == {"alarm"}
    assert [e.now for e in evs] == sorted(e.now for e in evs)
    assert any(f.detector == "bernoulli_cusum" for f in evs[-1].findings)  # folded in


def test_clean_windows_sharpen_the_misclassification_baseline_and_others_do_not() -> None:
    mcfg = CONFIG.model("churn")
    w = PerformanceWatch.build(ModelConfig("churn", task=BINARY))
    rng = np.random.default_rng(8)
    ref_wrong = rng.random(w.reference_n) < 0.1
    w.add(_pairs(rng, 0, ref_wrong), mcfg)
    assert w.errors is not None and w.baseline == [float(ref_wrong.sum()), w.reference_n]
    # thresholds keep the budget at the bound and on average over the rate's posterior
    p0, alts = w.errors.p0[0], w.errors.p1[0]
    assert [c[4] for c in w.errors.cusums] == rate_thresholds(
        p0, alts, w.errors.arl0[0], w.baseline)
    start, n = w.reference_n, w.reference_n
    for _ in range(3):  # clean windows join the baseline, the bound tightens
        more = rng.random(w.window_n) < 0.1
        w.add(_pairs(rng, start, more), mcfg)
        start += w.window_n
        n += w.window_n
        assert w.baseline is not None and w.baseline[1] == n
    assert w.errors.p0[0] < p0 and w.errors.counts[0] == w.baseline
    grown = list(w.baseline)
    bad = np.zeros(w.window_n, dtype=bool)
    bad[w.window_n // 2:] = True  # an alarm (and a failing window): nothing joins
    evs = w.add(_pairs(rng, start, bad), mcfg)
    assert any(f.kind == "performance_degradation" for e in evs for f in e.findings)
    assert w.baseline == grown
    # a state from before baselines loads: the CUSUMs keep their thresholds, no growth
    saved = json.loads(json.dumps(w.to_state()))
    del saved["baseline"]
    old = PerformanceWatch.from_state(saved)
    assert old.baseline is None and old.errors is not None
    cusums = list(old.errors.cusums)
    old.add(_pairs(rng, start + w.window_n, rng.random(w.window_n) < 0.1), mcfg)
    assert old.errors.cusums == cusums
    assert PerformanceWatch.from_state(json.loads(json.dumps(w.to_state()))).baseline == grown


def test_performance_text_names_the_inputs_drifting_and_never_calls_them_unchanged() -> None:
    from alerts.attribution import attribute
    from alerts.model import Finding

    app = app_for(CONFIG, ttl=600)
    alerts = run(app, DROP)
    text = alerts[0]["annotations"]["description"]
    assert "unchanged" not in text and "No drift alert is firing on its inputs" in text
    book = app.pipeline.book
    drift = Finding(kind="data_drift", model="churn", model_version="v1", detector="psi",
                    statistic=0.3, p_value=1e-9, threshold=1e-3, reference_n=100,
                    current_n=100, window=(T0, T0 + 10), summary="age drifted", feature="age")
    book.update("churn", [], attribute([drift]), now=T0 + 10)
    note = app.pipeline._inputs_note("churn", T0 + 20)
    assert "'age'" in note and "No drift" not in note
    # a drift that starts after the accuracy alarm is not claimed for it
    assert "No drift" in app.pipeline._inputs_note("churn", T0 + 5)
    assert "No drift" in app.pipeline._inputs_note("other", T0 + 20)
