"""The alert book: which alerts are firing, and when they fire and resolve.

An alert is identified by its finding's key ``(model, kind, feature, segment)``.
Each evaluation of a model tells the book which keys it tested and which
of them raised a finding:

* a key with a finding that is not firing -> a new firing alert
  (``startsAt`` = the evaluation's time, event time in the pipeline);
* a firing key tested clean ``resolve_after`` evaluations in a row -> the
  resolved alert, with the labels it fired with (``endsAt`` = that time);
* a firing key found again -> its clean count restarts, no change -- unless a window
  that tested it attributes it to the other fault class: then it resolves (the
  ``resolution`` annotation says why) and fires anew with the new team;
* keys that were not tested, and every key of other models, are untouched.

The labels are those set when the alert fired, so a later window with a new
``model_version`` resolves the same alert (same fingerprint) instead of
orphaning it.  State round-trips through plain JSON (:meth:`to_state`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.attribution import Attributed, to_alert
from alerts.model import Alert, rfc3339

Key = tuple[str, str, str | None, str | None]

STATE_VERSION = 1


@dataclass
class _Entry:
    alert: Alert
    clean: int = 0


def _alert_state(a: Alert) -> dict[str, Any]:
    return {
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "status": a.status,
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "evidence": dict(a.evidence),
        "receivers": list(a.receivers),
        "muted_by": a.muted_by,
    }


def _alert_from_state(s: dict[str, Any]) -> Alert:
    return Alert(
        labels=dict(s["labels"]),
        annotations=dict(s["annotations"]),
        status=s["status"],
        starts_at=s["starts_at"],
        ends_at=s["ends_at"],
        evidence=dict(s["evidence"]),
        receivers=list(s.get("receivers", [])),
        muted_by=s.get("muted_by"),
    )


class AlertBook:
    """Firing alerts by key, with the count of clean evaluations since last seen."""

    def __init__(self, resolve_after: int = 2) -> None:
        if resolve_after < 1:
            raise ValueError(f"resolve_after must be >= 1, got {resolve_after!r}")
        self.resolve_after = resolve_after
        self._entries: dict[Key, _Entry] = {}

    def update(
        self, model: str, evaluated: Iterable[Key], attributed: Sequence[Attributed], now: float
    ) -> list[Alert]:
        """Fold one evaluation of ``model`` in; returns the alert state changes."""
        changes: list[Alert] = []
        found: set[Key] = set()
        evaluated = list(evaluated)
        tested = {tuple(k) for k in evaluated}
        for a in attributed:
            key: Key = a.finding.key
            if key[3] is not None and key[:3] + (None,) in self._entries:
                # the drift already fires for the whole model: one verdict per feature
                key = key[:3] + (None,)
            if key in found:
                continue
            found.add(key)
            entry = self._entries.get(key)
            if entry is not None and (entry.alert.labels.get("fault") == a.fault
                                      or key not in tested):
                entry.clean = 0
                continue
            if entry is not None:
                # a whole window's evidence now says it is the other team's (a broken feed
                # that explained a drift is fixed, and the drift goes on): resolved, and
                # raised anew for them; a lone alarm between windows never flips a verdict
                old = entry.alert
                old.annotations["resolution"] = (
                    f"re-attributed: now {a.fault} ({a.team}): {a.reason}")
                changes += self.resolve(key, now)
            alert = to_alert(a, "firing", starts_at=now, ends_at=None)
            local = [k for k in self._entries if k[:3] == key[:3] and k[3] is not None] \
                if key[3] is None else []
            if local:
                first = min((self._entries[k].alert for k in local), key=lambda x: x.starts_at)
                alert.annotations["attribution"] += (
                    f"; it was first seen on {first.labels.get('segment')} alone "
                    f"(since {rfc3339(first.starts_at)}), and has reached the other segments")
            self._entries[key] = _Entry(alert)
            changes.append(alert)
            for k in local:  # the segment's verdict was wrong: resolved, and replaced
                old = self._entries[k].alert
                old.annotations["resolution"] = (
                    f"the drift reached the other segments: replaced by {alert.fingerprint} "
                    f"({alert.labels['alertname']}, team {alert.labels['team']})")
                found.add(k)
                changes += self.resolve(k, now)
        for raw in evaluated:
            key = tuple(raw)  # type: ignore[assignment]
            if key[0] != model or key in found:
                continue
            entry = self._entries.get(key)
            if entry is None:
                continue
            entry.clean += 1
            if entry.clean >= self.resolve_after:
                changes += self.resolve(key, now)
        return changes

    def resolve(self, key: Key, now: float) -> list[Alert]:
        """Resolve ``key`` at once, for conditions seen to end (traffic resumed)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return []
        fired = entry.alert
        return [
            Alert(
                labels=dict(fired.labels),
                annotations=dict(fired.annotations),
                status="resolved",
                starts_at=fired.starts_at,
                ends_at=now,
                evidence=dict(fired.evidence),
                receivers=list(fired.receivers),
            )
        ]

    def is_firing(self, key: Key) -> bool:
        return key in self._entries

    def firing(self) -> list[Alert]:
        """Firing alerts, oldest first.  These are the book's own objects."""
        return [e.alert for e in self._entries.values()]

    def __len__(self) -> int:
        return len(self._entries)

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "resolve_after": self.resolve_after,
            "alerts": [
                {"key": list(k), "clean": e.clean, "alert": _alert_state(e.alert)}
                for k, e in self._entries.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], resolve_after: int | None = None) -> AlertBook:
        """Rebuild a book; ``resolve_after`` (the current config) overrides the saved one."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported alert book state version {state.get('version')!r}")
        book = cls(resolve_after=resolve_after or int(state["resolve_after"]))
        for item in state["alerts"]:
            model, kind, feature, segment = item["key"]
            book._entries[(model, kind, feature, segment)] = _Entry(
                _alert_from_state(item["alert"]), int(item["clean"])
            )
        return book
