"""The consumer loop's promises, with a stand-in consumer: commit after
processing, and a batch that blows up is counted, not fatal."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from monitor.config.types import Config
from monitor.daemon import Daemon

TP = namedtuple("TP", "topic partition")
Record = namedtuple("Record", "value offset")


class FakeConsumer:
    """A consumer-group member: subscribed with a rebalance listener, committing
    explicit offsets; ``rebalance`` plays the group coordinator."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.topics: tuple[str, ...] = ()
        self.listener: Any = None
        self.batches: list[dict[TP, list[Record]]] = []
        self.commits = 0
        self.committed: list[dict] = []
        self.seeks: list[tuple[TP, int]] = []
        self.paused: set[TP] = set()
        self.assigned: list[TP] = []
        self.partitions = {"predictions": 1, "labels": 1}
        self.closed = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topics, self.listener = tuple(topics), listener

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        n = self.partitions.get(topic)
        return None if n is None else set(range(n))

    def rebalance(self, *partitions: int) -> None:
        """Revoke everything, then assign these partitions of both topics."""
        self.listener.on_partitions_revoked(list(self.assigned))
        self.assigned = [TP(t, p) for p in partitions for t in self.topics]
        self.listener.on_partitions_assigned(list(self.assigned))

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[Record]]:
        if not self.batches:
            return {}
        return {tp: r for tp, r in self.batches.pop(0).items() if tp not in self.paused}

    def assignment(self) -> set[TP]:
        return set(self.assigned) if self.listener is not None else {TP("predictions", 0)}

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    def pause(self, *tps: TP) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TP) -> None:
        self.paused -= set(tps)

    heartbeat_age: float | None = None  # seconds since the coordinator last answered

    def metrics(self) -> dict[str, dict[str, float | None]]:
        return {"consumer-coordinator-metrics": {"last-heartbeat-seconds-ago":
                                                 self.heartbeat_age}}

    def commit(self, offsets: dict | None = None) -> None:
        self.commits += 1
        self.committed.append(dict(offsets or {}))

    def close(self) -> None:
        self.closed = True


def attach(d: Daemon, *partitions: int, counts: dict[str, int] | None = None) -> FakeConsumer:
    """What ``Daemon.run`` does before its loop, on a stand-in consumer that is then
    assigned these partitions (``counts``: the topics' partition counts)."""
    from monitor.sources.kafka import KafkaSource

    consumers: list[FakeConsumer] = []

    def factory(**options: Any) -> FakeConsumer:
        consumers.append(FakeConsumer(**options))
        return consumers[-1]

    d.source = KafkaSource(d.config.kafka, factory, listener=d)
    if counts is not None:
        consumers[0].partitions = counts
    d.split = d.source.co_partitioned()
    consumers[0].rebalance(*partitions)
    return consumers[0]


def event(i: int) -> bytes:
    return orjson.dumps({"id": str(i), "model": "m", "ts": 1_700_000_000 + i,
                         "prediction": 0.5, "features": {"x": i % 7}})


def test_a_failing_batch_is_counted_and_the_loop_goes_on(monkeypatch) -> None:
    registry = CollectorRegistry()
    d = Daemon(Config(), registry=registry)
    consumer = attach(d, 0)
    assert consumer.options["enable_auto_commit"] is False
    consumer.batches = [{TP("predictions", 0): [Record(event(i), i) for i in range(10)]},
                        {TP("predictions", 0): [Record(event(i), i) for i in range(10, 15)]}]
    pipeline = d.shard(0)
    real = pipeline.process_messages
    calls = []

    def flaky(values, kind):
        calls.append(kind)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(values, kind)

    monkeypatch.setattr(pipeline, "process_messages", flaky)
    assert d.step() == 10
    assert registry.get_sample_value("driftwatch_batch_errors_total", {"source": "kafka"}) == 1
    assert d.step() == 5
    # the failed batch was processed again in halves: its good events count too
    assert registry.get_sample_value("driftwatch_events_total",
                                     {"model": "m", "type": "prediction"}) == 15
    assert consumer.commits == 2 and d.ready()  # one per batch
    d.shutdown(flush_timeout=1)
    assert consumer.closed


def test_a_message_the_pipeline_fails_on_is_bisected_out_and_the_rest_count(
        monkeypatch) -> None:
    registry = CollectorRegistry()
    d = Daemon(Config(), registry=registry)
    consumer = attach(d, 0)
    poison = orjson.dumps({"id": "x", "model": "poison", "ts": 1_700_000_000,
                           "prediction": 0.5})
    values = [event(i) for i in range(7)] + [poison] + [event(i) for i in range(7, 12)]
    consumer.batches = [{TP("predictions", 0): [Record(v, i) for i, v in enumerate(values)]}]
    pipeline = d.shard(0)
    real = pipeline.process

    def bug(batch):  # a bug some input triggers, every time
        if "poison" in batch.predictions:
            raise RuntimeError("boom")
        return real(batch)

    monkeypatch.setattr(pipeline, "process", bug)
    letters: list[tuple[bytes, str, int | None]] = []

    class Letters:
        def send(self, value, reason, topic, partition, offset):
            letters.append((value, reason, offset))

        def flush(self):
            return True

    d.dead = Letters()  # type: ignore[assignment]
    assert d.step() == 13
    assert registry.get_sample_value("driftwatch_events_total",
                                     {"model": "m", "type": "prediction"}) == 12
    assert registry.get_sample_value("driftwatch_events_invalid_total",
                                     {"reason": "processing_error"}) == 1
    assert registry.get_sample_value("driftwatch_batch_errors_total", {"source": "kafka"}) == 1
    assert letters == [(poison, "processing_error", 7)]
    assert d.positions == {"predictions:0": 13}


def test_offsets_past_a_dead_letter_wait_until_the_broker_acknowledged_it(tmp_path) -> None:
    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    d = Daemon(Config(), registry=CollectorRegistry(), store=store)
    c = attach(d, 0)
    c.batches = [{TP("predictions", 0): [Record(event(0), 0), Record(b"{trunc", 1)]}]
    acked: list[bool] = [False]
    sent: list[tuple[bytes, str]] = []

    class Letters:
        def send(self, value, reason, topic, partition, offset):
            sent.append((value, reason))

        def flush(self):
            return acked[0]

    d.dead = Letters()  # type: ignore[assignment]
    assert d.step() == 2 and sent == [(b"{trunc", "invalid_json")]
    assert not d.checkpoint()  # not acknowledged: neither stored nor committed
    assert c.committed == [] and store.load_checkpoint("driftwatch/0") is None
    acked[0] = True
    assert d.checkpoint()
    assert store.load_checkpoint("driftwatch/0")[1] == {"predictions:0": 2}


def fast_event(i: int) -> bytes:  # 100 events per second of event time
    return orjson.dumps({"id": str(i), "model": "m", "ts": 1_700_000_000 + i / 100,
                         "prediction": 0.5, "latency_ms": 20.0, "features": {"x": i % 7}})


def test_a_model_that_stops_sending_is_a_traffic_drop_on_the_wall_clock() -> None:
    import time

    from monitor.config.types import MonitorSettings

    config = Config(defaults=MonitorSettings(reference_events=1_000, window_events=500,
                                             traffic_gap_min_seconds=60.0))
    d = Daemon(config, registry=CollectorRegistry())
    consumer = attach(d, 0)
    consumer.batches = [{TP("predictions", 0): [Record(fast_event(i), i)
                                                for i in range(2_000)]}]
    assert d.step() == 2_000  # the only traffic there is: then the whole stream stops
    now = time.time()
    assert d.check_stale(now + 30) == 0  # 30 s: not yet
    assert d.check_stale(now + 61) == 1  # a minute of silence, with nothing else sending
    (drop,) = [a for a in d.firing() if a.labels["kind"] == "traffic_drop"]
    assert drop.labels["team"] == "ml-engineering"
    assert "wall-clock" in drop.annotations["description"]
    assert d.check_stale(now + 300) == 0  # fires once
    consumer.batches = [{TP("predictions", 0): [Record(fast_event(i), i)
                                                for i in range(2_000, 2_100)]}]
    d.step()  # traffic is back: resolved
    assert not [a for a in d.firing() if a.labels["kind"] == "traffic_drop"]
    jobs = {j.id: j for j in d.scheduler.get_jobs()}
    assert jobs["staleness"].coalesce and jobs["staleness"].max_instances == 1
    assert jobs["staleness"].misfire_grace_time == 30
    d.shutdown(flush_timeout=1)


def test_while_the_database_is_down_nothing_is_committed_and_readyz_says_so(tmp_path) -> None:
    import sqlalchemy as sa

    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    config = Config()
    d = Daemon(config, registry=CollectorRegistry(), store=store)
    c = attach(d, 0)
    c.batches = [{TP("predictions", 0): [Record(event(i), i) for i in range(10)]}]
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
    state, offsets = store.load_checkpoint(f"{config.kafka.group_id}/0")
    assert offsets == {"predictions:0": 10}
    assert state["counters"]["events"] == [[{"model": "m", "type": "prediction"}, 10.0]]
    # a restart resumes there: the assigned partition is sought to the checkpoint
    d2 = Daemon(config, registry=CollectorRegistry(), store=store)
    c2 = attach(d2, 0)
    assert c2.seeks == [(TP("predictions", 0), 10)]
    assert d2.app.metrics.registry.get_sample_value(
        "driftwatch_events_total", {"model": "m", "type": "prediction"}) == 10


def test_a_second_daemon_for_the_group_stands_by_until_the_first_stops(tmp_path) -> None:
    import threading

    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    first = Daemon(Config(), registry=CollectorRegistry(), store=store)
    second = Daemon(Config(), registry=CollectorRegistry(), store=store)
    first.split = second.split = False  # topics not co-partitioned: one active daemon
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
    store.save_checkpoint("driftwatch/0", {"pipeline": {"version": 99}, "counters": {}},
                          {"predictions:0": 1234}, 0.0)
    d = Daemon(Config(), registry=CollectorRegistry(), store=store)
    c = attach(d, 0)  # logs the problem, does not raise
    assert c.seeks == [(TP("predictions", 0), 1234)]
    d.step()
    assert d.ready()
    assert d.shard(0).models == {}


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
    (a,) = before.shard(0).book.update("churn", [], attribute([finding("data_drift")]),
                                       now=T0)
    before.app.dispatcher.submit([a], [a])  # inside group_wait: nothing sent yet ...
    store.save_checkpoint(f"{config.kafka.group_id}/0", {
        "pipeline": before.shard(0).to_state(), "counters": {}}, {}, 0.0)
    # ... and the process dies here
    after = Daemon(config, registry=CollectorRegistry(), store=store)
    attach(after, 0)
    after.app.dispatcher.stop(flush_timeout=2)
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(x["labels"]["alertname"], x["status"]) for x in lines] == [("DataDrift", "firing")]
    # a second restart does not send it again: the outbox remembers
    again = Daemon(config, registry=CollectorRegistry(), store=store)
    attach(again, 0)
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
    book, dispatcher = before.shard(0).book, before.app.dispatcher
    (a,) = book.update("churn", [], attribute([finding("data_drift")]), now=T0)
    dispatcher.submit([a], [a])
    dispatcher.deliver_due()  # the firing went out
    (gone,) = book.resolve(("churn", "data_drift", "age", None), now=T0 + 600)
    dispatcher.submit([gone], [])  # the resolution waits for the next group tick ...
    store.save_checkpoint(f"{config.kafka.group_id}/0", {
        "pipeline": before.shard(0).to_state(), "counters": {},
        "groups": dispatcher.groups_state()}, {}, 0.0)
    # ... and the process dies before it
    after = Daemon(config, registry=CollectorRegistry(), store=store)
    attach(after, 0)
    after.app.dispatcher.stop(flush_timeout=2)
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [(x["labels"]["alertname"], x["status"]) for x in lines] == [
        ("DataDrift", "firing"), ("DataDrift", "resolved")]


# -- several daemons splitting the partitions --------------------------------------
def model_event(model: str, i: int) -> bytes:
    return orjson.dumps({"id": f"{model}{i}", "model": model, "ts": 1_700_000_000 + i,
                         "prediction": 0.5, "features": {"x": i % 7}})


def two_models(c: FakeConsumer, start: int, stop: int, partitions=(0, 1)) -> None:
    """Model a on partition 0, model b on partition 1 (events keyed by model)."""
    c.batches.append({TP("predictions", p): [Record(model_event(m, i), i)
                                             for i in range(start, stop)]
                      for p, m in ((0, "a"), (1, "b")) if p in partitions})


def counted(d: Daemon, model: str) -> float | None:
    return d.app.metrics.registry.get_sample_value(
        "driftwatch_events_total", {"model": model, "type": "prediction"})


def test_a_rebalance_hands_a_partition_and_its_model_over_through_the_store(tmp_path) -> None:
    from alerts.attribution import attribute
    from monitor.store import Store
    from tests.alerts.support import T0, finding

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    one = Daemon(Config(), registry=CollectorRegistry(), store=store)
    c1 = attach(one, 0, 1)
    assert sorted(one.shards) == [0, 1]
    two_models(c1, 0, 30)
    assert one.step() == 60
    one.shard(1).book.update("b", [], attribute([finding("data_drift", model="b")]), now=T0)
    assert {a.labels["model"] for a in one.firing()} == {"b"}
    # a second daemon joins: the coordinator revokes everything, then splits
    two = Daemon(Config(), registry=CollectorRegistry(), store=store)
    c2 = attach(two)
    c1.rebalance(0)
    c2.rebalance(1)
    assert sorted(one.shards) == [0] and sorted(two.shards) == [1]
    # b moved with its state, its counters and its alert; one no longer exports b
    assert counted(two, "b") == 30 and counted(one, "b") is None and counted(one, "a") == 30
    assert two.shard(1).models["b"].windows.reference.n == 30
    assert {a.labels["model"] for a in two.firing()} == {"b"} and one.firing() == []
    assert c2.seeks == [(TP("predictions", 1), 30)]
    two_models(c1, 30, 40, partitions=(0,))
    two_models(c2, 30, 40, partitions=(1,))
    assert one.step() == 10 and two.step() == 10
    assert counted(one, "a") == 40 and counted(two, "b") == 40
    # the first daemon gets it back: from what the second checkpointed, not its own
    c2.rebalance()
    c1.rebalance(0, 1)
    assert counted(one, "b") == 40 and one.shard(1).models["b"].windows.reference.n == 40
    assert (TP("predictions", 1), 40) in c1.seeks


def test_a_daemon_whose_partition_was_claimed_by_another_lets_it_go(tmp_path) -> None:
    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    zombie = Daemon(Config(), registry=CollectorRegistry(), store=store)
    c1 = attach(zombie, 0, 1)
    two_models(c1, 0, 20)
    zombie.step()
    assert zombie.checkpoint()
    # its session lapsed (a long pause): Kafka gave partition 1 to another daemon
    other = Daemon(Config(), registry=CollectorRegistry(), store=store)
    attach(other, 1)
    two_models(c1, 20, 30)
    assert zombie.step() == 20  # it does not know yet ...
    assert zombie.checkpoint()  # ... and learns here: its save for partition 1 is refused
    assert sorted(zombie.shards) == [0] and 1 in zombie.fenced
    assert TP("predictions", 1) in c1.paused and counted(zombie, "b") is None
    _, offsets = store.load_checkpoint("driftwatch/1")
    assert offsets == {"predictions:1": 20}  # what the new owner loaded, not the zombie's 30
    two_models(c1, 30, 40)
    c1.paused.clear()  # even were its records returned, they are not processed
    assert zombie.step() == 10 and counted(zombie, "a") == 40


def test_a_partition_assigned_while_the_database_is_down_waits_paused(tmp_path) -> None:
    import sqlalchemy as sa

    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    d = Daemon(Config(), registry=CollectorRegistry(), store=store)
    real = store.claim_checkpoint

    def down(*args: Any, **kw: Any) -> Any:
        raise sa.exc.OperationalError("UPDATE", {}, Exception("database is down"))

    store.claim_checkpoint = down  # type: ignore[method-assign]
    c = attach(d, 0)
    assert d.waiting and TP("predictions", 0) in c.paused
    c.batches = [{TP("predictions", 0): [Record(event(i), i) for i in range(10)]}]
    assert d.step() == 0 and not d.ready()  # the consumer returned nothing: paused
    store.claim_checkpoint = real  # type: ignore[method-assign]
    c.batches = [{TP("predictions", 0): [Record(event(i), i) for i in range(10)]}]
    assert d.step() == 10 and d.ready() and not c.paused


def test_topics_that_are_not_co_partitioned_share_one_pipeline_and_one_row(tmp_path) -> None:
    from monitor.sources.kafka import KafkaSource
    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    d = Daemon(Config(), registry=CollectorRegistry(), store=store)
    made: list[FakeConsumer] = []

    def factory(**options: Any) -> FakeConsumer:
        made.append(FakeConsumer(**options))
        made[-1].partitions = {"predictions": 2, "labels": 1}
        return made[-1]

    d.source = KafkaSource(d.config.kafka, factory, listener=d)
    assert not d.source.co_partitioned()
    d.split = False
    made[0].rebalance(0, 1)
    two_models(made[0], 0, 10)
    assert d.step() == 20 and list(d.shards) == [0]
    assert d.checkpoint()
    _, offsets = store.load_checkpoint("driftwatch")  # the group's row, as before
    assert offsets == {"predictions:0": 10, "predictions:1": 10}


def test_readyz_says_not_ready_while_the_broker_does_not_answer() -> None:
    d = Daemon(Config(), registry=CollectorRegistry())
    c = attach(d, 0)
    c.heartbeat_age = 2.0
    d.step()
    assert d.ready()
    c.heartbeat_age = 60.0  # the client keeps its assignment; the coordinator is gone
    d.source._connected_at = -1e9  # (read at most once a second)
    d.step()
    assert c.assignment() and not d.ready()
    c.heartbeat_age = 0.5  # back
    d.source._connected_at = -1e9
    d.step()
    assert d.ready()
    c.heartbeat_age = float("inf")  # none sent yet after a (re)join: ready ...
    c.rebalance(0)
    d.source._connected_at = -1e9
    d.step()
    assert d.ready()
    d.source.assigned_at -= 60  # ... unless none came for a session timeout since
    d.source._connected_at = -1e9
    d.step()
    assert not d.ready()


def test_a_lease_renewal_the_database_refuses_is_retried_not_fatal(tmp_path) -> None:
    import sqlalchemy as sa

    from monitor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    d = Daemon(Config(), registry=CollectorRegistry(), store=store)
    assert d.acquire()
    attach(d, 0, counts={"predictions": 2, "labels": 1})  # not co-partitioned: the lease
    assert not d.split and list(d.shards) == [0]
    real = store.acquire_lease

    def down(*args: Any, **kw: Any) -> bool:
        raise sa.exc.OperationalError("UPDATE", {}, Exception("database is down"))

    store.acquire_lease = down  # type: ignore[method-assign]
    assert d.checkpoint()  # the state was saved; the renewal failed: logged, not raised
    assert not d.ready() and not d.stop_event.is_set()
    store.acquire_lease = real  # type: ignore[method-assign]
    assert d.checkpoint() and not d.stop_event.is_set() and list(d.shards) == [0]
    assert store.lease_holder("driftwatch")[0] == d.owner
