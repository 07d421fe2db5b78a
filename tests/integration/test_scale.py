"""Several daemons in one consumer group split the partitions; one is killed mid-stream
and its partitions, with their state, pass to the others through PostgreSQL: every
event is counted exactly once across the daemons, and every alert state change of a
clean replay is delivered once, by whichever daemon owned the model then."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from monitor.broker import free_port
from monitor.simulate import Fault, ModelSpec, ndjson_chunks, stream
from tests.conftest import POSTGRES
from tests.integration.test_crash_recovery import (
    config_text,
    delivered_as_replayed,
    metric,
    start,
    wait_for,
)

pytestmark = pytest.mark.integration

MODELS = (ModelSpec("churn", "churn", version="v3", latency_median_ms=30.0),
          ModelSpec("eta", "eta", version="v7", latency_median_ms=80.0),
          ModelSpec("churn-eu", "churn", version="v3", latency_median_ms=30.0),
          ModelSpec("eta-eu", "eta", version="v7", latency_median_ms=80.0))
PARTITIONS = len(MODELS)  # one model per partition: keyed by model, as docs/events.md asks
N_PER_MODEL = 7_000
FAULTS = [Fault("churn", "shift", 4_000, {"feature": "age", "sigmas": 1.0}),
          Fault("eta-eu", "latency", 4_000, {"factor": 1.5})]


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards."""
    name = f"dw_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def owned(port: int) -> set[str]:
    """The models a daemon exports counters for: the ones whose partition it owns."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return set()
    return {m.name for m in MODELS
            if f'driftwatch_events_total{{model="{m.name}",type="prediction"}}' in body.decode()}


@pytest.mark.parametrize("daemons", [2, 3])
def test_daemons_split_the_partitions_and_hand_state_over_when_one_is_killed(
        broker, database: str, tmp_path: Path, daemons: int) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics(list(topics), partitions=PARTITIONS)
    ports = [free_port() for _ in range(daemons)]
    files = [tmp_path / f"alerts-{i}.jsonl" for i in range(daemons)]
    cfgs = []
    for i in range(daemons):
        cfgs.append(tmp_path / f"config-{i}.toml")
        cfgs[-1].write_text(config_text(broker.bootstrap, topics, f"g-{suffix}", database,
                                        ports[i], files[i]))
    events = stream(MODELS, N_PER_MODEL, FAULTS, seed=11)
    produced = {m.name: sum(1 for e in events if e["model"] == m.name) for m in MODELS}
    chunks = {m.name: list(ndjson_chunks([e for e in events if e["model"] == m.name], 100))
              for m in MODELS}
    go, done = threading.Event(), threading.Event()

    def produce() -> None:  # live traffic, every model in its own partition
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        go.wait(60)
        for i in range(max(len(c) for c in chunks.values())):
            for p, m in enumerate(chunks):
                if i < len(chunks[m]):
                    producer.send(topics[0], key=m.encode(), value=chunks[m][i], partition=p)
            time.sleep(0.25)
        producer.flush()
        producer.close()
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    procs = [start(cfg) for cfg in cfgs]
    live, victim = list(range(daemons)), -1
    try:
        # every daemon gets a share of the partitions
        assert wait_for(lambda: any(p.poll() is not None for p in procs)
                        or all(metric(port, "churn") >= 0 for port in ports), 90)
        assert all(p.poll() is None for p in procs), \
            [p.stderr.read().decode()[-2000:] for p in procs if p.poll() is not None]
        go.set()
        assert wait_for(lambda: all(owned(port) for port in ports), 60), \
            [owned(port) for port in ports]
        assert wait_for(lambda: sum(metric(port, "churn") for port in ports) > 1_500, 60)
        victim = max(range(daemons), key=lambda i: len(owned(ports[i])))
        taken = owned(ports[victim])
        time.sleep(1.5)  # past a checkpoint, with more events read after it
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(10)
        live.remove(victim)
        assert done.wait(90)

        def counts() -> dict[str, float]:
            return {m: sum(max(0.0, metric(ports[i], m)) for i in live) for m in produced}

        assert wait_for(lambda: counts() == {m: float(n) for m, n in produced.items()}, 120), \
            (counts(), produced)
        time.sleep(2.5)  # a checkpoint or two later: nothing more may arrive
        assert counts() == {m: float(n) for m, n in produced.items()}
        # each model is exported by exactly one live daemon; the victim's went to others
        exporters = {m: [i for i in live if m in owned(ports[i])] for m in produced}
        assert all(len(v) == 1 for v in exporters.values()), exporters
        assert taken and all(exporters[m][0] != victim for m in taken)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        ends = []
        for p in procs:  # every process reaped and its pipe closed, before any assertion
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait(10)
            ends.append((rc, p.stderr.read().decode()[-2000:]))
            p.stderr.close()
    # graceful: checkpoint, flush the outbox
    assert all(rc == 0 for i, (rc, _) in enumerate(ends) if i != victim), ends

    seen = delivered_as_replayed(files, events, cfgs[0], tmp_path)
    assert any(w[:2] == ("DataDrift", "churn") for w in seen)
    assert any(w[:2] == ("LatencyRegression", "eta-eu") for w in seen)
