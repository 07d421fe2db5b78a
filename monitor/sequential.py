"""Per-model sequential watch: CUSUMs that alarm between window closes.

Windows give well-calibrated two-sample tests but wait for a window to fill;
this watch scores every event against the reference as it arrives, so a
large shift is caught within tens of events.  It watches each numeric
feature (both directions) and the serving latency (upward only: faster is
not a regression).

Budget: a model's windows spend ``alpha`` per ``window_events`` events; the
watch spends the same rate, split evenly over its CUSUMs, so the model's
expected false alarms stay below ``2 * alpha / window_events`` per event
(0.01 per million with the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from alerts.model import Finding
from detectors.cusum import Alarm, CusumBank, normal_scores
from monitor.batch import PredictionColumns
from monitor.config_types import MonitorSettings

KS = (0.125, 0.25, 0.5)  # tuned to shifts of 0.25, 0.5 and 1 standard deviation
LATENCY = "__latency__"
MIN_REFERENCE = 100  # a feature with fewer reference values is not watched
RECENT = 500  # rows before an alarm used to describe the shift


@dataclass(frozen=True)
class SeqAlarm:
    """One alarm, in plain data (it is kept in state until its window closes)."""

    kind: str
    feature: str | None
    ts: float
    statistic: float
    threshold: float
    k: float
    direction: int
    ref_mean: float
    recent_mean: float

    def to_state(self) -> list[Any]:
        return [self.kind, self.feature, self.ts, self.statistic, self.threshold, self.k,
                self.direction, self.ref_mean, self.recent_mean]


class SequentialWatch:
    def __init__(self, streams: list[str], reference: PredictionColumns,
                 settings: MonitorSettings, bank: CusumBank | None = None) -> None:
        self.streams = streams
        self._sorted = [np.sort(self._raw(reference, s)[np.isfinite(self._raw(reference, s))])
                        for s in streams]
        self._ref_mean = [float(v.mean()) for v in self._sorted]
        per_model_arl = settings.window_events / settings.alpha
        directions = [1 if s == LATENCY else 0 for s in streams]
        cusums = len(KS) * sum(1 if d else 2 for d in directions)
        self.bank = bank or CusumBank(len(streams), KS, per_model_arl * cusums, directions)

    @classmethod
    def build(cls, reference: PredictionColumns,
              settings: MonitorSettings) -> SequentialWatch | None:
        streams = [f for f, v in sorted(reference.numeric.items())
                   if np.isfinite(v).sum() >= MIN_REFERENCE]
        if np.isfinite(reference.latency_ms).sum() >= MIN_REFERENCE:
            streams.append(LATENCY)
        return cls(streams, reference, settings) if streams else None

    @staticmethod
    def _raw(cols: PredictionColumns, stream: str) -> np.ndarray:
        if stream == LATENCY:
            return cols.latency_ms
        v = cols.numeric.get(stream)
        return v if v is not None else np.full(cols.n, np.nan)

    def update(self, cols: PredictionColumns) -> list[SeqAlarm]:
        raws = [self._raw(cols, s) for s in self.streams]
        z = np.column_stack([normal_scores(ref, np.asarray(raw, dtype=float))
                             for ref, raw in zip(self._sorted, raws, strict=True)])
        return [self._describe(a, cols, raws[a.stream]) for a in self.bank.update(z)]

    def _describe(self, a: Alarm, cols: PredictionColumns, raw: np.ndarray) -> SeqAlarm:
        stream = self.streams[a.stream]
        recent = raw[max(0, a.row - RECENT + 1): a.row + 1]
        recent = recent[np.isfinite(recent)]
        return SeqAlarm(
            kind="latency_regression" if stream == LATENCY else "data_drift",
            feature=None if stream == LATENCY else stream,
            ts=float(cols.ts[a.row]), statistic=a.statistic, threshold=a.threshold,
            k=a.k, direction=a.direction, ref_mean=self._ref_mean[a.stream],
            recent_mean=float(recent.mean()) if recent.size else float("nan"),
        )

    def to_state(self) -> dict[str, Any]:
        return {"streams": self.streams, "bank": self.bank.to_state()}

    @classmethod
    def from_state(cls, s: dict[str, Any], reference: PredictionColumns,
                   settings: MonitorSettings) -> SequentialWatch:
        return cls(list(s["streams"]), reference, settings, CusumBank.from_state(s["bank"]))


def alarm_finding(model: str, version: str, alarm: SeqAlarm, alpha: float,
                  window_events: int) -> Finding:
    """The alert-side view of an alarm: same key as the window tests' finding."""
    what = "latency" if alarm.feature is None else f"'{alarm.feature}'"
    unit = " ms" if alarm.feature is None else ""
    way = "up" if alarm.direction > 0 else "down"
    shift = 2 * alarm.k
    if alarm.kind == "latency_regression":
        summary = f"{model} serves slower than its reference"
    else:
        summary = f"Input drift in {what} of {model}"
    description = (
        f"{what} of {model} moved {way}: mean {alarm.ref_mean:.3g}{unit} in the reference, "
        f"{alarm.recent_mean:.3g}{unit} over the latest events (sequential CUSUM sized for a "
        f"{shift:g} standard-deviation shift crossed its threshold: {alarm.statistic:.3g} > "
        f"{alarm.threshold:.3g})."
    )
    return Finding(
        kind=alarm.kind, model=model, model_version=version, detector="cusum",
        statistic=alarm.statistic, p_value=alpha / window_events, threshold=alarm.threshold,
        reference_n=0, current_n=0, window=(alarm.ts, alarm.ts), summary=summary,
        description=description, severity="warning", feature=alarm.feature,
        details={"k": alarm.k, "direction": way, "ref_mean": alarm.ref_mean,
                 "recent_mean": alarm.recent_mean},
    )
