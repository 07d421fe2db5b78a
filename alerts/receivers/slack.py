"""Slack incoming webhook: Block Kit with a plain-text fallback.

Per alert: a header (status, alertname, model), a section with the summary and
fields (model, team, fault, severity, feature/segment when present, the key
evidence), the attribution sentence: why this team owns it, and Runbook /
Dashboard buttons for the ``runbook_url`` / ``dashboard_url`` annotations.
Options: ``url`` (required, a secret), ``channel``, ``username``, ``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.links import links
from alerts.model import Alert
from alerts.receivers.base import DeliveryResult, GroupInfo, optional_str, required_str, seconds
from alerts.receivers.http import post_json, redact_url
from alerts.receivers.text import key_facts, title

MAX_ALERTS = 12  # at most 4 blocks each, under Slack's 50-block limit
HEADER_CHARS = 150
TEXT_CHARS = 2900
URL_CHARS = 3000  # a button's url limit


def _esc(text: str) -> str:
    """Event-derived text made inert for Slack's mrkdwn: with ``<`` and ``>`` escaped no
    ``<!channel>``, ``<!here>``, ``<@U123>`` mention nor ``<url|label>`` link can form
    (Slack's own rule: escape ``&``, ``<``, ``>``, nothing else)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _blocks(a: Alert) -> list[dict[str, Any]]:
    lab = a.labels
    fields = key_facts(a)
    why = f"*Why {_esc(lab.get('team', ''))}:* {_esc(a.annotations.get('attribution', ''))}"
    summary = f"*{_esc(a.annotations.get('summary', ''))}*"
    if a.annotations.get("description"):
        summary += "\n" + _esc(a.annotations["description"])
    return [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title(a), HEADER_CHARS)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(summary, TEXT_CHARS)},
            "fields": [
                {"type": "mrkdwn", "text": _cut(f"*{_esc(k)}*\n{_esc(v)}", 1900)}
                for k, v in fields
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(why, TEXT_CHARS)}},
        *_buttons(a),
    ]


def _buttons(a: Alert) -> list[dict[str, Any]]:
    """An actions block with a link button per runbook / dashboard annotation."""
    found = [(name, url) for name, url in links(a) if len(url) <= URL_CHARS]
    if not found:
        return []
    return [{
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": name}, "url": url}
            for name, url in found
        ],
    }]


def _fallback(a: Alert) -> str:
    """The top-level ``text`` (notifications, clients without blocks): escaped as well,
    since Slack parses mentions and links in it."""
    where = " ".join(f"{k}={a.labels[k]}" for k in ("feature", "segment") if k in a.labels)
    head = f"{title(a)} {where}".rstrip()
    return _esc(f"{head}: {a.annotations.get('summary', '')} "
                f"({a.annotations.get('attribution', '')})")


def slack_payload(
    alerts: list[Alert],
    group: GroupInfo,
    *,
    channel: str | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    shown = alerts[:MAX_ALERTS]
    blocks = [b for a in shown for b in _blocks(a)]
    if len(alerts) > len(shown):
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"… and {len(alerts) - len(shown)} more alert(s)"}
                ],
            }
        )
    payload: dict[str, Any] = {
        "text": _cut("\n".join(_fallback(a) for a in alerts), 3000),
        "blocks": blocks,
    }
    if channel:
        payload["channel"] = channel
    if username:
        payload["username"] = username
    return payload


class SlackNotifier:
    name = "slack"

    def __init__(self, options: Mapping[str, object], receiver: str = "") -> None:
        self.url = required_str(options, "url", receiver, self.name)
        self.channel = optional_str(options, "channel")
        self.username = optional_str(options, "username")
        self.timeout = seconds(options, "timeout", 10.0, receiver, self.name)

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        payload = slack_payload(alerts, group, channel=self.channel, username=self.username)
        return post_json(self.url, payload, timeout=self.timeout)

    def __repr__(self) -> str:
        return f"SlackNotifier(url={redact_url(self.url)!r})"
