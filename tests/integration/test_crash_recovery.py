"""Kill -9 the daemon again and again while it consumes a real broker: after it catches
up, every event is counted exactly once and the alerts are those of a clean replay,
each delivered once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from monitor.broker import free_port
from monitor.config.load import load_config
from monitor.replay import replay
from monitor.simulate import DEMO_MODELS, Fault, ndjson_chunks, stream, write_jsonl

pytestmark = pytest.mark.integration

N_PER_MODEL = 12_000
FAULTS = [Fault("churn", "shift", 6_000, {"feature": "age", "sigmas": 1.0}),
          Fault("eta", "latency", 6_000, {"factor": 1.5})]


def config_text(broker: str, topics: tuple[str, str], group: str, db: Path | str, port: int,
                alerts: Path) -> str:
    """A daemon's config; ``db`` is a SQLite file or a database URL."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    return f"""
[kafka]
bootstrap_servers = ["{broker}"]
topics = {{ predictions = "{topics[0]}", labels = "{topics[1]}" }}
group_id = "{group}"
session_timeout_ms = 3000
max_poll_records = 500

[store]
url = "{url}"
checkpoint_interval = "1s"

[http]
listen = "127.0.0.1:{port}"

[defaults]
reference_events = 2000
window_events = 1000

[route]
receiver = "all"
group_by = ["..."]
group_wait = "0s"

[[receivers]]
name = "all"
[[receivers.file]]
path = "{alerts}"
"""


def metric(port: int, model: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return -1.0
    key = f'driftwatch_events_total{{model="{model}",type="prediction"}} '
    for line in body.decode().splitlines():
        if line.startswith(key):
            return float(line.split()[-1])
    return 0.0


def start(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "--log-level", "WARNING", "run",
                             "--config", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_sigkill_loses_nothing_and_counts_nothing_twice(broker, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics(list(topics))
    port = free_port()
    alerts_file = tmp_path / "alerts.jsonl"
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(broker.bootstrap, topics, f"g-{suffix}", tmp_path / "dw.db", port,
                               alerts_file))
    events = stream(DEMO_MODELS, N_PER_MODEL, FAULTS, seed=7)
    produced = {m.name: sum(1 for e in events if e["model"] == m.name) for m in DEMO_MODELS}
    per_model: dict[str, list[dict[str, object]]] = {}
    for e in events:
        per_model.setdefault(str(e["model"]), []).append(e)
    chunks = {m: list(ndjson_chunks(evs, 100)) for m, evs in per_model.items()}
    done = threading.Event()

    def produce() -> None:  # live traffic: ~1,000 events/s, both models interleaved
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        for i in range(max(len(c) for c in chunks.values())):
            for m, c in chunks.items():
                if i < len(c):
                    producer.send(topics[0], key=m.encode(), value=c[i])
            time.sleep(0.2)
        producer.flush()
        producer.close()
        done.set()

    threading.Thread(target=produce, daemon=True).start()

    def total() -> float:
        return sum(max(0.0, metric(port, m)) for m in produced)

    kills, lasts = 0, []
    while not done.is_set() and kills < 4:  # consume a little, then die without cleaning up
        proc = start(cfg)
        try:
            assert wait_for(lambda p=proc: metric(port, "churn") >= 0 or p.poll() is not None,
                            30)
            base = total()
            wait_for(lambda p=proc, b=base: total() > b + 300 or p.poll() is not None, 30)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.5 * kills)
            lasts.append(total())
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc.stderr.close()
        kills += 1
    # killed mid-stream, at least twice
    assert sum(1 for v in lasts if 0 < v < sum(produced.values())) >= 2, lasts
    assert done.wait(60)
    proc = start(cfg)
    try:
        assert wait_for(lambda: all(metric(port, m) >= n for m, n in produced.items())
                        or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert all(metric(port, m) >= n for m, n in produced.items()), \
            {m: metric(port, m) for m in produced}
        time.sleep(2.5)  # a checkpoint or two later: nothing more may arrive
        assert {m: metric(port, m) for m in produced} == {m: float(n)
                                                          for m, n in produced.items()}
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        proc.stderr.close()
    assert rc == 0  # graceful: checkpoint, commit, flush the outbox

    seen = delivered_as_replayed([alerts_file], events, cfg, tmp_path)
    assert any(w[:2] == ("DataDrift", "churn") for w in seen)
    assert any(w[:2] == ("LatencyRegression", "eta") for w in seen)


def delivered_as_replayed(files: list[Path], events: list[dict[str, object]], cfg: Path,
                          tmp_path: Path) -> set[tuple[str, str, str, str]]:
    """The alert state changes the file receivers got: each delivered once, and the
    same as a clean replay of ``events`` gives; as (alertname, model, feature, status)."""
    delivered = [orjson.loads(x) for f in files if f.exists() for x in f.read_bytes().splitlines()]
    keys = [(a["fingerprint"], a["status"], a["startsAt"]) for a in delivered]
    assert len(keys) == len(set(keys)), "an alert state change was delivered twice"

    def what(a: dict) -> tuple[str, str, str, str]:
        lab = a["labels"]
        return lab["alertname"], lab["model"], lab.get("feature", ""), a["status"]

    events_file = tmp_path / "events.jsonl"
    write_jsonl(str(events_file), events)
    clean = replay(load_config(cfg), [events_file])
    assert {what(a.to_json()) for a in clean.alerts} == {what(a) for a in delivered}
    return {what(a) for a in delivered}


def test_a_standby_daemon_takes_over_when_the_active_one_is_killed(broker, tmp_path: Path) -> None:
    """Topics that are not co-partitioned (a model's labels may sit in another partition
    number than its predictions) cannot be split: one daemon is active, one stands by."""
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics([topics[0]], partitions=2)
    broker.create_topics([topics[1]], partitions=1)
    ports = [free_port(), free_port()]
    cfgs = []
    for i, port in enumerate(ports):
        cfg = tmp_path / f"config-{i}.toml"
        cfg.write_text(config_text(broker.bootstrap, topics, f"g-{suffix}", tmp_path / "dw.db",
                                   port, tmp_path / "alerts.jsonl"))
        cfgs.append(cfg)
    events = stream(DEMO_MODELS, 9_000, FAULTS, seed=9)
    produced = {m.name: sum(1 for e in events if e["model"] == m.name) for m in DEMO_MODELS}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    half = len(events) // 2
    for chunk in ndjson_chunks(events[:half], 100):
        producer.send(topics[0], value=chunk)
    producer.flush()
    active = start(cfgs[0])
    standby = None
    try:
        assert wait_for(lambda: metric(ports[0], "churn") > 0 or active.poll() is not None, 60)
        standby = start(cfgs[1])  # same group, same database: it must wait
        # its metrics endpoint up (a loaded machine starts it slowly), then a while more
        assert wait_for(lambda: metric(ports[1], "churn") >= 0 or standby.poll() is not None,
                        30)
        time.sleep(3)
        assert standby.poll() is None
        assert metric(ports[1], "churn") == 0.0  # up, but not consuming
        time.sleep(1.5)  # at least one checkpoint of the active daemon
        active.send_signal(signal.SIGKILL)
        active.wait(10)
        for chunk in ndjson_chunks(events[half:], 100):  # traffic goes on
            producer.send(topics[0], value=chunk)
        producer.flush()
        producer.close()
        assert wait_for(lambda: all(metric(ports[1], m) >= n for m, n in produced.items())
                        or standby.poll() is not None, 90), \
            {m: metric(ports[1], m) for m in produced}
        time.sleep(2.5)
        assert {m: metric(ports[1], m) for m in produced} == {m: float(n)
                                                              for m, n in produced.items()}
    finally:
        for p in (active, standby):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
            if p is not None:
                p.stderr.close()
    delivered = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    keys = [(a["fingerprint"], a["status"], a["startsAt"]) for a in delivered]
    assert keys and len(keys) == len(set(keys))
