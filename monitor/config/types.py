"""Typed configuration objects (the keys of config.toml).

Pure data: :mod:`monitor.config` builds these from TOML and validates them.
Every field has a default, so ``Config()`` is the built-in configuration that
``replay`` uses when no file is given.  Durations are seconds (float).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from alerts.config import (
    DEFAULT_INHIBIT_RULES,
    DEFAULT_ROUTE,
    InhibitRule,
    IntegrationConfig,
    ReceiverConfig,
    RouteConfig,
)
from alerts.links import AnnotationTemplates
from alerts.redact import redacted_options, strip_credentials
from alerts.timeintervals import TimeInterval

__all__ = [
    "DEFAULT_INHIBIT_RULES", "DEFAULT_ROUTE", "FEATURE_TYPES", "TASKS", "Config", "Contract",
    "HttpConfig", "InhibitRule", "IntegrationConfig", "KafkaConfig", "LimitsConfig", "ModelConfig",
    "MonitorSettings", "ReceiverConfig", "RouteConfig", "StoreConfig",
]

FEATURE_TYPES = ("numeric", "categorical")
TASKS = ("binary_classification", "multiclass", "regression")


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: tuple[str, ...] = ("localhost:9092",)
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    group_id: str = "driftwatch"
    client_id: str = "driftwatch"
    auto_offset_reset: str = "earliest"  # earliest | latest
    session_timeout_ms: int = 10_000
    max_poll_records: int = 5_000
    dead_letter_topic: str | None = None
    # Passed through to kafka-python verbatim (security_protocol, sasl_*, ssl_*).
    # Secret values were already resolved from *_env / *_file.
    client_options: dict[str, str | int | bool] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["client_options"] = redacted_options(
            self.client_options, ("sasl_plain_password", "ssl_password"))
        return "KafkaConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


@dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///driftwatch.db"
    # state + offsets are written together this often (and at shutdown); after a
    # crash at most this much of the stream is read again (and counted once)
    checkpoint_interval: float = 5.0

    def __repr__(self) -> str:
        return (f"StoreConfig(url={strip_credentials(self.url)!r}, "
                f"checkpoint_interval={self.checkpoint_interval!r})")


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 9108
    # TLS: PEM files, re-read when they change (both or neither)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # user -> bcrypt hash; token name -> token (resolved from token_file / token_env)
    basic_auth_users: dict[str, str] = field(default_factory=dict)
    bearer_tokens: dict[str, str] = field(default_factory=dict)
    read_only_users: tuple[str, ...] = ()  # principals that may read but never write
    # GETs open without credentials once auth is configured (healthz, readyz, metrics, api)
    unauthenticated: tuple[str, ...] = ("healthz", "readyz")
    workers: int = 8  # requests served at once; more connections wait, none is refused
    timeout: float = 10.0  # a request (or an idle keep-alive) silent this long is closed

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_users or self.bearer_tokens)

    def __repr__(self) -> str:
        return (f"HttpConfig(host={self.host!r}, port={self.port}, "
                f"tls_cert_file={self.tls_cert_file!r}, tls_key_file={self.tls_key_file!r}, "
                f"basic_auth_users={sorted(self.basic_auth_users)!r} (hashes hidden), "
                f"bearer_tokens={sorted(self.bearer_tokens)!r} (tokens hidden), "
                f"read_only_users={self.read_only_users!r}, "
                f"unauthenticated={self.unauthenticated!r}, workers={self.workers}, "
                f"timeout={self.timeout})")


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: caps on what the event stream can make driftwatch remember.

    Past a cap the extra thing is dropped and counted in
    ``driftwatch_dropped_total{reason}`` (never remembered one by one); the first
    drop of each reason is logged once.  Per pipeline: the daemon runs one per
    partition it owns.  ``[defaults] max_features`` caps features per model
    (nested-valued ones included)."""

    max_models: int = 1_000  # models tracked; events of further models are dropped
    max_versions_per_model: int = 3  # a new version evicts the version idle longest
    max_segment_keys: int = 10  # segment keys per model
    max_segment_values: int = 100  # values per segment key per model
    max_name_chars: int = 200  # feature names, segment keys and values, versions


@dataclass(frozen=True)
class MonitorSettings:
    """Window, reference and false-alarm settings; [defaults] and per model."""

    reference_events: int = 5_000
    window_events: int = 2_000
    window_seconds: float | None = None  # also close a window after this much event time
    min_window_events: int = 200  # a smaller (time-closed) window is not tested
    # Family-wise false-alarm budget: probability that one window of one model
    # raises any alert on stationary data, split (Bonferroni) over its tests.
    alpha: float = 1e-5
    resolve_after_windows: int = 2  # consecutive clean windows that resolve an alert
    latency_min_ratio: float = 1.10  # smallest p50/p95/p99 slow-down worth an alert
    error_rate_min_increase: float = 0.005  # smallest absolute error-rate rise
    drift_min_effect: float = 0.05  # KS distance / total variation floor
    traffic_gap_min_seconds: float = 300.0  # never call a shorter silence a drop
    max_features: int = 100  # features beyond this (by first sight) are not tracked
    # a prediction not labelled within this much event time counts as unlabelled
    label_ttl_seconds: float = 86_400.0
    # labels overdue long before the TTL (label_delay within minutes): a prediction
    # not labelled within max(label_deadline_min_seconds, label_deadline_factor x the
    # reference's p99 label delay), capped by label_ttl_seconds, is overdue
    label_deadline_factor: float = 5.0
    label_deadline_min_seconds: float = 900.0
    # window drift tests (one Holm family): per numeric feature, per categorical
    # feature, and one joint test across the numeric features
    numeric_drift: tuple[str, ...] = ("ks",)
    categorical_drift: tuple[str, ...] = ("chi2",)
    joint_drift: str = "pca"
    # champion/challenger (monitor.versions): a challenger is called no worse (promote)
    # only after this many of its events; an accuracy drop within this margin is no worse
    version_min_events: int = 2_000
    version_accuracy_margin: float = 0.01


@dataclass(frozen=True)
class Contract:
    """The data-science -> ML-engineering handover for one model."""

    accuracy_min: float | None = None
    latency_p95_ms: float | None = None
    error_rate_max: float | None = None
    # the versions allowed to serve (empty: any); one not listed is alerted and becomes
    # a challenger; the champion (None: the approved version with most reference traffic)
    approved_versions: tuple[str, ...] = ()
    champion: str | None = None
    accuracy_margin: float | None = None  # None: [defaults] version_accuracy_margin
    agreement_min: float | None = None  # shadow: least share of outputs agreeing
    # serving memory per host (the events' optional ``resources`` object)
    memory_mb_max: float | None = None
    gpu_memory_mb_max: float | None = None
    # declared metadata, shown in alerts and /api/models
    framework: str | None = None
    parameter_count: int | None = None


@dataclass(frozen=True)
class ModelConfig:
    name: str
    task: str | None = None  # one of TASKS; None = inferred
    features: dict[str, str] = field(default_factory=dict)  # name -> FEATURE_TYPES
    contract: Contract = field(default_factory=Contract)
    settings: MonitorSettings = field(default_factory=MonitorSettings)  # defaults merged


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    defaults: MonitorSettings = field(default_factory=MonitorSettings)
    models: tuple[ModelConfig, ...] = ()
    route: RouteConfig = DEFAULT_ROUTE
    receivers: tuple[ReceiverConfig, ...] = (ReceiverConfig(name="default"),)
    inhibit_rules: tuple[InhibitRule, ...] = DEFAULT_INHIBIT_RULES
    time_intervals: tuple[TimeInterval, ...] = ()
    # runbook_url / dashboard_url templates ([annotations], [models.annotations])
    annotations: AnnotationTemplates = field(default_factory=AnnotationTemplates)

    def model(self, name: str) -> ModelConfig:
        """The model's config; a model not configured gets the defaults."""
        for m in self.models:
            if m.name == name:
                return m
        return ModelConfig(name=name, settings=self.defaults)
