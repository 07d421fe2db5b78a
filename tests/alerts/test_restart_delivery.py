"""A durable outbox across restarts: a notification is delivered once, whatever dies when."""

from __future__ import annotations

from alerts.config import RouteConfig
from alerts.dispatch import Dispatcher
from alerts.inhibit import Inhibitor
from alerts.receivers.webhook import WebhookNotifier
from alerts.routing import RouteTree
from monitor.store import SqlOutbox, Store
from tests.alerts.support import Clock, Reply, alert


def test_a_restart_in_the_middle_of_a_retry_delivers_exactly_once(db_engine, server):
    def daemon(clock: Clock) -> Dispatcher:  # a fresh process on the same database
        return Dispatcher(RouteTree(RouteConfig(receiver="ds", group_wait=0.0)),
                          {"ds": [WebhookNotifier({"url": server.url("/ds")})]}, Inhibitor(()),
                          SqlOutbox(Store(db_engine)), clock=clock)

    clock = Clock()
    a = alert("data_drift")
    server.script(Reply(500))
    first = daemon(clock)
    first.submit([a], [a])
    assert first.deliver_due() == 0  # 500: queued for a retry ... then the process dies
    clock.advance(60)
    second = daemon(clock)
    second.submit([a], [a])  # the restored pipeline raises the same alert again
    assert second.deliver_due() == 1
    clock.advance(3600)
    assert second.deliver_due() == 0
    third = daemon(clock)
    third.submit([a], [a])
    assert third.deliver_due() == 0
    statuses = [r.json()["alerts"][0]["status"] for r in server.received()]
    assert statuses == ["firing", "firing"]  # the failed attempt and one delivery
