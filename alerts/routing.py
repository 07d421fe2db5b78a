"""The routing tree: which receivers get an alert, Alertmanager style.

Routing is data plus one pure function.  :class:`RouteTree` builds a tree of
:class:`Route` once from :class:`~monitor.config.types.RouteConfig`; a child
inherits ``receiver``, ``group_by`` and the timings from its parent whenever
its own value is None, and the root takes anything it leaves unset from
:data:`~monitor.config.types.DEFAULT_ROUTE`.  The root matches every alert
(Alertmanager refuses matchers on the root; so do we, by ignoring them).

:meth:`Route.match` is Alertmanager's ``Route.Match``: depth first; a child
whose matchers all match is descended into; the walk stops at the first
matching child unless that child has ``continue``; a node none of whose
children matched is itself the match.

>>> from alerts.config import RouteConfig
>>> tree = RouteTree(RouteConfig(receiver="mle", routes=(
...     RouteConfig(matchers=('team="data-science"',), receiver="ds"),)))
>>> tree.receivers_for({"team": "data-science", "model": "churn"})
['ds']
>>> tree.receivers_for({"team": "ml-engineering"})
['mle']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alerts.config import DEFAULT_ROUTE, RouteConfig
from alerts.matchers import Matcher, match_all, parse_all
from alerts.timeintervals import TimeInterval

ALL_LABELS = "..."  # group_by = ["..."] groups by every label, as in Alertmanager


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_labels(labels: Mapping[str, str]) -> str:
    """``{a="1", b="2"}`` with names sorted: Prometheus' ``LabelSet.String()``."""
    return "{" + ", ".join(f"{k}={_quote(labels[k])}" for k in sorted(labels)) + "}"


@dataclass(eq=False)
class Route:
    """One node of the routing tree with every inherited value resolved."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    mute: tuple[TimeInterval, ...] = ()  # mute_time_intervals
    active: tuple[TimeInterval, ...] = ()  # active_time_intervals (empty: always)
    key: str = "{}"  # Alertmanager's Route.Key(): ancestors' matchers, "/"-joined
    path: str = "{}"  # unique and stable: key plus the sibling index when keys collide
    routes: list[Route] = field(default_factory=list)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Every route that takes ``labels`` (empty when this node does not match)."""
        if not match_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found += matched
            if matched and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels an alert is grouped by on this route (missing ones left out)."""
        if ALL_LABELS in self.group_by:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}

    def __repr__(self) -> str:
        return f"Route(path={self.path!r}, receiver={self.receiver!r})"


def group_key(route: Route, labels: Mapping[str, str]) -> str:
    """Alertmanager's group key: ``{}/{team="data-science"}:{alertname="...", ...}``."""
    return f"{route.key}:{format_labels(route.group_labels(labels))}"


def _build(
    cfg: RouteConfig, parent: Route | None, index: int, siblings: Sequence[RouteConfig],
    intervals: Mapping[str, TimeInterval],
) -> Route:
    base = parent or Route(
        receiver=str(DEFAULT_ROUTE.receiver),
        group_by=tuple(DEFAULT_ROUTE.group_by or ()),
        group_wait=float(DEFAULT_ROUTE.group_wait or 0.0),
        group_interval=float(DEFAULT_ROUTE.group_interval or 0.0),
        repeat_interval=float(DEFAULT_ROUTE.repeat_interval or 0.0),
    )
    matchers = parse_all(cfg.matchers) if parent is not None else ()
    text = "{" + ",".join(str(m) for m in matchers) + "}"
    key = text if parent is None else f"{parent.key}/{text}"
    path = text if parent is None else f"{parent.path}/{text}"
    if parent is not None and sum(1 for s in siblings if s.matchers == cfg.matchers) > 1:
        path += f"/{index}"
    node = Route(
        receiver=base.receiver if cfg.receiver is None else cfg.receiver,
        group_by=base.group_by if cfg.group_by is None else tuple(cfg.group_by),
        group_wait=base.group_wait if cfg.group_wait is None else float(cfg.group_wait),
        group_interval=(
            base.group_interval if cfg.group_interval is None else float(cfg.group_interval)
        ),
        repeat_interval=(
            base.repeat_interval if cfg.repeat_interval is None else float(cfg.repeat_interval)
        ),
        matchers=matchers,
        continue_=cfg.continue_ if parent is not None else False,
        mute=tuple(_interval(intervals, n) for n in cfg.mute_time_intervals),
        active=tuple(_interval(intervals, n) for n in cfg.active_time_intervals),
        key=key,
        path=path,
    )
    node.routes = [_build(c, node, i, cfg.routes, intervals) for i, c in enumerate(cfg.routes)]
    return node


def _interval(intervals: Mapping[str, TimeInterval], name: str) -> TimeInterval:
    if name not in intervals:
        raise ValueError(f"route names time interval {name!r}, which is not defined")
    return intervals[name]


class RouteTree:
    """The routing tree, built once from the ``[route]`` config."""

    def __init__(self, config: RouteConfig = DEFAULT_ROUTE,
                 intervals: Sequence[TimeInterval] = ()) -> None:
        self.root = _build(config, None, 0, (), {i.name: i for i in intervals})

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Matched routes in tree order; never empty (the root catches everything)."""
        return self.root.match(labels) or [self.root]

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        """Receiver names for ``labels``, deduplicated, in routing order."""
        return list(dict.fromkeys(r.receiver for r in self.match(labels)))

    def walk(self) -> list[Route]:
        """Every route, depth first (for ``routes show`` and config cross-checks)."""
        out: list[Route] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.routes))
        return out
