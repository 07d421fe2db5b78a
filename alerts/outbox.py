"""The outbox: notifications waiting for delivery, so that none is ever lost.

One item is one notification of one aggregation group (its alerts, as the
group spoke at one moment) for one integration of one receiver.
Items are plain JSON (:meth:`OutboxItem.to_json`), so a durable store can keep
them in a table; :class:`MemoryOutbox` is the in-process implementation and
:class:`Outbox` the small interface a SQL implementation will fill in.

Dedup: an item whose ``(receiver, integration, group key, digest)`` -- the
digest covers each alert's fingerprint, status and startsAt, and which repeat
of those alerts it is -- is already queued or was already delivered is
ignored on ``put``.  Nothing in it depends on the wall clock, so a restarted
daemon that makes the same notification again does not send it twice.  Failed
items (not retriable) are kept for reporting; putting them again re-queues.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from alerts.model import Alert
from alerts.receivers.base import GroupInfo

DedupKey = tuple[str, int, str, str]


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def alert_from_json(d: dict[str, Any]) -> Alert:
    """Inverse of :meth:`Alert.to_json` (timestamps to microsecond precision)."""
    starts = _epoch(d["startsAt"])
    return Alert(
        labels=dict(d["labels"]),
        annotations=dict(d["annotations"]),
        status=d["status"],
        starts_at=0.0 if starts is None else starts,
        ends_at=_epoch(d.get("endsAt")),
        evidence=dict(d.get("evidence", {})),
        receivers=list(d.get("receivers", [])),
    )


@dataclass
class OutboxItem:
    id: str
    receiver: str
    integration: int  # index into the receiver's integrations
    kind: str  # integration kind, for reporting ("webhook", "slack", ...)
    alerts: list[dict[str, Any]]  # Alert.to_json() of each alert of the notification
    group: dict[str, Any]  # GroupInfo.to_json()
    at: float = 0.0  # when the group spoke
    repeat: int = 0  # 0: news; n: the n-th repeat of the same alerts
    attempts: int = 0
    next_attempt_at: float = 0.0
    created_at: float = 0.0
    last_error: str = ""

    @classmethod
    def new(
        cls, receiver: str, integration: int, kind: str, alerts: list[Alert], group: GroupInfo,
        now: float, at: float | None = None, repeat: int = 0,
    ) -> OutboxItem:
        return cls(
            id=uuid.uuid4().hex,
            receiver=receiver,
            integration=integration,
            kind=kind,
            alerts=[a.to_json() for a in alerts],
            group=group.to_json(),
            at=now if at is None else at,
            repeat=repeat,
            next_attempt_at=now,
            created_at=now,
        )

    @property
    def dedup_key(self) -> DedupKey:
        h = hashlib.sha256(f"repeat {self.repeat}".encode())
        for a in self.alerts:
            h.update(f"|{a['fingerprint']},{a['status']},{a['startsAt']}".encode())
        return (self.receiver, self.integration, str(self.group["group_key"]), h.hexdigest())

    @property
    def fingerprints(self) -> list[str]:
        return [str(a["fingerprint"]) for a in self.alerts]

    def to_alerts(self) -> list[Alert]:
        return [alert_from_json(a) for a in self.alerts]

    def group_info(self) -> GroupInfo:
        return GroupInfo.from_json(self.group)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "receiver": self.receiver,
            "integration": self.integration,
            "kind": self.kind,
            "alerts": self.alerts,
            "group": self.group,
            "at": self.at,
            "repeat": self.repeat,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "created_at": self.created_at,
            "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OutboxItem:
        return cls(**d)


CLAIM_SECONDS = 60.0  # an item handed out by ``due``: longer than any receiver's timeout


class Outbox(Protocol):
    def put(self, item: OutboxItem) -> bool:
        """Queue ``item``; False when an equal notification is queued or delivered."""
        ...

    def due(self, now: float) -> list[OutboxItem]:
        """Queued items with ``next_attempt_at <= now``, oldest due first (copies), each
        claimed for the caller: due to nobody else for :data:`CLAIM_SECONDS` (several
        daemons share one outbox; one that dies mid-send leaves the item due again)."""
        ...

    def ack(self, item_id: str) -> None:
        """Delivered: remove from the queue and remember for dedup."""
        ...

    def reschedule(self, item_id: str, next_attempt_at: float, error: str) -> None:
        """A retriable failure: count the attempt, try again at ``next_attempt_at``."""
        ...

    def fail(self, item_id: str, error: str) -> None:
        """A permanent failure: keep for reporting, never retry."""
        ...

    def pending(self) -> int:
        """Number of queued items."""
        ...

    def next_attempt_at(self) -> float | None:
        """When the earliest queued item is due (None when nothing is queued)."""
        ...


class MemoryOutbox:
    """In-process outbox (lost on restart); thread-safe."""

    def __init__(self, remember: int = 100_000, keep_failed: int = 1_000) -> None:
        self.remember = remember  # delivered dedup keys kept (oldest forgotten first)
        self.keep_failed = keep_failed
        self._queued: dict[str, OutboxItem] = {}
        self._keys: dict[DedupKey, str] = {}
        self._delivered: OrderedDict[DedupKey, None] = OrderedDict()
        self._failed: list[OutboxItem] = []
        self._lock = threading.Lock()

    def put(self, item: OutboxItem) -> bool:
        key = item.dedup_key
        with self._lock:
            if key in self._keys or key in self._delivered or item.id in self._queued:
                return False
            self._queued[item.id] = replace(item)
            self._keys[key] = item.id
            return True

    def due(self, now: float) -> list[OutboxItem]:
        with self._lock:
            ready = [i for i in self._queued.values() if i.next_attempt_at <= now]
            out = sorted((replace(i) for i in ready), key=lambda i: i.next_attempt_at)
            for i in ready:
                i.next_attempt_at = now + CLAIM_SECONDS
        return out

    def _pop(self, item_id: str) -> OutboxItem | None:
        item = self._queued.pop(item_id, None)
        if item is not None:
            self._keys.pop(item.dedup_key, None)
        return item

    def ack(self, item_id: str) -> None:
        with self._lock:
            item = self._pop(item_id)
            if item is None:
                return
            self._delivered[item.dedup_key] = None
            while len(self._delivered) > self.remember:
                self._delivered.popitem(last=False)

    def reschedule(self, item_id: str, next_attempt_at: float, error: str) -> None:
        with self._lock:
            item = self._queued.get(item_id)
            if item is not None:
                item.attempts += 1
                item.next_attempt_at = next_attempt_at
                item.last_error = error

    def fail(self, item_id: str, error: str) -> None:
        with self._lock:
            item = self._pop(item_id)
            if item is None:
                return
            item.attempts += 1
            item.last_error = error
            self._failed.append(item)
            del self._failed[: max(0, len(self._failed) - self.keep_failed)]

    def pending(self) -> int:
        with self._lock:
            return len(self._queued)

    def next_attempt_at(self) -> float | None:
        with self._lock:
            return min((i.next_attempt_at for i in self._queued.values()), default=None)

    def queued(self) -> list[OutboxItem]:
        with self._lock:
            return [replace(i) for i in self._queued.values()]

    def failed(self) -> list[OutboxItem]:
        with self._lock:
            return [replace(i) for i in self._failed]
