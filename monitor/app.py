"""Assembly: one place builds the pipeline and its collaborators from a Config.

`run`, `replay` and `demo` all go through :func:`build`, so they share one
pipeline, one routing tree and one alert vocabulary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from alerts.dispatch import Dispatcher
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from alerts.outbox import MemoryOutbox, Outbox
from alerts.receivers import build_notifiers
from alerts.routing import RouteTree
from alerts.silences import Silencer
from monitor.config.types import Config
from monitor.metrics import Metrics
from monitor.pipeline import AlertSink, Pipeline
from monitor.store import SqlOutbox, Store


class JsonlAlertSink:
    """``--alerts-out``: every alert state change, one contract object per line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")  # noqa: SIM115 (closed by close())
        self._lock = threading.Lock()

    def __call__(self, alerts: Sequence[Alert]) -> None:
        with self._lock:
            for a in alerts:
                self._fh.write(orjson.dumps(a.to_json()) + b"\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


@dataclass
class App:
    config: Config
    metrics: Metrics
    dispatcher: Dispatcher
    pipeline: Pipeline
    store: Store | None = None
    silencer: Silencer | None = None


def build(config: Config, *, registry: CollectorRegistry | None = None,
          notify: bool = True, sink: AlertSink | None = None,
          store: Store | None = None) -> App:
    """Wire metrics, routing, receivers and the pipeline.

    ``notify=False`` (replay's default) routes and records alerts without
    sending them anywhere: replaying last week must not page anyone.
    With a ``store`` the outbox is durable and silences are honoured; without
    one (tests, demo) the outbox lives in memory and nothing is silenced.
    """
    metrics = Metrics(registry)
    notifiers = build_notifiers(config.receivers) if notify else {}
    outbox: Outbox = SqlOutbox(store) if store is not None else MemoryOutbox()
    silencer = (Silencer(lambda: store.silences(active_after=time.time()))
                if store is not None else None)
    dispatcher = Dispatcher(
        RouteTree(config.route, config.time_intervals),
        notifiers,
        Inhibitor(config.inhibit_rules),
        outbox,
        silencer=silencer,
        on_result=metrics.notification_result,
        on_muted=lambda a, why: metrics.muted.labels(a.labels.get("kind", ""), why).inc(),
    )
    metrics.set_outbox(outbox.pending)
    pipeline = Pipeline(config, metrics, dispatcher, sink=sink)
    return App(config, metrics, dispatcher, pipeline, store, silencer)
