"""What the alerting side is configured with: routes, receivers, inhibit rules.

Pure data owned by :mod:`alerts`; :mod:`monitor.config` builds these from
TOML (imports flow monitor -> alerts, never back).  Durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RouteConfig:
    receiver: str | None = None  # None = inherited from the parent
    matchers: tuple[str, ...] = ()  # 'team="data-science"', 'model=~"churn.*"'
    group_by: tuple[str, ...] | None = None  # None = inherited
    group_wait: float | None = None
    group_interval: float | None = None
    repeat_interval: float | None = None
    continue_: bool = False  # TOML key: continue
    routes: tuple[RouteConfig, ...] = ()
    # names of [[time_intervals]]: hold notifications inside these / outside those
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


DEFAULT_ROUTE = RouteConfig(
    receiver="default",
    group_by=("alertname", "model"),
    group_wait=30.0,
    group_interval=300.0,
    repeat_interval=4 * 3600.0,
)


@dataclass(frozen=True)
class IntegrationConfig:
    """One integration inside a receiver (slack, webhook, file, pagerduty).

    ``options`` holds the integration's own keys with secrets already resolved
    (``url_env = "X"`` arrives here as ``url = <value of $X>``).
    """

    kind: str
    options: dict[str, object] = field(default_factory=dict)
    secret_keys: tuple[str, ...] = ()  # option names that hold secrets: never log them


@dataclass(frozen=True)
class ReceiverConfig:
    name: str
    integrations: tuple[IntegrationConfig, ...] = ()


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: tuple[str, ...] = ()
    target_matchers: tuple[str, ...] = ()
    equal: tuple[str, ...] = ()


DEFAULT_INHIBIT_RULES = (
    InhibitRule(
        source_matchers=('fault="infrastructure"',),
        target_matchers=('fault="model"',),
        equal=("model",),
    ),
)
