"""Outages while the daemon consumes: the broker restarted, the database restarted.

The daemon keeps running through both (``/healthz`` answers 200 all along), says
not ready on ``/readyz`` while it cannot do its work, and after the outage catches
up: every event produced is counted exactly once.  After the database came back, a
SIGKILL and a restart still give exact totals (the checkpoints written after the
outage are good).

The broker is a tansu of this test's own whose log lives in an S3 endpoint in this
process (``tests/integration/outages.py``), so it can be stopped and started again
on the same port without losing a topic or a record.  The database is a private
PostgreSQL (``initdb`` in a temporary folder, its own port), never the machine's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from monitor.broker import EmbeddedBroker, free_port
from monitor.simulate import DEMO_MODELS, ndjson_chunks, stream
from tests.integration.outages import ObjectStore, PostgresUnavailable, PrivatePostgres
from tests.integration.test_crash_recovery import config_text, wait_for

pytestmark = pytest.mark.integration

N_PER_MODEL = 4_000
MODELS = [m.name for m in DEMO_MODELS]


# -- talking to the daemon --------------------------------------------------------------

def scrape(port: int) -> dict[str, float] | None:
    """Every sample of ``/metrics`` by its full series name; None if it does not answer."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read()
    except OSError:
        return None
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def counted(port: int) -> dict[str, float] | None:
    """``driftwatch_events_total{type="prediction"}`` per model (0 for a model not seen)."""
    samples = scrape(port)
    if samples is None:
        return None
    return {m: samples.get(f'driftwatch_events_total{{model="{m}",type="prediction"}}', 0.0)
            for m in MODELS}


def sample(port: int, name: str) -> float:
    samples = scrape(port)
    return -1.0 if samples is None else samples.get(name, 0.0)


def status(port: int, path: str) -> int:
    """The HTTP status of ``GET path``; -1 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return -1


class Daemon:
    """``driftwatch run`` in a subprocess, its stderr in a file (a pipe nobody reads
    would fill up during an outage and block the daemon's logging)."""

    def __init__(self, cfg: Path, log: Path) -> None:
        self.log = log
        self._err = open(log, "ab")  # noqa: SIM115 (closed by kill / terminate)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--log-level", "WARNING", "run", "--config",
             str(cfg)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 3000) -> str:
        code = self.proc.poll()
        head = "" if code is None else f"[the daemon exited with {code}]\n"
        return head + self.log.read_text(errors="replace")[-n:]

    def check(self, ok: bool, what: str) -> None:
        """Assert the daemon is up and ``ok``; the message says ``what`` and ends with
        the daemon's last log lines."""
        assert self.alive(), f"the daemon died: {what}\n{self.tail()}"
        assert ok, f"{what}\n{self.tail()}"

    def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (polling, up to ``timeout`` s) for ``predicate``; fail, saying ``what``
        was expected, if it does not come or the daemon dies first."""
        # (alive afterwards, so it was the predicate that held)
        self.check(wait_for(lambda: predicate() or not self.alive(), timeout),
                   f"expected within {timeout:.0f} s: {what}")

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._err.close()

    def terminate(self) -> int:
        """SIGTERM and the exit code (-9 if it had to be killed after 30 s)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            code = -9
        self._err.close()
        return code


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Every daemon a test starts goes in here; whatever is still running is killed."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.kill()


class Traffic:
    """The test's events, per model, as Kafka messages of 100 events, produced in
    slices: both models interleaved, at about ``rate`` events per second."""

    def __init__(self, seed: int) -> None:
        events = stream(DEMO_MODELS, N_PER_MODEL, seed=seed)
        self.produced = {m: sum(1 for e in events if e["model"] == m) for m in MODELS}
        per_model: dict[str, list[dict[str, object]]] = {}
        for e in events:
            per_model.setdefault(str(e["model"]), []).append(e)
        self.chunks = {m: list(ndjson_chunks(evs, 100)) for m, evs in per_model.items()}
        self.n = max(len(c) for c in self.chunks.values())  # message rounds
        self.sent = 0  # rounds produced so far

    def produce(self, bootstrap: str, topic: str, rounds: int, rate: float = 2_000) -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
        try:
            stop = min(self.n, self.sent + rounds)
            for i in range(self.sent, stop):
                for m, c in self.chunks.items():
                    if i < len(c):
                        producer.send(topic, key=m.encode(), value=c[i])
                time.sleep(100 * len(self.chunks) / rate)
            producer.flush(30)
            self.sent = stop
        finally:
            producer.close(5)

    def so_far(self) -> dict[str, int]:
        """Events produced so far, per model."""
        return {m: min(n, 100 * self.sent) for m, n in self.produced.items()}


def consumed(port: int) -> float:
    return sum((counted(port) or {}).values())


def last_checkpoint(port: int) -> float:
    return sample(port, "driftwatch_last_checkpoint_timestamp_seconds")


def assert_exact(port: int, produced: dict[str, int], daemon: Daemon) -> None:
    """The daemon catches up with ``produced`` and counts each event exactly once."""
    def caught_up() -> bool:
        now = counted(port)
        return now is not None and all(now[m] >= n for m, n in produced.items())

    daemon.until(caught_up, 60, f"catch up with {produced}, counted {counted(port)}")
    time.sleep(2.5)  # a checkpoint or two later: nothing more may arrive
    daemon.check(True, "")
    assert counted(port) == {m: float(n) for m, n in produced.items()}, daemon.tail()


# -- the broker restarted -----------------------------------------------------------------

@pytest.fixture
def durable_broker() -> Iterator[EmbeddedBroker]:
    """A broker whose topics, records and consumer groups outlive a restart on the same
    port: tansu on its S3 engine, the objects kept by a stub S3 in this process."""
    with ObjectStore() as s3:
        b = EmbeddedBroker(storage_engine="s3://tansu/", env=s3.env)
        try:
            yield b.start()
        finally:
            b.stop()
        assert s3.unhandled == [], f"the broker used S3 calls the stub lacks: {s3.unhandled}"


def test_broker_restart_mid_stream(durable_broker: EmbeddedBroker, daemons: list[Daemon],
                                   tmp_path: Path) -> None:
    broker = durable_broker
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics(list(topics))
    port = free_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(broker.bootstrap, topics, f"g-{suffix}",
                               f"sqlite:///{tmp_path / 'dw.db'}", port, tmp_path / "alerts.jsonl"))
    traffic = Traffic(seed=11)
    daemon = Daemon(cfg, tmp_path / "daemon.log")
    daemons.append(daemon)
    daemon.until(lambda: status(port, "/readyz") == 200, 30, "ready")

    # live traffic, the daemon consuming it
    traffic.produce(broker.bootstrap, topics[0], traffic.n // 4)
    first = traffic.so_far()
    daemon.until(lambda: counted(port) == first, 30, f"consuming: {first}")
    # more, which the daemon has not read when the broker goes away: it is frozen for the
    # second this takes (well within its session timeout; its fetch in flight answered
    # empty first), then runs on without a broker
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.6)  # > fetch.max.wait.ms
        traffic.produce(broker.bootstrap, topics[0], traffic.n // 4, rate=50_000)
        broker.stop()  # same port, same storage when it comes back
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    down_at = time.monotonic()
    # /readyz must say not ready while the broker is away (checked after the rest, so a
    # failure here still shows whether the daemon caught up)
    problems = []
    try:
        if not wait_for(lambda: status(port, "/readyz") == 503 or not daemon.alive(), 20):
            problems.append(f"/readyz stayed {status(port, '/readyz')} for 20 s with the "
                            "broker down")
        while time.monotonic() - down_at < 6:  # longer than the session timeout
            health = status(port, "/healthz")
            daemon.check(health == 200, f"/healthz 200 with the broker down, not {health}")
            if not problems and status(port, "/readyz") != 503:
                problems.append("/readyz went back to 200 with the broker still down")
            time.sleep(0.5)
        before = counted(port)
    finally:
        broker.start()

    daemon.until(lambda: status(port, "/readyz") == 200, 45,
                 "/readyz 200 once the broker is back")
    traffic.produce(broker.bootstrap, topics[0], traffic.n)  # the rest
    assert traffic.sent == traffic.n
    assert before == first  # what came in meanwhile waited in the broker
    assert_exact(port, traffic.produced, daemon)
    daemon.check(status(port, "/healthz") == 200 and status(port, "/readyz") == 200,
                 "healthy and ready at the end")
    assert daemon.terminate() == 0, daemon.tail()
    assert not problems, "; ".join(problems)


# -- the database restarted -----------------------------------------------------------------

@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this test's own that it may stop and start (never the shared one)."""
    try:
        pg = PrivatePostgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"cannot start a private PostgreSQL: {exc}", pytrace=False)
    try:
        yield pg.start()
    finally:
        pg.destroy()


def test_database_restart_mid_stream(broker: EmbeddedBroker, private_postgres: PrivatePostgres,
                                     daemons: list[Daemon], tmp_path: Path) -> None:
    pg = private_postgres
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics(list(topics))
    port = free_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(broker.bootstrap, topics, f"g-{suffix}", pg.url, port,
                               tmp_path / "alerts.jsonl"))
    traffic = Traffic(seed=13)
    daemon = Daemon(cfg, tmp_path / "daemon.log")
    daemons.append(daemon)
    daemon.until(lambda: status(port, "/readyz") == 200, 30, "ready")

    third = traffic.n // 3
    traffic.produce(broker.bootstrap, topics[0], third)
    daemon.until(lambda: last_checkpoint(port) > 0 and consumed(port) > 0, 30,
                 "consuming and checkpointing")

    pg.stop("fast")  # the database goes away in the middle of the stream
    try:
        daemon.until(lambda: status(port, "/readyz") == 503, 20,
                     "/readyz 503 while the database is down")
        daemon.check(sample(port, "driftwatch_checkpoint_failures_total") > 0,
                     "a refused checkpoint counted")
        stuck_at = last_checkpoint(port)
        # traffic goes on, and the daemon goes on consuming it, not ready all the while
        producing = threading.Thread(target=traffic.produce,
                                     args=(broker.bootstrap, topics[0], third))
        producing.start()
        while producing.is_alive():
            health = status(port, "/healthz")
            daemon.check(health == 200, f"/healthz 200 with the database down, not {health}")
            daemon.check(status(port, "/readyz") == 503, "/readyz 503, database down")
            time.sleep(0.5)
        producing.join()
        assert traffic.sent == 2 * third
        assert_exact(port, traffic.so_far(), daemon)  # all of it, each event once
        daemon.check(status(port, "/readyz") == 503, "/readyz 503, database down")
        daemon.check(last_checkpoint(port) == stuck_at, "no checkpoint with the database down")
    finally:
        pg.start()  # same port, same data

    daemon.until(lambda: status(port, "/readyz") == 200, 30,
                 "/readyz 200 once the database is back")
    # the first checkpoint since the database came back holds what was read during the
    # outage: kill -9 right after it, start again -- nothing lost, nothing counted twice
    daemon.until(lambda: last_checkpoint(port) > stuck_at, 15, "a checkpoint after the outage")
    daemon.kill()
    daemon = Daemon(cfg, tmp_path / "daemon-2.log")
    daemons.append(daemon)
    assert_exact(port, traffic.so_far(), daemon)
    traffic.produce(broker.bootstrap, topics[0], traffic.n)  # the rest
    assert traffic.sent == traffic.n
    assert_exact(port, traffic.produced, daemon)
    daemon.check(status(port, "/readyz") == 200, "ready at the end")
    assert daemon.terminate() == 0, daemon.tail()
