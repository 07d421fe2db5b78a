"""`driftwatch run`: the long-running consumer loop.

poll -> decode + process -> commit, with alerts delivered by the dispatcher's
background thread.  SIGTERM/SIGINT finish the current batch, checkpoint,
commit, flush the outbox and exit 0.

State is kept per partition: one pipeline per partition number, fed by that
partition of the predictions topic and the same partition of the labels topic
(events are keyed by model, so a model's predictions and labels meet there).
Several daemons in one consumer group therefore split the partitions, and a
rebalance hands state over through the store:

* revoked: each revoked partition's state, counters, notification groups and
  offsets are checkpointed (one transaction per partition); Kafka gets those
  offsets with the next owner's periodic checkpoint (the callback runs on the
  consumer's IO thread, where a blocking commit is refused);
* assigned: each new partition's checkpoint row is *claimed* (the row records
  its owner and a claim number, so a daemon Kafka already presumed dead can no
  longer write it -- its save is refused and it drops the partition), its
  state loaded and the partition sought to the checkpointed offset.  While the
  store cannot be reached the partition stays paused and the daemon not ready.

A model's metric series and alerts move with it: the daemon that gives a
partition up stops exporting its models' series and drops their alerts from
its notification groups; the one that takes it over restores the counters
from the checkpoint and notifies what was pending.  Summed over daemons, each
model is counted once, and the outbox (shared, each item claimed by one
sender) sends each notification once.

When the two topics are not co-partitioned (different partition counts) a
model's labels may sit in another partition than its predictions: then one
pipeline takes every partition, and one daemon per group is active -- it
holds the group's lease in the store; another daemon stands by until the
lease lapses and then takes over from the checkpoint.

Every ``[store] checkpoint_interval`` each partition's state is checkpointed
with its offsets, and only then are those offsets committed to Kafka; after a
SIGKILL the events since the checkpoint are read again into the state that
had not seen them: none lost, none counted twice, and the alerts they raise
again are the outbox's duplicates.

Background jobs (APScheduler 3, each with ``coalesce``, ``max_instances=1`` and
a misfire grace): a wall-clock staleness check (a model whose events stop
arriving while the daemon is live -- even when the whole stream stops), and
the store's retention (delivered notifications and ended silences older than
a week).  They take the same lock as the consumer loop, so no pipeline is
touched by two threads at once.
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

from alerts.model import Alert
from monitor.app import App, build
from monitor.config.types import Config
from monitor.deadletter import DeadLetters, process_polled
from monitor.http import HttpServer
from monitor.pipeline import AlertSink, Pipeline
from monitor.quarantine import rebuilt, state_lost
from monitor.silencing import SilenceApi
from monitor.sources.kafka import ConsumerFactory, KafkaConsumer, KafkaSource
from monitor.store import CorruptCheckpoint, Fenced, SqlOutbox, Store
from monitor.versions import model_metadata, models_handler

log = logging.getLogger("driftwatch.daemon")

STALE_CHECK_SECONDS = 15.0
MIN_LEASE_SECONDS = 3.0  # the lease lives 3 checkpoint intervals, at least this
RETENTION_SECONDS = 7 * 86_400.0
# start-up with the database or the broker down: retried with backoff, one log line each
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
BOOTSTRAP_TIMEOUT_MS = 10_000  # one attempt to reach the brokers (kafka-python: 30 s)


class Daemon:
    def __init__(self, config: Config, *, registry: CollectorRegistry | None = None,
                 consumer_factory: ConsumerFactory = KafkaConsumer,
                 consumer_overrides: dict[str, Any] | None = None,
                 sink: AlertSink | None = None, store: Store | None = None) -> None:
        self.config = config
        self.app: App = build(config, registry=registry, notify=True, sink=sink, store=store)
        self.app.metrics.untrack(self.app.pipeline)  # the daemon runs one per partition
        self.store = store
        self.shards: dict[int, Pipeline] = {}  # partition number (or 0: all) -> pipeline
        self.claims: dict[int, int] = {}  # shard -> our claim on its checkpoint row
        self.offsets: dict[int, dict[str, int]] = {}  # shard -> checkpointed offsets
        self.positions: dict[str, int] = {}  # "topic:partition" -> next offset processed
        self.waiting: dict[int, list[Any]] = {}  # assigned, state not loaded yet: paused
        self.fenced: set[int] = set()  # claimed by another daemon since: not ours to read
        self.split = True  # False: topics not co-partitioned, one pipeline for everything
        self._checkpointed_at = time.monotonic()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = max(MIN_LEASE_SECONDS, 3 * config.store.checkpoint_interval)
        self._consumer_factory = consumer_factory
        self._overrides = consumer_overrides or {}
        self._sink = sink
        # a silence that ends releases its alerts on the dispatcher's own pass, judged
        # against what fires in every shard; they are logged and written as news
        self.app.dispatcher.firing_source = self.firing
        self.app.dispatcher.on_released = self._released
        self.stop_event = threading.Event()
        self.app.metrics.ready.set_function(lambda: 1.0 if self.ready() else 0.0)
        self.app.metrics.batch_errors.labels("kafka")  # exported at 0 before any error
        self.source: KafkaSource | None = None
        self.dead: DeadLetters | None = None  # with [kafka] dead_letter_topic
        self.http: HttpServer | None = None
        self._ready = False
        self._store_ok = True
        self.batches = 0
        self.lock = threading.Lock()  # the pipelines: consumer loop vs background jobs
        self.scheduler = BackgroundScheduler()
        # a late run is worth one run (coalesce), never two at once, and not worth
        # running at all once half a minute late: the next interval comes soon
        job = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        self.scheduler.add_job(self.check_stale, "interval", seconds=STALE_CHECK_SECONDS,
                               id="staleness", **job)
        if store is not None:
            self.scheduler.add_job(self.retention, "interval", seconds=3600, id="retention",
                                   **job)

    # -- shards --------------------------------------------------------------------
    def key(self, partition: int) -> int:
        return partition if self.split else 0

    def row(self, key: int) -> str:
        """The shard's checkpoint row: the group's one row when it is not split."""
        group = self.config.kafka.group_id
        return f"{group}/{key}" if self.split else group

    def shard(self, key: int) -> Pipeline:
        """The shard's pipeline (a new, empty one the first time)."""
        p = self.shards.get(key)
        if p is None:
            p = self.shards[key] = self._pipeline()
        return p

    def _pipeline(self) -> Pipeline:
        p = Pipeline(self.config, self.app.metrics, self.app.dispatcher, sink=self._sink)
        p.everyone = self.firing
        return p

    def _released(self, alerts: list[Alert]) -> None:
        for a in alerts:
            log.info("alert", extra={"status": a.status, "labels": a.labels,
                                     "released": "silence over"})
        if self._sink is not None:
            self._sink(alerts)

    def firing(self) -> list[Alert]:
        return [a for p in list(self.shards.values()) for a in p.book.firing()]

    def _of(self, position: str) -> int:
        """The shard a ``"topic:partition"`` position belongs to."""
        return self.key(int(position.rpartition(":")[2]))

    def _shard_offsets(self, key: int) -> dict[str, int]:
        return {**self.offsets.get(key, {}),
                **{k: v for k, v in self.positions.items() if self._of(k) == key}}

    # -- readiness and the HTTP API ------------------------------------------------
    def ready(self) -> bool:
        return (self._ready and self._store_ok and not self.waiting
                and not self.stop_event.is_set())

    def start_http(self) -> HttpServer:
        self.http = HttpServer(
            self.config.http.host, self.config.http.port, self.app.metrics.registry,
            ready=self.ready,
            api={
                "alerts": lambda: [a.to_json() for a in self.firing()],
                "models": self._models_api,
            },
            handlers={"/api/models": models_handler(self._models_api, self._versions_table),
                      **({"/api/silences": SilenceApi(self.app.store, self.app.silencer)}
                         if self.app.store is not None else {})},
            config=self.config.http,
        ).start()
        return self.http

    def _models_api(self) -> dict[str, Any]:
        return {
            name: {
                "reference_events": st.windows.reference.n,
                "reference_ready": st.windows.reference_ready,
                "windows_evaluated": st.windows.windows_closed,
                "last_event_ts": st.last_ts,
                "partition": key if self.split else None,
                **model_metadata(self.config.model(name), p.versions),
            }
            for key, p in list(self.shards.items()) for name, st in list(p.models.items())
        }

    def _versions_table(self, model: str) -> dict[str, Any] | None:
        for p in list(self.shards.values()):
            if (t := p.versions.table(model)) is not None:
                return t
        return None

    # -- rebalances ------------------------------------------------------------------
    def on_revoked(self, partitions: list[Any]) -> None:
        """Kafka takes partitions away (every partition, at each rebalance): checkpoint
        their shards, so whoever gets them next starts exactly where we stopped.

        Runs on the consumer's IO thread, where blocking consumer calls are refused: the
        offsets go to Kafka with the next periodic checkpoint of whoever owns them then
        (the store's checkpoint, not Kafka's committed offset, is where reading resumes)."""
        keys = {self.key(tp.partition) for tp in partitions} & set(self.shards)
        if self.store is not None and keys and self._dead_delivered() \
                and self._save(keys) is not None:
            self._store_ok = True

    def on_assigned(self, partitions: list[Any]) -> None:
        """The group's new assignment: shards no longer ours are let go, new ones are
        claimed and loaded from the store (paused until that worked)."""
        assert self.source is not None
        by_key: dict[int, list[Any]] = {}
        for tp in partitions:
            by_key.setdefault(self.key(tp.partition), []).append(tp)
        for key in set(self.shards) | set(self.waiting):
            if key not in by_key:
                self._release(key)
        self.fenced -= set(by_key)
        log.info("partitions assigned", extra={"shards": sorted(by_key), "owner": self.owner})
        for key, tps in by_key.items():
            if self.store is None:
                self.shard(key)
                continue
            self.waiting[key] = tps
            self.source.pause(tps)
        self._take_waiting()
        self.app.metrics.active.set(1 if self.shards else 0)

    def _take_waiting(self) -> None:
        assert self.source is not None
        for key, tps in list(self.waiting.items()):
            try:
                self._take(key, tps)
            except Exception:
                log.exception("cannot load the state of assigned partitions; they stay paused",
                              extra={"shard": key})
                self._store_ok = False
                return
            self.waiting.pop(key, None)
            self.source.resume(tps)
            self._store_ok = True

    def _take(self, key: int, tps: list[Any]) -> None:
        """Claim the shard's checkpoint row, load it (unless what we hold is it), seek."""
        assert self.store is not None and self.source is not None
        epoch, ours = self.store.claim_checkpoint(self.row(key), self.owner, time.time())
        if key in self.shards and ours and self.claims.get(key) == epoch - 1:
            self.claims[key] = epoch  # nobody wrote the row since our last save
        else:
            self._release(key)
            self.claims[key] = epoch
            self._load(key)
        offsets = self._shard_offsets(key)
        for tp in tps:
            offset = offsets.get(f"{tp.topic}:{tp.partition}")
            if offset is not None:
                self.source.seek(tp, offset)

    def _load(self, key: int) -> None:
        """The shard's last checkpoint, if any, into a new pipeline."""
        assert self.store is not None
        p = self._pipeline()  # not in use until the end: a state half-read is dropped
        self.offsets[key] = {}
        lost: str | None = None
        try:
            found = self.store.load_checkpoint(self.row(key))
        except CorruptCheckpoint as exc:
            found, lost = None, exc.reason
        if found is not None:
            state, self.offsets[key] = found
            try:
                p.load_state(state["pipeline"])
                counters = state.get("counters", {})
                if not isinstance(counters, dict):
                    raise TypeError("counters is not an object")
            except Exception as exc:  # noqa: BLE001 -- any way a stored state can be broken
                lost = f"state unreadable: {type(exc).__name__}: {str(exc)[:300]}"
                self.app.metrics.untrack(p)
                p, found = self._pipeline(), None
        if lost is not None:
            # set aside for inspection; monitoring goes on from the stored offsets (the
            # references warm up again) rather than the partition staying paused forever
            self.offsets[key] = self.store.quarantine_checkpoint(self.row(key), lost,
                                                                 time.time())
        if found is not None:
            self.app.metrics.restore_counters(counters)
        with self.lock:
            self.shards[key] = p
            if lost is not None:
                state_lost(p, self.row(key), lost, time.time())
        if found is not None:
            # the notification groups as they were (news they had not sent goes out), then
            # every firing alert (changes after the checkpoint are read again anyway); what
            # was sent before is the outbox's duplicate (same alerts, same repeat)
            self.app.dispatcher.load_groups(state.get("groups", []),
                                            {i.name: i for i in self.config.time_intervals})
            firing = p.book.firing()
            self.app.dispatcher.submit(firing, self.firing())
            log.info("restored checkpoint", extra={"shard": key, "firing": len(firing),
                                                   "offsets": self.offsets[key]})

    def _release(self, key: int) -> None:
        """Let a shard go: another daemon owns its models now."""
        self.waiting.pop(key, None)
        self.claims.pop(key, None)
        self.offsets.pop(key, None)
        for k in [k for k in self.positions if self._of(k) == key]:
            del self.positions[k]
        with self.lock:
            p = self.shards.pop(key, None)
        if p is None:
            return
        models = p.model_names()
        self.app.metrics.untrack(p)
        self.app.metrics.forget_models(models)
        self.app.dispatcher.forget_models(models)
        log.info("partition released", extra={"shard": key, "models": sorted(models)})

    # -- the single-pipeline mode's lease ---------------------------------------------
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

    # -- background jobs ----------------------------------------------------------
    def check_stale(self, now: float | None = None) -> int:
        """The staleness job; returns how many alert changes it made."""
        if not self.ready():
            return 0  # not consuming: silence is ours, not the models'
        t = time.time() if now is None else now
        with self.lock:
            return sum(len(p.check_stale(t)) for p in list(self.shards.values()))

    def retention(self, now: float | None = None) -> int:
        assert self.store is not None
        cutoff = (time.time() if now is None else now) - RETENTION_SECONDS
        return SqlOutbox(self.store).prune(older_than=cutoff) + self.store.prune_silences(cutoff)

    # -- the loop -------------------------------------------------------------------
    def run(self) -> int:
        """Consume until ``stop_event`` is set; returns the exit code."""
        if self.http is None:
            self.start_http()
        if not self.connect():
            self.shutdown()
            return 0
        assert self.source is not None
        self.split = self.source.co_partitioned()
        if not self.split:
            log.warning("the predictions and labels topics are not co-partitioned: one "
                        "pipeline takes every partition and one daemon per group is active",
                        extra={"topics": list(self.source.types)})
            if self.store is not None and not self.acquire():
                self.shutdown()
                return 0
        self.scheduler.start()
        self.app.dispatcher.start()
        log.info("consuming", extra={"bootstrap": self.config.kafka.bootstrap_servers,
                                     "split": self.split})
        try:
            while not self.stop_event.is_set():
                self.step()
        finally:
            self.shutdown()
        return 0

    def connect(self) -> bool:
        """The database (schema migrated), the dead-letter producer and the consumer,
        retried with backoff while one of them cannot be reached (not ready meanwhile:
        /readyz says 503); one log line per attempt.  False if asked to stop first."""
        delay, attempt = RETRY_MIN_SECONDS, 0
        migrated = self.store is None
        while not self.stop_event.is_set():
            what = "database" if not migrated else "Kafka"
            attempt += 1
            try:
                if not migrated:
                    assert self.store is not None
                    self.store.migrate()
                    migrated = True
                    what = "Kafka"
                if self.dead is None and self.config.kafka.dead_letter_topic:
                    self.dead = DeadLetters(self.config.kafka, **self._producer_overrides())
                self.source = KafkaSource(
                    self.config.kafka, self._consumer_factory, listener=self,
                    **{"bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS, **self._overrides})
            except Exception as exc:  # noqa: BLE001 -- unreachable, refused, timed out
                log.warning(f"cannot reach the {what}; retrying in {delay:.0f}s",
                            extra={"attempt": attempt, "error": f"{type(exc).__name__}: "
                                   f"{str(exc)[:200]}", "retry_in_seconds": delay})
                self.stop_event.wait(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if attempt > 1:
                log.info("connected", extra={"attempts": attempt})
            return True
        return False

    def _producer_overrides(self) -> dict[str, Any]:
        """The consumer's connection overrides that a producer takes too."""
        return {k: v for k, v in self._overrides.items()
                if k in ("security_protocol", "request_timeout_ms", "api_version")
                or k.startswith(("ssl_", "sasl_"))}

    def step(self, timeout_ms: int = 500) -> int:
        """One poll-process-commit cycle; returns the number of messages handled."""
        assert self.source is not None
        if self.waiting:  # assigned while the store was unreachable: try again
            self._take_waiting()
        polled = self.source.poll(timeout_ms)
        self._ready = self.source.assigned and self.source.connected()
        n = 0
        for part in polled:
            key = self.key(part.partition)
            # under the lock: a rebalance (on the consumer's IO thread) may let the shard go
            # or checkpoint it meanwhile, and must see its state and position agree
            with self.lock:
                p = self.shards.get(key)
                if p is None and self.store is None:
                    p = self.shard(key)
                if p is None or key in self.waiting:
                    continue  # not ours (any more, or yet): read again by its owner
                # invalid input to the dead-letter topic; a batch that fails is bisected
                # (a bug must not take monitoring down, nor the good events around it)
                process_polled(p, part, self.app.metrics, self.dead)
                if part.next_offset is not None:
                    self.positions[f"{part.topic}:{part.partition}"] = part.next_offset
            self.app.metrics.batches.labels("kafka").inc()
            n += len(part.values)
        if n:
            self.batches += 1
            if self.store is None and self._dead_delivered():
                self.source.commit()
        self.app.metrics.set_lags(self.source.lags(
            {**{k: v for o in self.offsets.values() for k, v in o.items()}, **self.positions}))
        if self.store is not None and (
                time.monotonic() - self._checkpointed_at >= self.config.store.checkpoint_interval):
            self.checkpoint()
        return n

    def checkpoint(self) -> bool:
        """Each shard's state, counters and offsets in one transaction, then the offsets
        to Kafka; False when the store refused (nothing committed)."""
        assert self.store is not None and self.source is not None
        self._checkpointed_at = time.monotonic()
        if not self._dead_delivered():
            return False
        saved = self._save(set(self.shards))
        if saved is None:
            return False
        self._store_ok = True
        self.app.metrics.checkpoint_time.set(time.time())
        with self.lock:
            for p in list(self.shards.values()):
                rebuilt(p, time.time())
        self.source.commit_offsets(saved)
        if not self.split:
            self._renew_lease()
        return True

    def _dead_delivered(self) -> bool:
        """Whether the dead letters so far are acknowledged: only then may the offsets
        past them be stored or committed."""
        return self.dead is None or self.dead.flush()

    def _renew_lease(self) -> None:
        assert self.store is not None
        group = self.config.kafka.group_id
        try:
            held = self.store.acquire_lease(group, self.owner, self.lease_ttl, time.time())
            holder = None if held else self.store.lease_holder(group)
        except Exception:  # the database went down just now: the next checkpoint retries
            log.exception("lease renewal failed")
            self.app.metrics.checkpoint_failures.inc()
            self._store_ok = False
            return
        if not held:
            # we were presumed dead and another daemon took over: stop, never both
            self.app.metrics.active.set(0)
            log.error("lease lost to another driftwatch; stopping", extra={"holder": holder})
            self.stop_event.set()

    def _save(self, keys: set[int]) -> dict[str, int] | None:
        """Store these shards' checkpoints; the offsets saved, or None when the store
        refused.  A shard claimed by another daemon since is let go."""
        assert self.store is not None and self.source is not None
        saved: dict[str, int] = {}
        for key in sorted(keys):
            with self.lock:
                p = self.shards.get(key)
                if p is None or key not in self.claims:
                    continue
                claim = (self.owner, self.claims[key])
                offsets = self._shard_offsets(key)
                state = {"pipeline": p.to_state(), "counters": p.counters_state(),
                         "groups": self.app.dispatcher.groups_state(p.model_names())}
            try:
                self.store.save_checkpoint(self.row(key), state, offsets, time.time(),
                                           claim=claim)
            except Fenced as exc:
                # Kafka gave the partition to another daemon while we thought it ours
                # (our session had lapsed): its state is theirs now, ours is stale
                log.error("partition claimed by another daemon; letting it go",
                          extra={"shard": key, "error": str(exc)})
                self._release(key)
                self.fenced.add(key)
                self.source.pause([tp for tp in self.source.assignment()
                                   if self.key(tp.partition) == key])
                continue
            except Exception:  # the database is down: keep consuming, read again later
                log.exception("checkpoint failed; offsets not committed")
                self.app.metrics.checkpoint_failures.inc()
                self._store_ok = False
                return None
            self.offsets[key] = offsets
            saved.update(offsets)
        return saved

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
        if self.dead is not None:
            self.dead.close()
            self.dead = None
        try:
            self.app.dispatcher.stop(flush_timeout)
        except Exception as exc:  # noqa: BLE001 -- the database is down: it is durable
            log.warning("notifications not flushed at shutdown; they go out after the restart",
                        extra={"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.store is not None and not self.split:
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
