"""Generic webhook: the Alertmanager webhook payload, version 4.

Anything that accepts Alertmanager webhooks (incident bridges, chat bots)
accepts this.  Each alert also carries driftwatch's ``evidence`` object.
Options: ``url`` (required), ``timeout`` (seconds, default 10), ``max_alerts``
(0 = all; the rest are counted in ``truncatedAlerts``), ``external_url``
(driftwatch's own address, sent as ``externalURL``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.model import Alert, rfc3339
from alerts.receivers.base import (
    FIRING_ENDS_AT,
    DeliveryResult,
    GroupInfo,
    OptionError,
    common_labels,
    optional_str,
    required_str,
    seconds,
)
from alerts.receivers.http import post_json, redact_url


def webhook_alert(a: Alert, external_url: str = "") -> dict[str, Any]:
    return {
        "status": a.status,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": rfc3339(a.starts_at),
        "endsAt": FIRING_ENDS_AT if a.ends_at is None else rfc3339(a.ends_at),
        "generatorURL": f"{external_url.rstrip('/')}/api/alerts" if external_url else "",
        "fingerprint": a.fingerprint,
        "evidence": dict(a.evidence),
    }


def webhook_payload(
    alerts: list[Alert], group: GroupInfo, *, max_alerts: int = 0, external_url: str = ""
) -> dict[str, Any]:
    """The Alertmanager v4 webhook body for one notification."""
    sent = alerts[:max_alerts] if max_alerts > 0 else alerts
    return {
        "version": "4",
        "groupKey": group.group_key,
        "truncatedAlerts": len(alerts) - len(sent),
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "receiver": group.receiver,
        "groupLabels": dict(group.group_labels),
        "commonLabels": common_labels(alerts),
        "commonAnnotations": common_labels(alerts, "annotations"),
        "externalURL": external_url,
        "alerts": [webhook_alert(a, external_url) for a in sent],
    }


class WebhookNotifier:
    name = "webhook"

    def __init__(self, options: Mapping[str, object], receiver: str = "") -> None:
        self.url = required_str(options, "url", receiver, self.name)
        self.timeout = seconds(options, "timeout", 10.0, receiver, self.name)
        max_alerts = options.get("max_alerts", 0)
        if not isinstance(max_alerts, int) or isinstance(max_alerts, bool) or max_alerts < 0:
            raise OptionError(
                receiver, self.name, "max_alerts", f"must be an integer >= 0, got {max_alerts!r}"
            )
        self.max_alerts = max_alerts
        self.external_url = optional_str(options, "external_url", "") or ""

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        payload = webhook_payload(
            alerts, group, max_alerts=self.max_alerts, external_url=self.external_url
        )
        return post_json(self.url, payload, timeout=self.timeout)

    def __repr__(self) -> str:
        return f"WebhookNotifier(url={redact_url(self.url)!r})"
