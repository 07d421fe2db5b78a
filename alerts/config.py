"""What the alerting side is configured with: routes, receivers, inhibit rules.

Pure data owned by :mod:`alerts`; :mod:`monitor.config` builds these from
TOML (imports flow monitor -> alerts, never back).  Durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.redact import redacted_options


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

    def __repr__(self) -> str:
        shown = redacted_options(self.options, self.secret_keys)
        return (f"IntegrationConfig(kind={self.kind!r}, options={shown!r}, "
                f"secret_keys={self.secret_keys!r})")


@dataclass(frozen=True)
class ReceiverConfig:
    name: str
    integrations: tuple[IntegrationConfig, ...] = ()


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: tuple[str, ...] = ()
    target_matchers: tuple[str, ...] = ()
    equal: tuple[str, ...] = ()


# A broken feed mutes the model faults it explains, while it fires at their event time:
# a break in one feature mutes drift in that feature and the model-wide model faults
# (the joint drift, the quality against labels -- not the predictions: attribution
# already calls outputs that moved with a break its symptom, so a prediction drift
# still called a model fault was shown not to be the break's); a schema break or a
# dead feed with no feature, the model's whole data; labels that stop, what is measured
# on labels.  A latency or error regression mutes nothing: a slow server does not
# explain a shifted input.
FEED_BREAKS = 'kind=~"data_quality|schema_violation"'
DEFAULT_INHIBIT_RULES = (
    InhibitRule(source_matchers=(FEED_BREAKS,), target_matchers=('fault="model"',),
                equal=("model", "feature")),
    InhibitRule(source_matchers=(FEED_BREAKS,),
                target_matchers=('fault="model"', 'feature=""', 'kind!="prediction_drift"'),
                equal=("model",)),
    InhibitRule(source_matchers=('kind=~"schema_violation|traffic_drop"', 'feature=""'),
                target_matchers=('fault="model"',), equal=("model",)),
    InhibitRule(source_matchers=('kind="label_delay"',),
                target_matchers=('kind=~"performance_degradation|label_drift"',),
                equal=("model",)),
)
