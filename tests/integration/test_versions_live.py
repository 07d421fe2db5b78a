"""A canary watched live: Kafka in, a version_regression out to ML engineering, the
comparison table over HTTP."""

import dataclasses
import threading
import urllib.request
import uuid

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from monitor.channels import LocalChannel
from monitor.config.types import MonitorSettings
from monitor.daemon import Daemon, wait_until
from monitor.demo import demo_config
from monitor.simulate import ndjson_chunks
from tests.test_versions import _events

pytestmark = pytest.mark.integration


def test_a_slow_canary_pages_ml_engineering_live(broker) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics(list(topics))
    ds, mle = LocalChannel("data-science"), LocalChannel("ml-engineering")
    base = demo_config(broker.bootstrap, ds.url, mle.url)
    config = dataclasses.replace(
        base, defaults=MonitorSettings(reference_events=1000, window_events=500, alpha=1e-3),
        kafka=dataclasses.replace(base.kafka, predictions_topic=topics[0],
                                  labels_topic=topics[1], group_id=f"g-{suffix}"))
    daemon = Daemon(config, registry=CollectorRegistry())
    http = daemon.start_http()
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=10)
        for chunk in ndjson_chunks(_events(3000, share=0.2, slow=1.3, labels=False), 250):
            producer.send(topics[0], key=b"m", value=chunk)
        producer.flush()
        producer.close()
        assert wait_until(lambda: any(a["labels"]["kind"] == "version_regression"
                                      for a in mle.alerts()), 90), mle.alerts()
        a = next(a for a in mle.alerts() if a["labels"]["kind"] == "version_regression")
        assert a["labels"]["model_version"] == "v2" and a["labels"]["team"] == "ml-engineering"
        assert not [x for x in ds.alerts() if x["labels"].get("segment") == "model_version=v2"]
        table = orjson.loads(urllib.request.urlopen(
            f"{http.url}/api/models/m/versions", timeout=5).read())
        assert table["comparisons"][0]["verdict"] == "worse"
    finally:
        daemon.request_stop()
        runner.join(timeout=30)  # its shutdown stops the HTTP server too
        ds.close()
        mle.close()
    assert not runner.is_alive()
