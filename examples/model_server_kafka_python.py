"""A model server that tells driftwatch what it predicts, with kafka-python.

Every request the model serves becomes one *prediction event* on the
predictions topic; when the truth is known (a customer churned or not, a
parcel arrived) the server -- or any other service -- sends one *label event*
with the same ``id`` on the labels topic.  driftwatch joins the two by
(``model``, ``id``).  Both are keyed by the model name, so one model's events
stay in one partition, in order.

    pip install kafka-python
    python examples/model_server_kafka_python.py --bootstrap 127.0.0.1:9092 --requests 5000

The event fields (docs/deploy.md and the README list them all): ``type``,
``id``, ``model``, ``model_version``, ``ts`` (RFC 3339 or epoch seconds),
``features``, ``prediction``, ``latency_ms``, ``status`` ("ok" / "error"),
``segment`` (low-cardinality: host, region); labels carry ``label``.

The "model" here is a stand-in (a logistic score of two features); replace
``ChurnModel.predict`` with yours and keep :class:`DriftwatchEmitter`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer


class DriftwatchEmitter:
    """Sends prediction and label events; never blocks serving on Kafka (send is async)."""

    def __init__(self, bootstrap: str, predictions_topic: str = "predictions",
                 labels_topic: str = "labels", **producer_options: Any) -> None:
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            acks="all",          # an event counts once it is on every in-sync replica
            linger_ms=20,        # batch a little: one request per 20 ms, not per event
            retries=5,
            **producer_options,
        )
        self.failed = 0

    def _send(self, topic: str, event: dict[str, Any]) -> None:
        value = json.dumps(event, separators=(",", ":")).encode("utf-8")
        future = self.producer.send(topic, key=event["model"].encode("utf-8"), value=value)
        future.add_errback(self._on_error)

    def _on_error(self, exc: BaseException) -> None:
        self.failed += 1  # count, never raise into the request path

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
        event = {"type": "label", "id": id, "model": model,
                 "ts": datetime.now(UTC).isoformat(), "label": label}
        self._send(self.labels_topic, event)

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


class ChurnModel:
    """A stand-in model: P(churn) from age and tenure."""

    name = "churn"
    version = "v1"

    def predict(self, features: dict[str, Any]) -> float:
        z = 0.04 * (40 - features["age"]) - 0.05 * features["tenure_months"] + 0.8
        return 1.0 / (1.0 + math.exp(-z))


def serve(emitter: DriftwatchEmitter, requests: int, seed: int = 7,
          label_every: int = 1) -> int:
    """Serve ``requests`` simulated requests; every ``label_every``-th gets its label."""
    rng = random.Random(seed)
    model = ChurnModel()
    host = socket.gethostname()
    pending: list[tuple[str, float]] = []
    for i in range(requests):
        features = {"age": round(rng.gauss(41, 9), 1),
                    "tenure_months": rng.randint(1, 72),
                    "plan": rng.choice(["basic", "plus", "pro"])}
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        p = model.predict(features)
        latency_ms = (time.perf_counter() - started) * 1000 + rng.uniform(5, 15)
        emitter.prediction(model=model.name, id=request_id, features=features, prediction=p,
                           latency_ms=latency_ms, version=model.version,
                           segment={"host": host})
        if i % label_every == 0:
            pending.append((request_id, p))
        if len(pending) >= 100:  # the truth arrives later, in batches
            for rid, prob in pending:
                emitter.label(model=model.name, id=rid, label=int(rng.random() < prob))
            pending.clear()
    for rid, prob in pending:
        emitter.label(model=model.name, id=rid, label=int(rng.random() < prob))
    return requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--predictions-topic", default="predictions")
    ap.add_argument("--labels-topic", default="labels")
    ap.add_argument("--requests", type=int, default=5000)
    args = ap.parse_args()
    emitter = DriftwatchEmitter(args.bootstrap, args.predictions_topic, args.labels_topic)
    try:
        n = serve(emitter, args.requests)
    finally:
        emitter.close()
    print(f"sent {n} predictions and their labels ({emitter.failed} failed)")


if __name__ == "__main__":
    main()
