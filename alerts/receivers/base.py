"""What every notifier shares: the protocol, its result, and option parsing.

A notifier turns a list of alerts into one delivery attempt and says whether a
failure is worth retrying; the dispatcher's retry stage acts on that.  It
never raises for delivery problems and never puts a secret (webhook URL path,
routing key) into ``DeliveryResult.error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from alerts.model import Alert

FIRING_ENDS_AT = "0001-01-01T00:00:00Z"  # Alertmanager's zero time for "not ended"


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    retriable: bool
    status: int | None = None
    retry_after: float | None = None  # seconds from now, from a 429/503 Retry-After
    error: str = ""

    @classmethod
    def success(cls, status: int | None = None) -> DeliveryResult:
        return cls(ok=True, retriable=False, status=status)


@dataclass(frozen=True)
class GroupInfo:
    """The notification group an alert belongs to on the matched route."""

    receiver: str
    group_key: str
    group_labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "group_key": self.group_key,
            "group_labels": dict(self.group_labels),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GroupInfo:
        return cls(str(d["receiver"]), str(d["group_key"]), dict(d.get("group_labels", {})))


@runtime_checkable
class Notifier(Protocol):
    name: str  # the integration kind: "webhook", "slack", "pagerduty", "file"

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult: ...


class OptionError(ValueError):
    """A receiver integration is misconfigured; the message never holds a secret value."""

    def __init__(self, receiver: str, kind: str, option: str, rule: str) -> None:
        self.receiver, self.kind, self.option, self.rule = receiver, kind, option, rule
        super().__init__(f"receiver {receiver!r}: {kind}.{option} {rule}")


def required_str(opts: Mapping[str, object], name: str, receiver: str, kind: str) -> str:
    value = opts.get(name)
    if not isinstance(value, str) or not value:
        raise OptionError(receiver, kind, name, "is required (a non-empty string)")
    return value


def optional_str(opts: Mapping[str, object], name: str, default: str | None = None) -> str | None:
    value = opts.get(name, default)
    return None if value is None else str(value)


def seconds(
    opts: Mapping[str, object], name: str, default: float, receiver: str, kind: str
) -> float:
    """A duration option: a number of seconds or a string like ``"10s"``, ``"500ms"``, ``"1m"``."""
    value = opts.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float):
            out = float(value)
        else:
            text = str(value).strip()
            for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
                if text.endswith(suffix):
                    out = float(text[: -len(suffix)]) * scale
                    break
            else:
                out = float(text)
    except ValueError:
        raise OptionError(receiver, kind, name, f"must be a duration, got {value!r}") from None
    if not out > 0:
        raise OptionError(receiver, kind, name, f"must be positive, got {value!r}")
    return out


def common_labels(alerts: list[Alert], attr: str = "labels") -> dict[str, str]:
    """Labels (or annotations) shared with the same value by every alert."""
    if not alerts:
        return {}
    first: dict[str, str] = getattr(alerts[0], attr)
    return {k: v for k, v in first.items() if all(getattr(a, attr).get(k) == v for a in alerts)}
