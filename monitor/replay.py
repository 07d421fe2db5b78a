"""`driftwatch replay`: the live pipeline over JSONL files, in event time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerts.model import Alert
from monitor.app import JsonlAlertSink, build
from monitor.config_types import Config
from monitor.sources.files import iter_line_chunks


@dataclass
class ReplayResult:
    alerts: list[Alert] = field(default_factory=list)
    events: int = 0
    invalid: int = 0
    registry: CollectorRegistry | None = None


def replay(config: Config, files: Sequence[str | Path], *, alerts_out: str | Path | None = None,
           notify: bool = False, chunk_lines: int = 20_000) -> ReplayResult:
    """Replay ``files`` through the pipeline; returns every alert state change.

    With ``notify`` the routed alerts are also delivered to the receivers
    (the outbox is flushed before returning).
    """
    sink = JsonlAlertSink(alerts_out) if alerts_out is not None else None
    result = ReplayResult(registry=CollectorRegistry())
    app = build(config, registry=result.registry, notify=notify, sink=sink)
    try:
        for lines in iter_line_chunks(list(files), chunk_lines=chunk_lines):
            batch = app.pipeline.decoder.decode_lines(lines)
            result.events += sum(c.n for c in batch.predictions.values())
            result.events += sum(c.n for c in batch.labels.values())
            result.invalid += sum(batch.invalid.values())
            result.alerts += app.pipeline.process(batch)
            app.metrics.batches.labels("replay").inc()
        if notify:
            app.dispatcher.stop(flush_timeout=30.0)
    finally:
        if sink is not None:
            sink.close()
    return result
