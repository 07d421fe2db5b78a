"""Kafka source: a consumer group over the predictions and labels topics.

Offsets are committed manually, only after the batch that contained them has
been processed (``commit`` after ``Pipeline.process``).  Nothing here depends
on a particular broker: any Kafka-protocol cluster works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError

from monitor.config_types import KafkaConfig

log = logging.getLogger("driftwatch.kafka")

ConsumerFactory = Callable[..., Any]


class KafkaSource:
    """Polls both topics; ``poll`` returns ``{default_type: [message values]}``."""

    def __init__(self, cfg: KafkaConfig, consumer_factory: ConsumerFactory = KafkaConsumer,
                 **overrides: Any) -> None:
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
        self.consumer = consumer_factory(*self.types, **options)
        self.records_seen = 0

    def poll(self, timeout_ms: int = 500) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.cfg.max_poll_records)
        for tp, records in polled.items():
            kind = self.types.get(tp.topic, "prediction")
            out.setdefault(kind, []).extend(r.value for r in records if r.value is not None)
            self.records_seen += len(records)
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

    def close(self) -> None:
        self.consumer.close()
