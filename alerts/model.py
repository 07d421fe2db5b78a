"""The vocabulary shared by the pipeline and the alerting side.

A :class:`Finding` is what a detector run over one window concluded; it is
produced by ``monitor`` and consumed here.  An :class:`Alert` is the alert
contract of docs/alerts.md: one JSON object per state change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

MODEL_FAULT = "model"
INFRA_FAULT = "infrastructure"

TEAM_FOR_FAULT = {MODEL_FAULT: "data-science", INFRA_FAULT: "ml-engineering"}

# kind -> (alertname, default fault).  Fixed vocabulary (docs/alerts.md).
KINDS: dict[str, tuple[str, str]] = {
    "data_drift": ("DataDrift", MODEL_FAULT),
    "prediction_drift": ("PredictionDrift", MODEL_FAULT),
    "label_drift": ("LabelDrift", MODEL_FAULT),
    "performance_degradation": ("PerformanceDegradation", MODEL_FAULT),
    "latency_regression": ("LatencyRegression", INFRA_FAULT),
    "error_rate": ("ErrorRate", INFRA_FAULT),
    "traffic_drop": ("TrafficDrop", INFRA_FAULT),
    "schema_violation": ("SchemaViolation", INFRA_FAULT),
    "data_quality": ("DataQuality", INFRA_FAULT),
    "label_delay": ("LabelDelay", INFRA_FAULT),
    "version_regression": ("VersionRegression", INFRA_FAULT),
    "resource_usage": ("ResourceUsage", INFRA_FAULT),
    # driftwatch's own: a partition's stored state was unreadable and set aside; its
    # models are monitored from scratch (references warming up again) until resolved
    "state_lost": ("StateLost", INFRA_FAULT),
}

SEVERITIES = ("warning", "critical")


def rfc3339(ts: float | None) -> str | None:
    """Epoch seconds -> RFC 3339 in UTC with a ``Z`` suffix (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Finding:
    """One detector's verdict on one window of one model.

    ``key`` identifies *what* was tested (model, kind, feature, segment): the
    same key evaluated clean in a later window resolves the alert it raised.
    """

    kind: str
    model: str
    model_version: str
    detector: str
    statistic: float
    p_value: float | None
    threshold: float
    reference_n: int
    current_n: int
    window: tuple[float, float]  # event time, epoch seconds [start, end]
    summary: str
    description: str = ""
    severity: str = "warning"
    feature: str | None = None
    segment: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.model, self.kind, self.feature, self.segment)


def fingerprint(labels: dict[str, str]) -> str:
    """Stable hash of a label set (order-independent), 16 hex digits."""
    return hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass
class Alert:
    """One alert state change, serialisable exactly as the alert contract."""

    labels: dict[str, str]
    annotations: dict[str, str]
    status: str  # "firing" | "resolved"
    starts_at: float
    ends_at: float | None
    evidence: dict[str, Any]
    receivers: list[str] = field(default_factory=list)
    # why nobody was notified: {"inhibited_by": "<fingerprint>"} or {"silenced_by": "<id>"}
    muted_by: dict[str, str] | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "evidence": dict(self.evidence),
            "receivers": list(self.receivers),
            "muted_by": dict(self.muted_by) if self.muted_by is not None else None,
        }
