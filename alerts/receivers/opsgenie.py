"""Opsgenie Alert API v2: one create or close request per alert.

A firing alert is ``POST {url}/v2/alerts`` (create); a resolved one is
``POST {url}/v2/alerts/{alias}/close?identifierType=alias``.  The ``alias``
is derived from the receiver and the alert fingerprint, so a repeated create
is de-duplicated by Opsgenie (its count goes up) and the close finds the alert
the create opened.  Opsgenie answers 202 (requests are processed
asynchronously).  Authentication: ``Authorization: GenieKey <api_key>``.

Create body: ``message`` (<= 130 chars: ``[alertname] summary (feature=...)``),
``alias`` (<= 512), ``description`` (<= 15000: summary, description,
attribution, evidence, window, labels), ``priority`` (critical -> P1,
warning -> P3, or the ``priority`` option), ``tags`` (``driftwatch`` and
``label:value``, at most 20 of at most 50 chars), ``details`` (the labels,
the fingerprint and the ``runbook_url`` / ``dashboard_url`` annotations -- Opsgenie
shows URLs in details as links --, string values, <= 8000 chars in all), ``entity`` (the model),
``source`` and, when configured, ``responders``.

Options: ``api_key`` (required, a secret), ``url`` (the API base, default
https://api.opsgenie.com; https://api.eu.opsgenie.com for the EU instance, or a
test server), ``priority`` (P1..P5 for every alert), ``responders`` (a list of
``{type = "team" | "user" | "escalation" | "schedule", name | id | username}``),
``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from alerts.links import LINK_ANNOTATIONS
from alerts.model import Alert, rfc3339
from alerts.receivers.base import (
    DeliveryResult,
    GroupInfo,
    OptionError,
    optional_str,
    required_str,
    seconds,
)
from alerts.receivers.http import post_json, redact_url
from alerts.receivers.text import alert_lines, cut, headline

DEFAULT_URL = "https://api.opsgenie.com"
SOURCE = "driftwatch"
MESSAGE_CHARS = 130
ALIAS_CHARS = 512
DESCRIPTION_CHARS = 15000
ENTITY_CHARS = 512
NOTE_CHARS = 25000
TAG_CHARS = 50
MAX_TAGS = 20
DETAILS_CHARS = 8000  # keys and values, all details together
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
_PRIORITY = {"critical": "P1", "warning": "P3"}
RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
RESPONDER_KEYS = ("id", "name", "username")


def opsgenie_alias(a: Alert, group: GroupInfo) -> str:
    """Stable per receiver and alert: the create and the close of one alert share it."""
    return cut(f"driftwatch-{group.receiver}-{a.fingerprint}", ALIAS_CHARS)


def _tags(a: Alert) -> list[str]:
    tags = ["driftwatch"] + [cut(f"{k}:{v}", TAG_CHARS) for k, v in a.labels.items()]
    return tags[:MAX_TAGS]


def _details(a: Alert) -> dict[str, str]:
    out: dict[str, str] = {}
    used = 0
    extra = [(k, a.annotations[k]) for k in LINK_ANNOTATIONS if a.annotations.get(k)]
    for k, v in [*a.labels.items(), ("fingerprint", a.fingerprint), *extra]:
        room = DETAILS_CHARS - used - len(k)
        if room <= 0:
            break
        out[k] = cut(str(v), room)
        used += len(k) + len(out[k])
    return out


def opsgenie_create(
    a: Alert,
    group: GroupInfo,
    *,
    priority: str | None = None,
    responders: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The body of one create request (``priority`` overrides the severity mapping)."""
    body: dict[str, Any] = {
        "message": cut(headline(a), MESSAGE_CHARS),
        "alias": opsgenie_alias(a, group),
        "description": cut("\n".join(alert_lines(a)), DESCRIPTION_CHARS),
    }
    if responders:
        body["responders"] = [dict(r) for r in responders]
    body.update(
        {
            "tags": _tags(a),
            "details": _details(a),
            "entity": cut(a.labels.get("model", ""), ENTITY_CHARS),
            "source": SOURCE,
            "priority": priority or _PRIORITY.get(a.labels.get("severity", ""), "P3"),
        }
    )
    return body


def opsgenie_close(a: Alert) -> dict[str, Any]:
    """The body of one close request."""
    ended = rfc3339(a.ends_at) or "now"
    note = f"Resolved at {ended}: {a.annotations.get('summary', '')}"
    return {"source": SOURCE, "note": cut(note, NOTE_CHARS)}


def _responders(value: object, receiver: str) -> tuple[dict[str, str], ...]:
    rule = (
        "must be a list of tables with type (team, user, escalation or schedule) "
        "and one of id, name or username"
    )
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise OptionError(receiver, "opsgenie", "responders", rule)
    out = []
    for r in value:
        if not isinstance(r, Mapping) or r.get("type") not in RESPONDER_TYPES:
            raise OptionError(receiver, "opsgenie", "responders", rule)
        keys = [k for k in r if k != "type"]
        if len(keys) != 1 or keys[0] not in RESPONDER_KEYS or not isinstance(r[keys[0]], str):
            raise OptionError(receiver, "opsgenie", "responders", rule)
        out.append({"type": str(r["type"]), keys[0]: str(r[keys[0]])})
    return tuple(out)


class OpsgenieNotifier:
    name = "opsgenie"

    def __init__(self, options: Mapping[str, object], receiver: str = "") -> None:
        self.api_key = required_str(options, "api_key", receiver, self.name)
        base = optional_str(options, "url", DEFAULT_URL) or DEFAULT_URL
        self.url = base.rstrip("/")
        self.priority = optional_str(options, "priority")
        if self.priority is not None and self.priority not in PRIORITIES:
            raise OptionError(
                receiver, self.name, "priority", f"must be one of {', '.join(PRIORITIES)}"
            )
        self.responders = _responders(options.get("responders"), receiver)
        self.timeout = seconds(options, "timeout", 10.0, receiver, self.name)

    def _post(self, url: str, body: dict[str, Any]) -> DeliveryResult:
        return post_json(
            url,
            body,
            timeout=self.timeout,
            secrets=(self.api_key,),
            headers={"Authorization": f"GenieKey {self.api_key}"},
        )

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        result = DeliveryResult.success()
        for a in alerts:  # stop at the first failure; the alias makes a resend harmless
            if a.status == "firing":
                body = opsgenie_create(
                    a, group, priority=self.priority, responders=self.responders
                )
                result = self._post(f"{self.url}/v2/alerts", body)
            else:
                alias = quote(opsgenie_alias(a, group), safe="")
                url = f"{self.url}/v2/alerts/{alias}/close?identifierType=alias"
                result = self._post(url, opsgenie_close(a))
            if not result.ok:
                return result
        return result

    def __repr__(self) -> str:
        return f"OpsgenieNotifier(url={redact_url(self.url)!r})"
