"""Alertmanager API v2 push against a real local HTTP server: postable alerts, endsAt, secrets."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from alerts.receivers.alertmanager import AlertmanagerNotifier
from tests.alerts.support import (
    FIRING,
    GROUP,
    RESOLVED,
    T0,
    Clock,
    FakeReceiver,
    Reply,
    assert_hidden,
    deliver_once,
)

TOKEN = "am-b3arer-T0KEN-0123456789abcdef"


def make(url: str, clock: Clock | None = None, **options: Any) -> AlertmanagerNotifier:
    return AlertmanagerNotifier({"url": url, **options}, "r", clock=clock or Clock(T0 + 60))


# postableAlert objects as Alertmanager's OpenAPI spec defines them, written out by hand.
FIRING_POSTABLE = {
    "labels": {
        "alertname": "DataDrift",
        "kind": "data_drift",
        "fault": "model",
        "team": "data-science",
        "model": "churn",
        "model_version": "v3",
        "severity": "warning",
        "feature": "age",
    },
    "annotations": {
        "summary": "Input drift in 'age' of churn",
        "description": "'age' of churn moved away from its reference.",
        "attribution": FIRING.annotations["attribution"],
        "evidence": "detector=ks, statistic=0.21, p_value=1e-09, threshold=1e-05, "
        "reference_n=5000, current_n=2000, ref_mean=41, cur_mean=52.5",
    },
    "startsAt": "2026-11-22T10:00:00Z",
    "endsAt": "2026-11-22T16:01:00Z",  # sent at 10:01 + the default firing_ttl of 6h
    "generatorURL": "http://driftwatch.local:9108/api/alerts",
}
RESOLVED_POSTABLE = {
    "labels": {
        "alertname": "LatencyRegression",
        "kind": "latency_regression",
        "fault": "infrastructure",
        "team": "ml-engineering",
        "model": "eta",
        "model_version": "v8",
        "severity": "critical",
    },
    "annotations": {  # the empty description is left out
        "summary": "eta serves slower than its reference",
        "attribution": RESOLVED.annotations["attribution"],
        "evidence": "detector=mannwhitney, statistic=3.1, p_value=2e-07, threshold=1e-05, "
        "reference_n=5000, current_n=2000, new_version=v8",
    },
    "startsAt": "2026-11-22T10:00:00Z",
    "endsAt": "2026-11-22T10:30:00Z",  # the resolution time
    "generatorURL": "http://driftwatch.local:9108/api/alerts",
}


def test_postable_alerts_golden(server: FakeReceiver) -> None:
    n = make(server.url(""), external_url="http://driftwatch.local:9108")
    assert n.send([FIRING], GROUP).ok and n.send([RESOLVED], GROUP).ok
    firing, resolved = server.received()
    assert firing.path == resolved.path == "/api/v2/alerts"
    assert firing.headers["Content-Type"] == "application/json"
    assert "Authorization" not in firing.headers
    assert firing.json() == [FIRING_POSTABLE]
    assert resolved.json() == [RESOLVED_POSTABLE]


def test_a_group_is_one_post_of_every_alert(server: FakeReceiver) -> None:
    n = make(server.url("/prefix/"), external_url="http://driftwatch.local:9108")
    assert n.send([FIRING, RESOLVED], GROUP).ok
    (request,) = server.received()
    assert request.path == "/prefix/api/v2/alerts"
    assert request.json() == [FIRING_POSTABLE, RESOLVED_POSTABLE]


def test_firing_ends_at_follows_the_clock_and_firing_ttl(server: FakeReceiver) -> None:
    clock = Clock(T0 + 3600)
    n = make(server.url(""), clock, firing_ttl="30m")
    assert n.send([FIRING], GROUP).ok
    clock.advance(7200)  # a repeat two hours later pushes endsAt on
    assert n.send([FIRING], GROUP).ok
    first, repeat = (r.json()[0] for r in server.received())
    assert (first["startsAt"], first["endsAt"]) == ("2026-11-22T10:00:00Z", "2026-11-22T11:30:00Z")
    assert repeat["endsAt"] == "2026-11-22T13:30:00Z"
    assert "generatorURL" not in first  # no external_url: the optional field is left out


def test_bearer_token_is_sent_and_never_in_errors_or_logs(
    server: FakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = Reply(400, f'{{"message": "bad token {TOKEN}"}}'.encode())
    n = make(server.url(""), bearer_token=TOKEN)
    r = n.send([FIRING], GROUP)
    assert server.received()[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert not r.ok and not r.retriable and r.status == 400 and "<redacted>" in r.error
    with caplog.at_level(logging.DEBUG):
        deliver_once(n, [FIRING])
    assert_hidden([TOKEN], r, caplog.records)
    assert TOKEN not in repr(n)
