"""Dispatch: inhibition -> routing -> grouping -> outbox -> notifiers, with retries.

:meth:`Dispatcher.submit` takes the alert state changes of one pipeline step:

* a firing alert muted by an inhibit rule or an active silence is dropped (and
  remembered, so its resolution is dropped too); a resolved alert whose firing went out is still
  sent, even if it would be inhibited now (so is one whose firing this process
  never saw, e.g. after a restart: a stray resolution beats a stuck incident);
* an alert muted earlier that is still firing when its inhibitor is gone and
  no silence matches it any more is let through then, as Alertmanager would
  notify it once un-muted;
* every other change gets ``receivers`` from the routing tree and joins the
  aggregation group of each matched route (:mod:`alerts.grouping`:
  ``group_wait``, ``group_interval``, ``repeat_interval``, as in Alertmanager).

:meth:`Dispatcher.deliver_due` first lets every group that is due speak --
one outbox item per (receiver, integration) and notification; the outbox drops
duplicates -- then makes one pass over the due items: delivered
-> ack; retriable -> reschedule with exponential backoff and jitter (1 s,
doubling, capped at 300 s; never earlier than a ``Retry-After``); not
retriable -> failed, kept for reporting.  :meth:`start` runs it in a daemon
thread; :meth:`stop` flushes every group's pending changes at once (nothing
waits out a ``group_wait`` at shutdown) and delivers what it can within
``flush_timeout``.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from alerts.grouping import Aggregator
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from alerts.outbox import Outbox, OutboxItem
from alerts.receivers.base import DeliveryResult, GroupInfo, Notifier
from alerts.routing import RouteTree, group_key
from alerts.silences import Silencer
from alerts.timeintervals import TimeInterval

log = logging.getLogger("driftwatch.alerts")

BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
REMEMBER = 100_000  # alert changes remembered for submit-level dedup
ENDED = 1_000  # resolutions remembered as inhibition sources for late-arriving targets

ResultCallback = Callable[[str, str, str], None]  # (receiver, integration kind, outcome)


def _event_time(a: Alert) -> float:
    """When a change happened, in event time: a firing's start, a resolution's end."""
    return a.starts_at if a.status == "firing" or a.ends_at is None else a.ends_at


def _snapshot(a: Alert) -> Alert:
    """A copy of ``a`` as it is now (the book's own object changes later)."""
    return replace(a, labels=dict(a.labels), annotations=dict(a.annotations),
                   evidence=dict(a.evidence), receivers=list(a.receivers),
                   muted_by=dict(a.muted_by) if a.muted_by is not None else None)


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): 1, 2, 4 ... 300 s, jittered 50-100 %."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(0, min(attempt - 1, 30)))
    return delay * (0.5 + 0.5 * (rng or random).random())


class Dispatcher:
    def __init__(
        self,
        tree: RouteTree,
        notifiers: Mapping[str, Sequence[Notifier]],
        inhibitor: Inhibitor,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
        on_result: ResultCallback | None = None,
        *,
        rng: random.Random | None = None,
        interval: float = 0.5,
        silencer: Silencer | None = None,
        on_muted: Callable[[Alert, str], None] | None = None,
    ) -> None:
        self.tree = tree
        self.notifiers = {name: list(ns) for name, ns in notifiers.items()}
        self.inhibitor = inhibitor
        self.outbox = outbox
        self.clock = clock
        self.on_result = on_result
        self.rng = rng or random.Random()
        self.interval = interval
        self.silencer = silencer
        self.on_muted = on_muted  # (alert, "inhibited" | "silenced"), for metrics
        self.groups = Aggregator()
        # muted alerts still firing, by (fingerprint, startsAt): each with its muted_by
        self._muted: dict[tuple[str, float], Alert] = {}
        self._ended: deque[Alert] = deque(maxlen=ENDED)  # the latest resolutions
        # alerts released from a silence by a delivery pass (for the sink, the log)
        self.on_released: Callable[[list[Alert]], None] | None = None
        # the alerts firing now, for judging a released silence against inhibitors
        self.firing_source: Callable[[], Iterable[Alert]] | None = None
        self._seen: OrderedDict[tuple[str, str, float], None] = OrderedDict()
        self._submit_lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- routing and enqueueing ------------------------------------------------
    def submit(self, changes: Iterable[Alert], firing: Iterable[Alert]) -> list[Alert]:
        """Route and enqueue ``changes``; returns what happened to each, in event-time
        order: the changes (a muted one with ``muted_by`` set and no receivers) and the
        muted alerts released by them, as snapshots (duplicates left out).

        Muting is decided in event time (:meth:`alerts.inhibit.Inhibitor.muted_by`):
        a change is muted by a source firing at its ``startsAt``, among ``firing``
        (the alerts firing now) and the resolved ones of the same submission, so the
        verdict is the same whichever order, or batches, they arrive in."""
        firing = list(firing)
        changes = sorted(changes, key=_event_time)  # stable: ties keep their order
        ended = [a for a in changes if a.status != "firing"]
        # resolutions seen before count too: a target can arrive after its source's end
        # with a startsAt before it (an alarm that waited for its segments)
        past = list(self._ended)
        sources = firing + ended + past
        self._ended.extend(ended)
        out: list[Alert] = []
        with self._submit_lock:
            for a in changes:
                key = (a.fingerprint, a.starts_at)
                if a.status == "firing":
                    why = self._mute_reason(a, sources, a.starts_at)
                    if why is not None:
                        self._mute(a, why)
                        out.append(_snapshot(a))
                        # raised after its inhibitor had already ended: released as of
                        # that end, as if it had been seen in time
                        src = next((s for s in past
                                    if s.fingerprint == why.get("inhibited_by")), None)
                        if src is not None:
                            out += self._release(sources, at=src.ends_at, ended=src.fingerprint)
                        continue
                    a.muted_by = None
                    if self._enqueue(a):
                        out.append(_snapshot(a))
                    continue
                held = self._muted.pop(key, None)
                if held is not None:  # its firing was never sent: neither is this
                    a.muted_by = held.muted_by
                    out.append(_snapshot(a))
                elif self._enqueue(a):
                    out.append(_snapshot(a))
                out += self._release(sources, at=a.ends_at, ended=a.fingerprint)
            # a source that left without a resolution here (handed over to another
            # daemon, or forgotten): what it muted is judged again on what fires now
            live = {s.fingerprint for s in firing if s.status == "firing"}
            out += self._release(sources, at=math.inf, ended=None, live=live)
        if out:
            self._wake.set()
        return out

    def _mute(self, a: Alert, why: dict[str, str]) -> None:
        a.muted_by = why
        a.receivers = []
        self._muted[(a.fingerprint, a.starts_at)] = a
        reason = "inhibited" if "inhibited_by" in why else "silenced"
        log.info("alert muted", extra={"labels": a.labels, "muted_by": why,
                                       "startsAt": a.starts_at})
        if self.on_muted is not None:
            self.on_muted(a, reason)

    def _release(self, sources: list[Alert], *, at: float | None, ended: str | None,
                 live: set[str] | None = None) -> list[Alert]:
        """Inhibited alerts still firing whose inhibitor ``ended`` at event time ``at``,
        or (``live``) is no longer among the firing alerts, are sent now, unless
        another source mutes them then (silences: :meth:`release_silenced`)."""
        out: list[Alert] = []
        for key, a in list(self._muted.items()):
            why = a.muted_by or {}
            src = why.get("inhibited_by")
            if src is None or (ended is not None and src != ended) or (
                    live is not None and src in live):
                continue
            now_why = self._mute_reason(a, sources, at)
            if now_why is not None:
                a.muted_by = now_why
                continue
            del self._muted[key]
            a.muted_by = None
            log.info("alert released", extra={"labels": a.labels, "was_muted_by": why})
            if self._enqueue(a, again=True):
                out.append(_snapshot(a))
        return out

    def release_silenced(self) -> list[Alert]:
        """Alerts muted by a silence that is over and still firing: sent now (called on
        every delivery pass, so a silence that ends releases within a pass)."""
        with self._submit_lock:
            out: list[Alert] = []
            for key, a in list(self._muted.items()):
                if "silenced_by" not in (a.muted_by or {}):
                    continue
                why = self._mute_reason(a, self._firing_now(), math.inf)
                if why is not None:
                    a.muted_by = why
                    continue
                del self._muted[key]
                a.muted_by = None
                log.info("alert released", extra={"labels": a.labels, "was_muted_by": "silence"})
                if self._enqueue(a, again=True):
                    out.append(_snapshot(a))
        if out and self.on_released is not None:
            self.on_released(out)
        return out

    def _firing_now(self) -> list[Alert]:
        return list(self.firing_source()) if self.firing_source is not None else []

    def muted(self) -> list[Alert]:
        """The alerts muted now (still firing, not notified)."""
        with self._submit_lock:
            return list(self._muted.values())

    def groups_state(self, models: set[str] | None = None) -> list[dict[str, object]]:
        """The aggregation groups (with ``models``, those models' share of them), for a
        checkpoint, so news pending in a group at a crash -- a resolution too -- is not
        lost."""
        with self._submit_lock:
            return self.groups.to_state(models)

    def load_groups(self, state: list[dict[str, object]],
                    intervals: Mapping[str, TimeInterval]) -> None:
        """Take in checkpointed groups (merged into the groups there are)."""
        with self._submit_lock:
            self.groups.merge(state, intervals)  # type: ignore[arg-type]

    def forget_models(self, models: set[str]) -> None:
        """Another daemon took these models over: their alerts leave our groups."""
        with self._submit_lock:
            self.groups.forget(models)

    def _mute_reason(self, a: Alert, sources: list[Alert],
                     at: float | None) -> dict[str, str] | None:
        source = self.inhibitor.muted_by(a, sources, at)
        if source is not None:
            return {"inhibited_by": source.fingerprint}
        if self.silencer is not None:
            ids = self.silencer.silenced_by(a.labels, self.clock())
            if ids:
                return {"silenced_by": ids[0]}
        return None

    def _enqueue(self, a: Alert, again: bool = False) -> bool:
        """Route ``a`` into its groups; False for a change seen before (``again``: an
        alert released from a mute, whose firing was held, not sent)."""
        seen_key = (a.fingerprint, a.status, a.starts_at)
        if seen_key in self._seen and not again:
            return False
        self._seen[seen_key] = None
        while len(self._seen) > REMEMBER:
            self._seen.popitem(last=False)
        routes = self.tree.match(a.labels)
        a.receivers = list(dict.fromkeys(r.receiver for r in routes))
        now = self.clock()
        done: set[str] = set()
        for route in routes:
            if route.receiver in done or not self.notifiers.get(route.receiver):
                continue
            done.add(route.receiver)
            group = GroupInfo(
                route.receiver, group_key(route, a.labels), route.group_labels(a.labels)
            )
            self.groups.add(a, route, group, now, soon=again)
        return True

    def _speak(self, *, flush: bool = False) -> None:
        """Turn the groups due now (every group with news, when ``flush``) into outbox items."""
        with self._submit_lock:
            now = self.clock()
            for n in self.groups.due(now, flush=flush):
                for i, notifier in enumerate(self.notifiers.get(n.group.receiver, ())):
                    self.outbox.put(OutboxItem.new(n.group.receiver, i, notifier.name,
                                                   n.alerts, n.group, now, at=n.at,
                                                   repeat=n.repeat))

    # -- delivery --------------------------------------------------------------
    def _notifier(self, item: OutboxItem) -> Notifier | None:
        ns = self.notifiers.get(item.receiver, [])
        return ns[item.integration] if 0 <= item.integration < len(ns) else None

    def _report(self, item: OutboxItem, outcome: str) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(item.receiver, item.kind, outcome)
        except Exception:  # a metrics hook must never stop delivery
            log.exception("on_result callback failed")

    def _send(self, notifier: Notifier, item: OutboxItem) -> DeliveryResult:
        try:
            return notifier.send(item.to_alerts(), item.group_info())
        except Exception as exc:  # a notifier bug: keep the item, retry later
            return DeliveryResult(
                ok=False, retriable=True, error=f"{item.kind} notifier raised {type(exc).__name__}"
            )

    def deliver_due(self) -> int:
        """Let due groups speak, then one pass over the due items; returns how many
        notifications were delivered."""
        self.release_silenced()
        self._speak()
        with self._deliver_lock:
            sent = 0
            for item in self.outbox.due(self.clock()):
                notifier = self._notifier(item)
                if notifier is None:
                    error = (
                        f"receiver {item.receiver!r} has no integration #{item.integration}"
                        " any more"
                    )
                    self.outbox.fail(item.id, error)
                    self._log_failure(item, error, "failed")
                    self._report(item, "failed")
                    continue
                result = self._send(notifier, item)
                if result.ok:
                    self.outbox.ack(item.id)
                    sent += 1
                    self._report(item, "sent")
                elif result.retriable:
                    delay = backoff(item.attempts + 1, self.rng)
                    if result.retry_after is not None:
                        delay = max(delay, result.retry_after)
                    self.outbox.reschedule(item.id, self.clock() + delay, result.error)
                    self._log_failure(item, result.error, "retry", delay)
                    self._report(item, "retry")
                else:
                    self.outbox.fail(item.id, result.error)
                    self._log_failure(item, result.error, "failed")
                    self._report(item, "failed")
            return sent

    @staticmethod
    def _log_failure(
        item: OutboxItem, error: str, outcome: str, delay: float | None = None
    ) -> None:
        log.warning(
            "notification not delivered",
            extra={
                "receiver": item.receiver,
                "integration": item.kind,
                "outcome": outcome,
                "attempts": item.attempts + 1,
                "retry_in_s": delay,
                "error": error,
                "fingerprints": item.fingerprints,
            },
        )

    # -- background thread -----------------------------------------------------
    def start(self) -> None:
        """Deliver in a daemon thread: every ``interval`` seconds and after each submit."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="driftwatch-dispatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.deliver_due()
            except Exception:
                log.exception("delivery pass failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def stop(self, flush_timeout: float = 10.0) -> None:
        """Stop the thread, then deliver what can be delivered within ``flush_timeout`` s."""
        deadline = time.monotonic() + flush_timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        self._speak(flush=True)
        while True:
            self.deliver_due()
            remaining = deadline - time.monotonic()
            nxt = self.outbox.next_attempt_at()
            if nxt is None or remaining <= 0:
                break
            wait = nxt - self.clock()
            if wait > remaining:
                break
            time.sleep(min(max(wait, 0.01), remaining))
        if self.outbox.pending():
            log.warning("outbox not empty at stop", extra={"pending": self.outbox.pending()})
