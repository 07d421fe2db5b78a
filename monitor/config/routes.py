"""``[route]``, ``[[receivers]]`` together, and ``[[inhibit_rules]]``.

The routing tree is checked node by node, then cross-checked against the
receivers: every receiver a route names must be defined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from alerts.routing import ALL_LABELS
from alerts.timeintervals import (
    MONTHS,
    WEEKDAYS,
    Spec,
    TimeInterval,
    check_location,
    parse_range,
    parse_time,
)
from monitor.config.check import (
    Bad,
    Problems,
    Table,
    boolean,
    duration,
    label_name,
    matcher,
    string,
)
from monitor.config.receivers import Context, parse_receivers
from monitor.config.types import DEFAULT_INHIBIT_RULES, DEFAULT_ROUTE, InhibitRule, RouteConfig

Used = list[tuple[str, str]]  # (key path, receiver name) for every receiver a route names
Named = list[tuple[str, str]]  # (key path, time interval name) for every interval a route names


def _group_label(v: Any) -> str:
    """A label name, or ``...``: group by every label (one group per alert)."""
    return v if v == ALL_LABELS else label_name(v)


def _route(t: Table, used: Used, *, root: bool, named: Named | None = None) -> RouteConfig:
    named = named if named is not None else []
    if root and not t.has("receiver"):
        t.problems.error(t.at("receiver"), "required: the root route needs a receiver")
    receiver = t.take("receiver", string())
    if receiver is not None:
        used.append((t.at("receiver"), receiver))
    if root and t.has("matchers"):
        t.problems.error(t.at("matchers"), "not allowed in the root route (it matches every alert)")
        t.raw("matchers")
    if root and t.has("continue"):
        t.problems.error(t.at("continue"), "not allowed in the root route")
        t.raw("continue")
    node = RouteConfig(
        receiver=receiver,
        matchers=t.take_list("matchers", matcher, "matchers", (), distinct=False),
        group_by=t.take_list("group_by", _group_label, "label names (or \"...\": all)"),
        group_wait=t.take("group_wait", duration(ge=0)),
        group_interval=t.take("group_interval", duration(gt=0)),
        repeat_interval=t.take("repeat_interval", duration(gt=0)),
        continue_=t.take("continue", boolean, False),
        mute_time_intervals=t.take_list("mute_time_intervals", string(), "interval names", ()),
        active_time_intervals=t.take_list("active_time_intervals", string(),
                                          "interval names", ()),
    )
    for key in ("mute_time_intervals", "active_time_intervals"):
        named += [(f"{t.at(key)}[{i}]", n) for i, n in enumerate(getattr(node, key))]
    children: list[RouteConfig] = []
    if t.has("routes"):
        value = t.raw("routes")
        if not isinstance(value, list):
            t.problems.error(t.at("routes"), "must be an array of tables ([[route.routes]])", value)
            value = []
        for i, item in enumerate(value):
            if (sub := Table.of(item, f"{t.at('routes')}[{i}]", t.problems)) is not None:
                children.append(_route(sub, used, root=False, named=named))
    t.finish()
    return replace(node, routes=tuple(children))


def parse_receivers_and_route(top: Table, ctx: Context) -> dict[str, Any]:
    """``route``, ``receivers`` and ``time_intervals`` for :class:`Config` (those given)."""
    has_route, has_receivers = top.has("route"), top.has("receivers")
    out: dict[str, Any] = {}
    used: Used = []
    named: Named = []
    intervals: tuple[TimeInterval, ...] = ()
    if top.has("time_intervals"):
        intervals = out["time_intervals"] = parse_time_intervals(top.raw("time_intervals"),
                                                                 ctx.problems)
    if has_route:
        if (t := Table.of(top.raw("route"), "route", ctx.problems)) is not None:
            root = _route(t, used, root=True, named=named)
            defined_intervals = {i.name for i in intervals}
            for where, name in named:
                if name not in defined_intervals:
                    ctx.problems.error(where, f'undefined time interval "{name}" '
                                              "(define it in [[time_intervals]])")
            inherited = ("receiver", "group_by", "group_wait", "group_interval", "repeat_interval")
            out["route"] = replace(
                root,
                **{k: getattr(DEFAULT_ROUTE, k) for k in inherited if getattr(root, k) is None},
            )
    elif has_receivers:  # the default route sends everything to "default"
        used.append(("route.receiver", str(DEFAULT_ROUTE.receiver)))
    if not has_receivers and not has_route:
        return out  # neither given: the built-in default route and receiver
    receivers = parse_receivers(top.raw("receivers"), ctx) if has_receivers else ()
    if receivers is None:
        return out  # not an array of tables: reported, no cross-check to make
    out["receivers"] = receivers
    defined = {r.name for r in receivers}
    hint = "" if has_route else " (no [route] table, so every alert goes to it)"
    for where, name in used:
        if name not in defined:
            ctx.problems.error(where, f'undefined receiver "{name}" used in route{hint}')
    routed = {name for _, name in used}
    for i, r in enumerate(receivers):
        if r.name not in routed:
            ctx.problems.warn(f"receivers[{i}]", f'receiver "{r.name}" is not used by any route')
    return out


_SPEC_FIELDS = {  # key -> (what, lowest, highest, names, base of the names)
    "weekdays": ("weekday", 0, 6, WEEKDAYS, 0),
    "days_of_month": ("day of the month", -31, 31, (), 1),
    "months": ("month", 1, 12, MONTHS, 1),
    "years": ("year", 1, 9999, (), 1),
}


def _spec(t: Table) -> Spec:
    fields: dict[str, Any] = {}
    for key, (what, lo, hi, names, base) in _SPEC_FIELDS.items():
        fields[key] = t.take_list(
            key, _rule(parse_range, what, lo, hi, names, base),
            f"{what}s or ranges of them", (), distinct=False)
    times: list[tuple[int, int]] = []
    if t.has("times"):
        value = t.raw("times")
        items = value if isinstance(value, list) else [None]
        for i, item in enumerate(items):
            where = f"{t.at('times')}[{i}]"
            if (tt := Table.of(item, where, t.problems)) is None:
                continue
            missing = [k for k in ("start_time", "end_time") if not tt.has(k)]
            if missing:
                t.problems.error(where, f"required: {' and '.join(missing)} (HH:MM)")
            start, end = (tt.take(k, _rule(parse_time)) for k in ("start_time", "end_time"))
            if start is not None and end is not None:
                if end <= start:
                    t.problems.error(where, "end_time must be after start_time", item)
                else:
                    times.append((start, end))
            tt.finish()
    location = t.take("location", _rule(check_location), "UTC")
    t.finish()
    return Spec(times=tuple(times), location=location, **fields)


def _rule(parse: Callable[..., Any], *args: Any) -> Callable[[Any], Any]:
    """A config rule from a parser that raises ValueError with the reason."""
    def check(v: Any) -> Any:
        try:
            return parse(v, *args)
        except ValueError as exc:
            raise Bad(str(exc)) from None
    return check


def parse_time_intervals(value: Any, problems: Problems) -> tuple[TimeInterval, ...]:
    """``[[time_intervals]]``: ``name`` and ``[[time_intervals.time_intervals]]`` specs."""
    if not isinstance(value, list):
        problems.error("time_intervals", "must be an array of tables ([[time_intervals]])", value)
        return ()
    out: list[TimeInterval] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if (t := Table.of(item, f"time_intervals[{i}]", problems)) is None:
            continue
        if not t.has("name"):
            problems.error(t.at("name"), "required: the name routes refer to")
        name = t.take("name", string(), "")
        if name in seen:
            problems.error(t.at("name"), "must be unique", name)
        seen.add(name)
        specs: list[Spec] = []
        raw = t.raw("time_intervals") if t.has("time_intervals") else None
        if not isinstance(raw, list) or not raw:
            problems.error(t.at("time_intervals"), "required: a non-empty array of tables "
                           "([[time_intervals.time_intervals]])", raw)
            raw = []
        for j, spec in enumerate(raw):
            if (st := Table.of(spec, f"{t.at('time_intervals')}[{j}]", problems)) is not None:
                specs.append(_spec(st))
        t.finish()
        out.append(TimeInterval(name, tuple(specs)))
    return tuple(out)


def parse_inhibit_rules(value: Any, problems: Problems) -> tuple[InhibitRule, ...]:
    """``[[inhibit_rules]]``; ``inhibit_rules = []`` turns inhibition off."""
    if not isinstance(value, list):
        problems.error("inhibit_rules", "must be an array of tables ([[inhibit_rules]])", value)
        return DEFAULT_INHIBIT_RULES
    rules: list[InhibitRule] = []
    for i, item in enumerate(value):
        if (t := Table.of(item, f"inhibit_rules[{i}]", problems)) is None:
            continue
        sides = {}
        for key in ("source_matchers", "target_matchers"):
            if not t.has(key):
                problems.error(t.at(key), "required: a non-empty list of matchers")
            elif t.data[key] == []:
                problems.error(t.at(key), "must list at least one matcher", [])
            sides[key] = t.take_list(key, matcher, "matchers", (), distinct=False)
        equal = t.take_list("equal", label_name, "label names", ())
        t.finish()
        rules.append(InhibitRule(equal=equal, **sides))
    return tuple(rules)
