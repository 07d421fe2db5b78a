"""Aggregation groups with a controlled clock: group_wait, group_interval,
repeat_interval and resolution, as Alertmanager times them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from alerts.config import RouteConfig
from alerts.dispatch import Dispatcher
from alerts.grouping import Aggregator
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from alerts.outbox import MemoryOutbox
from alerts.receivers.base import GroupInfo
from alerts.receivers.webhook import WebhookNotifier
from alerts.routing import RouteTree, group_key
from tests.alerts.support import T0, Clock, FakeReceiver, alert

WAIT, INTERVAL, REPEAT = 30.0, 300.0, 3600.0
TREE = RouteTree(RouteConfig(receiver="ds", group_by=("alertname", "model"), group_wait=WAIT,
                             group_interval=INTERVAL, repeat_interval=REPEAT))


def drift(feature: str, status: str = "firing", model: str = "churn",
          lasted: float | None = None) -> Alert:
    """``lasted``: for a resolution, how long the alert fired in event time."""
    a = alert("data_drift", status, feature=feature, model=model)
    return a if lasted is None else replace(a, ends_at=a.starts_at + lasted)


class Run:
    """An aggregator fed by the routing tree; ``at(t)`` lists what is due at T0 + t."""

    def __init__(self) -> None:
        self.agg = Aggregator()

    def add(self, t: float, a: Alert) -> None:
        (route,) = TREE.match(a.labels)
        info = GroupInfo(route.receiver, group_key(route, a.labels), route.group_labels(a.labels))
        self.agg.add(a, route, info, T0 + t)

    def at(self, t: float, flush: bool = False) -> list[list[tuple[str, str]]]:
        return [[(a.labels["feature"], a.status) for a in n.alerts]
                for n in self.agg.due(T0 + t, flush=flush)]


def test_group_wait_collects_what_breaks_together_into_one_notification():
    r = Run()
    r.add(0, drift("age"))
    r.add(10, drift("plan"))
    assert r.at(29.9) == []
    assert r.at(30) == [[("age", "firing"), ("plan", "firing")]]
    assert r.at(31) == []


def test_different_group_keys_speak_on_their_own():
    r = Run()
    r.add(0, drift("age"))
    r.add(20, drift("age", model="eta"))
    assert len(r.at(30)) == 1
    assert len(r.at(50)) == 1


def test_news_waits_for_the_next_group_interval_tick():
    r = Run()
    r.add(0, drift("age"))
    assert r.at(30) == [[("age", "firing")]]
    r.add(40, drift("plan"))
    assert r.at(329) == []
    assert r.at(330) == [[("age", "firing"), ("plan", "firing")]]


def test_unchanged_firing_group_repeats_every_repeat_interval_on_a_tick():
    r = Run()
    r.add(0, drift("age"))
    r.at(30)
    ticks = [30 + INTERVAL * k for k in range(1, 14)]
    sent = [t for t in ticks if r.at(t)]
    assert sent == [30 + INTERVAL * 12]  # the first tick >= 3600 s after the last notice


def test_a_resolution_is_notified_then_the_group_is_gone():
    r = Run()
    r.add(0, drift("age"))
    r.at(30)
    r.add(100, drift("age", "resolved"))
    assert r.at(330) == [[("age", "resolved")]]
    assert r.agg.groups == {}
    assert r.at(30 + REPEAT + INTERVAL) == []  # nothing firing: no repeat


def test_a_flap_inside_group_wait_is_never_notified():
    r = Run()
    r.add(0, drift("age"))
    r.add(5, drift("age", "resolved", lasted=5))
    assert r.agg.groups == {}
    assert r.at(30) == []


def test_an_incident_whose_firing_and_resolution_arrive_together_is_sent_resolved():
    r = Run()  # a backlog: it fired for an hour of event time, both changes arrive at once
    r.add(0, drift("age"))
    r.add(1, drift("age", "resolved", lasted=3600))
    assert r.at(30) == [[("age", "resolved")]]


def test_a_resolution_whose_firing_was_never_seen_is_sent():
    r = Run()  # e.g. the daemon restarted between the firing and the resolution
    r.add(0, drift("age", "resolved"))
    assert r.at(30) == [[("age", "resolved")]]


def test_flush_sends_pending_news_at_once_and_nothing_else():
    r = Run()
    r.add(0, drift("age"))
    assert r.at(1, flush=True) == [[("age", "firing")]]
    assert r.at(2, flush=True) == []  # no news, and a flush never repeats


# A decision table: (time, event) -> notifications expected at each time.
# Events: "+x" fires feature x, "-x" resolves it (after an hour), "~x" resolves it after
# 5 s of event time (a flap); "?" only looks for due notifications.
TABLE = [
    ("one alert", [(0, "+a"), (30, "?")], {30: [[("a", "firing")]]}),
    ("duplicate firing adds nothing", [(0, "+a"), (5, "+a"), (30, "?"), (330, "?")],
     {30: [[("a", "firing")]]}),
    ("late joiner waits for the tick", [(0, "+a"), (30, "?"), (31, "+b"), (60, "?"), (330, "?")],
     {30: [[("a", "firing")]], 330: [[("a", "firing"), ("b", "firing")]]}),
    ("resolve one of two", [(0, "+a"), (0, "+b"), (30, "?"), (40, "-a"), (330, "?"),
                            (630, "?")],
     {30: [[("a", "firing"), ("b", "firing")]], 330: [[("b", "firing"), ("a", "resolved")]]}),
    ("refire after resolution is news", [(0, "+a"), (30, "?"), (40, "-a"), (330, "?"),
                                         (400, "+a"), (430, "?")],
     {30: [[("a", "firing")]], 330: [[("a", "resolved")]], 430: [[("a", "firing")]]}),
    ("flap inside wait with a sibling", [(0, "+a"), (1, "+b"), (2, "~b"), (30, "?")],
     {30: [[("a", "firing")]]}),
]


@pytest.mark.parametrize(("name", "events", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_decision_table(name, events, expected):
    r = Run()
    got: dict[float, list] = {}
    for t, ev in events:
        if ev != "?":
            r.add(t, drift(ev[1:], "firing" if ev[0] == "+" else "resolved",
                           lasted={"+": None, "-": 3600.0, "~": 5.0}[ev[0]]))
        else:
            due = r.at(t)
            if due:
                got[t] = due
    assert got == expected


def test_dispatcher_delivers_groups_on_their_timers(server: FakeReceiver) -> None:
    clock = Clock()
    d = Dispatcher(TREE, {"ds": [WebhookNotifier({"url": server.url("/ds")})]}, Inhibitor(),
                   MemoryOutbox(), clock=clock)
    a, b = drift("age"), drift("plan")
    d.submit([a], [a])
    clock.advance(10)
    d.submit([b], [a, b])
    assert d.deliver_due() == 0  # still inside group_wait
    clock.advance(20)
    assert d.deliver_due() == 1
    (body,) = [r.json() for r in server.received()]
    assert [x["labels"]["feature"] for x in body["alerts"]] == ["age", "plan"]
    assert body["groupLabels"] == {"alertname": "DataDrift", "model": "churn"}
    clock.advance(REPEAT + INTERVAL)
    assert d.deliver_due() == 1  # a repeat: same alerts, a new notification
    ra = drift("age", "resolved")
    d.submit([ra], [b])
    d.stop(flush_timeout=2)  # shutdown does not wait for the tick
    last = server.received()[-1].json()
    assert [(x["labels"]["feature"], x["status"]) for x in last["alerts"]] == [
        ("plan", "firing"), ("age", "resolved")]
    assert last["status"] == "firing"
