"""End to end against real services: driftwatch -> a real Alertmanager -> each team's
webhook, and driftwatch -> a real SMTP server.

Alertmanager is Debian's ``prometheus-alertmanager`` (installed by the session
fixture when missing), started per test on a free loopback port with its own
config: two receivers routed by the ``team`` label driftwatch sets, each a
webhook to a local HTTP server, and a catch-all that must stay silent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from alerts.model import Alert
from monitor.app import build
from monitor.config.load import parse_config
from monitor.config.types import Config
from monitor.replay import replay
from monitor.simulate import DEMO_MODELS, Fault, stream, write_jsonl
from monitor.sources.files import iter_line_chunks
from tests.alerts.support import FakeReceiver, FakeSMTP
from tests.integration.alertmanager import Alertmanager, parse_time, wait_for

pytestmark = pytest.mark.integration

TEAMS = ("data-science", "ml-engineering")
# one model fault (churn's input drifts) and one infrastructure fault (eta serves slower)
TWO_FAULTS = [Fault("churn", "shift", 4_000, {"feature": "age", "sigmas": 1.0}),
              Fault("eta", "latency", 4_000, {"factor": 1.3})]


# -- the services --------------------------------------------------------------
@dataclass
class TeamAlertmanager:
    """A real Alertmanager that routes by ``team`` to one webhook per team."""

    am: Alertmanager
    hooks: dict[str, FakeReceiver]  # team -> its webhook; "unrouted" -> the catch-all

    def notifications(self, team: str) -> list[dict[str, Any]]:
        """The Alertmanager webhook payloads (version 4) ``team``'s webhook received."""
        return [r.json() for r in self.hooks[team].received()]

    def delivered(self, team: str, status: str | None = None) -> list[dict[str, Any]]:
        """Every alert of every notification ``team``'s webhook received."""
        return [a for n in self.notifications(team) for a in n["alerts"]
                if status is None or a["status"] == status]


@pytest.fixture
def team_alertmanager(alertmanager_binary: str, tmp_path: Path) -> Iterator[TeamAlertmanager]:
    hooks = {name: FakeReceiver() for name in (*TEAMS, "unrouted")}
    webhook = {name: [{"url": hook.url(f"/{name}"), "send_resolved": True}]
               for name, hook in hooks.items()}
    config = {
        "route": {
            "receiver": "unrouted",
            "group_by": ["alertname", "model"],
            "group_wait": "100ms",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [{"matchers": [f'team="{team}"'], "receiver": team} for team in TEAMS],
        },
        "receivers": [{"name": name, "webhook_configs": webhook[name]} for name in hooks],
    }
    am = Alertmanager(alertmanager_binary, config, tmp_path / "alertmanager")
    try:
        am.start()
        yield TeamAlertmanager(am, hooks)
    finally:
        am.stop()
        for hook in hooks.values():
            hook.close()


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    server = FakeSMTP()
    try:
        yield server
    finally:
        server.close()


# -- driftwatch ----------------------------------------------------------------
def driftwatch_config(receivers: list[dict[str, Any]], routes: Sequence[dict[str, Any]] = ()
                      ) -> Config:
    """Small windows (as tests/test_replay.py), group_wait 0: the dict form of config.toml."""
    return parse_config({
        "defaults": {"reference_events": 2_000, "window_events": 1_000},
        "route": {"receiver": receivers[0]["name"], "group_by": ["alertname", "model"],
                  "group_wait": "0s", "routes": list(routes)},
        "receivers": receivers,
    })


def events_file(tmp_path: Path, faults: list[Fault], n: int, seed: int = 1) -> Path:
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), stream(DEMO_MODELS, n, faults, seed=seed))
    return path


def final_states(changes: list[Alert]) -> list[Alert]:
    """The last state of every alert of a run."""
    return list({a.fingerprint: a for a in changes}.values())


def am_labels(a: Alert) -> dict[str, str]:
    """The labels driftwatch pushes for ``a`` (empty values left out)."""
    return {k: v for k, v in a.labels.items() if v}


def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def ts(value: str) -> float:
    return parse_time(value).timestamp()


# -- 1. driftwatch -> Alertmanager -> the right team's webhook -------------------
def test_alertmanager_receives_driftwatch_alerts_and_routes_them_by_team(
    team_alertmanager: TeamAlertmanager, tmp_path: Path
) -> None:
    tam = team_alertmanager
    config = driftwatch_config([{"name": "alertmanager", "alertmanager": [{"url": tam.am.url}]}])
    result = replay(config, [events_file(tmp_path, TWO_FAULTS, 8_000)], notify=True)

    firing = [a for a in final_states(result.alerts) if a.status == "firing"]
    drift = [a for a in firing if a.labels["kind"] == "data_drift"
             and a.labels["model"] == "churn" and a.labels.get("feature") == "age"]
    slow = [a for a in firing if a.labels["kind"] == "latency_regression"
            and a.labels["model"] == "eta"]
    assert drift and slow, [a.labels for a in result.alerts]

    # Alertmanager holds exactly driftwatch's firing alerts, with driftwatch's labels
    active = tam.am.alerts(active="true")
    by_labels = {key(x["labels"]): x for x in active}
    assert set(by_labels) == {key(am_labels(a)) for a in firing}, (
        [x["labels"] for x in active], [a.labels for a in firing])
    for a in firing:
        got = by_labels[key(am_labels(a))]
        assert {"team", "fault", "kind", "model", "alertname"} <= set(got["labels"])
        assert got["status"]["state"] == "active"
        assert ts(got["startsAt"]) == a.starts_at
        assert ts(got["endsAt"]) > datetime.now(UTC).timestamp()  # firing: endsAt ahead
        assert got["annotations"]["attribution"] == a.annotations["attribution"]
        assert got["annotations"]["summary"] == a.annotations["summary"]
        assert got["annotations"]["evidence"]
        # Alertmanager's own routing picked the team's receiver
        assert [r["name"] for r in got["receivers"]] == [got["labels"]["team"]]

    am_drift = by_labels[key(am_labels(drift[0]))]["labels"]
    assert (am_drift["team"], am_drift["fault"], am_drift["kind"], am_drift["model"]) == (
        "data-science", "model", "data_drift", "churn")
    am_slow = by_labels[key(am_labels(slow[0]))]["labels"]
    assert (am_slow["team"], am_slow["fault"], am_slow["kind"], am_slow["model"]) == (
        "ml-engineering", "infrastructure", "latency_regression", "eta")

    # ... and delivered each alert to its team's webhook, none to the other or the catch-all
    expected = {team: {key(am_labels(a)) for a in firing if a.labels["team"] == team}
                for team in TEAMS}
    assert all(expected.values()), expected

    def arrived() -> bool:
        return all({key(x["labels"]) for x in tam.delivered(team)} == expected[team]
                   for team in TEAMS)

    assert wait_for(arrived, 15), {t: [x["labels"] for x in tam.delivered(t)] for t in TEAMS}
    for team in TEAMS:
        for n in tam.notifications(team):
            assert n["version"] == "4" and n["receiver"] == team and n["status"] == "firing"
            assert n["commonLabels"]["team"] == team
            assert set(n["groupLabels"]) == {"alertname", "model"}
        for x in tam.delivered(team):
            assert x["status"] == "firing" and x["labels"]["team"] == team
            assert x["annotations"]["attribution"]
    assert {x["labels"]["model"] for x in tam.delivered("data-science")} == {"churn"}
    assert {x["labels"]["model"] for x in tam.delivered("ml-engineering")} == {"eta"}
    assert tam.hooks["unrouted"].received() == []


# -- 2. a resolution reaches Alertmanager ----------------------------------------
def test_alert_driftwatch_resolves_is_resolved_in_alertmanager(
    team_alertmanager: TeamAlertmanager, tmp_path: Path
) -> None:
    """eta goes silent for 3,000 events (a traffic drop for ml-engineering), then resumes.

    Fed the way the daemon sees it -- batch after batch, the dispatcher delivering
    between batches -- so the firing goes out before the resolution arrives (a single
    ``replay()`` only notifies at its end, where fire-then-resolve is a flap).
    """
    tam = team_alertmanager
    config = driftwatch_config([{"name": "alertmanager", "alertmanager": [{"url": tam.am.url}]}])
    path = events_file(tmp_path, [Fault("eta", "silence", 4_000, end=7_000)], 10_000)
    app = build(config, notify=True)
    changes: list[Alert] = []
    fired: Alert | None = None

    def drops(status: str = "", **params: Any) -> list[dict[str, Any]]:
        return [x for x in tam.am.alerts(filter=['alertname="TrafficDrop"', 'model="eta"'],
                                         **params)
                if not status or x["status"]["state"] == status]

    try:
        for lines in iter_line_chunks([path], chunk_lines=1_000):
            new = app.pipeline.process(app.pipeline.decoder.decode_lines(lines))
            changes += new
            app.dispatcher.deliver_due()
            if fired is None and any(a.labels["kind"] == "traffic_drop" for a in new):
                (fired,) = [a for a in new if a.labels["kind"] == "traffic_drop"]
                assert fired.status == "firing"
                # in Alertmanager, active, and at ml-engineering's webhook
                assert wait_for(lambda: drops("active"), 10), tam.am.alerts()
                assert wait_for(lambda: tam.delivered("ml-engineering", "firing"), 10)
    finally:
        app.dispatcher.stop(flush_timeout=30.0)

    drop_changes = [a for a in changes if a.labels["kind"] == "traffic_drop"]
    assert [a.status for a in drop_changes] == ["firing", "resolved"], drop_changes
    assert fired is not None
    resolved = drop_changes[1]
    assert resolved.labels["team"] == "ml-engineering" and resolved.ends_at is not None

    # driftwatch pushed the resolution (stop() flushes it): Alertmanager no longer has
    # the alert active, and tells ml-engineering's webhook it is resolved
    assert wait_for(lambda: not drops(active="true"), 10), drops()
    assert drops() == []  # resolved alerts (endsAt in the past) are not listed at all
    assert wait_for(lambda: tam.delivered("ml-engineering", "resolved"), 10), \
        tam.notifications("ml-engineering")
    (done,) = tam.delivered("ml-engineering", "resolved")
    assert done["labels"] == am_labels(resolved)
    assert ts(done["startsAt"]) == fired.starts_at
    assert ts(done["endsAt"]) == resolved.ends_at < datetime.now(UTC).timestamp()
    (was,) = tam.delivered("ml-engineering", "firing")
    assert was["labels"] == am_labels(fired)
    assert tam.delivered("data-science") == []
    assert tam.hooks["unrouted"].received() == []


# -- 3. driftwatch -> a real SMTP server --------------------------------------
def plain_text(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_email_integration_mails_each_group_to_its_team(
    smtp: FakeSMTP, tmp_path: Path
) -> None:
    addresses = {"data-science": "ds-oncall@example.com",
                 "ml-engineering": "mle-oncall@example.com"}
    receivers = [{"name": team, "email": [{
        "host": "127.0.0.1", "port": smtp.port, "starttls": False,
        "from": "driftwatch <driftwatch@example.com>", "to": [addresses[team]],
        "timeout": "5s"}]} for team in ("ml-engineering", "data-science")]
    config = driftwatch_config(
        receivers, routes=[{"matchers": ['team="data-science"'], "receiver": "data-science"}])
    result = replay(config, [events_file(tmp_path, TWO_FAULTS, 8_000)], notify=True)

    firing = [a for a in final_states(result.alerts) if a.status == "firing"]
    assert {a.labels["team"] for a in firing} == set(TEAMS), [a.labels for a in firing]
    groups: dict[tuple[str, str, str], list[Alert]] = {}
    for a in firing:
        groups.setdefault((a.labels["team"], a.labels["alertname"], a.labels["model"]),
                          []).append(a)

    # replay notifies as the daemon would (grouping in event time): each group's first
    # mail comes group_wait after its first alert, a later one when more alerts join;
    # the group's last mail lists every alert it ended with
    mails = smtp.received()
    assert len(groups) <= len(mails) <= 2 * len(groups), [m.content[:300] for m in mails]
    seen = set()
    last: dict[tuple[str, str, str], EmailMessage] = {}
    for m in mails:
        msg = message_from_bytes(m.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        subject = str(msg["Subject"])
        assert subject.startswith("[FIRING:"), subject
        (team,) = [t for t, addr in addresses.items() if m.rcpt_tos == [addr]]
        matches = [g for g in groups if g[0] == team and subject.endswith(f" {g[1]} {g[2]}")]
        assert len(matches) == 1, (subject, team, list(groups))
        seen.add(matches[0])
        last[matches[0]] = msg
        assert m.mail_from == "driftwatch@example.com"
        assert msg["To"] == addresses[team]
    for group, msg in last.items():
        alerts = groups[group]
        assert str(msg["Subject"]) == f"[FIRING:{len(alerts)}] {group[1]} {group[2]}"
        text = plain_text(msg)
        for a in alerts:
            assert a.annotations["summary"] in text
            assert f"Why {group[0]}: {a.annotations['attribution']}" in text
    assert seen == set(groups)
    teams_mailed = {g[0] for g in seen}
    assert teams_mailed == set(TEAMS)
    # the model fault's mail went to data science, the infrastructure fault's to ML engineering
    assert any(g[:2] == ("data-science", "DataDrift") and g[2] == "churn" for g in seen)
    assert ("ml-engineering", "LatencyRegression", "eta") in seen
