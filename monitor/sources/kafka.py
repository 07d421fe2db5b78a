"""Kafka source: a consumer group over the predictions and labels topics.

Offsets are committed manually, only after the batch that contained them has
been processed (``commit`` after ``Pipeline.process``).  With a store, the
daemon commits explicit offsets (:meth:`KafkaSource.commit_offsets`) after
they were checkpointed with the state, and on assignment a partition is
sought to its checkpointed offset (``start_offsets``), so the checkpoint, not
Kafka's committed offset, decides where reading resumes.  Nothing here
depends on a particular broker: any Kafka-protocol cluster works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from monitor.config_types import KafkaConfig

log = logging.getLogger("driftwatch.kafka")

ConsumerFactory = Callable[..., Any]


class KafkaSource:
    """Polls both topics; ``poll`` returns ``{default_type: [message values]}``."""

    def __init__(self, cfg: KafkaConfig, consumer_factory: ConsumerFactory = KafkaConsumer,
                 start_offsets: dict[str, int] | None = None, **overrides: Any) -> None:
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
            **cfg.client_options,
            **overrides,
        }
        self.records_seen = 0
        # "topic:partition" -> the next offset after what poll() has returned
        self.positions: dict[str, int] = {}
        self.start_offsets = dict(start_offsets or {})
        if start_offsets is None:
            self.consumer = consumer_factory(*self.types, **options)
        else:  # resume from a checkpoint: seek each partition as it is assigned
            self.consumer = consumer_factory(**options)
            self.consumer.subscribe(topics=list(self.types), listener=_SeekOnAssign(self))

    def _seek(self, assigned: Any) -> None:
        for tp in assigned:
            key = f"{tp.topic}:{tp.partition}"
            offset = self.positions.get(key, self.start_offsets.get(key))
            if offset is not None:
                self.consumer.seek(tp, offset)
                log.info("resuming from checkpoint", extra={"partition": key, "offset": offset})

    def poll(self, timeout_ms: int = 500) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.cfg.max_poll_records)
        for tp, records in polled.items():
            kind = self.types.get(tp.topic, "prediction")
            out.setdefault(kind, []).extend(r.value for r in records if r.value is not None)
            self.records_seen += len(records)
            last = getattr(records[-1], "offset", None) if records else None
            if last is not None:
                self.positions[f"{tp.topic}:{tp.partition}"] = int(last) + 1
        return out

    @property
    def assigned(self) -> bool:
        return bool(self.consumer.assignment())

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
        mine = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
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


class _SeekOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.source._seek(assigned)
