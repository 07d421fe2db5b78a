"""Inhibition: a firing alert that explains another mutes it (Alertmanager semantics).

A rule mutes a *target* alert (one matching ``target_matchers``) while some
*other* firing alert matches ``source_matchers`` and carries the same value
for every label named in ``equal`` (a label absent from both counts as equal,
as the empty string).  An alert never inhibits itself, even when it matches
both sides.  The default rule lets a broken feed (``fault="infrastructure"``)
mute the model alerts of the same model that it causes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alerts.config import DEFAULT_INHIBIT_RULES, InhibitRule
from alerts.matchers import Matcher, match_all, parse_all
from alerts.model import Alert


@dataclass(frozen=True)
class _Rule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


class Inhibitor:
    def __init__(self, rules: Sequence[InhibitRule] = DEFAULT_INHIBIT_RULES) -> None:
        self.rules = tuple(
            _Rule(parse_all(r.source_matchers), parse_all(r.target_matchers), tuple(r.equal))
            for r in rules
        )

    def muted_by(self, alert: Alert, firing: Iterable[Alert]) -> Alert | None:
        """The firing alert that inhibits ``alert``, or None."""
        rules = [r for r in self.rules if match_all(r.target, alert.labels)]
        if not rules:
            return None
        own = alert.fingerprint
        for source in firing:
            if source is alert or source.status != "firing" or source.fingerprint == own:
                continue
            for r in rules:
                if match_all(r.source, source.labels) and all(
                    source.labels.get(n, "") == alert.labels.get(n, "") for n in r.equal
                ):
                    return source
        return None

    def inhibited(self, alert: Alert, firing: Iterable[Alert]) -> bool:
        """Whether some other firing alert mutes ``alert`` under any rule."""
        return self.muted_by(alert, firing) is not None
