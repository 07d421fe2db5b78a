"""Receivers against a real local HTTP server: golden payloads, status table, secrets."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.config import IntegrationConfig, ReceiverConfig
from alerts.receivers import Notifier, OptionError, build_notifiers
from alerts.receivers.alertmanager import AlertmanagerNotifier
from alerts.receivers.file import FileNotifier
from alerts.receivers.http import parse_retry_after, redact_url
from alerts.receivers.msteams import MSTeamsNotifier
from alerts.receivers.opsgenie import OpsgenieNotifier
from alerts.receivers.pagerduty import PagerDutyNotifier
from alerts.receivers.slack import SlackNotifier
from alerts.receivers.webhook import WebhookNotifier
from tests.alerts.support import FIRING, GROUP, RESOLVED, T0, FakeReceiver, Reply, alert

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DRIFTWATCH_UPDATE_GOLDEN") == "1"

KEY = "R0UT1NGKEYc0ffee0123456789abcdef"  # a PagerDuty routing key: never echoed
SLACK_PATH = "/services/T0SECRET1/B0SECRET2/XXXXsecretTOKENXXXX"


def golden(name: str, got: Any) -> None:
    """Compare with tests/alerts/golden/<name>.json (DRIFTWATCH_UPDATE_GOLDEN=1 rewrites)."""
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_bytes(orjson.dumps(got, option=orjson.OPT_INDENT_2) + b"\n")
    assert orjson.loads(path.read_bytes()) == got


def make(kind: str, url: str, **options: Any) -> Notifier:
    if kind == "pagerduty":
        return PagerDutyNotifier({"routing_key": KEY, "url": url, **options}, "r")
    if kind == "opsgenie":
        return OpsgenieNotifier({"api_key": KEY, "url": url, **options}, "r")
    if kind == "slack":
        return SlackNotifier({"url": url, **options}, "r")
    if kind == "msteams":
        return MSTeamsNotifier({"url": url, **options}, "r")
    if kind == "alertmanager":
        return AlertmanagerNotifier({"url": url, **options}, "r")
    return WebhookNotifier({"url": url, **options}, "r")


HTTP_KINDS = ["webhook", "slack", "pagerduty", "opsgenie", "msteams", "alertmanager"]


# -- golden payloads ----------------------------------------------------------
def test_webhook_payload(server: FakeReceiver) -> None:
    n = make("webhook", server.url("/hook"), external_url="http://driftwatch.local:9108")
    assert n.send([FIRING], GROUP).ok and n.send([RESOLVED], GROUP).ok
    first, second = server.received()
    assert first.path == "/hook" and first.headers["Content-Type"] == "application/json"
    golden("webhook", {"firing": first.json(), "resolved": second.json()})
    body = first.json()
    assert body["version"] == "4" and body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert body["alerts"][0]["evidence"]["detector"] == "ks"


def test_webhook_max_alerts_truncates(server: FakeReceiver) -> None:
    alerts = [alert("data_drift", feature=f) for f in ("a", "b", "c")]
    alerts.append(alert("data_drift", "resolved", feature="d"))
    assert make("webhook", server.url(), max_alerts=2).send(alerts, GROUP).ok
    body = server.received()[0].json()
    assert [a["labels"]["feature"] for a in body["alerts"]] == ["a", "b"]
    assert body["truncatedAlerts"] == 2 and body["status"] == "firing"
    assert body["commonLabels"]["model"] == "churn" and "feature" not in body["commonLabels"]


def test_slack_payload(server: FakeReceiver) -> None:
    n = make("slack", server.url(SLACK_PATH), channel="#ds-oncall", username="driftwatch")
    assert n.send([FIRING], GROUP).ok and n.send([RESOLVED], GROUP).ok
    first, second = server.received()
    assert first.path == SLACK_PATH
    golden("slack", {"firing": first.json(), "resolved": second.json()})
    why = first.json()["blocks"][2]["text"]["text"]
    assert why == f"*Why data-science:* {FIRING.annotations['attribution']}"
    assert first.json()["text"].startswith("[FIRING] DataDrift · churn feature=age:")


def test_pagerduty_events(server: FakeReceiver) -> None:
    server.default = Reply(202, b'{"status":"success","dedup_key":"x"}')
    n = make("pagerduty", server.url("/v2/enqueue"))
    assert n.send([FIRING], GROUP).ok and n.send([RESOLVED], GROUP).ok
    trigger, resolve = (r.json() for r in server.received())
    golden("pagerduty", {"trigger": trigger, "resolve": resolve})
    assert trigger["dedup_key"] == FIRING.fingerprint
    assert set(resolve) == {"routing_key", "event_action", "dedup_key"}


def test_pagerduty_summary_is_capped_and_severity_can_be_overridden(server: FakeReceiver) -> None:
    server.default = Reply(202)
    long = alert("data_drift", summary="x" * 5000)
    assert make("pagerduty", server.url(), severity="info").send([long], GROUP).ok
    payload = server.received()[0].json()["payload"]
    assert len(payload["summary"]) == 1024 and payload["severity"] == "info"


def test_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "alerts.jsonl"
    n = FileNotifier({"path": str(path)})
    assert n.send([FIRING], GROUP).ok and n.send([RESOLVED], GROUP).ok
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    golden("file", lines)
    assert lines == [FIRING.to_json(), RESOLVED.to_json()]


def test_file_write_error_is_retriable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    r = FileNotifier({"path": str(blocker / "alerts.jsonl")}).send([FIRING], GROUP)
    assert not r.ok and r.retriable


# -- status table ---------------------------------------------------------------
@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize(
    ("status", "ok", "retriable"),
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (500, False, True),
        (502, False, True),
        (503, False, True),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (422, False, False),
        (302, False, False),
        (408, False, True),
        (425, False, True),
    ],
)
def test_status_table(
    server: FakeReceiver, kind: str, status: int, ok: bool, retriable: bool
) -> None:
    server.script(Reply(status, b'{"error": "nope"}', headers={"Location": "http://x/"}))
    r = make(kind, server.url()).send([FIRING], GROUP)
    assert (r.ok, r.retriable, r.status) == (ok, retriable, status)
    assert len(server.received()) == 1  # a redirect is not followed
    if not ok:
        assert f"HTTP {status}" in r.error
        assert "nope" in r.error  # a short excerpt of the answer


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_429_carries_retry_after(server: FakeReceiver, kind: str) -> None:
    server.script(Reply(429, b"slow down", {"Retry-After": "7"}))
    r = make(kind, server.url()).send([FIRING], GROUP)
    assert (r.ok, r.retriable, r.status, r.retry_after) == (False, True, 429, 7.0)


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_503_carries_retry_after(server: FakeReceiver, kind: str) -> None:
    server.script(Reply(503, b"maintenance", {"Retry-After": "120"}))
    r = make(kind, server.url()).send([FIRING], GROUP)
    assert (r.ok, r.retriable, r.status, r.retry_after) == (False, True, 503, 120.0)
    assert "HTTP 503" in r.error


def test_retry_after_as_http_date(server: FakeReceiver) -> None:
    when = datetime.fromtimestamp(time.time() + 120, UTC)
    server.script(Reply(503, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    r = make("webhook", server.url()).send([FIRING], GROUP)
    assert r.retriable and r.retry_after is not None and 100 < r.retry_after <= 120


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Sun, 22 Nov 2026 10:00:30 GMT", 30.0),
        ("Sun, 22 Nov 2026 09:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=lambda: T0) == expected


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_slow_answer_is_a_retriable_timeout(server: FakeReceiver, kind: str) -> None:
    server.script(Reply(200, delay=5.0))
    start = time.monotonic()
    r = make(kind, server.url("/secret-path-123456"), timeout=0.2).send([FIRING], GROUP)
    assert time.monotonic() - start < 2.0
    assert not r.ok and r.retriable and r.status is None
    assert "timed out" in r.error and "secret-path-123456" not in r.error


def test_connection_refused_is_retriable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = make("slack", f"http://127.0.0.1:{port}{SLACK_PATH}", timeout=2).send([FIRING], GROUP)
    assert not r.ok and r.retriable
    assert "127.0.0.1" in r.error and "secret" not in r.error.lower()


# -- secrets ----------------------------------------------------------------------
def test_slack_url_path_never_in_errors(server: FakeReceiver) -> None:
    server.script(Reply(404, echo=True))
    url = server.url(SLACK_PATH)
    r = make("slack", url).send([FIRING], GROUP)
    assert not r.ok and not r.retriable and r.status == 404
    for secret in (SLACK_PATH, "T0SECRET1", "B0SECRET2", "XXXXsecretTOKENXXXX", url):
        assert secret not in r.error
    assert "127.0.0.1" in r.error and "<redacted>" in r.error
    assert SLACK_PATH not in repr(make("slack", url))


def test_routing_key_never_in_errors(server: FakeReceiver) -> None:
    server.script(Reply(400, echo=True))
    r = make("pagerduty", server.url("/v2/enqueue")).send([FIRING], GROUP)
    assert server.received()[0].json()["routing_key"] == KEY
    assert not r.ok and not r.retriable and r.status == 400
    assert KEY not in r.error and "<redacted>" in r.error


def test_redact_url() -> None:
    assert redact_url("https://hooks.slack.com/services/T/B/x?y=1") == "https://hooks.slack.com/…"
    assert redact_url("http://user:pw@127.0.0.1:8080/a") == "http://127.0.0.1:8080/…"


# -- building ----------------------------------------------------------------------
def test_build_notifiers() -> None:
    receivers = [
        ReceiverConfig("default"),
        ReceiverConfig(
            "mle",
            (
                IntegrationConfig("pagerduty", {"routing_key": KEY}, ("routing_key",)),
                IntegrationConfig(
                    "webhook",
                    {"url": "http://bridge/hook", "timeout": "2s", "max_alerts": 5},
                    ("url",),
                ),
            ),
        ),
        ReceiverConfig(
            "ds",
            (
                IntegrationConfig("slack", {"url": "https://h/s"}, ("url",)),
                IntegrationConfig("file", {"path": "/tmp/x.jsonl"}),
            ),
        ),
    ]
    built = build_notifiers(receivers)
    assert {k: [n.name for n in v] for k, v in built.items()} == {
        "default": [],
        "mle": ["pagerduty", "webhook"],
        "ds": ["slack", "file"],
    }
    assert all(isinstance(n, Notifier) for ns in built.values() for n in ns)
    webhook = built["mle"][1]
    assert isinstance(webhook, WebhookNotifier) and webhook.timeout == 2.0
    assert KEY not in repr(built["mle"][0])


@pytest.mark.parametrize(
    ("integration", "message"),
    [
        (IntegrationConfig("sms", {}), "integration kind 'sms' is not supported"),
        (IntegrationConfig("opsgenie", {}), "receiver 'x': opsgenie.api_key is required"),
        (
            IntegrationConfig("opsgenie", {"api_key": KEY, "priority": "urgent"}),
            "opsgenie.priority must be one of P1, P2, P3, P4, P5",
        ),
        (
            IntegrationConfig("opsgenie", {"api_key": KEY, "responders": [{"type": "pager"}]}),
            "opsgenie.responders must be a list of tables",
        ),
        (IntegrationConfig("msteams", {}), "receiver 'x': msteams.url is required"),
        (IntegrationConfig("alertmanager", {}), "receiver 'x': alertmanager.url is required"),
        (
            IntegrationConfig("alertmanager", {"url": "http://am", "firing_ttl": 0}),
            "alertmanager.firing_ttl must be positive",
        ),
        (IntegrationConfig("email", {}), "receiver 'x': email.host is required"),
        (IntegrationConfig("slack", {}), "receiver 'x': slack.url is required"),
        (IntegrationConfig("pagerduty", {}), "receiver 'x': pagerduty.routing_key is required"),
        (
            IntegrationConfig("webhook", {"url": "http://h/", "timeout": "soon"}),
            "webhook.timeout must be a duration",
        ),
        (
            IntegrationConfig("webhook", {"url": "http://h/", "max_alerts": -1}),
            "webhook.max_alerts must be an integer >= 0",
        ),
        (IntegrationConfig("file", {}), "file.path is required"),
    ],
)
def test_build_notifiers_errors(integration: IntegrationConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_notifiers([ReceiverConfig("x", (integration,))])


def test_option_error_is_a_value_error() -> None:
    assert issubclass(OptionError, ValueError)
