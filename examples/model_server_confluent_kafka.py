"""The same model server as model_server_kafka_python.py, with confluent-kafka (librdkafka).

    pip install confluent-kafka
    python examples/model_server_confluent_kafka.py --bootstrap 127.0.0.1:9092 --requests 5000

``Producer.produce`` only queues the message: delivery reports arrive through
``poll()`` (called after every produce to serve callbacks, never blocking) and
``flush()`` at shutdown waits for the queue to drain.  A full local queue raises
``BufferError``: poll briefly and retry, so serving slows down instead of
dropping events.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from model_server_kafka_python import serve  # the same simulated requests


class DriftwatchEmitter:
    """Prediction and label events through librdkafka; the key is the model name."""

    def __init__(self, bootstrap: str, predictions_topic: str = "predictions",
                 labels_topic: str = "labels", **config: Any) -> None:
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,   # no duplicates from librdkafka's own retries
            "linger.ms": 20,
            **config,
        })
        self.failed = 0

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1

    def _send(self, topic: str, event: dict[str, Any]) -> None:
        value = json.dumps(event, separators=(",", ":")).encode("utf-8")
        while True:
            try:
                self.producer.produce(topic, key=event["model"].encode("utf-8"), value=value,
                                      on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.1)
        self.producer.poll(0)

    def prediction(self, *, model: str, id: str, features: dict[str, Any],  # noqa: A002
                   prediction: float | str | None, latency_ms: float, version: str,
                   status: str = "ok", segment: dict[str, str] | None = None) -> None:
        event: dict[str, Any] = {
            "type": "prediction", "id": id, "model": model, "model_version": version,
            "ts": datetime.now(UTC).isoformat(), "features": features,
            "prediction": prediction, "latency_ms": round(latency_ms, 3), "status": status,
        }
        if segment:
            event["segment"] = segment
        self._send(self.predictions_topic, event)

    def label(self, *, model: str, id: str, label: float | str) -> None:  # noqa: A002
        self._send(self.labels_topic, {"type": "label", "id": id, "model": model,
                                       "ts": datetime.now(UTC).isoformat(), "label": label})

    def close(self) -> None:
        remaining = self.producer.flush(30)
        self.failed += remaining  # still queued after 30 s: not delivered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--predictions-topic", default="predictions")
    ap.add_argument("--labels-topic", default="labels")
    ap.add_argument("--requests", type=int, default=5000)
    args = ap.parse_args()
    emitter = DriftwatchEmitter(args.bootstrap, args.predictions_topic, args.labels_topic)
    try:
        n = serve(emitter, args.requests)  # type: ignore[arg-type]
    finally:
        emitter.close()
    print(f"sent {n} predictions and their labels ({emitter.failed} failed)")


if __name__ == "__main__":
    main()
