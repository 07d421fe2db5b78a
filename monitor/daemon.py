"""`driftwatch run`: the long-running consumer loop.

poll -> decode + process -> commit, with alerts delivered by the dispatcher's
background thread.  SIGTERM/SIGINT finish the current batch, commit, flush the
outbox and exit 0.

With a store (what ``driftwatch run`` uses), one daemon per consumer group is
active: it holds the group's lease in the store (renewed at every
checkpoint); another daemon started for the same group stands by until the
lease lapses (the active one died) and then takes over from the checkpoint.

With a store, "commit" is a checkpoint: every
``[store] checkpoint_interval`` the pipeline's whole state, the stream
counters and the offsets of everything processed are written in one
transaction, and only then are those offsets committed to Kafka.  On start the
daemon restores the last checkpoint and seeks each assigned partition to its
checkpointed offset, so after a SIGKILL the events since the checkpoint are
read again into the state they had not reached: none lost, none counted twice,
and the alerts they raise again are the outbox's duplicates.

Background jobs (APScheduler 3, each with ``coalesce``, ``max_instances=1`` and
a misfire grace): a wall-clock staleness check (a model whose events stop
arriving while the daemon is live -- even when the whole stream stops), and
the store's retention (delivered notifications and ended silences older than
a week).  They take the same lock as the consumer loop, so the pipeline is
never touched by two threads at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from monitor.app import App, build
from monitor.config_types import Config
from monitor.http import HttpServer
from monitor.pipeline import AlertSink
from monitor.silencing import SilenceApi
from monitor.sources.kafka import ConsumerFactory, KafkaConsumer, KafkaSource
from monitor.store import SqlOutbox, Store

log = logging.getLogger("driftwatch.daemon")

STALE_CHECK_SECONDS = 15.0
MIN_LEASE_SECONDS = 3.0  # the lease lives 3 checkpoint intervals, at least this
RETENTION_SECONDS = 7 * 86_400.0


class Daemon:
    def __init__(self, config: Config, *, registry: CollectorRegistry | None = None,
                 consumer_factory: ConsumerFactory = KafkaConsumer,
                 consumer_overrides: dict[str, Any] | None = None,
                 sink: AlertSink | None = None, store: Store | None = None) -> None:
        self.config = config
        self.app: App = build(config, registry=registry, notify=True, sink=sink, store=store)
        self.store = store
        self._offsets: dict[str, int] | None = None  # checkpointed positions (with a store)
        self._checkpointed_at = time.monotonic()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = max(MIN_LEASE_SECONDS, 3 * config.store.checkpoint_interval)
        self._consumer_factory = consumer_factory
        self._overrides = consumer_overrides or {}
        self.stop_event = threading.Event()
        self.source: KafkaSource | None = None
        self.http: HttpServer | None = None
        self._ready = False
        self._store_ok = True
        self.batches = 0
        self.lock = threading.Lock()  # the pipeline: consumer loop vs background jobs
        self.scheduler = BackgroundScheduler()
        # a late run is worth one run (coalesce), never two at once, and not worth
        # running at all once half a minute late: the next interval comes soon
        job = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        self.scheduler.add_job(self.check_stale, "interval", seconds=STALE_CHECK_SECONDS,
                               id="staleness", **job)
        if store is not None:
            self.scheduler.add_job(self.retention, "interval", seconds=3600, id="retention",
                                   **job)

    @property
    def pipeline(self) -> Any:
        return self.app.pipeline

    def ready(self) -> bool:
        return self._ready and self._store_ok and not self.stop_event.is_set()

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

    def restore(self) -> None:
        """Load the group's last checkpoint (state, counters, offsets), if any."""
        assert self.store is not None
        self._offsets = {}
        found = self.store.load_checkpoint(self.config.kafka.group_id)
        if found is None:
            return
        state, self._offsets = found
        try:  # on a scratch pipeline first: a state it cannot read leaves ours untouched
            build(self.config, registry=CollectorRegistry(), notify=False
                  ).pipeline.load_state(state["pipeline"])
        except (KeyError, TypeError, ValueError):
            # written by another driftwatch version: monitoring goes on from the stored
            # offsets and references warm up again, rather than not starting at all
            log.exception("checkpoint state unreadable; starting from empty state at its "
                          "offsets", extra={"partitions": len(self._offsets)})
            return
        self.app.pipeline.load_state(state["pipeline"])
        self.app.metrics.restore_counters(state.get("counters", {}))
        # the notification groups as they were (news they had not sent goes out), then
        # every firing alert (changes after the checkpoint are read again anyway); what
        # was sent before is the outbox's duplicate (same alerts, same repeat)
        self.app.dispatcher.load_groups(state.get("groups", []),
                                        {i.name: i for i in self.config.time_intervals})
        firing = self.app.pipeline.book.firing()
        self.app.dispatcher.submit(firing, firing)
        log.info("restored checkpoint", extra={"partitions": len(self._offsets),
                                               "firing": len(firing)})

    def acquire(self) -> bool:
        """Wait for the group's lease (one active daemon per group, the others stand by);
        False if asked to stop first."""
        assert self.store is not None
        group, said = self.config.kafka.group_id, 0.0
        while not self.stop_event.is_set():
            if self.store.acquire_lease(group, self.owner, self.lease_ttl, time.time()):
                return True
            if time.monotonic() - said > 30:
                said = time.monotonic()
                log.warning("standing by: another driftwatch is active for this consumer group",
                            extra={"group": group, "holder": self.store.lease_holder(group)})
            self.stop_event.wait(1.0)
        return False

    def check_stale(self, now: float | None = None) -> int:
        """The staleness job; returns how many alert changes it made."""
        if not self.ready():
            return 0  # not consuming: silence is ours, not the models'
        with self.lock:
            return len(self.app.pipeline.check_stale(time.time() if now is None else now))

    def retention(self, now: float | None = None) -> int:
        assert self.store is not None
        cutoff = (time.time() if now is None else now) - RETENTION_SECONDS
        return SqlOutbox(self.store).prune(older_than=cutoff) + self.store.prune_silences(cutoff)

    def run(self) -> int:
        """Consume until ``stop_event`` is set; returns the exit code."""
        if self.http is None:
            self.start_http()
        if self.store is not None:
            if not self.acquire():
                self.shutdown()
                return 0
            self.restore()
        self.app.metrics.active.set(1)
        self.scheduler.start()
        self.source = KafkaSource(self.config.kafka, self._consumer_factory,
                                  start_offsets=self._offsets, **self._overrides)
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
                with self.lock:
                    self.app.pipeline.process_messages(values, kind)
            except Exception:
                # A bug must not take monitoring down with it, nor block the
                # partition forever by re-reading the same batch on restart.
                log.exception("batch failed", extra={"type": kind, "messages": len(values)})
                self.app.metrics.batch_errors.labels("kafka").inc()
            self.app.metrics.batches.labels("kafka").inc()
            n += len(values)
        if n:
            self.batches += 1
            if self.store is None:
                self.source.commit()
        if self.store is not None and (
                time.monotonic() - self._checkpointed_at >= self.config.store.checkpoint_interval):
            self.checkpoint()
        return n

    def checkpoint(self) -> bool:
        """State, counters and offsets in one transaction, then the offsets to Kafka."""
        assert self.store is not None and self.source is not None and self._offsets is not None
        self._checkpointed_at = time.monotonic()
        offsets = {**self._offsets, **self.source.positions}
        with self.lock:
            state = {"pipeline": self.app.pipeline.to_state(),
                     "counters": self.app.metrics.counters_state(),
                     "groups": self.app.dispatcher.groups_state()}
        try:
            self.store.save_checkpoint(self.config.kafka.group_id, state, offsets, time.time())
        except Exception:  # the database is down: keep consuming, read again later
            log.exception("checkpoint failed; offsets not committed")
            self.app.metrics.checkpoint_failures.inc()
            self._store_ok = False
            return False
        self._store_ok = True
        self.app.metrics.checkpoint_time.set(time.time())
        self._offsets = offsets
        self.source.commit_offsets(offsets)
        if not self.store.acquire_lease(self.config.kafka.group_id, self.owner, self.lease_ttl,
                                        time.time()):
            # we were presumed dead and another daemon took over: stop, never both
            self.app.metrics.active.set(0)
            log.error("lease lost to another driftwatch; stopping",
                      extra={"holder": self.store.lease_holder(self.config.kafka.group_id)})
            self.stop_event.set()
        return True

    def shutdown(self, flush_timeout: float = 10.0) -> None:
        self._ready = False
        self.app.metrics.active.set(0)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.source is not None:
            if self.store is not None:
                self.checkpoint()
            else:
                self.source.commit()
            self.source.close()
            self.source = None
        self.app.dispatcher.stop(flush_timeout)
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.store is not None:
            self.store.release_lease(self.config.kafka.group_id, self.owner)

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
