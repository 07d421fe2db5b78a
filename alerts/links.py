"""Runbook and dashboard links: annotation templates filled in from an alert's labels.

The config gives ``runbook_url`` / ``dashboard_url`` templates at four levels;
the most specific one that is set wins, per annotation:

1. a model's kind (``[models.annotations.kinds.<kind>]``),
2. a model (``[models.annotations]``),
3. a kind (``[annotations.kinds.<kind>]``),
4. every alert (``[annotations]``).

A template holds ``{label}`` placeholders (``{model}``, ``{kind}``,
``{feature}`` ...), replaced by the alert's label value, percent-encoded for a
URL; a label the alert does not carry becomes the empty string.  ``{{`` and
``}}`` are literal braces.  Receivers that can show a link (Slack buttons,
Teams actions, PagerDuty links, Opsgenie details, email, JIRA) read the
annotations; :func:`links` lists them in a fixed order.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from alerts.model import Alert

LINK_ANNOTATIONS = ("runbook_url", "dashboard_url")
LINK_TITLES = {"runbook_url": "Runbook", "dashboard_url": "Dashboard"}
TEMPLATE_LABELS = (
    "alertname", "kind", "fault", "team", "model", "model_version", "severity", "feature",
    "segment",
)

Templates = Mapping[str, str]  # annotation name -> template


def placeholders(template: str) -> list[str]:
    """The placeholder names of ``template``; ValueError if it is malformed."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or spec or conversion:
            raise ValueError(f"placeholders are {{label}} with a label name, got {{{name}}}")
        names.append(name)
    return names


def render(template: str, labels: Mapping[str, str], *, url: bool = False) -> str:
    """``template`` with each ``{label}`` replaced (percent-encoded when ``url``)."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            value = str(labels.get(name, ""))
            out.append(quote(value, safe="") if url else value)
    return "".join(out)


@dataclass(frozen=True)
class AnnotationTemplates:
    """The link templates of the config, by scope."""

    default: Templates = field(default_factory=dict)
    kinds: Mapping[str, Templates] = field(default_factory=dict)
    models: Mapping[str, Templates] = field(default_factory=dict)
    model_kinds: Mapping[tuple[str, str], Templates] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.default or self.kinds or self.models or self.model_kinds)

    def template(self, model: str, kind: str, name: str) -> str | None:
        """The most specific template for annotation ``name``, or None."""
        for scope in (self.model_kinds.get((model, kind)), self.models.get(model),
                      self.kinds.get(kind), self.default):
            if scope and scope.get(name):
                return scope[name]
        return None

    def annotate(self, alert: Alert) -> Alert:
        """Set the link annotations of ``alert`` from the config (in place)."""
        model, kind = alert.labels.get("model", ""), alert.labels.get("kind", "")
        for name in LINK_ANNOTATIONS:
            template = self.template(model, kind, name)
            if template is not None:
                alert.annotations[name] = render(template, alert.labels, url=True)
        return alert


def links(alert: Alert) -> list[tuple[str, str]]:
    """``[(title, url), ...]``: the alert's runbook and dashboard links, in that order."""
    return [(LINK_TITLES[k], alert.annotations[k]) for k in LINK_ANNOTATIONS
            if alert.annotations.get(k)]
