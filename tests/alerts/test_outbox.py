"""The outbox interface, run over every implementation (memory; SQL on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from alerts.outbox import CLAIM_SECONDS, MemoryOutbox, Outbox, OutboxItem, alert_from_json
from alerts.receivers import GroupInfo
from monitor.store import SqlOutbox, Store
from tests.alerts.support import T0, alert
from tests.conftest import fresh_database

GROUP = GroupInfo("ds", "{}:{}", {})


def item(
    receiver: str = "ds",
    integration: int = 0,
    status: str = "firing",
    feature: str = "age",
    now: float = T0,
) -> OutboxItem:
    return OutboxItem.new(
        receiver, integration, "webhook", [alert("data_drift", status, feature=feature)], GROUP,
        now,
    )


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    """Every implementation; the SQL one on SQLite and on PostgreSQL."""
    if request.param == "memory":
        yield MemoryOutbox()
        return
    with fresh_database(request.param, tmp_path) as engine:
        yield SqlOutbox(Store(engine))


def test_put_due_ack(outbox: Outbox) -> None:
    a, b = item(feature="age"), item(feature="plan", now=T0 + 1)
    assert outbox.put(a) and outbox.put(b)
    assert outbox.pending() == 2
    assert [i.id for i in outbox.due(T0)] == [a.id]
    assert [i.id for i in outbox.due(T0 + 1)] == [b.id]  # a is claimed by the first call
    outbox.ack(a.id)
    assert outbox.pending() == 1 and outbox.next_attempt_at() == T0 + 1 + CLAIM_SECONDS
    assert [i.id for i in outbox.due(T0 + 1 + CLAIM_SECONDS)] == [b.id]  # its sender died


def test_dedup_while_queued_and_after_delivery(outbox: Outbox) -> None:
    first = item()
    assert outbox.put(first)
    assert not outbox.put(item())  # same receiver, integration, group, alerts and moment
    assert outbox.put(item(integration=1))
    assert outbox.put(item(receiver="mle"))
    assert outbox.put(item(status="resolved"))
    assert outbox.pending() == 4
    outbox.ack(first.id)
    assert not outbox.put(item())  # already delivered
    assert outbox.pending() == 3


def test_reschedule_and_fail(outbox: Outbox) -> None:
    a = item()
    outbox.put(a)
    outbox.reschedule(a.id, T0 + 8, "HTTP 429")
    assert outbox.due(T0 + 7.9) == []
    (again,) = outbox.due(T0 + 8)
    assert (again.attempts, again.last_error) == (1, "HTTP 429")
    outbox.fail(a.id, "HTTP 400")
    assert outbox.pending() == 0 and outbox.due(T0 + 1e6) == [] and outbox.next_attempt_at() is None
    (failed,) = outbox.failed()  # type: ignore[attr-defined]
    assert (failed.attempts, failed.last_error) == (2, "HTTP 400")
    assert outbox.put(item())  # a failed item is not "delivered": it may be queued again


def test_due_returns_copies(outbox: Outbox) -> None:
    a = item()
    outbox.put(a)
    outbox.due(T0)[0].next_attempt_at = T0 + 1e6  # changing the copy changes nothing
    assert len(outbox.due(T0 + CLAIM_SECONDS)) == 1


def test_an_item_is_handed_to_one_caller_at_a_time(outbox: Outbox) -> None:
    outbox.put(item())
    outbox.put(item(feature="plan"))
    got = [outbox.due(T0 + 1) for _ in range(3)]  # three daemons asking in turn
    assert [len(g) for g in got] == [2, 0, 0]


def test_items_are_plain_json() -> None:
    a = item()
    text = orjson.dumps(a.to_json())
    back = OutboxItem.from_json(orjson.loads(text))
    assert back == a
    assert [x.to_json() for x in back.to_alerts()] == a.alerts
    assert back.group_info() == GROUP


def test_a_repeat_of_the_same_alerts_is_a_new_notification(outbox: Outbox) -> None:
    a = alert("data_drift", "firing")
    first = OutboxItem.new("ds", 0, "webhook", [a], GROUP, T0)
    assert outbox.put(first)
    outbox.ack(first.id)
    # made again later (e.g. after a restart): the same notification, not sent twice
    assert not outbox.put(OutboxItem.new("ds", 0, "webhook", [a], GROUP, T0 + 5))
    assert outbox.put(OutboxItem.new("ds", 0, "webhook", [a], GROUP, T0 + 4 * 3600, repeat=1))


def test_alert_from_json_round_trip() -> None:
    for status in ("firing", "resolved"):
        a = alert("latency_regression", status)
        a.receivers = ["mle"]
        back = alert_from_json(orjson.loads(orjson.dumps(a.to_json())))
        assert back == a


def test_memory_outbox_forgets_oldest_delivered_keys() -> None:
    box = MemoryOutbox(remember=1)
    a, b = item(feature="a"), item(feature="b")
    for i in (a, b):
        box.put(i)
        box.ack(i.id)
    assert box.put(item(feature="a"))  # forgotten
    assert not box.put(item(feature="b"))


def test_a_notification_grouped_by_every_label_is_kept(outbox: Outbox) -> None:
    """``group_by = ["..."]``: the group key holds every label of the alert; its
    identity must fit the store (PostgreSQL refused one over 200 characters)."""
    a = alert("data_drift", "firing")
    key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(a.labels.items())) + "}"
    first = OutboxItem.new("ds", 0, "webhook", [a], GroupInfo("ds", key, dict(a.labels)), T0)
    assert len("|".join(str(x) for x in first.dedup_key)) > 200
    assert outbox.put(first)
    assert [i.id for i in outbox.due(T0)] == [first.id]
    outbox.ack(first.id)
    again = OutboxItem.new("ds", 0, "webhook", [a], GroupInfo("ds", key, dict(a.labels)), T0)
    assert not outbox.put(again)
