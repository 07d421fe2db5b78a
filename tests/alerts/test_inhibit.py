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


DRIFT = mk(alertname="DataDrift", fault="model", model="churn", feature="age")
DQ = mk(alertname="DataQuality", fault="infrastructure", model="churn", feature="age")
DQ_ETA = mk(alertname="DataQuality", fault="infrastructure", model="eta")
DQ_RESOLVED = mk("resolved", alertname="DataQuality", fault="infrastructure", model="churn")
LAT = mk(alertname="LatencyRegression", fault="infrastructure", model="churn")

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
        (DEFAULT_INHIBIT_RULES, DRIFT, [DQ], True),
        (DEFAULT_INHIBIT_RULES, DRIFT, [LAT], True),  # equal on model only
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
            [mk(alertname="DataDrift", fault="model", model="churn", feature="age")],
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
    assert Inhibitor(rules).inhibited(alert, firing) is expected


def test_muted_by_names_the_source() -> None:
    assert Inhibitor().muted_by(DRIFT, [DQ_ETA, LAT]) is LAT
    assert Inhibitor().muted_by(LAT, [DRIFT]) is None


def test_bad_matcher_in_a_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="is not of the form"):
        Inhibitor([InhibitRule(source_matchers=("nope",))])
