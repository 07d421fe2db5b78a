"""What a JIRA issue says: summary, labels and the description, in Atlassian Document
Format (Cloud, REST v3) or wiki markup (Data Center, REST v2).

Per alert of the group (at most :data:`MAX_ALERTS`, the rest counted): the title,
the summary, the description, why this team owns it, a list of the evidence,
window, start / end and labels, and the runbook / dashboard links.  ADF refuses
empty text nodes, so none is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from alerts.links import links
from alerts.model import Alert
from alerts.receivers.base import GroupInfo, common_labels
from alerts.receivers.text import (
    cut,
    detail_rows,
    title,
    where,
    why,
)

DESCRIPTION_CHARS = 32_767
LABEL_CHARS = 255
MAX_ALERTS = 20  # alerts described in one issue; the rest are counted
TEMPLATE_EXTRAS = ("status", "firing", "resolved", "receiver")
_WIKI_SPECIAL = re.compile(r"([\\{}\[\]|*_^~+?!#-])")


def template_values(alerts: Sequence[Alert], group: GroupInfo) -> dict[str, str]:
    """What a template may name: the shared labels and the group's counts."""
    firing = sum(1 for a in alerts if a.status == "firing")
    values = dict(common_labels(list(alerts)))
    values.update(
        status="FIRING" if firing else "RESOLVED",
        firing=str(firing),
        resolved=str(len(alerts) - firing),
        receiver=group.receiver,
    )
    return values


def default_summary(alerts: Sequence[Alert], group: GroupInfo) -> str:
    """``[FIRING:2] DataDrift churn`` / ``[RESOLVED] DataDrift churn``."""
    firing = sum(1 for a in alerts if a.status == "firing")
    head = f"[FIRING:{firing}]" if firing else "[RESOLVED]"
    labels = group.group_labels or {
        k: v for k, v in common_labels(list(alerts)).items() if k in ("alertname", "model")
    }
    return f"{head} {' '.join(v for _, v in sorted(labels.items()))}".rstrip()


def intro(alerts: Sequence[Alert], group: GroupInfo) -> str:
    firing = sum(1 for a in alerts if a.status == "firing")
    counts = [f"{n} {w}" for n, w in ((firing, "firing"), (len(alerts) - firing, "resolved")) if n]
    text = f"driftwatch: {' and '.join(counts)} alert(s) for {group.receiver}"
    if group.group_labels:
        text += " (" + ", ".join(f"{k}={v}" for k, v in group.group_labels.items()) + ")"
    return text + "."


def jira_label(text: str) -> str:
    """A JIRA label: no whitespace, at most 255 characters."""
    return cut(re.sub(r"\s+", "_", text.strip()), LABEL_CHARS)


# -- descriptions -------------------------------------------------------------------


def _text(text: str, *marks: dict[str, Any]) -> list[dict[str, Any]]:
    """An ADF text node (none for empty text: ADF refuses empty text nodes)."""
    if not text:
        return []
    node: dict[str, Any] = {"type": "text", "text": text}
    if marks:
        node["marks"] = list(marks)
    return [node]


def _paragraph(*inline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    content = [n for part in inline for n in part]
    return [{"type": "paragraph", "content": content}] if content else []


STRONG = {"type": "strong"}


def adf_description(alerts: Sequence[Alert], group: GroupInfo, lead: str) -> dict[str, Any]:
    """The issue description as an Atlassian Document Format document (Cloud, REST v3)."""
    content: list[dict[str, Any]] = []
    for line in lead.splitlines():
        content += _paragraph(_text(line))
    for a in alerts[:MAX_ALERTS]:
        head = title(a) + (f" ({where(a)})" if where(a) else "")
        content.append({"type": "heading", "attrs": {"level": 3}, "content": _text(head)})
        content += _paragraph(_text(a.annotations.get("summary", ""), STRONG))
        content += _paragraph(_text(a.annotations.get("description", "")))
        team, _, reason = why(a).partition(": ")
        content += _paragraph(_text(f"{team}: ", STRONG), _text(reason))
        content.append({
            "type": "bulletList",
            "content": [
                {"type": "listItem", "content": _paragraph(_text(f"{k}: ", STRONG), _text(v))}
                for k, v in detail_rows(a) if v
            ],
        })
        inline: list[dict[str, Any]] = []
        for i, (name, url) in enumerate(links(a)):
            inline += _text(" · " if i else "")
            inline += _text(name, {"type": "link", "attrs": {"href": url}})
        content += _paragraph(inline)
    if len(alerts) > MAX_ALERTS:
        content += _paragraph(_text(f"… and {len(alerts) - MAX_ALERTS} more alert(s)"))
    return {"type": "doc", "version": 1, "content": content}


def wiki_escape(text: str) -> str:
    return _WIKI_SPECIAL.sub(r"\\\1", text)


def wiki_description(alerts: Sequence[Alert], group: GroupInfo, lead: str) -> str:
    """The issue description in JIRA wiki markup (Data Center, REST v2)."""
    esc = wiki_escape
    out = [esc(line) for line in lead.splitlines()]
    for a in alerts[:MAX_ALERTS]:
        head = title(a) + (f" ({where(a)})" if where(a) else "")
        out += ["", f"h3. {esc(head)}"]
        if a.annotations.get("summary"):
            out.append(f"*{esc(a.annotations['summary'])}*")
        if a.annotations.get("description"):
            out.append(esc(a.annotations["description"]))
        team, _, reason = why(a).partition(": ")
        out.append(f"*{esc(team)}:* {esc(reason)}")
        out += [f"* *{k}:* {esc(v)}" for k, v in detail_rows(a) if v]
        refs = [f"[{name}|{url}]" for name, url in links(a) if "|" not in url and "]" not in url]
        if refs:
            out.append(" · ".join(refs))
    if len(alerts) > MAX_ALERTS:
        out += ["", f"… and {len(alerts) - MAX_ALERTS} more alert(s)"]
    return cut("\n".join(out), DESCRIPTION_CHARS)
