"""Dispatcher acceptance tests: a real local receiver that fails on purpose, a test clock."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.config import DEFAULT_ROUTE, RouteConfig
from alerts.dispatch import BACKOFF_CAP, Dispatcher, backoff
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from alerts.outbox import MemoryOutbox, OutboxItem
from alerts.receivers import DeliveryResult, GroupInfo, Notifier
from alerts.receivers.file import FileNotifier
from alerts.receivers.slack import SlackNotifier
from alerts.receivers.webhook import WebhookNotifier
from alerts.routing import RouteTree
from tests.alerts.support import T0, Clock, FakeReceiver, Reply, alert

ROUTE = RouteConfig(  # no group_wait: these tests are about delivery, not grouping
    receiver="mle",
    group_by=("alertname", "model"),
    group_wait=0.0,
    routes=(RouteConfig(matchers=('team="data-science"',), receiver="ds"),),
)


class Harness:
    def __init__(
        self, server: FakeReceiver, clock: Clock, notifiers: dict[str, list[Notifier]] | None = None
    ) -> None:
        self.server, self.clock = server, clock
        self.results: list[tuple[str, str, str]] = []
        self.outbox = MemoryOutbox()
        if notifiers is None:
            notifiers = {
                "ds": [WebhookNotifier({"url": server.url("/ds")})],
                "mle": [WebhookNotifier({"url": server.url("/mle")})],
            }
        self.d = Dispatcher(
            RouteTree(ROUTE),
            notifiers,
            Inhibitor(),
            self.outbox,
            clock=clock,
            on_result=lambda *r: self.results.append(r),
            rng=random.Random(7),
        )

    def paths(self) -> list[str]:
        return [r.path for r in self.server.received()]

    def outcomes(self) -> list[str]:
        return [r[2] for r in self.results]


@pytest.fixture
def h(server: FakeReceiver, clock: Clock) -> Harness:
    return Harness(server, clock)


def drift(status: str = "firing") -> Alert:
    return alert("data_drift", status)  # model fault -> data-science


def latency(status: str = "firing") -> Alert:
    return alert("latency_regression", status)  # infrastructure, same model


def broken(status: str = "firing") -> Alert:
    return alert("data_quality", status)  # a broken feed in the drift's feature: mutes it


def test_fails_twice_then_delivered_exactly_once(h: Harness) -> None:
    h.server.script(Reply(500), Reply(500))
    a = drift()
    assert h.d.submit([a], [a]) == [a]
    assert a.receivers == ["ds"]
    assert h.d.deliver_due() == 0
    assert h.d.deliver_due() == 0  # backing off: not due yet
    assert len(h.server.received()) == 1
    h.clock.advance(1.0)
    assert h.d.deliver_due() == 0
    h.clock.advance(2.0)
    assert h.d.deliver_due() == 1
    for _ in range(3):
        h.clock.advance(BACKOFF_CAP)
        assert h.d.deliver_due() == 0
    assert h.paths() == ["/ds", "/ds", "/ds"]
    assert h.outcomes() == ["retry", "retry", "sent"]
    assert h.results[0][:2] == ("ds", "webhook")
    assert h.outbox.pending() == 0


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 0.5, 1.0),
        (2, 1.0, 2.0),
        (3, 2.0, 4.0),
        (9, 128.0, 256.0),
        (10, 150.0, 300.0),
        (1000, 150.0, 300.0),
    ],
)
def test_backoff_doubles_with_jitter_and_a_cap(attempt: int, low: float, high: float) -> None:
    rng = random.Random(1)
    for _ in range(50):
        assert low <= backoff(attempt, rng) <= high


def test_429_retry_after_is_honoured(h: Harness) -> None:
    h.server.script(Reply(429, b"rate limited", {"Retry-After": "7"}))
    h.d.submit([drift()], [])
    h.d.deliver_due()
    assert h.outcomes() == ["retry"]
    assert h.outbox.next_attempt_at() == pytest.approx(T0 + 7.0)
    h.clock.advance(6.99)
    h.d.deliver_due()
    assert len(h.server.received()) == 1
    h.clock.advance(0.01)
    assert h.d.deliver_due() == 1
    assert h.outcomes() == ["retry", "sent"]


@pytest.mark.parametrize("status", [400, 404])
def test_client_error_fails_without_retry_and_is_reported(h: Harness, status: int) -> None:
    h.server.script(Reply(status, b"no such hook"))
    h.d.submit([drift()], [])
    assert h.d.deliver_due() == 0
    h.clock.advance(10 * BACKOFF_CAP)
    h.d.deliver_due()
    assert len(h.server.received()) == 1
    assert h.outcomes() == ["failed"]
    (failed,) = h.outbox.failed()
    assert f"HTTP {status}" in failed.last_error and failed.receiver == "ds"
    assert h.outbox.pending() == 0


def test_duplicate_submits_are_ignored(h: Harness) -> None:
    a = drift()
    assert h.d.submit([a], [a]) == [a]
    assert h.d.submit([drift()], [a]) == []
    assert h.d.groups.pending() == 1
    h.d.deliver_due()
    assert h.d.submit([drift()], [a]) == []
    h.clock.advance(60)
    h.d.deliver_due()
    assert h.paths() == ["/ds"]
    resolved = drift("resolved")
    assert h.d.submit([resolved], []) == [resolved]  # a new state change is not a duplicate


def test_inhibited_alerts_are_not_delivered_and_say_why(h: Harness) -> None:
    q, d = broken(), drift()
    out = h.d.submit([q, d], [q, d])
    assert [(a.labels["kind"], a.muted_by) for a in out] == [
        ("data_quality", None), ("data_drift", {"inhibited_by": q.fingerprint})]
    assert out[1].to_json()["muted_by"] == {"inhibited_by": q.fingerprint}
    h.d.deliver_due()
    assert h.paths() == ["/mle"]
    assert d.receivers == [] and d.muted_by == {"inhibited_by": q.fingerprint}
    assert h.d.muted() == [d]
    # its resolution is muted too: the team never heard of it
    (res,) = h.d.submit([drift("resolved")], [q])
    assert res.muted_by == {"inhibited_by": q.fingerprint}
    h.d.deliver_due()
    assert h.paths() == ["/mle"]
    assert h.d.muted() == []


def test_a_slow_server_mutes_no_drift(h: Harness) -> None:
    lat, d = latency(), drift()
    out = h.d.submit([lat, d], [lat, d])
    assert [a.muted_by for a in out] == [None, None]
    h.d.deliver_due()
    assert sorted(h.paths()) == ["/ds", "/mle"]


def test_a_source_that_starts_later_mutes_nothing_whatever_the_order(h: Harness) -> None:
    d = drift()
    q = broken()
    q.starts_at = d.starts_at + 60  # the feed broke a minute after the drift fired
    for changes in ([q, d], [d, q]):
        h2 = Harness(h.server, h.clock)
        out = h2.d.submit(changes, [q, d])
        assert {a.labels["kind"]: a.muted_by for a in out} == {
            "data_quality": None, "data_drift": None}
    # a source that fired and resolved before the target started mutes nothing either
    early = broken("resolved")
    early.starts_at, early.ends_at = d.starts_at - 120, d.starts_at - 60
    h3 = Harness(h.server, h.clock)
    out = h3.d.submit([d, early], [d])
    assert [a.muted_by for a in out if a.labels["kind"] == "data_drift"] == [None]
    # ... but one that still fired at the target's start does, in the same submission
    late = broken("resolved")
    late.starts_at, late.ends_at = d.starts_at - 120, d.starts_at + 60
    h4 = Harness(h.server, h.clock)
    out = h4.d.submit([late, d], [d])
    kinds = [(a.labels["kind"], a.status, a.muted_by) for a in out]
    assert kinds == [("data_drift", "firing", {"inhibited_by": late.fingerprint}),
                     ("data_quality", "resolved", None),
                     ("data_drift", "firing", None)]  # released when the source ended


def test_resolution_of_a_delivered_alert_goes_out_even_if_inhibited_now(h: Harness) -> None:
    d = drift()
    assert h.d.submit([d], [d]) == [d]
    h.d.deliver_due()
    lat = broken()
    assert h.d.submit([lat], [d, lat]) == [lat]
    resolved = drift("resolved")
    assert h.d.submit([resolved], [lat]) == [resolved]
    h.d.deliver_due()
    h.clock.advance(300)  # the ds group's next tick (group_interval)
    h.d.deliver_due()
    bodies = [r.json() for r in h.server.received()]
    assert [(b["receiver"], b["status"]) for b in bodies] == [
        ("ds", "firing"),
        ("mle", "firing"),
        ("ds", "resolved"),
    ]


def test_a_muted_alert_goes_out_once_its_inhibitor_resolves(h: Harness) -> None:
    lat, d = broken(), drift()
    h.d.submit([lat, d], [lat, d])
    h.d.deliver_due()
    lat_resolved = broken("resolved")
    assert h.d.submit([lat_resolved], [d]) == [lat_resolved, d]
    h.d.deliver_due()  # the new ds group (no group_wait) speaks at once ...
    h.clock.advance(300)  # ... the mle group at its next tick
    h.d.deliver_due()
    assert h.paths() == ["/mle", "/ds", "/mle"]
    assert h.server.received()[1].json()["alerts"][0]["status"] == "firing"
    assert h.server.received()[2].json()["alerts"][0]["status"] == "resolved"


def test_group_key_and_labels_come_from_the_route(h: Harness) -> None:
    a = drift()
    h.d.submit([a], [a])
    h.server.script(Reply(500))
    h.d.deliver_due()
    (queued,) = h.outbox.queued()  # kept for a retry
    assert queued.alerts[0]["receivers"] == ["ds"]
    h.clock.advance(5)
    h.d.deliver_due()
    body = h.server.received()[-1].json()
    assert body["groupKey"] == '{}/{team="data-science"}:{alertname="DataDrift", model="churn"}'
    assert body["groupLabels"] == {"alertname": "DataDrift", "model": "churn"}
    assert body["receiver"] == "ds"


def test_each_integration_is_retried_on_its_own(
    server: FakeReceiver, clock: Clock, tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    h = Harness(
        server,
        clock,
        {"ds": [FileNotifier({"path": str(out)}), WebhookNotifier({"url": server.url("/ds")})]},
    )
    server.script(Reply(503))
    a = drift()
    h.d.submit([a], [a])
    assert h.d.deliver_due() == 1
    clock.advance(5)
    assert h.d.deliver_due() == 1
    assert sorted(h.results) == [
        ("ds", "file", "sent"),
        ("ds", "webhook", "retry"),
        ("ds", "webhook", "sent"),
    ]
    assert [orjson.loads(x)["fingerprint"] for x in out.read_bytes().splitlines()] == [
        a.fingerprint
    ]


def test_without_notifiers_alerts_are_routed_but_not_queued(
    server: FakeReceiver, clock: Clock
) -> None:
    h = Harness(server, clock, {})
    a = drift()
    assert h.d.submit([a], [a]) == [a]
    assert a.receivers == ["ds"]
    assert h.outbox.pending() == 0


class Exploding:
    name = "webhook"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("bug with https://secret.example/token")
        return DeliveryResult.success(200)


def test_a_notifier_that_raises_is_retried(server: FakeReceiver, clock: Clock) -> None:
    boom = Exploding()
    h = Harness(server, clock, {"ds": [boom]})
    h.d.submit([drift()], [])
    assert h.d.deliver_due() == 0
    assert "secret" not in h.outbox.queued()[0].last_error
    clock.advance(2)
    assert h.d.deliver_due() == 1
    assert h.outcomes() == ["retry", "sent"]


def test_an_item_for_a_removed_integration_fails(h: Harness) -> None:
    h.outbox.put(OutboxItem.new("ds", 3, "slack", [drift()], GroupInfo("ds", "{}:{}"), T0))
    h.outbox.put(OutboxItem.new("gone", 0, "slack", [latency()], GroupInfo("gone", "{}:{}"), T0))
    h.d.deliver_due()
    assert h.outcomes() == ["failed", "failed"]
    assert h.server.received() == []


def test_secrets_stay_out_of_logs(
    server: FakeReceiver, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    secret_path = "/services/T0SECRET1/B0SECRET2/XXXXsecretTOKENXXXX"
    h = Harness(server, clock, {"ds": [SlackNotifier({"url": server.url(secret_path)})]})
    server.script(Reply(500, echo=True), Reply(404, echo=True))
    h.d.submit([drift()], [])
    with caplog.at_level(logging.DEBUG, logger="driftwatch"):
        h.d.deliver_due()
        clock.advance(5)
        h.d.deliver_due()
    assert h.outcomes() == ["retry", "failed"]
    assert len(caplog.records) == 2
    for record in caplog.records:
        dump = repr(record.__dict__) + record.getMessage()
        assert "SECRET" not in dump and "secretTOKEN" not in dump


def test_background_thread_delivers_and_stop_joins(server: FakeReceiver) -> None:
    h = Harness(server, Clock())
    h.d.clock = time.time  # real time for the thread
    h.d.start()
    h.d.start()  # idempotent
    try:
        a = drift()
        h.d.submit([a], [a])
        deadline = time.monotonic() + 5
        while not h.server.received() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        h.d.stop(flush_timeout=1)
    assert h.paths() == ["/ds"]
    assert h.outcomes() == ["sent"]


def test_stop_flushes_what_is_due(h: Harness) -> None:
    h.d.submit([drift(), latency()], [])
    h.d.stop(flush_timeout=2)
    assert sorted(h.paths()) == ["/ds", "/mle"]
    assert h.outbox.pending() == 0


def test_stop_does_not_wait_for_retries_beyond_the_timeout(h: Harness) -> None:
    h.server.script(Reply(429, headers={"Retry-After": "60"}))
    h.d.submit([drift()], [])
    start = time.monotonic()
    h.d.stop(flush_timeout=1)
    assert time.monotonic() - start < 0.5
    assert h.outbox.pending() == 1  # kept: a durable outbox delivers it after restart


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=11), max_size=6),
       starts=st.lists(st.integers(min_value=0, max_value=50), min_size=3, max_size=3),
       lags=st.lists(st.integers(min_value=0, max_value=40), min_size=3, max_size=3))
def test_muting_does_not_depend_on_how_changes_are_batched(
        cuts: list[int], starts: list[int], lags: list[int]) -> None:
    """The same alert history, submitted in batches split anywhere, mutes the same
    alerts for the same reason (inhibition in event time) -- also when an alert is
    raised a while after its startsAt (an alarm that waited for its segments)."""
    src = [broken(), broken("resolved")]
    src[0].starts_at = src[1].starts_at = T0 + 10
    src[1].ends_at = T0 + 30
    history: list[tuple[float, Alert]] = [(T0 + 10, src[0]), (T0 + 30, src[1])]
    for i, (start, lag) in enumerate(zip(starts, lags, strict=True)):  # the break explains
        on, off = drift(), drift("resolved")
        for a in (on, off):
            a.labels["model"] = "churn"
            a.labels["feature"] = "age"
            a.labels["alertname"] = f"DataDrift{i}"  # three distinct alerts
            a.starts_at = T0 + start
        off.ends_at = T0 + start + lag + 25
        history += [(on.starts_at + lag, on), (off.ends_at, off)]  # (raised at, change)
    history.sort(key=lambda x: x[0])
    changes = [a for _, a in history]

    def run(splits: list[int]) -> dict[tuple[str, str], object]:
        d = Dispatcher(RouteTree(DEFAULT_ROUTE), {}, Inhibitor(), MemoryOutbox())
        out: dict[tuple[str, str], object] = {}
        fired: dict[str, Alert] = {}
        bounds = sorted({0, len(changes), *[c for c in splits if c < len(changes)]})
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            batch = [replace(a) for a in changes[lo:hi]]
            for a in batch:
                if a.status == "firing":
                    fired[a.fingerprint] = a
                else:
                    fired.pop(a.fingerprint, None)
            for a in d.submit(batch, list(fired.values())):
                out.setdefault((a.labels["alertname"], a.status), a.muted_by)
        return out

    assert run(cuts) == run([])
