"""`driftwatch run`: the long-running consumer loop.

poll -> decode + process -> commit, with alerts delivered by the dispatcher's
background thread.  SIGTERM/SIGINT finish the current batch, commit, flush the
outbox and exit 0.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.app import App, build
from monitor.config_types import Config
from monitor.http import HttpServer
from monitor.pipeline import AlertSink
from monitor.silencing import SilenceApi
from monitor.sources.kafka import ConsumerFactory, KafkaConsumer, KafkaSource
from monitor.store import Store

log = logging.getLogger("driftwatch.daemon")


class Daemon:
    def __init__(self, config: Config, *, registry: CollectorRegistry | None = None,
                 consumer_factory: ConsumerFactory = KafkaConsumer,
                 consumer_overrides: dict[str, Any] | None = None,
                 sink: AlertSink | None = None, store: Store | None = None) -> None:
        self.config = config
        self.app: App = build(config, registry=registry, notify=True, sink=sink, store=store)
        self._consumer_factory = consumer_factory
        self._overrides = consumer_overrides or {}
        self.stop_event = threading.Event()
        self.source: KafkaSource | None = None
        self.http: HttpServer | None = None
        self._ready = False
        self.batches = 0

    @property
    def pipeline(self) -> Any:
        return self.app.pipeline

    def ready(self) -> bool:
        return self._ready and not self.stop_event.is_set()

    def start_http(self) -> HttpServer:
        book = self.app.pipeline.book
        self.http = HttpServer(
            self.config.http.host, self.config.http.port, self.app.metrics.registry,
            ready=self.ready,
            api={
                "alerts": lambda: [a.to_json() for a in book.firing()],
                "models": self._models_api,
            },
            handlers=({"/api/silences": SilenceApi(self.app.store, self.app.silencer)}
                      if self.app.store is not None else None),
        ).start()
        return self.http

    def _models_api(self) -> dict[str, Any]:
        return {
            name: {
                "reference_events": st.windows.reference.n,
                "reference_ready": st.windows.reference_ready,
                "windows_evaluated": st.windows.windows_closed,
                "last_event_ts": st.last_ts,
            }
            for name, st in list(self.app.pipeline.models.items())
        }

    def run(self) -> int:
        """Consume until ``stop_event`` is set; returns the exit code."""
        if self.http is None:
            self.start_http()
        self.source = KafkaSource(self.config.kafka, self._consumer_factory, **self._overrides)
        self.app.dispatcher.start()
        log.info("consuming", extra={"bootstrap": self.config.kafka.bootstrap_servers})
        try:
            while not self.stop_event.is_set():
                self.step()
        finally:
            self.shutdown()
        return 0

    def step(self, timeout_ms: int = 500) -> int:
        """One poll-process-commit cycle; returns the number of messages handled."""
        assert self.source is not None
        polled = self.source.poll(timeout_ms)
        if self.source.assigned:
            self._ready = True
        n = 0
        for kind, values in polled.items():
            try:
                self.app.pipeline.process_messages(values, kind)
            except Exception:
                # A bug must not take monitoring down with it, nor block the
                # partition forever by re-reading the same batch on restart.
                log.exception("batch failed", extra={"type": kind, "messages": len(values)})
                self.app.metrics.batch_errors.labels("kafka").inc()
            self.app.metrics.batches.labels("kafka").inc()
            n += len(values)
        if n:
            self.source.commit()
            self.batches += 1
        return n

    def shutdown(self, flush_timeout: float = 10.0) -> None:
        self._ready = False
        if self.source is not None:
            self.source.commit()
            self.source.close()
            self.source = None
        self.app.dispatcher.stop(flush_timeout)
        if self.http is not None:
            self.http.stop()
            self.http = None

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
