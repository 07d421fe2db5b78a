"""Attribution scenarios: model fault or infrastructure fault, and why."""

from __future__ import annotations

import orjson
import pytest

from alerts.attribution import Attributed, attribute, rank_features, to_alert
from alerts.model import KINDS, TEAM_FOR_FAULT
from tests.alerts.support import T0, finding


def by_kind(results: list[Attributed], kind: str, feature: str | None = None) -> Attributed:
    (hit,) = [r for r in results if r.finding.kind == kind and r.finding.feature == feature]
    return hit


def test_genuine_covariate_drift_is_a_model_fault() -> None:
    (a,) = attribute([finding("data_drift", feature="age")])
    assert (a.fault, a.team) == ("model", "data-science")
    assert "'age'" in a.reason
    assert "nothing seen points at a broken feed" in a.reason


def test_drift_with_data_quality_break_on_same_feature_is_infrastructure() -> None:
    dq = finding(
        "data_quality",
        feature="age",
        detector="null_rate",
        statistic=0.41,
        details={"ref_null_rate": 0.02, "cur_null_rate": 0.41},
    )
    results = attribute([finding("data_drift", feature="age"), dq])
    drift = by_kind(results, "data_drift", "age")
    assert (drift.fault, drift.team) == ("infrastructure", "ml-engineering")
    assert "'age'" in drift.reason
    assert "data-quality break" in drift.reason
    assert "null rate 0.02 → 0.41" in drift.reason
    assert "broken feed" in drift.reason
    quality = by_kind(results, "data_quality", "age")
    assert quality.fault == "infrastructure"
    assert "null rate 0.02 → 0.41" in quality.reason


def test_schema_violation_on_same_feature_overturns_drift_too() -> None:
    results = attribute(
        [
            finding("data_drift", feature="plan"),
            finding("schema_violation", feature="plan", summary="plan is a number"),
        ]
    )
    drift = by_kind(results, "data_drift", "plan")
    assert drift.fault == "infrastructure"
    assert "schema violation" in drift.reason and "plan is a number" in drift.reason


def test_data_quality_break_on_another_feature_does_not_overturn() -> None:
    results = attribute(
        [finding("data_drift", feature="age"), finding("data_quality", feature="income")]
    )
    assert by_kind(results, "data_drift", "age").fault == "model"


def test_drift_confined_to_one_segment_is_infrastructure() -> None:
    (a,) = attribute([finding("data_drift", feature="age", segment="host=pod-3")])
    assert (a.fault, a.team) == ("infrastructure", "ml-engineering")
    assert "host=pod-3" in a.reason and "'age'" in a.reason
    assert "other segments, which are shown close to the reference" in a.reason


def test_prediction_drift_confined_to_one_segment_is_infrastructure() -> None:
    (a,) = attribute([finding("prediction_drift", segment="hardware=t4")])
    assert a.fault == "infrastructure"
    assert "hardware=t4" in a.reason and "predictions" in a.reason


def test_latency_regression_after_a_deploy_names_the_version() -> None:
    (a,) = attribute(
        [
            finding(
                "latency_regression",
                model="eta",
                model_version="v8",
                detector="mannwhitney",
                details={"new_version": "v8"},
            )
        ]
    )
    assert (a.fault, a.team) == ("infrastructure", "ml-engineering")
    assert "deploy of v8" in a.reason and "latency" in a.reason


def test_latency_regression_without_deploy_has_default_reason() -> None:
    (a,) = attribute([finding("latency_regression", model="eta")])
    assert a.fault == "infrastructure"
    assert "no new model version" in a.reason


def test_error_rate_after_a_deploy_names_the_version() -> None:
    (a,) = attribute([finding("error_rate", details={"new_version": "v4"})])
    assert a.fault == "infrastructure" and "deploy of v4" in a.reason


def test_prediction_drift_after_deploy_on_unchanged_inputs_is_the_new_model() -> None:
    (a,) = attribute(
        [finding("prediction_drift", model_version="v4", details={"new_version": "v4"})]
    )
    assert (a.fault, a.team) == ("model", "data-science")
    assert a.reason == (
        "outputs shifted on unchanged inputs after deploy of v4: the new model behaves differently"
    )


def test_prediction_drift_with_input_drift_follows_the_inputs() -> None:
    results = attribute(
        [
            finding("prediction_drift", details={"new_version": "v4"}),
            finding("data_drift", feature="age", p_value=1e-12),
            finding("data_drift", feature="plan", detector="chi2", p_value=1e-6),
        ]
    )
    pred = by_kind(results, "prediction_drift")
    assert pred.fault == "model"
    assert "'age', 'plan'" in pred.reason  # strongest first
    assert "deploy" not in pred.reason


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_its_default_fault_and_a_reason(kind: str) -> None:
    (a,) = attribute([finding(kind)])
    assert a.fault == KINDS[kind][1]
    assert a.team == TEAM_FOR_FAULT[a.fault]
    assert a.reason and ":" in a.reason and "\n" not in a.reason


def test_attribute_keeps_order_and_does_not_mix_verdicts() -> None:
    fs = [
        finding("data_drift", feature="age"),
        finding("latency_regression"),
        finding("data_drift", feature="plan", segment="region=eu"),
    ]
    results = attribute(fs)
    assert [r.finding for r in results] == fs
    assert [r.fault for r in results] == ["model", "infrastructure", "infrastructure"]


def test_rank_features_strongest_first() -> None:
    fs = [
        finding("data_drift", feature="plan", p_value=1e-6, statistic=0.3),
        finding("data_drift", feature="age", p_value=1e-9, statistic=0.1),
        finding("data_drift", feature="income", p_value=1e-9, statistic=0.4),
        finding("data_drift", feature="tenure", p_value=None, statistic=0.9),
        finding("data_quality", feature="zip"),
        finding("prediction_drift", p_value=1e-30),
        finding("data_drift", feature="age", p_value=1e-3, segment="host=a"),
    ]
    assert rank_features(fs) == ["income", "age", "plan", "tenure"]


def test_to_alert_is_the_alert_contract() -> None:
    f = finding(
        "data_drift",
        feature="age",
        segment="host=pod-3",
        summary="Input drift",
        description="age moved",
        details={"ref_mean": 41.0, "cur_mean": 52.5},
    )
    (a,) = attribute([f])
    alert = to_alert(a, "firing", starts_at=T0, ends_at=None)
    assert alert.labels == {
        "alertname": "DataDrift",
        "kind": "data_drift",
        "fault": "infrastructure",
        "team": "ml-engineering",
        "model": "churn",
        "model_version": "v3",
        "severity": "warning",
        "feature": "age",
        "segment": "host=pod-3",
    }
    assert alert.annotations == {
        "summary": "Input drift",
        "description": "age moved",
        "attribution": a.reason,
    }
    assert alert.evidence == {
        "detector": "ks",
        "statistic": 0.21,
        "p_value": 1e-9,
        "threshold": 1e-5,
        "reference_n": 5000,
        "current_n": 2000,
        "window": ["2026-11-22T09:00:00Z", "2026-11-22T10:00:00Z"],
        "ref_mean": 41.0,
        "cur_mean": 52.5,
    }
    doc = alert.to_json()
    assert doc["startsAt"] == "2026-11-22T10:00:00Z" and doc["endsAt"] is None
    orjson.dumps(doc)  # serialisable as is


def test_to_alert_leaves_out_absent_feature_and_segment_and_keeps_base_evidence() -> None:
    np = pytest.importorskip("numpy")
    f = finding(
        "latency_regression",
        details={"detector": "shadow", "ref_p95": np.float64(80.0), "n": np.int64(3), "q": (1, 2)},
    )
    alert = to_alert(attribute([f])[0], "firing", starts_at=T0, ends_at=None)
    assert "feature" not in alert.labels and "segment" not in alert.labels
    assert alert.evidence["detector"] == "ks"  # details never override the base evidence
    assert alert.evidence["n"] == 3 and type(alert.evidence["n"]) is int
    assert alert.evidence["q"] == [1, 2]
    orjson.dumps(alert.to_json())
