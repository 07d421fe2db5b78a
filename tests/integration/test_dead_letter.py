"""The dead-letter topic on a real broker: each invalid message arrives there with
why in its headers, and the valid events around it count (issue 27)."""

from __future__ import annotations

import threading
import uuid

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry

from monitor.config.types import Config, HttpConfig, KafkaConfig, StoreConfig
from monitor.daemon import Daemon, wait_until
from monitor.store import Store

pytestmark = pytest.mark.integration

T0 = 1_767_225_600.0


def good(i: int) -> bytes:
    return orjson.dumps({"id": str(i), "model": "churn", "ts": T0 + i, "prediction": 0.4,
                         "latency_ms": 12.0})


def test_invalid_messages_go_to_the_dead_letter_topic_with_their_reason(broker,
                                                                         tmp_path) -> None:
    from monitor.broker import free_port

    s = uuid.uuid4().hex[:8]
    topics = {"predictions": f"p-{s}", "labels": f"l-{s}", "dead": f"dead-{s}"}
    broker.create_topics(list(topics.values()), partitions=1)
    config = Config(
        kafka=KafkaConfig(bootstrap_servers=(broker.bootstrap,),
                          predictions_topic=topics["predictions"], labels_topic=topics["labels"],
                          group_id=f"g-{s}", session_timeout_ms=6_000,
                          dead_letter_topic=topics["dead"]),
        store=StoreConfig(url=f"sqlite:///{tmp_path / 'dw.db'}", checkpoint_interval=0.5),
        http=HttpConfig(port=free_port()))
    bad = [b'{"model": "churn", "ts": trunc',                      # invalid_json
           orjson.dumps({"id": "7", "model": "churn", "ts": "yesterday",
                         "prediction": 1})]                         # bad_ts
    mixed = orjson.dumps([orjson.loads(good(100)),                   # one message, one bad
                          {"id": "8", "model": "churn", "ts": T0}])  # event: missing_prediction
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(50):
        producer.send(topics["predictions"], key=b"churn", value=good(i))
    for v in [*bad, mixed]:
        producer.send(topics["predictions"], key=b"churn", value=v)
    producer.flush()
    producer.close()
    store = Store(config.store.url)
    registry = CollectorRegistry()
    daemon = Daemon(config, registry=registry, store=store)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        def counted() -> float:
            return registry.get_sample_value("driftwatch_events_total",
                                             {"model": "churn", "type": "prediction"}) or 0.0

        assert wait_until(lambda: counted() == 51, 60), counted()

        def checkpointed() -> dict[str, int]:
            found = store.load_checkpoint(f"g-{s}/0")
            return found[1] if found else {}

        # the offsets past the bad messages are stored only after they were dead-lettered
        assert wait_until(lambda: checkpointed().get(f"{topics['predictions']}:0") == 53, 30)
        reader = KafkaConsumer(topics["dead"], bootstrap_servers=broker.bootstrap,
                               auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                               group_id=None)
        letters = []
        for record in reader:
            letters.append((record.value, dict(record.headers)))
            if len(letters) == 3:
                break
        reader.close()
    finally:
        daemon.request_stop()
        runner.join(timeout=30)
    assert not runner.is_alive()
    by_reason = {h["driftwatch-reason"].decode(): (v, h) for v, h in letters}
    assert set(by_reason) == {"invalid_json", "bad_ts", "missing_prediction"}
    value, headers = by_reason["invalid_json"]
    assert value == bad[0]
    assert headers["driftwatch-topic"].decode() == topics["predictions"]
    assert headers["driftwatch-partition"] == b"0" and headers["driftwatch-offset"] == b"50"
    assert orjson.loads(by_reason["bad_ts"][0])["ts"] == "yesterday"
    assert by_reason["missing_prediction"][1]["driftwatch-offset"] == b"52"
    assert orjson.loads(by_reason["missing_prediction"][0]) == {"id": "8", "model": "churn",
                                                                "ts": T0}
    assert registry.get_sample_value("driftwatch_events_invalid_total",
                                     {"reason": "bad_ts"}) == 1
