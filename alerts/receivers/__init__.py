"""Notifiers: one per receiver integration (webhook, slack, pagerduty, opsgenie, msteams,
email, alertmanager, file, jira).

:func:`build_notifiers` turns the ``[[receivers]]`` config into
``{receiver name: [notifier, ...]}`` in integration order; the dispatcher
addresses an integration by that index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from alerts.config import ReceiverConfig
from alerts.receivers.alertmanager import AlertmanagerNotifier
from alerts.receivers.base import DeliveryResult, GroupInfo, Notifier, OptionError
from alerts.receivers.file import FileNotifier
from alerts.receivers.jira import JiraNotifier
from alerts.receivers.mail import EmailNotifier
from alerts.receivers.msteams import MSTeamsNotifier
from alerts.receivers.opsgenie import OpsgenieNotifier
from alerts.receivers.pagerduty import PagerDutyNotifier
from alerts.receivers.slack import SlackNotifier
from alerts.receivers.webhook import WebhookNotifier

NOTIFIER_KINDS: dict[str, Callable[[Mapping[str, object], str], Notifier]] = {
    "webhook": WebhookNotifier,
    "slack": SlackNotifier,
    "pagerduty": PagerDutyNotifier,
    "opsgenie": OpsgenieNotifier,
    "msteams": MSTeamsNotifier,
    "email": EmailNotifier,
    "alertmanager": AlertmanagerNotifier,
    "file": FileNotifier,
    "jira": JiraNotifier,
}


def build_notifiers(receivers: Sequence[ReceiverConfig]) -> dict[str, list[Notifier]]:
    """Notifiers per receiver; ValueError names the receiver and integration (never a secret)."""
    out: dict[str, list[Notifier]] = {}
    for r in receivers:
        if r.name in out:
            raise ValueError(f"receiver {r.name!r} is defined twice")
        notifiers: list[Notifier] = []
        for integration in r.integrations:
            factory = NOTIFIER_KINDS.get(integration.kind)
            if factory is None:
                raise ValueError(
                    f"receiver {r.name!r}: integration kind {integration.kind!r} is not "
                    f"supported (supported: {', '.join(sorted(NOTIFIER_KINDS))})"
                )
            notifiers.append(factory(integration.options, r.name))
        out[r.name] = notifiers
    return out


__all__ = [
    "DeliveryResult",
    "GroupInfo",
    "Notifier",
    "OptionError",
    "build_notifiers",
    "NOTIFIER_KINDS",
]
