"""Invalid input to the dead-letter topic, and batches that fail bisected.

``[kafka] dead_letter_topic``: every event the decoder rejects (or the whole
message, when it is not JSON at all) is produced there unchanged, with why in
its Kafka headers:

    driftwatch-reason     the reason it is counted under (driftwatch_events_invalid_total)
    driftwatch-topic      the topic, partition and offset it was read from
    driftwatch-partition
    driftwatch-offset

and only once the broker acknowledged them are the offsets past them stored
or committed (:meth:`DeadLetters.flush` before every checkpoint or commit).

A batch the pipeline fails on is not skipped whole: it is split in halves,
each processed again, down to the single message that fails; that message is
counted as invalid (``processing_error``), logged with its traceback and
dead-lettered, and every other message of the batch counts as usual.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer

from monitor.config.types import KafkaConfig
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.sources.kafka import Polled

log = logging.getLogger("driftwatch.deadletter")

PROCESSING_ERROR = "processing_error"
FLUSH_SECONDS = 10.0


class DeadLetters:
    """A producer to the dead-letter topic that knows what it has not yet delivered."""

    def __init__(self, cfg: KafkaConfig, producer_factory: Callable[..., Any] = KafkaProducer,
                 **overrides: Any) -> None:
        assert cfg.dead_letter_topic is not None
        self.topic = cfg.dead_letter_topic
        self.producer = producer_factory(**{
            "bootstrap_servers": list(cfg.bootstrap_servers),
            "client_id": f"{cfg.client_id}-dead-letter",
            "acks": "all",
            "retries": 5,
            **cfg.client_options,
            **overrides,
        })
        self._pending: list[tuple[Any, bytes, list[tuple[str, bytes]]]] = []
        self.sent = 0

    def send(self, value: bytes, reason: str, topic: str, partition: int,
             offset: int | None) -> None:
        headers = [("driftwatch-reason", reason.encode()),
                   ("driftwatch-topic", topic.encode()),
                   ("driftwatch-partition", str(partition).encode()),
                   ("driftwatch-offset", b"" if offset is None else str(offset).encode())]
        self._send(value, headers)

    def _send(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        future = self.producer.send(self.topic, value=value, headers=headers)
        self._pending.append((future, value, headers))

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Whether every dead letter so far was acknowledged; those that failed are sent
        again (and the caller must not store or commit the offsets past them yet)."""
        if not self._pending:
            return True
        with contextlib.suppress(Exception):  # a broker that does not answer: judged below
            self.producer.flush(timeout=timeout)
        failed = [(v, h) for f, v, h in self._pending if not f.is_done or f.failed()]
        self.sent += len(self._pending) - len(failed)
        self._pending = []
        for value, headers in failed:
            self._send(value, headers)
        if failed:
            log.warning("dead letters not acknowledged; offsets held back",
                        extra={"topic": self.topic, "pending": len(failed)})
        return not failed

    def close(self) -> None:
        self.flush()
        self.producer.close()


def process_polled(p: Pipeline, part: Polled, metrics: Metrics,
                   dead: DeadLetters | None) -> None:
    """One partition's messages into ``p``: invalid ones dead-lettered, and a batch
    that fails bisected down to the messages that fail."""
    offsets = part.offsets or [None] * len(part.values)

    def letter(i: int, reason: str, raw: bytes) -> None:
        if dead is not None:
            dead.send(raw, reason, part.topic, part.partition, offsets[i])

    attempts: list[int] = []
    failed = _bisect(p, part.values, part.kind, 0, letter, dead is not None, attempts)
    if attempts:
        metrics.batch_errors.labels("kafka").inc()
    if failed:
        metrics.invalid.labels(PROCESSING_ERROR).inc(len(failed))
        p.invalid[PROCESSING_ERROR] = p.invalid.get(PROCESSING_ERROR, 0) + len(failed)
        for i in failed:
            letter(i, PROCESSING_ERROR, part.values[i])


def _bisect(p: Pipeline, values: list[bytes], kind: str, base: int,
            letter: Callable[[int, str, bytes], None], collect: bool,
            failures: list[int]) -> list[int]:
    """Process ``values``; the indices (from ``base``) of the messages that fail.  The
    invalid events a failed attempt saw are dropped: its halves see them again."""
    p.decoder.dead = [] if collect else None
    try:
        p.process_messages(values, kind)
    except Exception:
        p.decoder.dead = None
        failures.append(len(values))
        if len(values) == 1:
            log.exception("message failed; counted as processing_error",
                          extra={"type": kind, "index": base})
            return [base]
        log.warning("batch failed; processing its halves apart",
                    extra={"type": kind, "messages": len(values)})
        mid = len(values) // 2
        return (_bisect(p, values[:mid], kind, base, letter, collect, failures)
                + _bisect(p, values[mid:], kind, base + mid, letter, collect, failures))
    got, p.decoder.dead = p.decoder.dead, None
    for i, reason, raw in got or ():
        letter(base + i, reason, raw)
    return []
