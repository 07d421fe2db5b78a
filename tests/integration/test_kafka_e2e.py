"""The whole path against a real broker: events in, routed alerts out over HTTP."""

import dataclasses
import threading
import time
import urllib.request
import uuid

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from monitor.channels import LocalChannel
from monitor.daemon import Daemon, wait_until
from monitor.demo import demo_config
from monitor.simulate import DEMO_MODELS, Fault, ndjson_chunks, stream

pytestmark = pytest.mark.integration


def test_daemon_consumes_kafka_and_routes_alerts_to_each_team(broker) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics(list(topics))
    ds, mle = LocalChannel("data-science"), LocalChannel("ml-engineering")
    base = demo_config(broker.bootstrap, ds.url, mle.url)
    config = dataclasses.replace(base, kafka=dataclasses.replace(
        base.kafka, predictions_topic=topics[0], labels_topic=topics[1],
        group_id=f"g-{suffix}"))
    faults = [Fault("churn", "shift", 3_000, {"feature": "age", "sigmas": 1.0}),
              Fault("eta", "latency", 3_000, {"factor": 1.6})]
    events = stream(DEMO_MODELS, 6_000, faults, seed=5)
    registry = CollectorRegistry()
    daemon = Daemon(config, registry=registry)
    http = daemon.start_http()
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=10)
        per_model: dict[str, list] = {}
        for e in events:
            per_model.setdefault(e["model"], []).append(e)
        for model, evs in per_model.items():
            for chunk in ndjson_chunks(evs, 250):
                producer.send(topics[0], key=model.encode(), value=chunk)
        # bad input mixed into the stream: counted, never fatal
        producer.send(topics[0], key=b"churn", value=b'{"model": "churn", "ts": trunc')
        producer.send(topics[0], key=b"churn", value=b"\xff\xfe not utf-8")
        producer.flush()
        producer.close()

        def total(model: str) -> float:
            return registry.get_sample_value(
                "driftwatch_events_total", {"model": model, "type": "prediction"}) or 0.0

        assert wait_until(lambda: total("churn") + total("eta") >= len(events), 90), (
            total("churn"), total("eta"))
        assert wait_until(
            lambda: any(a["labels"]["kind"] == "data_drift" for a in ds.alerts())
            and any(a["labels"]["kind"] == "latency_regression" for a in mle.alerts()), 30)
        time.sleep(1.0)  # let any stray delivery land before judging routing
        assert all(a["labels"]["team"] == "data-science" for a in ds.alerts())
        assert all(a["labels"]["team"] == "ml-engineering" for a in mle.alerts())
        assert {a["labels"]["model"] for a in ds.alerts()} == {"churn"}
        assert {a["labels"]["model"] for a in mle.alerts()} == {"eta"}
        # each valid event counted exactly once; bad input counted by reason
        assert total("churn") == sum(1 for e in events if e["model"] == "churn")
        assert total("eta") == sum(1 for e in events if e["model"] == "eta")
        invalid = sum(registry.get_sample_value("driftwatch_events_invalid_total",
                                                {"reason": r}) or 0
                      for r in ("invalid_json", "invalid_utf8"))
        assert invalid == 2
        # the operator's view over HTTP
        body = urllib.request.urlopen(f"{http.url}/metrics", timeout=5).read().decode()
        assert 'driftwatch_events_total{model="churn",type="prediction"}' in body
        assert "driftwatch_serving_latency_seconds_bucket" in body
        assert ('driftwatch_alerts_firing{fault="model",kind="data_drift",model="churn",'
                'team="data-science"}') \
            in body
        firing = orjson.loads(urllib.request.urlopen(f"{http.url}/api/alerts", timeout=5).read())
        assert {a["labels"]["kind"] for a in firing} >= {"data_drift", "latency_regression"}
        assert urllib.request.urlopen(f"{http.url}/readyz", timeout=5).status == 200
    finally:
        daemon.request_stop()
        runner.join(timeout=30)
        ds.close()
        mle.close()
    assert not runner.is_alive()
