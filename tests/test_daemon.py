"""The consumer loop's promises, with a stand-in consumer: commit after
processing, and a batch that blows up is counted, not fatal."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from monitor.config_types import Config
from monitor.daemon import Daemon

TP = namedtuple("TP", "topic partition")
Record = namedtuple("Record", "value")


class FakeConsumer:
    def __init__(self, *topics: str, **options: Any) -> None:
        self.topics, self.options = topics, options
        self.batches: list[dict[TP, list[Record]]] = []
        self.commits = 0
        self.closed = False

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[Record]]:
        return self.batches.pop(0) if self.batches else {}

    def assignment(self) -> set[TP]:
        return {TP("predictions", 0)}

    def commit(self) -> None:
        self.commits += 1

    def close(self) -> None:
        self.closed = True


def event(i: int) -> bytes:
    return orjson.dumps({"id": str(i), "model": "m", "ts": 1_700_000_000 + i,
                         "prediction": 0.5, "features": {"x": i % 7}})


def test_a_failing_batch_is_counted_and_the_loop_goes_on(monkeypatch) -> None:
    registry = CollectorRegistry()
    consumers: list[FakeConsumer] = []

    def factory(*topics: str, **options: Any) -> FakeConsumer:
        consumers.append(FakeConsumer(*topics, **options))
        return consumers[-1]

    d = Daemon(Config(), registry=registry, consumer_factory=factory)
    from monitor.sources.kafka import KafkaSource
    d.source = KafkaSource(d.config.kafka, factory)
    consumer = consumers[0]
    assert consumer.options["enable_auto_commit"] is False
    consumer.batches = [{TP("predictions", 0): [Record(event(i)) for i in range(10)]},
                        {TP("predictions", 0): [Record(event(i)) for i in range(10, 15)]}]
    real = d.app.pipeline.process_messages
    calls = []

    def flaky(values, kind):
        calls.append(kind)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(values, kind)

    monkeypatch.setattr(d.app.pipeline, "process_messages", flaky)
    assert d.step() == 10
    assert registry.get_sample_value("driftwatch_batch_errors_total", {"source": "kafka"}) == 1
    assert d.step() == 5
    assert registry.get_sample_value("driftwatch_events_total",
                                     {"model": "m", "type": "prediction"}) == 5
    assert consumer.commits == 2 and d.ready()
    d.shutdown(flush_timeout=1)
    assert consumer.closed


def fast_event(i: int) -> bytes:  # 100 events per second of event time
    return orjson.dumps({"id": str(i), "model": "m", "ts": 1_700_000_000 + i / 100,
                         "prediction": 0.5, "latency_ms": 20.0, "features": {"x": i % 7}})


def test_a_model_that_stops_sending_is_a_traffic_drop_on_the_wall_clock() -> None:
    import time

    from monitor.config_types import MonitorSettings

    consumers: list[FakeConsumer] = []

    def factory(*topics: str, **options: Any) -> FakeConsumer:
        consumers.append(FakeConsumer(*topics, **options))
        return consumers[-1]

    config = Config(defaults=MonitorSettings(reference_events=1_000, window_events=500,
                                             traffic_gap_min_seconds=60.0))
    d = Daemon(config, registry=CollectorRegistry(), consumer_factory=factory)
    from monitor.sources.kafka import KafkaSource
    d.source = KafkaSource(d.config.kafka, factory)
    consumers[0].batches = [{TP("predictions", 0): [Record(fast_event(i)) for i in range(2_000)]}]
    assert d.step() == 2_000  # the only traffic there is: then the whole stream stops
    now = time.time()
    assert d.check_stale(now + 30) == 0  # 30 s: not yet
    assert d.check_stale(now + 61) == 1  # a minute of silence, with nothing else sending
    (drop,) = [a for a in d.app.pipeline.book.firing() if a.labels["kind"] == "traffic_drop"]
    assert drop.labels["team"] == "ml-engineering"
    assert "wall-clock" in drop.annotations["description"]
    assert d.check_stale(now + 300) == 0  # fires once
    consumers[0].batches = [{TP("predictions", 0): [Record(fast_event(i))
                                                   for i in range(2_000, 2_100)]}]
    d.step()  # traffic is back: resolved
    assert not [a for a in d.app.pipeline.book.firing() if a.labels["kind"] == "traffic_drop"]
    jobs = {j.id: j for j in d.scheduler.get_jobs()}
    assert jobs["staleness"].coalesce and jobs["staleness"].max_instances == 1
    assert jobs["staleness"].misfire_grace_time == 30
    d.shutdown(flush_timeout=1)
