"""``[route]``, ``[[receivers]]`` together, and ``[[inhibit_rules]]``.

The routing tree is checked node by node, then cross-checked against the
receivers: every receiver a route names must be defined.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from monitor.config_check import Problems, Table, boolean, duration, label_name, matcher, string
from monitor.config_receivers import Context, parse_receivers
from monitor.config_types import DEFAULT_INHIBIT_RULES, DEFAULT_ROUTE, InhibitRule, RouteConfig

Used = list[tuple[str, str]]  # (key path, receiver name) for every receiver a route names


def _route(t: Table, used: Used, *, root: bool) -> RouteConfig:
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
        group_by=t.take_list("group_by", label_name, "label names"),
        group_wait=t.take("group_wait", duration(ge=0)),
        group_interval=t.take("group_interval", duration(gt=0)),
        repeat_interval=t.take("repeat_interval", duration(gt=0)),
        continue_=t.take("continue", boolean, False),
    )
    children: list[RouteConfig] = []
    if t.has("routes"):
        value = t.raw("routes")
        if not isinstance(value, list):
            t.problems.error(t.at("routes"), "must be an array of tables ([[route.routes]])", value)
            value = []
        for i, item in enumerate(value):
            if (sub := Table.of(item, f"{t.at('routes')}[{i}]", t.problems)) is not None:
                children.append(_route(sub, used, root=False))
    t.finish()
    return replace(node, routes=tuple(children))


def parse_receivers_and_route(top: Table, ctx: Context) -> dict[str, Any]:
    """``route`` and ``receivers`` for :class:`Config` (only the ones given)."""
    has_route, has_receivers = top.has("route"), top.has("receivers")
    out: dict[str, Any] = {}
    used: Used = []
    if has_route:
        if (t := Table.of(top.raw("route"), "route", ctx.problems)) is not None:
            root = _route(t, used, root=True)
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
    named = {name for _, name in used}
    for i, r in enumerate(receivers):
        if r.name not in named:
            ctx.problems.warn(f"receivers[{i}]", f'receiver "{r.name}" is not used by any route')
    return out


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
