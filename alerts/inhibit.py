"""Inhibition: a firing alert that explains another mutes it, in event time.

A rule mutes a *target* alert (one matching ``target_matchers``) when some
*other* alert matches ``source_matchers``, carries the same value for every
label named in ``equal`` (a label absent from both counts as equal, as the
empty string) and **fires at the target's event time**: the source started at
or before the target's ``startsAt`` and had not ended then.  A source that
starts later does not mute a target that is already firing, so the verdict does
not depend on the order in which alerts are seen (or on how a replay is
chunked).  An alert never inhibits itself, even when it matches both sides.

The default rules (:data:`alerts.config.DEFAULT_INHIBIT_RULES`) let a broken
feed mute the model faults it can explain; a slow or failing server does not
mute anything: it does not explain a shifted input.
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

    def muted_by(self, alert: Alert, sources: Iterable[Alert],
                 at: float | None = None) -> Alert | None:
        """The alert among ``sources`` that inhibits ``alert`` at event time ``at``
        (default: the alert's own ``startsAt``), or None.  A source counts while it
        fires at ``at``: started at or before it, not ended at it."""
        rules = [r for r in self.rules if match_all(r.target, alert.labels)]
        if not rules:
            return None
        own = alert.fingerprint
        t = alert.starts_at if at is None else at
        for source in sources:
            if source is alert or source.fingerprint == own or not _fires_at(source, t):
                continue
            for r in rules:
                if match_all(r.source, source.labels) and all(
                    source.labels.get(n, "") == alert.labels.get(n, "") for n in r.equal
                ):
                    return source
        return None


def _fires_at(a: Alert, t: float) -> bool:
    """Whether ``a`` fires at event time ``t``: started by then, not yet ended."""
    if a.starts_at > t:
        return False
    if a.status == "firing":
        return a.ends_at is None or t < a.ends_at
    return a.ends_at is not None and t < a.ends_at
