"""Time intervals: when a route may notify (Alertmanager's ``time_intervals``).

A named interval is a list of specs; a moment is inside the interval when it
is inside any spec.  A spec restricts, each optionally: ``times`` (daily
``HH:MM`` ranges, end exclusive), ``weekdays``, ``days_of_month`` (1..31, or
-1 for the last day), ``months`` and ``years`` -- all in the spec's
``location`` (an IANA time zone, UTC by default).  A field left out matches
everything.  Ranges are written ``"monday:friday"``, ``"1:7"``, ``"-3:-1"``.

A route's ``mute_time_intervals`` hold its notifications while any of them
contains now; its ``active_time_intervals`` (when given) let them out only
while one of them does.  A held notification is not lost: the group keeps its
news and speaks at the first tick outside the mute.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")

Range = tuple[int, int]  # inclusive


@dataclass(frozen=True)
class Spec:
    times: tuple[Range, ...] = ()  # minutes of the day, [start, end)
    weekdays: tuple[Range, ...] = ()  # 0 = monday
    days_of_month: tuple[Range, ...] = ()  # negative: from the end of the month
    months: tuple[Range, ...] = ()  # 1..12
    years: tuple[Range, ...] = ()
    location: str = "UTC"

    def contains(self, ts: float) -> bool:
        t = datetime.fromtimestamp(ts, ZoneInfo(self.location))
        minute = t.hour * 60 + t.minute
        if self.times and not any(a <= minute < b for a, b in self.times):
            return False
        if self.weekdays and not any(a <= t.weekday() <= b for a, b in self.weekdays):
            return False
        if self.days_of_month:
            last = calendar.monthrange(t.year, t.month)[1]

            def day(d: int) -> int:
                return d if d > 0 else last + 1 + d
            if not any(day(a) <= t.day <= day(b) for a, b in self.days_of_month):
                return False
        if self.months and not any(a <= t.month <= b for a, b in self.months):
            return False
        return not self.years or any(a <= t.year <= b for a, b in self.years)


@dataclass(frozen=True)
class TimeInterval:
    name: str
    specs: tuple[Spec, ...] = field(default_factory=tuple)

    def contains(self, ts: float) -> bool:
        return any(s.contains(ts) for s in self.specs)


def _names(text: str, names: Sequence[str], what: str, base: int) -> int:
    t = text.strip().lower()
    if t in names:
        return names.index(t) + base
    try:
        return int(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a {what}") from None


def parse_range(text: object, what: str, lo: int, hi: int,
                names: Sequence[str] = (), base: int = 1) -> Range:
    """``"monday:friday"``, ``"3"``, ``"-3:-1"`` -> an inclusive (start, end)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a {what} or a range of them")
    first, _, last = text.partition(":")
    a = _names(first, names, what, base)
    b = _names(last, names, what, base) if last else a
    for v in (a, b):
        if not (lo <= v <= hi) or v == 0 and lo < 0:
            raise ValueError(f"{text!r}: {what} must be within {lo}..{hi}")
    if (a > 0) == (b > 0) and a > b:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return a, b


def parse_time(text: object) -> int:
    """``"HH:MM"`` -> minutes since midnight (``"24:00"`` is the end of the day)."""
    if not isinstance(text, str) or len(text.split(":")) != 2:
        raise ValueError(f"{text!r} is not a time HH:MM")
    h, m = text.split(":")
    if not (h.isdigit() and m.isdigit()) or not (0 <= int(m) < 60) or not (
            0 <= int(h) < 24 or (int(h) == 24 and int(m) == 0)):
        raise ValueError(f"{text!r} is not a time HH:MM")
    return int(h) * 60 + int(m)


def check_location(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"{name!r} is not a time zone name")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a known time zone (IANA name, e.g. Europe/Berlin)")\
            from None
    return name


def muted(ts: float, mute: Sequence[TimeInterval], active: Sequence[TimeInterval]) -> bool:
    """Whether a route with these intervals holds its notifications at ``ts``."""
    if any(i.contains(ts) for i in mute):
        return True
    return bool(active) and not any(i.contains(ts) for i in active)
