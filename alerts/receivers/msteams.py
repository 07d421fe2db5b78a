"""Microsoft Teams through a Workflows (Power Automate) webhook: one Adaptive Card.

The body is a ``message`` whose one attachment is an Adaptive Card 1.4
(``application/vnd.microsoft.card.adaptive``), which the "Post to a channel
when a webhook request is received" workflow posts as is.  Per alert, a
container: the title (status, alertname, model; red when firing, green when
resolved), the summary and description, the attribution ("Why <team>"), a
FactSet of the key labels and the evidence, and Runbook / Dashboard buttons
when the alert has ``runbook_url`` / ``dashboard_url`` annotations.  With
``external_url`` set, the card ends with a link to driftwatch's alert list.  Workflows answer 202.

Options: ``url`` (required, a secret: the workflow URL carries its signature),
``external_url`` (driftwatch's own address), ``timeout``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from alerts.links import links
from alerts.model import Alert, rfc3339
from alerts.receivers.base import DeliveryResult, GroupInfo, optional_str, required_str, seconds
from alerts.receivers.http import post_json, redact_url
from alerts.receivers.text import cut, key_facts, window_text

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
MAX_ALERTS = 10  # keeps the card well under Teams' 28 KB message limit
TEXT_CHARS = 2000


# TextBlocks (and FactSet values) render a markdown subset: bold, italic, lists and
# [label](url) links.  Event-derived text (model, feature, segment names, summaries built
# from them) has those characters backslash-escaped so that it shows as written.
_MARKDOWN = re.compile(r"([\\`*_~\[\]<>])")
_LIST_START = re.compile(r"(?m)^(\s*)(?:([-+#])|(\d+)\.)(?=\s)")


def md(text: str) -> str:
    """``text`` shown literally in a TextBlock: no link, emphasis or list can form."""
    text = _MARKDOWN.sub(r"\\\1", text)
    return _LIST_START.sub(
        lambda m: m[1] + ("\\" + m[2] if m[2] else m[3] + "\\."), text)


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": cut(text, TEXT_CHARS), "wrap": True, **style}


def _facts(a: Alert) -> list[dict[str, str]]:
    facts = key_facts(a)
    if window_text(a):
        facts.append(("Window", window_text(a)))
    facts.append(("Started", rfc3339(a.starts_at) or ""))
    if a.ends_at is not None:
        facts.append(("Ended", rfc3339(a.ends_at) or ""))
    return [{"title": k, "value": cut(md(v), TEXT_CHARS)} for k, v in facts]


def _container(a: Alert, first: bool) -> dict[str, Any]:
    ann = a.annotations
    items: list[dict[str, Any]] = [
        _text(
            f"[{a.status.upper()}] {md(a.labels.get('alertname', ''))} · "
            f"{md(a.labels.get('model', ''))}",
            size="Large",
            weight="Bolder",
            color="Attention" if a.status == "firing" else "Good",
        ),
        _text(md(ann.get("summary", "")), weight="Bolder"),
    ]
    if ann.get("description"):
        items.append(_text(md(ann["description"])))
    items.append(_text(f"**Why {md(a.labels.get('team', ''))}:** "
                       f"{md(ann.get('attribution', ''))}"))
    items.append({"type": "FactSet", "facts": _facts(a)})
    actions = [{"type": "Action.OpenUrl", "title": name, "url": url} for name, url in links(a)
               if _web_url(url)]  # only http(s) links become buttons
    if actions:
        items.append({"type": "ActionSet", "actions": actions})
    container: dict[str, Any] = {"type": "Container", "items": items}
    if not first:
        container["separator"] = True
        container["spacing"] = "Large"
    return container


def _web_url(url: str) -> bool:
    """Only http(s) links become buttons (never ``javascript:`` or ``file:``)."""
    return url.lower().startswith(("https://", "http://"))


def msteams_payload(
    alerts: list[Alert], group: GroupInfo, *, external_url: str = ""
) -> dict[str, Any]:
    """The Workflows webhook body: a message carrying one Adaptive Card."""
    shown = alerts[:MAX_ALERTS]
    body = [_container(a, i == 0) for i, a in enumerate(shown)]
    if len(alerts) > len(shown):
        body.append(_text(f"… and {len(alerts) - len(shown)} more alert(s)", isSubtle=True))
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if external_url:
        card["actions"] = [
            {
                "type": "Action.OpenUrl",
                "title": "Open in driftwatch",
                "url": f"{external_url.rstrip('/')}/api/alerts",
            }
        ]
    return {
        "type": "message",
        "attachments": [{"contentType": CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


class MSTeamsNotifier:
    name = "msteams"

    def __init__(self, options: Mapping[str, object], receiver: str = "") -> None:
        self.url = required_str(options, "url", receiver, self.name)
        self.external_url = optional_str(options, "external_url", "") or ""
        self.timeout = seconds(options, "timeout", 10.0, receiver, self.name)

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        payload = msteams_payload(alerts, group, external_url=self.external_url)
        return post_json(self.url, payload, timeout=self.timeout)

    def __repr__(self) -> str:
        return f"MSTeamsNotifier(url={redact_url(self.url)!r})"
