"""Inhibitor decision table (Alertmanager semantics)."""

from __future__ import annotations

import pytest

from alerts.config import DEFAULT_INHIBIT_RULES, InhibitRule
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from tests.alerts.support import T0


def mk(status: str = "firing", **labels: str) -> Alert:
    return Alert(
        labels=labels, annotations={}, status=status, starts_at=T0, ends_at=None, evidence={}
    )


DRIFT = mk(alertname="DataDrift", kind="data_drift", fault="model", model="churn", feature="age")
DRIFT_PLAN = mk(alertname="DataDrift", kind="data_drift", fault="model", model="churn",
                feature="plan")
PRED = mk(alertname="PredictionDrift", kind="prediction_drift", fault="model", model="churn")
PERF = mk(alertname="PerformanceDegradation", kind="performance_degradation", fault="model",
          model="churn")
DQ = mk(alertname="DataQuality", kind="data_quality", fault="infrastructure", model="churn",
        feature="age")
DQ_ETA = mk(alertname="DataQuality", kind="data_quality", fault="infrastructure", model="eta")
DQ_RESOLVED = mk("resolved", alertname="DataQuality", kind="data_quality",
                 fault="infrastructure", model="churn", feature="age")
LAT = mk(alertname="LatencyRegression", kind="latency_regression", fault="infrastructure",
         model="churn")
ERR = mk(alertname="ErrorRate", kind="error_rate", fault="infrastructure", model="churn")
DROP = mk(alertname="TrafficDrop", kind="traffic_drop", fault="infrastructure", model="churn")
LABELS = mk(alertname="LabelDelay", kind="label_delay", fault="infrastructure", model="churn")

FEATURE_RULE = InhibitRule(
    source_matchers=('alertname="DataQuality"',),
    target_matchers=('alertname=~"DataDrift|PredictionDrift"',),
    equal=("model", "feature"),
)
SELF_RULE = InhibitRule(source_matchers=('model="churn"',), target_matchers=('model="churn"',))
MISSING_RULE = InhibitRule(
    source_matchers=('fault="infrastructure"',),
    target_matchers=('fault="model"',),
    equal=("segment",),
)


@pytest.mark.parametrize(
    ("rules", "alert", "firing", "expected"),
    [
        (DEFAULT_INHIBIT_RULES, DRIFT, [DQ], True),  # a broken feed in the same feature
        # ... not a prediction drift still called a model fault: attribution sends outputs
        # that moved with a break to ML as its symptom; one it keeps was shown not the break's
        (DEFAULT_INHIBIT_RULES, PRED, [DQ], False),
        (DEFAULT_INHIBIT_RULES, PERF, [DQ], True),
        (DEFAULT_INHIBIT_RULES, DRIFT_PLAN, [DQ], False),  # ... not another input's drift
        (DEFAULT_INHIBIT_RULES, DRIFT, [LAT], False),  # a slow server explains no drift
        (DEFAULT_INHIBIT_RULES, PRED, [ERR], False),
        (DEFAULT_INHIBIT_RULES, DRIFT, [DROP], True),  # a dead feed: all of the model's data
        (DEFAULT_INHIBIT_RULES, PERF, [LABELS], True),  # labels that stop: what they measure
        (DEFAULT_INHIBIT_RULES, DRIFT, [LABELS], False),
        (DEFAULT_INHIBIT_RULES, DRIFT, [DQ_ETA], False),  # another model
        (DEFAULT_INHIBIT_RULES, DRIFT, [], False),
        (DEFAULT_INHIBIT_RULES, DRIFT, [DRIFT], False),
        (DEFAULT_INHIBIT_RULES, DQ, [DRIFT, LAT], False),  # not a target
        (DEFAULT_INHIBIT_RULES, DRIFT, [DQ_RESOLVED], False),  # source must be firing
        ((), DRIFT, [DQ], False),
        ((FEATURE_RULE,), DRIFT, [DQ], True),
        ((FEATURE_RULE,), DRIFT, [LAT], False),
        ((FEATURE_RULE,), mk(alertname="DataDrift", model="churn", feature="plan"), [DQ], False),
        ((SELF_RULE,), DRIFT, [DRIFT], False),  # never inhibits itself
        (
            (SELF_RULE,),
            DRIFT,
            [mk(alertname="DataDrift", kind="data_drift", fault="model", model="churn",
                feature="age")],
            False,
        ),  # an equal copy is itself
        ((SELF_RULE,), DRIFT, [DRIFT, LAT], True),
        ((MISSING_RULE,), DRIFT, [DQ], True),  # segment absent on both: equal
        ((MISSING_RULE,), DRIFT, [mk(fault="infrastructure", segment="host=a")], False),
        ((DEFAULT_INHIBIT_RULES[0], FEATURE_RULE), DRIFT, [DQ_ETA, DQ], True),
    ],
)
def test_inhibited(
    rules: tuple[InhibitRule, ...], alert: Alert, firing: list[Alert], expected: bool
) -> None:
    assert (Inhibitor(rules).muted_by(alert, firing) is not None) is expected


def test_a_source_mutes_only_while_it_fires_at_the_targets_start() -> None:
    later = mk(alertname="DataQuality", kind="data_quality", fault="infrastructure",
               model="churn", feature="age")
    later.starts_at = T0 + 1
    assert Inhibitor().muted_by(DRIFT, [later]) is None
    assert Inhibitor().muted_by(DRIFT, [later], at=T0 + 1) is not None  # judged at a later time
    ended = mk("resolved", alertname="DataQuality", kind="data_quality",
               fault="infrastructure", model="churn", feature="age")
    ended.starts_at, ended.ends_at = T0 - 10, T0 + 10
    assert Inhibitor().muted_by(DRIFT, [ended]) is not None
    assert Inhibitor().muted_by(DRIFT, [ended], at=T0 + 10) is None


def test_muted_by_names_the_source() -> None:
    assert Inhibitor().muted_by(DRIFT, [DQ_ETA, LAT, DQ]) is DQ
    assert Inhibitor().muted_by(LAT, [DRIFT]) is None


def test_bad_matcher_in_a_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="is not of the form"):
        Inhibitor([InhibitRule(source_matchers=("nope",))])
