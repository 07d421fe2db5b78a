"""Push to a real Alertmanager: ``POST {url}/api/v2/alerts`` with postable alerts.

Each alert of the notification becomes one ``postableAlert`` of the JSON list:
``labels`` (the alert's labels), ``annotations`` (summary, description,
attribution -- empty ones left out -- plus ``evidence``, one line),
``startsAt``, ``endsAt`` and, with ``external_url`` set, ``generatorURL``.
Alertmanager answers 200.

``endsAt`` of a resolved alert is its resolution time.  A firing alert gets
``endsAt`` = now + ``firing_ttl``: Alertmanager takes an alert whose endsAt
has passed as resolved (and one without endsAt as resolved after its own
``resolve_timeout``, 5 minutes by default), while driftwatch re-sends a
firing group only every ``repeat_interval`` of its route.  Keep
``firing_ttl`` (default 6h) longer than the longest ``repeat_interval`` of
the routes that use this receiver; a stopped daemon's alerts then expire in
Alertmanager after at most ``firing_ttl``.

Options: ``url`` (required: Alertmanager's base URL, e.g.
http://alertmanager:9093), ``bearer_token`` (optional, a secret: sent as
``Authorization: Bearer``), ``firing_ttl``, ``external_url``, ``timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from alerts.model import Alert, rfc3339
from alerts.receivers.base import DeliveryResult, GroupInfo, optional_str, required_str, seconds
from alerts.receivers.http import post_json, redact_url
from alerts.receivers.text import evidence_text

API_PATH = "/api/v2/alerts"
DEFAULT_FIRING_TTL = 6 * 3600.0


def postable_alert(
    a: Alert, *, now: float, firing_ttl: float = DEFAULT_FIRING_TTL, external_url: str = ""
) -> dict[str, Any]:
    """One ``postableAlert`` of Alertmanager's API v2."""
    annotations = {k: v for k, v in a.annotations.items() if v}
    annotations["evidence"] = evidence_text(a)
    if a.status == "firing":
        ends_at = max(now, a.starts_at) + firing_ttl
    else:
        ends_at = a.ends_at if a.ends_at is not None else now
    out: dict[str, Any] = {
        "labels": {k: v for k, v in a.labels.items() if v},
        "annotations": annotations,
        "startsAt": rfc3339(a.starts_at),
        "endsAt": rfc3339(ends_at),
    }
    if external_url:
        out["generatorURL"] = f"{external_url.rstrip('/')}/api/alerts"
    return out


class AlertmanagerNotifier:
    name = "alertmanager"

    def __init__(
        self,
        options: Mapping[str, object],
        receiver: str = "",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        base = required_str(options, "url", receiver, self.name)
        self.url = base.rstrip("/") + API_PATH
        self.bearer_token = optional_str(options, "bearer_token")
        self.firing_ttl = seconds(options, "firing_ttl", DEFAULT_FIRING_TTL, receiver, self.name)
        self.external_url = optional_str(options, "external_url", "") or ""
        self.timeout = seconds(options, "timeout", 10.0, receiver, self.name)
        self.clock = clock

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        now = self.clock()
        payload = [
            postable_alert(a, now=now, firing_ttl=self.firing_ttl, external_url=self.external_url)
            for a in alerts
        ]
        headers = {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}
        secrets = (self.bearer_token,) if self.bearer_token else ()
        return post_json(self.url, payload, timeout=self.timeout, secrets=secrets, headers=headers)

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier(url={redact_url(self.url)!r})"
