"""The dashboards' per-model gauges: drift scores on one scale, alert states by model
with muted alerts apart, predictions by version, warm-up, contract and reference."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.config import DEFAULT_INHIBIT_RULES, InhibitRule
from detectors.budget import holm
from monitor.config.types import Config, Contract, ModelConfig, MonitorSettings
from monitor.model_metrics import holm_adjusted, window_score
from monitor.replay import replay
from monitor.simulate import DEMO_MODELS, Fault, stream, write_jsonl

SETTINGS = MonitorSettings(reference_events=2_000, window_events=1_000)
CONFIG = Config(defaults=SETTINGS, models=(
    ModelConfig("churn", task="binary_classification", settings=SETTINGS,
                contract=Contract(accuracy_min=0.7, latency_p95_ms=120, error_rate_max=0.01)),))


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.sampled_from([1e-5, 0.01, 0.05]))
@settings(max_examples=200, deadline=None)
def test_holm_adjusted_p_value_is_below_alpha_exactly_when_holm_rejects(ps, alpha) -> None:
    adjusted = holm_adjusted(ps)
    assert [a <= alpha for a in adjusted] == holm(ps, alpha)


@pytest.mark.parametrize(("p", "effect", "floor", "alarm"), [
    (1e-9, 0.2, 0.05, True),    # significant and large: past 1
    (1e-9, 0.04, 0.05, False),  # significant but below the effect floor
    (1e-3, 0.2, 0.05, False),   # large but not significant at alpha
    (1e-5, 0.05, 0.05, True),   # exactly at both thresholds: the alarm
    (1e-9, 0.0, 0.0, True),     # no effect floor: the p-value alone
])
def test_window_score_reaches_one_exactly_at_the_alarm(p, effect, floor, alarm) -> None:
    assert (window_score(p, effect, floor, 1e-5) >= 1.0 - 1e-12) is alarm


def _replay(tmp_path: Path, faults: list[Fault], n: int = 6_000, config: Config = CONFIG):
    path = tmp_path / "events.jsonl"
    events = stream(DEMO_MODELS, n, faults, seed=3)
    write_jsonl(str(path), events)
    return events, replay(config, [path])


def _series(registry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for m in registry.collect()
            for s in m.samples if s.name == name}


def test_drifting_feature_stands_out_on_the_score_and_raw_statistics_keep_units(
        tmp_path: Path) -> None:
    events, result = _replay(tmp_path, [Fault("churn", "shift", 3_500,
                                              {"feature": "age", "sigmas": 1.5})])
    r = result.registry
    score = {dict(k)["feature"]: v for k, v in _series(r, "driftwatch_drift_score").items()
             if dict(k)["model"] == "churn"}
    assert score["age"] >= 1.0, score
    others = {f: v for f, v in score.items() if f not in ("age", "__prediction__",
                                                          "__joint__")}
    assert others and max(others.values()) < 1.0, score
    ks = r.get_sample_value("driftwatch_drift_ks_statistic", {"model": "churn", "feature": "age"})
    assert ks is not None and 0.0 < ks <= 1.0  # a KS distance, not a chi-square
    chi2 = r.get_sample_value("driftwatch_drift_chi2_statistic",
                              {"model": "churn", "feature": "plan"})
    assert chi2 is not None and chi2 >= 0.0
    assert r.get_sample_value("driftwatch_drift_p_value",
                              {"model": "churn", "feature": "age", "detector": "ks"}) < 1e-5
    # predictions by version and status add up to the events
    for model in ("churn", "eta"):
        mine = [e for e in events if e["model"] == model]
        version = mine[0]["model_version"]
        ok = r.get_sample_value("driftwatch_predictions_total",
                                {"model": model, "model_version": version, "status": "ok"})
        err = r.get_sample_value("driftwatch_predictions_total",
                                 {"model": model, "model_version": version,
                                  "status": "error"}) or 0.0
        assert ok + err == len(mine)
        assert err == sum(1 for e in mine if e.get("status") == "error")
    starts = _series(r, "driftwatch_alert_starts_total")
    assert starts[(("fault", "model"), ("kind", "data_drift"), ("model", "churn"),
                   ("team", "data-science"))] >= 1
    # warm-up done, contract and reference beside the live values
    assert r.get_sample_value("driftwatch_reference_events", {"model": "churn"}) == 2_000
    assert r.get_sample_value("driftwatch_reference_events_required", {"model": "churn"}) == 2_000
    assert r.get_sample_value("driftwatch_model_contract",
                              {"model": "churn", "metric": "latency_p95_seconds"}) == 0.12
    ref_p95 = r.get_sample_value("driftwatch_model_reference",
                                 {"model": "churn", "metric": "latency_p95_seconds"})
    lat = np.array([e["latency_ms"] for e in events if e["model"] == "churn"][:2_000])
    assert ref_p95 == pytest.approx(np.quantile(lat, 0.95) / 1000)
    est = r.get_sample_value("driftwatch_performance_estimate",
                             {"model": "churn", "metric": "accuracy"})
    assert est is not None and 0.5 < est <= 1.0


def test_muted_alerts_are_suppressed_not_firing(tmp_path: Path) -> None:
    # one more inhibit rule: a model's input drift mutes its prediction drift; eta's
    # inputs and outputs drift (the outputs' alert muted), churn's outputs alone (notified)
    config = Config(defaults=SETTINGS, inhibit_rules=(*DEFAULT_INHIBIT_RULES, InhibitRule(
        ('kind="data_drift"',), ('kind="prediction_drift"',), ("model",))))
    _, result = _replay(tmp_path, [
        Fault("churn", "outputs", 3_000, {"shift": 1.0}),
        Fault("eta", "shift", 3_000, {"feature": "distance_km", "sigmas": 1.5})], config=config)
    r = result.registry
    firing = _series(r, "driftwatch_alerts_firing")
    suppressed = _series(r, "driftwatch_alerts_suppressed")
    live = {a.fingerprint: a for a in result.alerts}  # each alert's latest state
    now = [a for a in live.values() if a.status == "firing"]
    muted = [a for a in now if a.muted_by is not None]
    assert [(a.labels["model"], a.labels["kind"]) for a in muted] == [("eta", "prediction_drift")]
    assert sum(firing.values()) == len(now) - 1
    assert suppressed == {(("fault", "model"), ("kind", "prediction_drift"), ("model", "eta"),
                           ("reason", "inhibited"), ("team", "data-science")): 1.0}
    assert (("fault", "model"), ("kind", "prediction_drift"), ("model", "eta"),
            ("team", "data-science")) not in firing
    assert firing[(("fault", "model"), ("kind", "prediction_drift"), ("model", "churn"),
                   ("team", "data-science"))] == 1.0


def test_cusum_score_is_statistic_over_threshold_and_an_alarm_holds_its_ratio() -> None:
    from types import SimpleNamespace

    from monitor.model_metrics import sequential_scores
    from monitor.sequential import LATENCY, PREDICTION, SeqAlarm

    # streams: age, latency, predictions; state[direction, stream, k], h[stream, k]
    bank = SimpleNamespace(
        state=np.array([[[1.0, 3.0], [9.0, 9.0], [0.5, 0.0]],
                        [[2.0, 0.0], [0.0, 0.0], [0.0, 4.0]]]),
        h=np.array([[4.0, 10.0], [10.0, 10.0], [8.0, 5.0]]))
    rate = SimpleNamespace(kind="data_drift", feature="plan")
    rates = SimpleNamespace(state=np.array([2.0, 6.0]),
                            cusums=[(0, 0.2, 0.1, -0.1, 8.0), (0, 0.3, 0.2, -0.2, 12.0)])
    seq = SimpleNamespace(streams=["age", LATENCY, PREDICTION], bank=bank, rates=[rate],
                          rate_bank=rates)
    scores = sequential_scores(seq, [])
    # latency is no drift; each feature its largest CUSUM's statistic / threshold
    assert scores == {"age": 0.5, PREDICTION: 0.8, "plan": 0.5}
    alarm = SeqAlarm("data_drift", "age", 0.0, 13.0, 10.0, 0.05, 1, 0.0, 1.0)
    assert sequential_scores(seq, [alarm])["age"] == 1.3  # until its window closes


def test_consumer_lag_per_partition_from_the_fetch_state() -> None:
    from kafka import TopicPartition

    from monitor.config.types import KafkaConfig
    from monitor.sources.kafka import KafkaSource

    tps = [TopicPartition("predictions", 0), TopicPartition("predictions", 1),
           TopicPartition("labels", 0), TopicPartition("labels", 1)]
    highwater = {tps[0]: 120, tps[1]: 0, tps[2]: 50, tps[3]: None}

    class Consumer:
        def __init__(self, **_: object) -> None: ...
        def subscribe(self, **_: object) -> None: ...
        def assignment(self) -> set:
            return set(tps)
        def highwater(self, tp: TopicPartition) -> int | None:
            return highwater[tp]

    source = KafkaSource(KafkaConfig(), Consumer)
    # labels:0 has no known position yet (nothing processed, nothing checkpointed), and
    # labels:1 no high watermark yet: both left out; an empty partition lags 0
    assert source.lags({"predictions:0": 100, "labels:1": 7}) == {
        ("predictions", 0): 20, ("predictions", 1): 0}
