"""PagerDuty Events API v2: one trigger or resolve event per alert.

A trigger carries the ``runbook_url`` / ``dashboard_url`` annotations as
``links``.  ``dedup_key`` is the alert fingerprint, so a retried trigger is idempotent and
the resolve closes the incident the trigger opened.  PagerDuty answers 202.
Options: ``routing_key`` (required, a secret), ``url`` (default the public
enqueue endpoint; a test or proxy can stand in), ``severity`` (critical, error,
warning or info for every event; default: the alert's severity label), ``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.links import links
from alerts.model import Alert, rfc3339
from alerts.receivers.base import DeliveryResult, GroupInfo, optional_str, required_str, seconds
from alerts.receivers.http import post_json, redact_url

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_CHARS = 1024
_SEVERITY = {"critical": "critical", "warning": "warning"}


def pagerduty_event(a: Alert, routing_key: str, severity: str | None = None) -> dict[str, Any]:
    """The Events v2 body for one alert state change (``severity`` overrides the label)."""
    if a.status != "firing":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": a.fingerprint}
    lab = a.labels
    model = lab.get("model", "")
    where = " ".join(f"{k}={lab[k]}" for k in ("feature", "segment") if k in lab)
    summary = f"[{lab.get('alertname', '')}] {a.annotations.get('summary', '')}"
    if where:
        summary += f" ({where})"
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": a.fingerprint,
        "payload": {
            "summary": summary,
            "source": f"driftwatch/{model}",
            "severity": severity
            or ("critical" if lab.get("severity") == "critical" else "warning"),
            "timestamp": rfc3339(a.starts_at),
            "component": model,
            "group": lab.get("team", ""),
            "class": lab.get("kind", ""),
            "custom_details": {
                "attribution": a.annotations.get("attribution", ""),
                "description": a.annotations.get("description", ""),
                "labels": dict(lab),
                "evidence": dict(a.evidence),
            },
        },
    }
    if links(a):  # shown on the incident
        event["links"] = [{"href": url, "text": name} for name, url in links(a)]
    return event


class PagerDutyNotifier:
    name = "pagerduty"

    def __init__(self, options: Mapping[str, object], receiver: str = "") -> None:
        self.routing_key = required_str(options, "routing_key", receiver, self.name)
        self.url = optional_str(options, "url", DEFAULT_URL) or DEFAULT_URL
        self.severity = optional_str(options, "severity")
        self.timeout = seconds(options, "timeout", 10.0, receiver, self.name)

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        result = DeliveryResult.success()
        for a in alerts:  # stop at the first failure; dedup_key makes a resend harmless
            result = post_json(
                self.url,
                pagerduty_event(a, self.routing_key, self.severity),
                timeout=self.timeout,
                secrets=(self.routing_key,),
            )
            if not result.ok:
                return result
        return result

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(url={redact_url(self.url)!r})"
