"""``[annotations]`` and ``[models.annotations]``: runbook and dashboard link templates.

::

    [annotations]                                  # every alert
    runbook_url = "https://wiki.example.com/ml/runbooks/{kind}"
    dashboard_url = "https://grafana.example.com/d/driftwatch?var-model={model}"
    [annotations.kinds.latency_regression]         # one kind
    runbook_url = "https://wiki.example.com/sre/latency"

    [[models]]
    name = "churn"
    [models.annotations]                           # one model (and its kinds)
    dashboard_url = "https://grafana.example.com/d/churn"

A template must be an http(s) URL once filled in, and may only name the
alert's labels (:data:`alerts.links.TEMPLATE_LABELS`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from alerts.links import LINK_ANNOTATIONS, TEMPLATE_LABELS, placeholders, render
from alerts.model import KINDS
from monitor.config.check import Bad, Problems, Table

HINTS = {
    "summary": "unknown key (annotations take runbook_url and dashboard_url)",
    "description": "unknown key (annotations take runbook_url and dashboard_url)",
}


def link_template(value: Any) -> str:
    """A URL template: ``{label}`` placeholders of known labels, http(s) once filled."""
    if not isinstance(value, str) or not value:
        raise Bad("must be a non-empty URL template string")
    try:
        names = placeholders(value)
    except ValueError as exc:
        raise Bad(str(exc)) from None
    unknown = [n for n in names if n not in TEMPLATE_LABELS]
    if unknown:
        raise Bad(f"unknown label {{{unknown[0]}}} (labels: {', '.join(TEMPLATE_LABELS)})")
    sample = render(value, {n: "x" for n in TEMPLATE_LABELS}, url=True)
    parts = urlsplit(sample)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Bad("must be an http:// or https:// URL template")
    return value


def _templates(t: Table) -> dict[str, str]:
    out = {}
    for name in LINK_ANNOTATIONS:
        value = t.take(name, link_template)
        if value is not None:
            out[name] = value
    return out


def parse_annotations(
    value: Any, path: str, problems: Problems
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(templates for every alert of the scope, templates per kind) of one annotations table."""
    t = Table.of(value, path, problems)
    if t is None:
        return {}, {}
    default = _templates(t)
    kinds: dict[str, dict[str, str]] = {}
    if t.has("kinds") and (kt := Table.of(t.raw("kinds"), t.at("kinds"), problems)):
        for kind in list(kt.data):
            if kind not in KINDS:
                problems.error(
                    kt.at(kind), f"unknown alert kind (kinds: {', '.join(KINDS)})", kind
                )
                kt.raw(kind)
                continue
            if (st := Table.of(kt.raw(kind), kt.at(kind), problems)) is not None:
                kinds[kind] = _templates(st)
                st.finish(HINTS)
    t.finish(HINTS)
    return default, kinds
