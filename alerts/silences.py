"""Silences: an on-call engineer mutes matching alerts for a while (Alertmanager semantics).

A silence has matchers (``name="value"``, ``!=``, ``=~``, ``!~``), a start, an
end, an author and a comment.  While it is active, a firing alert that matches
all its matchers is not notified; when it ends (or is expired early) and the
alert still fires, the alert goes out then.  As in Alertmanager, a silence
must have at least one matcher that does not match the empty string, so it
cannot mute everything by accident.

Silences are plain data; where they live is the caller's business
(:class:`Silencer` takes a loader, e.g. the SQL store's, and caches it for a
few seconds so every instance sharing a database sees a new silence quickly).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.matchers import Matcher, match_all, parse_all
from alerts.model import rfc3339


@functools.lru_cache(maxsize=4096)
def _parsed(matchers: tuple[str, ...]) -> tuple[Matcher, ...]:
    return parse_all(matchers)


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[str, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return match_all(_parsed(self.matchers), labels)

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "matchers": list(self.matchers),
            "startsAt": rfc3339(self.starts_at), "endsAt": rfc3339(self.ends_at),
            "createdBy": self.created_by, "comment": self.comment,
            "createdAt": rfc3339(self.created_at)}
        if now is not None:
            out["status"] = {"state": self.state(now)}
        return out


def new_silence(matchers: Sequence[str], *, ends_at: float, created_by: str, comment: str,
                now: float, starts_at: float | None = None) -> Silence:
    """A validated silence; ValueError says what is wrong (and with which value)."""
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    parsed = parse_all(matchers)  # raises ValueError naming the bad matcher
    if all(m.matches({}) for m in parsed):
        raise ValueError(f"matchers {list(matchers)!r} all match the empty string: "
                         "the silence would mute every alert")
    start = now if starts_at is None else float(starts_at)
    if not ends_at > start:
        raise ValueError(f"endsAt ({rfc3339(ends_at)}) must be after startsAt "
                         f"({rfc3339(start)})")
    if not created_by.strip():
        raise ValueError("createdBy must not be empty")
    if not comment.strip():
        raise ValueError("comment must not be empty: say why the alerts are muted")
    return Silence(uuid.uuid4().hex, tuple(str(m) for m in parsed), start, float(ends_at),
                   created_by.strip(), comment.strip(), now)


class Silencer:
    """Which active silences mute an alert, from a loader cached for ``ttl`` seconds."""

    def __init__(self, load: Callable[[], Sequence[Silence]], ttl: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self.ttl = ttl
        self._monotonic = monotonic
        self._cache: Sequence[Silence] = ()
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            self._cache = tuple(self._load())
            self._loaded_at = self._monotonic()

    def _silences(self) -> Sequence[Silence]:
        if self._monotonic() - self._loaded_at >= self.ttl:
            self.refresh()
        return self._cache

    def silenced_by(self, labels: Mapping[str, str], now: float) -> list[str]:
        """Ids of the active silences that match ``labels``."""
        return [s.id for s in self._silences()
                if s.state(now) == "active" and s.matches(labels)]
