"""Microsoft Teams (Workflows webhook) against a real local HTTP server: the card, secrets."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from alerts.receivers.msteams import MSTeamsNotifier
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

# A Workflows URL: its query carries the signature that authorises the post.
WORKFLOW_PATH = (
    "/workflows/0123456789abcdef/triggers/manual/paths/invoke"
    "?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S1GnATUREsecretXYZ0123456789"
)


def make(url: str, **options: Any) -> MSTeamsNotifier:
    return MSTeamsNotifier({"url": url, **options}, "r")


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict:
    """The Workflows message around one Adaptive Card, written out by hand."""
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions is not None:
        content["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": content,
            }
        ],
    }


FIRING_CONTAINER = {
    "type": "Container",
    "items": [
        {
            "type": "TextBlock",
            "text": "[FIRING] DataDrift · churn",
            "wrap": True,
            "size": "Large",
            "weight": "Bolder",
            "color": "Attention",
        },
        {
            "type": "TextBlock",
            "text": "Input drift in 'age' of churn",
            "wrap": True,
            "weight": "Bolder",
        },
        {
            "type": "TextBlock",
            "text": "'age' of churn moved away from its reference.",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": f"**Why data-science:** {FIRING.annotations['attribution']}",
            "wrap": True,
        },
        {
            "type": "FactSet",
            "facts": [
                {"title": "Model", "value": "churn (v3)"},
                {"title": "Team", "value": "data-science"},
                {"title": "Fault", "value": "model"},
                {"title": "Severity", "value": "warning"},
                {"title": "Feature", "value": "age"},
                {"title": "Evidence", "value": "ks statistic 0.21, p=1e-09"},
                {"title": "Window", "value": "2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z"},
                {"title": "Started", "value": "2026-11-22T10:00:00Z"},
            ],
        },
    ],
}
RESOLVED_CONTAINER = {
    "type": "Container",
    "items": [
        {
            "type": "TextBlock",
            "text": "[RESOLVED] LatencyRegression · eta",
            "wrap": True,
            "size": "Large",
            "weight": "Bolder",
            "color": "Good",
        },
        {
            "type": "TextBlock",
            "text": "eta serves slower than its reference",
            "wrap": True,
            "weight": "Bolder",
        },
        {
            "type": "TextBlock",
            "text": f"**Why ml-engineering:** {RESOLVED.annotations['attribution']}",
            "wrap": True,
        },
        {
            "type": "FactSet",
            "facts": [
                {"title": "Model", "value": "eta (v8)"},
                {"title": "Team", "value": "ml-engineering"},
                {"title": "Fault", "value": "infrastructure"},
                {"title": "Severity", "value": "critical"},
                {"title": "Evidence", "value": "mannwhitney statistic 3.1, p=2e-07"},
                {"title": "Window", "value": "2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z"},
                {"title": "Started", "value": "2026-11-22T10:00:00Z"},
                {"title": "Ended", "value": "2026-11-22T10:30:00Z"},
            ],
        },
    ],
}
OPEN_DRIFTWATCH = [
    {
        "type": "Action.OpenUrl",
        "title": "Open in driftwatch",
        "url": "http://driftwatch.local:9108/api/alerts",
    }
]


def test_adaptive_card_golden(server: FakeReceiver) -> None:
    server.default = Reply(202)  # Workflows accept and run the flow later
    n = make(server.url(WORKFLOW_PATH), external_url="http://driftwatch.local:9108/")
    assert n.send([FIRING], GROUP).ok and n.send([RESOLVED], GROUP).ok
    firing, resolved = server.received()
    assert firing.path == WORKFLOW_PATH
    assert firing.headers["Content-Type"] == "application/json"
    assert firing.json() == card([FIRING_CONTAINER], OPEN_DRIFTWATCH)
    assert resolved.json() == card([RESOLVED_CONTAINER], OPEN_DRIFTWATCH)


def test_a_group_is_one_card_with_a_container_per_alert(server: FakeReceiver) -> None:
    assert make(server.url()).send([FIRING, RESOLVED], GROUP).ok
    second = {**RESOLVED_CONTAINER, "separator": True, "spacing": "Large"}
    assert server.received()[0].json() == card([FIRING_CONTAINER, second])  # no external_url


def test_runbook_link(server: FakeReceiver) -> None:
    a = dataclasses.replace(
        FIRING, annotations={**FIRING.annotations, "runbook_url": "https://wiki/runbooks/drift"}
    )
    assert make(server.url()).send([a], GROUP).ok
    items = server.received()[0].json()["attachments"][0]["content"]["body"][0]["items"]
    assert items[-1] == {
        "type": "ActionSet",
        "actions": [
            {"type": "Action.OpenUrl", "title": "Runbook", "url": "https://wiki/runbooks/drift"}
        ],
    }


def test_many_alerts_are_capped(server: FakeReceiver) -> None:
    alerts = [alert("data_drift", feature=f"f{i}") for i in range(13)]
    assert make(server.url()).send(alerts, GROUP).ok
    body = server.received()[0].json()["attachments"][0]["content"]["body"]
    assert len(body) == 11 and [b["type"] for b in body[:10]] == ["Container"] * 10
    assert body[10] == {
        "type": "TextBlock",
        "text": "… and 3 more alert(s)",
        "wrap": True,
        "isSubtle": True,
    }
    assert len(server.received()[0].body) < 28 * 1024  # Teams' message size limit


@pytest.mark.parametrize(
    "reply",
    [
        Reply(403, echo=True),  # the answer repeats the path and query
        Reply(401, b'{"error": "signature S1GnATUREsecretXYZ0123456789 is not valid"}'),
    ],
)
def test_workflow_url_never_in_errors_or_logs(
    server: FakeReceiver, caplog: pytest.LogCaptureFixture, reply: Reply
) -> None:
    server.default = reply
    url = server.url(WORKFLOW_PATH)
    n = make(url)
    r = n.send([FIRING], GROUP)
    assert not r.ok and not r.retriable and r.status == reply.status
    assert "127.0.0.1" in r.error and "<redacted>" in r.error
    with caplog.at_level(logging.DEBUG):
        deliver_once(n, [FIRING])
    assert_hidden([url, WORKFLOW_PATH, "S1GnATUREsecretXYZ0123456789"], r, caplog.records)
    assert "S1GnATURE" not in repr(n)
