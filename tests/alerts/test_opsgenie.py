"""Opsgenie Alert API v2 against a real local HTTP server: create, close, limits, secrets."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from alerts.receivers.base import GroupInfo
from alerts.receivers.opsgenie import OpsgenieNotifier
from tests.alerts.support import (
    FIRING,
    GROUP,
    RESOLVED,
    FakeReceiver,
    Reply,
    alert,
    assert_hidden,
    deliver_once,
)

KEY = "0psG3n1e-key-c0ffee-0123456789abcdef"  # a GenieKey: never echoed
ACCEPTED = Reply(202, b'{"result":"Request will be processed","took":0.1,"requestId":"r-1"}')


def make(server: FakeReceiver, **options: Any) -> OpsgenieNotifier:
    return OpsgenieNotifier({"api_key": KEY, "url": server.url(""), **options}, "r")


# The bodies Opsgenie's Alert API v2 expects, written out by hand.
CREATE = {
    "message": "[DataDrift] Input drift in 'age' of churn (feature=age)",
    "alias": "driftwatch-data-science-ddb77f338fd86131",
    "description": (
        "[FIRING] DataDrift · churn (feature=age)\n"
        "Input drift in 'age' of churn\n"
        "'age' of churn moved away from its reference.\n"
        "\n"
        f"Why data-science: {FIRING.annotations['attribution']}\n"
        "Evidence: detector=ks, statistic=0.21, p_value=1e-09, threshold=1e-05, "
        "reference_n=5000, current_n=2000, ref_mean=41, cur_mean=52.5\n"
        "Window: 2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z\n"
        "Started: 2026-11-22T10:00:00Z\n"
        "Labels: alertname=DataDrift, kind=data_drift, fault=model, team=data-science, "
        "model=churn, model_version=v3, severity=warning, feature=age"
    ),
    "responders": [
        {"type": "team", "name": "data-science"},
        {"type": "user", "username": "oncall@example.com"},
    ],
    "tags": [
        "driftwatch",
        "alertname:DataDrift",
        "kind:data_drift",
        "fault:model",
        "team:data-science",
        "model:churn",
        "model_version:v3",
        "severity:warning",
        "feature:age",
    ],
    "details": {
        "alertname": "DataDrift",
        "kind": "data_drift",
        "fault": "model",
        "team": "data-science",
        "model": "churn",
        "model_version": "v3",
        "severity": "warning",
        "feature": "age",
        "fingerprint": "ddb77f338fd86131",
    },
    "entity": "churn",
    "source": "driftwatch",
    "priority": "P3",
}
CLOSE_PATH = "/v2/alerts/driftwatch-data-science-194f89fa426e6bdb/close?identifierType=alias"
CLOSE = {
    "source": "driftwatch",
    "note": "Resolved at 2026-11-22T10:30:00Z: eta serves slower than its reference",
}


def test_create_and_close_golden(server: FakeReceiver) -> None:
    server.default = ACCEPTED
    responders = [
        {"type": "team", "name": "data-science"},
        {"type": "user", "username": "oncall@example.com"},
    ]
    n = make(server, responders=responders)
    assert n.send([FIRING], GROUP).ok and n.send([RESOLVED], GROUP).ok
    create, close = server.received()
    assert create.path == "/v2/alerts"
    assert create.headers["Authorization"] == f"GenieKey {KEY}"
    assert create.headers["Content-Type"] == "application/json"
    assert create.json() == CREATE
    assert close.path == CLOSE_PATH
    assert close.headers["Authorization"] == f"GenieKey {KEY}"
    assert close.json() == CLOSE


def test_alias_is_stable_so_the_close_finds_the_create(server: FakeReceiver) -> None:
    server.default = ACCEPTED
    kw: dict[str, Any] = dict(feature="age", summary="s")
    firing, resolved = alert("data_drift", **kw), alert("data_drift", "resolved", **kw)
    n = make(server)
    assert n.send([firing], GROUP).ok and n.send([firing], GROUP).ok  # a repeat: same alias
    assert n.send([resolved], GROUP).ok
    first, repeat, close = server.received()
    alias = first.json()["alias"]
    assert repeat.json()["alias"] == alias == f"driftwatch-data-science-{firing.fingerprint}"
    assert close.path == f"/v2/alerts/{alias}/close?identifierType=alias"


def test_a_group_is_one_request_per_alert_and_stops_at_the_first_failure(
    server: FakeReceiver,
) -> None:
    server.script(ACCEPTED, Reply(500, b"down"))
    alerts = [alert("data_drift", feature=f) for f in ("a", "b", "c")]
    r = make(server).send(alerts, GROUP)
    assert not r.ok and r.retriable and r.status == 500
    assert [q.json()["details"]["feature"] for q in server.received()] == ["a", "b"]


@pytest.mark.parametrize(
    ("severity", "option", "priority"),
    [("critical", None, "P1"), ("warning", None, "P3"), ("warning", "P2", "P2")],
)
def test_priority(server: FakeReceiver, severity: str, option: str | None, priority: str) -> None:
    server.default = ACCEPTED
    options = {"priority": option} if option else {}
    assert make(server, **options).send([alert("error_rate", severity=severity)], GROUP).ok
    body = server.received()[0].json()
    assert body["priority"] == priority and "responders" not in body


def test_fields_are_cut_to_opsgenie_limits(server: FakeReceiver) -> None:
    server.default = ACCEPTED
    long = alert(
        "data_drift",
        feature="f" * 300,
        segment="s" * 9000,
        summary="x" * 500,
        description="d" * 20000,
        details={f"extra_{i}": i for i in range(40)},
    )
    long.labels.update({f"label_{i}": "v" * 60 for i in range(30)})
    assert make(server).send([long], GroupInfo("r" * 600, "k", {})).ok
    body = server.received()[0].json()
    assert len(body["message"]) == 130 and body["message"].endswith("…")
    assert len(body["alias"]) == 512
    assert len(body["description"]) == 15000
    assert len(body["tags"]) == 20 and all(len(t) <= 50 for t in body["tags"])
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000


def test_secret_key_never_in_errors_or_logs(
    server: FakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = Reply(401, f'{{"message": "Key {KEY} is not valid"}}'.encode())
    n = make(server)
    r = n.send([FIRING], GROUP)
    assert server.received()[0].headers["Authorization"] == f"GenieKey {KEY}"
    assert not r.ok and not r.retriable and r.status == 401
    assert "HTTP 401" in r.error and "127.0.0.1" in r.error
    with caplog.at_level(logging.DEBUG):
        deliver_once(n, [FIRING])
    assert_hidden([KEY], r, caplog.records)
    assert KEY not in repr(n)
