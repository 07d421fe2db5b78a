"""Plain-text pieces shared by the paging, chat and mail integrations.

Every integration tells the same story per alert: a title (status, alertname,
model), where (feature / segment), the summary, why this team owns it (the
``attribution`` annotation) and the evidence behind it.
"""

from __future__ import annotations

from typing import Any

import orjson

from alerts.links import links
from alerts.model import Alert, rfc3339

_EVIDENCE_ORDER = ("detector", "statistic", "p_value", "threshold", "reference_n", "current_n")


def cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def num(x: Any) -> str:
    """A number the way a person reads it: ``5000``, ``0.21``, ``1e-09``."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, str):
        return x
    return orjson.dumps(x).decode()


def title(a: Alert) -> str:
    """``[FIRING] DataDrift · churn``."""
    return f"[{a.status.upper()}] {a.labels.get('alertname', '')} · {a.labels.get('model', '')}"


def where(a: Alert) -> str:
    """``feature=age segment=host=pod-3`` (empty when the alert is model-wide)."""
    return " ".join(f"{k}={a.labels[k]}" for k in ("feature", "segment") if k in a.labels)


def headline(a: Alert) -> str:
    """``[DataDrift] Input drift in 'age' of churn (feature=age)``: a one-line message."""
    text = f"[{a.labels.get('alertname', '')}] {a.annotations.get('summary', '')}"
    loc = where(a)
    return f"{text} ({loc})" if loc else text


def why(a: Alert) -> str:
    """``Why data-science: <attribution>``."""
    return f"Why {a.labels.get('team', '')}: {a.annotations.get('attribution', '')}"


def evidence_short(a: Alert) -> str:
    """``ks statistic 0.21, p=1e-09``."""
    ev = a.evidence
    text = f"{ev.get('detector', '?')} statistic {num(ev.get('statistic'))}"
    if ev.get("p_value") is not None:
        text += f", p={num(ev['p_value'])}"
    return text


def key_facts(a: Alert) -> list[tuple[str, str]]:
    """What a chat card lists for an alert: model, team, fault, severity, where, evidence."""
    lab = a.labels
    facts = [
        ("Model", f"{lab.get('model', '')} ({lab.get('model_version', '')})"),
        ("Team", lab.get("team", "")),
        ("Fault", lab.get("fault", "")),
        ("Severity", lab.get("severity", "")),
    ]
    facts += [(k.title(), lab[k]) for k in ("feature", "segment") if k in lab]
    facts.append(("Evidence", evidence_short(a)))
    return facts


def evidence_pairs(a: Alert) -> list[tuple[str, str]]:
    """Every evidence entry but the window as ``(key, value)``, the detector's first."""
    ev = a.evidence
    keys = [k for k in _EVIDENCE_ORDER if k in ev]
    keys += [k for k in ev if k not in _EVIDENCE_ORDER and k != "window"]
    return [(k, num(ev[k])) for k in keys if ev[k] is not None]


def evidence_text(a: Alert) -> str:
    """``detector=ks, statistic=0.21, p_value=1e-09, ...``."""
    return ", ".join(f"{k}={v}" for k, v in evidence_pairs(a))


def window_text(a: Alert) -> str:
    """``2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z`` (empty when there is none)."""
    window = a.evidence.get("window")
    if isinstance(window, list | tuple) and len(window) == 2:
        return f"{window[0]} to {window[1]}"
    return ""


def labels_text(a: Alert) -> str:
    """``alertname=DataDrift, kind=data_drift, ...`` in label order."""
    return ", ".join(f"{k}={v}" for k, v in a.labels.items())


def detail_rows(a: Alert) -> list[tuple[str, str]]:
    """The detail table of an alert (email, JIRA): evidence, window, start, end, labels."""
    rows = [("Evidence", evidence_text(a))]
    if window_text(a):
        rows.append(("Window", window_text(a)))
    rows.append(("Started", rfc3339(a.starts_at) or ""))
    if a.ends_at is not None:
        rows.append(("Ended", rfc3339(a.ends_at) or ""))
    rows.append(("Labels", labels_text(a)))
    return rows


def alert_lines(a: Alert) -> list[str]:
    """One alert as plain-text lines: what, why, evidence, when, labels, runbook, dashboard."""
    ann = a.annotations
    lines = [title(a)]
    if where(a):
        lines[0] += f" ({where(a)})"
    lines.append(ann.get("summary", ""))
    if ann.get("description"):
        lines.append(ann["description"])
    lines += ["", why(a), f"Evidence: {evidence_text(a)}"]
    if window_text(a):
        lines.append(f"Window: {window_text(a)}")
    lines.append(f"Started: {rfc3339(a.starts_at)}")
    if a.ends_at is not None:
        lines.append(f"Ended: {rfc3339(a.ends_at)}")
    lines.append(f"Labels: {labels_text(a)}")
    lines += [f"{name}: {url}" for name, url in links(a)]
    return lines
