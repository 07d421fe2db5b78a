"""Time intervals: when a route may notify, and what waits until then."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.config import RouteConfig
from alerts.grouping import Aggregator
from alerts.receivers.base import GroupInfo
from alerts.routing import RouteTree, group_key
from alerts.timeintervals import Spec, TimeInterval, muted, parse_range, parse_time
from tests.alerts.support import alert


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() \
        if "+" not in text else datetime.fromisoformat(text).timestamp()


WEEKEND = TimeInterval("weekend", (Spec(weekdays=((5, 6),)),))
NIGHTS = TimeInterval("nights", (Spec(times=((0, 8 * 60),), location="Europe/Berlin"),))


@pytest.mark.parametrize(("when", "weekend", "nights"), [
    ("2026-11-21T12:00", True, False),  # a Saturday
    ("2026-11-23T06:59", False, True),  # Monday 07:59 in Berlin (UTC+1)
    ("2026-11-23T07:00", False, False),  # Monday 08:00 in Berlin
    ("2026-11-22T23:30", True, True),  # Sunday 23:30 UTC = Monday 00:30 in Berlin
])
def test_specs_match_in_their_own_time_zone(when, weekend, nights):
    assert WEEKEND.contains(ts(when)) is weekend
    assert NIGHTS.contains(ts(when)) is nights


def test_days_of_month_count_from_the_end_and_months_and_years_restrict():
    last_days = Spec(days_of_month=((-2, -1),))
    assert last_days.contains(ts("2026-02-27T10:00")) and last_days.contains(ts("2026-02-28T10:00"))
    assert not last_days.contains(ts("2026-02-26T10:00"))
    q4 = Spec(months=((10, 12),), years=((2026, 2026),))
    assert q4.contains(ts("2026-11-01T00:00")) and not q4.contains(ts("2027-11-01T00:00"))


def test_mute_and_active_intervals():
    sat = ts("2026-11-21T12:00")
    mon = ts("2026-11-23T12:00")
    assert muted(sat, [WEEKEND], []) and not muted(mon, [WEEKEND], [])
    office = TimeInterval("office", (Spec(weekdays=((0, 4),), times=((9 * 60, 17 * 60),)),))
    assert not muted(mon, [], [office]) and muted(sat, [], [office])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: parse_range("monday:friday", "weekday", 0, 6,
                         ("monday", "tuesday", "wednesday", "thursday", "friday"), 0), None),
    (lambda: parse_range("funday", "weekday", 0, 6, ("monday",), 0), "not a weekday"),
    (lambda: parse_range("5:2", "month", 1, 12), "ends before it starts"),
    (lambda: parse_range("0", "day of the month", -31, 31), "within -31..31"),
    (lambda: parse_time("25:00"), "not a time"),
    (lambda: parse_time("9"), "not a time"),
])
def test_parsing(call, message):
    if message is None:
        assert call() == (0, 4)
        return
    with pytest.raises(ValueError, match=message):
        call()


def test_a_muted_group_keeps_its_news_for_the_first_tick_after_the_mute():
    tree = RouteTree(RouteConfig(receiver="ds", group_wait=30.0, group_interval=300.0,
                                 repeat_interval=3600.0, mute_time_intervals=("weekend",)),
                     [WEEKEND])
    agg = Aggregator()
    a = alert("data_drift")
    (route,) = tree.match(a.labels)
    info = GroupInfo("ds", group_key(route, a.labels), route.group_labels(a.labels))
    sunday_night = ts("2026-11-22T23:58")
    agg.add(a, route, info, sunday_night)
    assert agg.due(sunday_night + 30) == []  # Sunday: held
    assert agg.due(sunday_night + 30, flush=True) == []  # a shutdown does not page either
    assert agg.due(sunday_night + 330) != []  # Monday 00:03:30, the first tick after


def test_an_unknown_interval_name_is_refused():
    with pytest.raises(ValueError, match="not defined"):
        RouteTree(RouteConfig(receiver="ds", mute_time_intervals=("holidays",)))
