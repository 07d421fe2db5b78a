"""examples/: the model-server producers against the real (tansu) broker: every event
keyed by its model, valid by driftwatch's own decoder, every label joinable by id."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import orjson
import pytest
from kafka import KafkaConsumer

from monitor.broker import EmbeddedBroker, free_port
from monitor.config.load import check_config
from monitor.events import Decoder

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REQUESTS = 300


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))  # the confluent example imports its sibling
    try:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


def _consume(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=5_000)
    try:
        out = []
        for msg in consumer:
            out.append((msg.key, msg.value))
            if len(out) >= expected:
                break
        return out
    finally:
        consumer.close()


@pytest.mark.parametrize("example", ["model_server_kafka_python", "model_server_confluent_kafka"])
def test_the_model_server_example_emits_valid_joinable_events(
    broker: EmbeddedBroker, example: str
) -> None:
    module = _load(example)
    predictions, labels = f"{example}-predictions", f"{example}-labels"
    broker.create_topics([predictions, labels], partitions=3)
    emitter = module.DriftwatchEmitter(broker.bootstrap, predictions, labels)
    module_serve = getattr(module, "serve", None) or _load("model_server_kafka_python").serve
    sent = module_serve(emitter, REQUESTS)
    emitter.close()
    assert sent == REQUESTS and emitter.failed == 0

    preds = _consume(broker.bootstrap, predictions, REQUESTS)
    labs = _consume(broker.bootstrap, labels, REQUESTS)
    assert len(preds) == REQUESTS and len(labs) == REQUESTS
    assert {k for k, _ in preds + labs} == {b"churn"}  # keyed by model

    decoder = Decoder()
    batch = decoder.decode_messages([v for _, v in preds], "prediction")
    assert not batch.invalid, batch.invalid_samples
    cols = batch.predictions["churn"]
    assert len(cols.ts) == REQUESTS and set(cols.numeric) == {"age", "tenure_months"}
    label_batch = decoder.decode_messages([v for _, v in labs], "label")
    assert not label_batch.invalid, label_batch.invalid_samples
    pred_ids = {orjson.loads(v)["id"] for _, v in preds}
    label_ids = {orjson.loads(v)["id"] for _, v in labs}
    assert label_ids == pred_ids  # every label joins its prediction by id
    first = orjson.loads(preds[0][1])
    assert first["type"] == "prediction" and set(first["features"]) == {
        "age", "tenure_months", "plan"}


def test_the_quick_path_broker_and_config(tmp_path: Path) -> None:
    """examples/local_broker.py serves the topics; examples/config.toml passes check-config."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "local_broker.py"), "--port",
                             str(port)], stdout=subprocess.PIPE, text=True,
                            cwd=EXAMPLES.parent)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"broker on 127.0.0.1:{port}" in line, line
        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}")
        try:
            assert {"predictions", "labels"} <= consumer.topics()
            assert len(consumer.partitions_for_topic("predictions") or ()) == 3
        finally:
            consumer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
    errors, _ = check_config(EXAMPLES / "config.toml")
    assert errors == []
