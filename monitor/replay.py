"""`driftwatch replay`: the live pipeline over JSONL files, in event time."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerts.model import Alert
from monitor.app import JsonlAlertSink, build
from monitor.config.types import Config
from monitor.pipeline import Pipeline
from monitor.sources.files import iter_line_chunks

NOTIFY_CHUNK_LINES = 100  # with notify: small chunks, so event time moves in small steps


@dataclass
class ReplayResult:
    alerts: list[Alert] = field(default_factory=list)
    events: int = 0
    invalid: int = 0
    # models whose reference never filled: model -> (events collected, events needed)
    unready: dict[str, tuple[int, int]] = field(default_factory=dict)
    registry: CollectorRegistry | None = None
    pipeline: Pipeline | None = None  # with keep_pipeline: its state at the end


def replay(config: Config, files: Sequence[str | Path], *, alerts_out: str | Path | None = None,
           notify: bool = False, chunk_lines: int = 20_000,
           keep_pipeline: bool = False) -> ReplayResult:
    """Replay ``files`` through the pipeline; returns every alert state change.

    With ``notify`` the routed alerts are also delivered to the receivers, as
    the daemon would have delivered them: grouping runs on the replay's event
    time (``group_wait`` and friends count event seconds) and due notifications
    go out after every chunk; the outbox is flushed before returning.
    """
    return replay_chunks(config, iter_line_chunks(list(files), chunk_lines=chunk_lines),
                         alerts_out=alerts_out, notify=notify, keep_pipeline=keep_pipeline)


def replay_chunks(config: Config, chunks: Iterable[list[bytes]], *,
                  alerts_out: str | Path | None = None, notify: bool = False,
                  on_chunk: Callable[[ReplayResult], None] | None = None,
                  keep_pipeline: bool = False) -> ReplayResult:
    """:func:`replay` over chunks of raw lines from anywhere (a generated stream in
    benchmarks/soak.py); ``on_chunk`` sees the running result after each chunk."""
    sink = JsonlAlertSink(alerts_out) if alerts_out is not None else None
    result = ReplayResult(registry=CollectorRegistry())
    app = build(config, registry=result.registry, notify=notify, sink=sink)
    if notify:
        chunks = _rechunk(chunks, NOTIFY_CHUNK_LINES)
        wall = app.dispatcher.clock
        app.dispatcher.clock = lambda: (app.pipeline.watermark
                                        if math.isfinite(app.pipeline.watermark) else wall())
    try:
        for lines in chunks:
            batch = app.pipeline.decoder.decode_lines(lines)
            result.events += sum(c.n for c in batch.predictions.values())
            result.events += sum(c.n for c in batch.labels.values())
            result.invalid += sum(batch.invalid.values())
            result.alerts += app.pipeline.process(batch)
            app.metrics.batches.labels("replay").inc()
            if notify:
                app.dispatcher.deliver_due()
            if on_chunk is not None:
                on_chunk(result)
        if notify:
            app.dispatcher.clock = wall  # retries left over wait in real time
            app.dispatcher.stop(flush_timeout=30.0)
    finally:
        if sink is not None:
            sink.close()
    if keep_pipeline:
        result.pipeline = app.pipeline
    result.unready = {name: (st.windows.reference.n, st.windows.reference_events)
                      for name, st in sorted(app.pipeline.models.items())
                      if not st.windows.reference_ready}
    return result


def _rechunk(chunks: Iterable[list[bytes]], size: int) -> Iterable[list[bytes]]:
    for lines in chunks:
        for i in range(0, len(lines), size):
            yield lines[i:i + size]
