"""Silences: validation, state, caching, and what the dispatcher does with them."""

from __future__ import annotations

import pytest

from alerts.config import RouteConfig
from alerts.dispatch import Dispatcher
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from alerts.outbox import MemoryOutbox
from alerts.receivers.webhook import WebhookNotifier
from alerts.routing import RouteTree
from alerts.silences import Silence, Silencer, new_silence
from tests.alerts.support import T0, Clock, FakeReceiver, alert


def silence(*matchers: str, start: float = T0, end: float = T0 + 3600) -> Silence:
    return new_silence(list(matchers), ends_at=end, created_by="ana", comment="deploying",
                       now=T0, starts_at=start)


@pytest.mark.parametrize(("matchers", "kw", "message"), [
    ([], {}, "at least one matcher"),
    (['model=~".*"'], {}, "would mute every alert"),
    (['model!="churn"', 'kind=""'], {}, "would mute every alert"),
    (['model="churn'], {}, "is not of the form"),
    (['model="churn"'], {"ends_at": T0 - 1}, "must be after startsAt"),
    (['model="churn"'], {"created_by": " "}, "createdBy"),
    (['model="churn"'], {"comment": ""}, "say why"),
])
def test_invalid_silences_are_refused_with_the_reason(matchers, kw, message):
    args = {"ends_at": T0 + 60, "created_by": "ana", "comment": "x", "now": T0, **kw}
    with pytest.raises(ValueError, match=message):
        new_silence(matchers, **args)


def test_state_and_matching():
    s = silence('model="churn"', 'kind=~"data_.*"', start=T0 + 10)
    assert [s.state(t) for t in (T0, T0 + 10, T0 + 3600)] == ["pending", "active", "expired"]
    assert s.matches({"model": "churn", "kind": "data_drift"})
    assert not s.matches({"model": "churn", "kind": "latency_regression"})
    assert s.to_json(T0)["status"] == {"state": "pending"}


def test_silencer_caches_the_loader_and_refresh_reloads():
    loads: list[int] = []
    store: list[Silence] = []
    mono = Clock(0.0)

    def load() -> list[Silence]:
        loads.append(1)
        return list(store)

    sil = Silencer(load, ttl=5.0, monotonic=mono)
    labels = {"model": "churn"}
    assert sil.silenced_by(labels, T0) == []
    store.append(silence('model="churn"'))
    assert sil.silenced_by(labels, T0) == []  # cached
    mono.advance(5)
    assert sil.silenced_by(labels, T0) == [store[0].id]
    store.clear()
    sil.refresh()
    assert sil.silenced_by(labels, T0) == [] and len(loads) == 3


def test_a_silenced_alert_is_not_notified_and_goes_out_when_the_silence_ends(
        server: FakeReceiver) -> None:
    clock = Clock()
    silences = [silence('model="churn"', 'kind="data_drift"', end=T0 + 600)]
    muted: list[tuple[str, str]] = []
    d = Dispatcher(RouteTree(RouteConfig(receiver="ds", group_by=("model",), group_wait=0.0,
                                         group_interval=3600.0)),
                   {"ds": [WebhookNotifier({"url": server.url("/ds")})]}, Inhibitor(()),
                   MemoryOutbox(), clock=clock, silencer=Silencer(lambda: silences, ttl=0),
                   on_muted=lambda a, why: muted.append((a.labels["kind"], why)))
    released: list[list[Alert]] = []
    d.on_released = released.append
    drift, lat = alert("data_drift"), alert("latency_regression")
    out = d.submit([drift, lat], [drift, lat])
    assert [(a.labels["kind"], a.muted_by) for a in out] == [
        ("data_drift", {"silenced_by": silences[0].id}), ("latency_regression", None)]
    d.deliver_due()
    assert [r.json()["alerts"][0]["labels"]["kind"] for r in server.received()] == [
        "latency_regression"]
    assert muted == [("data_drift", "silenced")]
    clock.advance(599)
    d.deliver_due()
    assert d.muted() == [drift] and released == []
    clock.advance(2)  # the silence is over and the drift still fires: no other event needed
    d.deliver_due()
    assert d.muted() == [] and [[a.labels["kind"] for a in r] for r in released] == [
        ["data_drift"]]
    assert released[0][0].muted_by is None
    d.deliver_due()  # the group it joins speaks within one group_wait (0 here), not at
    # its next group_interval tick
    assert server.received()[-1].json()["alerts"][0]["labels"]["kind"] == "data_drift"


def test_the_resolution_of_a_silenced_alert_is_dropped(server: FakeReceiver) -> None:
    clock = Clock()
    silences = [silence('model="churn"')]
    d = Dispatcher(RouteTree(RouteConfig(receiver="ds", group_wait=0.0)),
                   {"ds": [WebhookNotifier({"url": server.url("/ds")})]}, Inhibitor(()),
                   MemoryOutbox(), clock=clock, silencer=Silencer(lambda: silences, ttl=0))
    a = alert("data_drift")
    d.submit([a], [a])
    (res,) = d.submit([alert("data_drift", "resolved")], [])
    assert res.muted_by == {"silenced_by": silences[0].id}
    d.stop(flush_timeout=1)
    assert server.received() == []
