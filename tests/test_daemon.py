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


class GroupConsumer(FakeConsumer):
    """The stand-in, subscribed with a rebalance listener and committing explicit offsets."""

    def __init__(self, *topics: str, **options: Any) -> None:
        super().__init__(*topics, **options)
        self.committed: list[dict] = []
        self.listener: Any = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topics, self.listener = tuple(topics), listener

    def commit(self, offsets: dict | None = None) -> None:
        self.committed.append(dict(offsets or {}))


def test_while_the_database_is_down_nothing_is_committed_and_readyz_says_so(tmp_path) -> None:
    import sqlalchemy as sa

    from monitor.store import Store

    Rec = namedtuple("Rec", "value offset")
    consumers: list[GroupConsumer] = []

    def factory(*topics: str, **options: Any) -> GroupConsumer:
        consumers.append(GroupConsumer(*topics, **options))
        return consumers[-1]

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    config = Config()
    d = Daemon(config, registry=CollectorRegistry(), consumer_factory=factory, store=store)
    assert d.acquire()
    d.restore()
    from monitor.sources.kafka import KafkaSource
    d.source = KafkaSource(config.kafka, factory, start_offsets=d._offsets)
    c = consumers[0]
    c.batches = [{TP("predictions", 0): [Rec(event(i), i) for i in range(10)]}]
    real = store.save_checkpoint

    def down(*args: Any, **kw: Any) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is down"))

    store.save_checkpoint = down  # type: ignore[method-assign]
    assert d.step() == 10 and not d.checkpoint()
    assert c.committed == [] and not d.ready()  # nothing committed: it will be read again
    reg = d.app.metrics.registry
    assert reg.get_sample_value("driftwatch_checkpoint_failures_total") >= 1
    assert reg.get_sample_value("driftwatch_last_checkpoint_timestamp_seconds") == 0
    store.save_checkpoint = real  # type: ignore[method-assign]
    assert d.checkpoint() and d.ready()
    assert reg.get_sample_value("driftwatch_last_checkpoint_timestamp_seconds") > 0
    ((tp, om),) = c.committed[-1].items()
    assert (tp.topic, tp.partition, om.offset) == ("predictions", 0, 10)
    state, offsets = store.load_checkpoint(config.kafka.group_id)
    assert offsets == {"predictions:0": 10}
    assert state["counters"]["events"] == [[{"model": "m", "type": "prediction"}, 10.0]]
    # a restart resumes there: the assigned partition is sought to the checkpoint
    d2 = Daemon(config, registry=CollectorRegistry(), consumer_factory=factory, store=store)
    d2.restore()
    KafkaSource(config.kafka, factory, start_offsets=d2._offsets)
    seeks: list[tuple[Any, int]] = []
    consumers[-1].seek = lambda tp, off: seeks.append((tp, off))  # type: ignore[attr-defined]
    consumers[-1].listener.on_partitions_assigned([TP("predictions", 0), TP("labels", 0)])
    assert seeks == [(TP("predictions", 0), 10)]
    assert d2.app.metrics.registry.get_sample_value(
        "driftwatch_events_total", {"model": "m", "type": "prediction"}) == 10


def test_a_second_daemon_for_the_group_stands_by_until_the_first_stops(tmp_path) -> None:
    import threading

    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    first = Daemon(Config(), registry=CollectorRegistry(), store=store)
    second = Daemon(Config(), registry=CollectorRegistry(), store=store)
    assert first.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(second.acquire()))
    waiter.start()
    waiter.join(1.5)
    assert waiter.is_alive() and got == []  # standing by
    first.shutdown(flush_timeout=1)  # releases the lease
    waiter.join(5)
    assert got == [True]
    second.stop_event.set()
    second.shutdown(flush_timeout=1)


def test_an_unreadable_checkpoint_starts_fresh_at_its_offsets(tmp_path) -> None:
    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    store.save_checkpoint("driftwatch", {"pipeline": {"version": 99}, "counters": {}},
                          {"predictions:0": 1234}, 0.0)
    d = Daemon(Config(), registry=CollectorRegistry(), store=store)
    d.restore()  # logs the problem, does not raise
    assert d._offsets == {"predictions:0": 1234}
    assert d.app.pipeline.models == {}


def test_an_alert_fired_but_not_yet_notified_before_a_crash_is_notified_after_it(
        tmp_path) -> None:
    from dataclasses import replace

    from alerts.attribution import attribute
    from alerts.config import IntegrationConfig, ReceiverConfig, RouteConfig
    from monitor.store import Store
    from tests.alerts.support import T0, finding

    out = tmp_path / "alerts.jsonl"
    config = replace(Config(), route=RouteConfig(receiver="all", group_wait=30.0),
                     receivers=(ReceiverConfig("all", (IntegrationConfig(
                         "file", {"path": str(out)}),)),))
    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    before = Daemon(config, registry=CollectorRegistry(), store=store)
    (a,) = before.app.pipeline.book.update("churn", [], attribute([finding("data_drift")]),
                                            now=T0)
    before.app.dispatcher.submit([a], [a])  # inside group_wait: nothing sent yet ...
    store.save_checkpoint(config.kafka.group_id, {
        "pipeline": before.app.pipeline.to_state(), "counters": {}}, {}, 0.0)
    # ... and the process dies here
    after = Daemon(config, registry=CollectorRegistry(), store=store)
    after.restore()
    after.app.dispatcher.stop(flush_timeout=2)
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(x["labels"]["alertname"], x["status"]) for x in lines] == [("DataDrift", "firing")]
    # a second restart does not send it again: the outbox remembers
    again = Daemon(config, registry=CollectorRegistry(), store=store)
    again.restore()
    again.app.dispatcher.stop(flush_timeout=2)
    assert len(out.read_bytes().splitlines()) == 1


def test_a_resolution_pending_in_a_group_at_a_crash_is_delivered_after_it(tmp_path) -> None:
    from dataclasses import replace

    from alerts.attribution import attribute
    from alerts.config import IntegrationConfig, ReceiverConfig, RouteConfig
    from monitor.store import Store
    from tests.alerts.support import T0, finding

    out = tmp_path / "alerts.jsonl"
    config = replace(Config(), route=RouteConfig(receiver="all", group_wait=0.0,
                                                 group_interval=300.0),
                     receivers=(ReceiverConfig("all", (IntegrationConfig(
                         "file", {"path": str(out)}),)),))
    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    before = Daemon(config, registry=CollectorRegistry(), store=store)
    book, dispatcher = before.app.pipeline.book, before.app.dispatcher
    (a,) = book.update("churn", [], attribute([finding("data_drift")]), now=T0)
    dispatcher.submit([a], [a])
    dispatcher.deliver_due()  # the firing went out
    (gone,) = book.resolve(("churn", "data_drift", "age", None), now=T0 + 600)
    dispatcher.submit([gone], [])  # the resolution waits for the next group tick ...
    store.save_checkpoint(config.kafka.group_id, {
        "pipeline": before.app.pipeline.to_state(), "counters": {},
        "groups": dispatcher.groups_state()}, {}, 0.0)
    # ... and the process dies before it
    after = Daemon(config, registry=CollectorRegistry(), store=store)
    after.restore()
    after.app.dispatcher.stop(flush_timeout=2)
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(x["labels"]["alertname"], x["status"]) for x in lines] == [
        ("DataDrift", "firing"), ("DataDrift", "resolved")]
