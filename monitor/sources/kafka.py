"""Kafka source: a consumer group over the predictions and labels topics.

Offsets are committed manually, only after the batch that contained them has
been processed (``commit`` after ``Pipeline.process``).  With a store, the
daemon commits explicit offsets (:meth:`KafkaSource.commit_offsets`) after
they were checkpointed with the state, and when partitions are assigned it
seeks them to their checkpointed offsets (the rebalance listener hands every
revocation and assignment to the daemon), so the checkpoint, not Kafka's
committed offset, decides where reading resumes.  Nothing here depends on a
particular broker: any Kafka-protocol cluster works.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from monitor.config.types import KafkaConfig

log = logging.getLogger("driftwatch.kafka")

ConsumerFactory = Callable[..., Any]


class Rebalance(Protocol):
    """What the source tells its owner about the consumer group's assignment."""

    def on_revoked(self, partitions: list[Any]) -> None: ...

    def on_assigned(self, partitions: list[Any]) -> None: ...


@dataclass
class Polled:
    """The messages of one partition from one poll."""

    topic: str
    partition: int
    kind: str  # "prediction" or "label": the topic's default event type
    values: list[bytes]
    next_offset: int | None  # after the last message (None when records carry no offset)
    offsets: list[int | None] | None = None  # of each of ``values`` (for dead letters)


class KafkaSource:
    """Polls both topics, one :class:`Polled` per partition; tells ``listener`` about
    every revocation and assignment (it checkpoints and restores state there)."""

    def __init__(self, cfg: KafkaConfig, consumer_factory: ConsumerFactory = KafkaConsumer,
                 listener: Rebalance | None = None, **overrides: Any) -> None:
        self.cfg = cfg
        self.types = {cfg.predictions_topic: "prediction", cfg.labels_topic: "label"}
        options: dict[str, Any] = {
            "bootstrap_servers": list(cfg.bootstrap_servers),
            "group_id": cfg.group_id,
            "client_id": cfg.client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": cfg.auto_offset_reset,
            "session_timeout_ms": cfg.session_timeout_ms,
            "heartbeat_interval_ms": max(300, cfg.session_timeout_ms // 3),
            "max_poll_records": cfg.max_poll_records,
            # range: partition p of both topics goes to the same daemon, so a model's
            # labels meet its predictions when several daemons split the partitions
            "partition_assignment_strategy": (RangePartitionAssignor,),
            **cfg.client_options,
            **overrides,
        }
        self._connected, self._connected_at = True, -math.inf
        self.assigned_at = time.monotonic()
        self.consumer = consumer_factory(**options)
        self.consumer.subscribe(topics=list(self.types), listener=_Listener(self, listener))

    def co_partitioned(self) -> bool:
        """Whether a model's predictions and labels share a partition number (one topic,
        or two with as many partitions, both keyed by model): only then can several
        daemons split the partitions and still join labels to predictions."""
        if self.cfg.labels_topic == self.cfg.predictions_topic:
            return True
        counts = [self.consumer.partitions_for_topic(t) for t in self.types]
        return None not in counts and len(counts[0]) == len(counts[1])

    def poll(self, timeout_ms: int = 500) -> list[Polled]:
        out: list[Polled] = []
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.cfg.max_poll_records)
        for tp, records in polled.items():
            last = getattr(records[-1], "offset", None) if records else None
            kept = [r for r in records if r.value is not None]
            out.append(Polled(tp.topic, tp.partition, self.types.get(tp.topic, "prediction"),
                              [r.value for r in kept],
                              None if last is None else int(last) + 1,
                              [getattr(r, "offset", None) for r in kept]))
        return out

    def lags(self, processed: dict[str, int]) -> dict[tuple[str, int], int]:
        """Messages past the last one processed per assigned partition: the high
        watermark the last fetch reported minus ``processed`` (``"topic:partition"`` ->
        next offset).  Read from the client's fetch state, no request; a partition
        whose high watermark or position is not known yet is left out."""
        highwater = getattr(self.consumer, "highwater", None)
        if highwater is None:
            return {}
        out: dict[tuple[str, int], int] = {}
        for tp in self.consumer.assignment():
            hw = highwater(tp)
            pos = processed.get(f"{tp.topic}:{tp.partition}", 0 if hw == 0 else None)
            if hw is not None and pos is not None:
                out[(tp.topic, tp.partition)] = max(0, int(hw) - int(pos))
        return out

    def assignment(self) -> set[Any]:
        return set(self.consumer.assignment())

    @property
    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

    def connected(self, now: float | None = None) -> bool:
        """Whether the group coordinator took a heartbeat within the session timeout (or,
        before the first one, since the assignment).  The client keeps its assignment
        while the broker is unreachable, so an assignment alone does not say the daemon
        is consuming.  Read at most once a second (the client's metrics are an unstable
        interface: unknown counts as connected)."""
        t = time.monotonic() if now is None else now
        if t - self._connected_at >= 1.0:
            self._connected_at = t
            age = self._heartbeat_age()
            if age == math.inf:  # none sent yet: the join itself was the last answer
                age = t - self.assigned_at
            self._connected = age < self.cfg.session_timeout_ms / 1000
        return self._connected

    def _heartbeat_age(self) -> float:
        metrics = getattr(self.consumer, "metrics", None)
        try:
            found = metrics() if metrics is not None else None
            age = (found or {}).get("consumer-coordinator-metrics", {}).get(
                "last-heartbeat-seconds-ago")
            return float(age) if age is not None else 0.0
        except (TypeError, ValueError, AttributeError):
            return 0.0

    def seek(self, tp: Any, offset: int) -> None:
        self.consumer.seek(tp, offset)
        log.info("resuming from checkpoint", extra={"partition": f"{tp.topic}:{tp.partition}",
                                                    "offset": offset})

    def pause(self, tps: list[Any]) -> None:
        self.consumer.pause(*tps)

    def resume(self, tps: list[Any]) -> None:
        self.consumer.resume(*tps)

    def commit(self) -> bool:
        """Commit the positions of everything returned so far; False if it failed."""
        try:
            self.consumer.commit()
            return True
        except CommitFailedError as exc:  # a rebalance took the partitions away
            log.warning("offset commit failed after rebalance", extra={"error": str(exc)})
        except KafkaError as exc:
            log.warning("offset commit failed", extra={"error": str(exc)})
        return False

    def commit_offsets(self, offsets: dict[str, int]) -> bool:
        """Commit these ``"topic:partition" -> offset`` positions; False if it failed."""
        mine = {(tp.topic, tp.partition) for tp in self.assignment()}
        commit = {}
        for key, offset in offsets.items():
            topic, _, partition = key.rpartition(":")
            if (topic, int(partition)) in mine:
                commit[TopicPartition(topic, int(partition))] = OffsetAndMetadata(offset, "", -1)
        if not commit:
            return True
        try:
            self.consumer.commit(commit)
            return True
        except CommitFailedError as exc:
            log.warning("offset commit failed after rebalance", extra={"error": str(exc)})
        except KafkaError as exc:
            log.warning("offset commit failed", extra={"error": str(exc)})
        return False

    def close(self) -> None:
        self.consumer.close()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource, owner: Rebalance | None) -> None:
        self.source, self.owner = source, owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self.owner is not None:
            self.owner.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.source.assigned_at = time.monotonic()
        if self.owner is not None:
            self.owner.on_assigned(list(assigned))
