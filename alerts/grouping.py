"""Aggregation groups: when a notification goes out, and with which alerts.

As in Alertmanager, every (receiver, group key) pair of a matched route is
one group, and its route's timings decide when it speaks:

* ``group_wait``: a new group waits this long before its first notification,
  so alerts that break together arrive in one message;
* ``group_interval``: after a notification the group ticks this often, and a
  tick notifies when an alert joined, changed state or resolved since the
  last one;
* ``repeat_interval``: a tick with nothing new re-sends the group when it
  still has firing alerts and this long has passed since its last notice.

A notification carries every alert of the group (firing first, then by
start and labels); resolved
alerts leave the group once they have been notified.  An alert that fires
and resolves within one wait of *event* time, before the group spoke, is
never notified at all (a flap nobody needs to hear of); one that lasted longer
but whose firing and resolution arrive together (a backlog, a replay) is sent
as resolved, with its start and end.  A resolution whose firing this group
never saw -- e.g. the daemon restarted in between -- is sent too: a stray
resolution beats a stuck incident.  An emptied group is forgotten.

A route's ``mute_time_intervals`` / ``active_time_intervals``
(:mod:`alerts.timeintervals`) hold a group's notifications -- news included,
also at shutdown: nobody asked to be paged then -- until a tick outside them.

Everything takes ``now`` from the caller, so tests drive time by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.model import Alert
from alerts.outbox import alert_from_json
from alerts.receivers.base import GroupInfo
from alerts.routing import Route
from alerts.timeintervals import TimeInterval, muted

State = tuple[str, float]  # (status, startsAt) as last notified


@dataclass
class Group:
    info: GroupInfo
    wait: float
    interval: float
    repeat: float
    next_tick: float
    alerts: dict[str, Alert] = field(default_factory=dict)  # fingerprint -> latest state
    sent: dict[str, State] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)  # seen firing (sent or not)
    last_notified: float | None = None
    mute: tuple[TimeInterval, ...] = ()
    active: tuple[TimeInterval, ...] = ()
    repeats: int = 0  # notifications of the same alerts since they last changed

    def changed(self) -> bool:
        return any(self.sent.get(fp) != (a.status, a.starts_at) for fp, a in self.alerts.items())


@dataclass(frozen=True)
class Notification:
    group: GroupInfo
    alerts: list[Alert]
    at: float  # when the group spoke
    # 0 for news, n for the n-th repeat of the same alerts: with the alerts, the
    # notification's identity -- deterministic, so the same notification made again
    # after a restart is recognised by the outbox as already delivered
    repeat: int = 0


class Aggregator:
    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], Group] = {}

    def add(self, alert: Alert, route: Route, info: GroupInfo, now: float,
            soon: bool = False) -> None:
        """Fold one alert state change into its group on ``route``; ``soon`` (an alert
        released from a mute, already late) makes the group speak within one
        ``group_wait`` instead of at its next ``group_interval`` tick."""
        key = (info.receiver, info.group_key)
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = Group(info, route.group_wait, route.group_interval,
                                         route.repeat_interval, next_tick=now + route.group_wait,
                                         mute=route.mute, active=route.active)
        elif soon:
            g.next_tick = min(g.next_tick, now + g.wait)
        fp = alert.fingerprint
        if alert.status == "firing":
            g.fired.add(fp)
            g.alerts[fp] = alert
        elif (fp in g.fired and fp not in g.sent and alert.ends_at is not None
              and alert.ends_at - alert.starts_at < g.wait):
            # fired and resolved, unheard, within one group_wait of event time: a flap
            g.alerts.pop(fp, None)
            g.fired.discard(fp)
        else:
            g.alerts[fp] = alert
        if not g.alerts and g.last_notified is None:
            del self.groups[key]

    def due(self, now: float, *, flush: bool = False) -> list[Notification]:
        """The notifications due at ``now`` (all pending changes when ``flush``)."""
        out: list[Notification] = []
        for key, g in list(self.groups.items()):
            if g.next_tick > now and not flush:
                continue
            if (g.mute or g.active) and muted(now, g.mute, g.active):
                if g.next_tick <= now:  # held: the news waits for a tick outside the mute
                    g.next_tick = now + g.interval
                continue
            firing = any(a.status == "firing" for a in g.alerts.values())
            repeat = (firing and g.last_notified is not None
                      and now - g.last_notified >= g.repeat and not flush)
            if g.changed() or repeat:
                g.repeats = 0 if g.changed() else g.repeats + 1
                alerts = sorted(g.alerts.values(), key=lambda a: (
                    a.status != "firing", a.starts_at, sorted(a.labels.items())))
                out.append(Notification(g.info, alerts, now, g.repeats))
                g.sent = {fp: (a.status, a.starts_at) for fp, a in g.alerts.items()}
                g.last_notified = now
                for fp in [fp for fp, a in g.alerts.items() if a.status != "firing"]:
                    del g.alerts[fp]
                    g.sent.pop(fp, None)
                    g.fired.discard(fp)
            if not g.alerts:
                del self.groups[key]
            elif g.next_tick <= now:
                g.next_tick = now + g.interval
        return out

    def to_state(self, models: set[str] | None = None) -> list[dict[str, Any]]:
        """Every group, JSON-clean (time intervals by name), for a checkpoint; with
        ``models``, only those models' alerts (and groups holding any)."""
        out = []
        for g in self.groups.values():
            fps = {fp for fp, a in g.alerts.items()
                   if models is None or a.labels.get("model") in models}
            if not fps:
                continue
            out.append({"info": g.info.to_json(), "wait": g.wait, "interval": g.interval,
                        "repeat": g.repeat, "next_tick": g.next_tick,
                        "alerts": [a.to_json() for fp, a in g.alerts.items() if fp in fps],
                        "sent": [[fp, s, t] for fp, (s, t) in g.sent.items() if fp in fps],
                        "fired": sorted(g.fired & fps), "last_notified": g.last_notified,
                        "mute": [i.name for i in g.mute], "active": [i.name for i in g.active],
                        "repeats": g.repeats})
        return out

    @classmethod
    def from_state(cls, state: list[dict[str, Any]],
                   intervals: Mapping[str, TimeInterval]) -> Aggregator:
        agg = cls()
        agg.merge(state, intervals)
        return agg

    def merge(self, state: list[dict[str, Any]], intervals: Mapping[str, TimeInterval]) -> None:
        """Take in groups from a checkpoint (another daemon's share of them): a group this
        aggregator has already gets their alerts and keeps its own timing."""
        for s in state:
            info = GroupInfo.from_json(s["info"])
            alerts = {a.fingerprint: a for a in map(alert_from_json, s["alerts"])}
            sent = {fp: (st, t) for fp, st, t in s["sent"]}
            g = self.groups.get((info.receiver, info.group_key))
            if g is not None:
                g.alerts.update(alerts)
                g.sent.update(sent)
                g.fired |= set(s["fired"])
                continue
            self.groups[(info.receiver, info.group_key)] = Group(
                info, s["wait"], s["interval"], s["repeat"], s["next_tick"],
                alerts=alerts, sent=sent, fired=set(s["fired"]),
                last_notified=s["last_notified"],
                mute=tuple(intervals[n] for n in s["mute"] if n in intervals),
                active=tuple(intervals[n] for n in s["active"] if n in intervals),
                repeats=int(s["repeats"]))

    def forget(self, models: set[str]) -> None:
        """Drop these models' alerts from every group (another daemon notifies them now)."""
        for key, g in list(self.groups.items()):
            for fp in [fp for fp, a in g.alerts.items() if a.labels.get("model") in models]:
                del g.alerts[fp]
                g.sent.pop(fp, None)
                g.fired.discard(fp)
            if not g.alerts:
                del self.groups[key]

    def next_tick(self) -> float | None:
        """When the earliest group may speak next (None when there are no groups)."""
        return min((g.next_tick for g in self.groups.values()), default=None)

    def pending(self) -> int:
        """Groups holding changes not notified yet."""
        return sum(1 for g in self.groups.values() if g.changed())
