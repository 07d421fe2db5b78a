"""The dashboards proven against a real Prometheus.

Debian's Prometheus scrapes (every second, with deploy/prometheus/rules.yml) a
daemon that consumes traffic with injected faults from the real broker: churn's
input ``age`` drifts (a model fault), eta serves twice as slowly and fails more
(infrastructure; its error-rate alert is silenced, so muted alerts exist).  Then
every query of every panel of the generated JSON, variables substituted, goes
through Prometheus' HTTP API and must return series (a Model panel: for churn or
eta -- CBPE is churn's alone, the muted alert eta's), and on the fault panels the
faulty model must stand out; churn runs a canary version beside its champion
(the Versions panels).  The live ``/metrics``
passes ``promtool check metrics``, and docs/dashboards.md lists exactly the
metric names it exposes.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from alerts.silences import new_silence
from monitor import dashboards
from monitor.channels import LocalChannel
from monitor.config.types import (
    Contract,
    ModelConfig,
    MonitorSettings,
    StoreConfig,
)
from monitor.daemon import Daemon, wait_until
from monitor.demo import demo_config
from monitor.simulate import DEMO_MODELS, Fault, stream
from monitor.store import Store
from tests.integration.prometheus import Prometheus

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
N = 4_000  # events per model
FAULT_AT = 2_000
RATE = 1_500.0  # events per second, both models: ~6 s of traffic, scraped every second
SETTINGS = MonitorSettings(reference_events=1_000, window_events=500)
FAULTS = [Fault("churn", "version", 1_000, {"version": "v4", "share": 0.5}),  # a canary
          Fault("churn", "shift", FAULT_AT, {"feature": "age", "sigmas": 2.0}),
          Fault("eta", "latency", FAULT_AT, {"factor": 2.0}),
          Fault("eta", "errors", FAULT_AT, {"rate": 0.10})]


def _labels(events: list[dict[str, Any]], seed: int = 3) -> list[dict[str, Any]]:
    """Ground truth for churn's predictions, 30 s of event time after each."""
    rng = np.random.default_rng(seed)
    return [{"type": "label", "id": e["id"], "model": e["model"], "ts": e["ts"] + 30.0,
             "label": int(rng.random() < float(e["prediction"]))}
            for e in events if e["model"] == "churn" and "prediction" in e]


def _produce(bootstrap: str, topics: tuple[str, str], events: list[dict[str, Any]],
             labels: list[dict[str, Any]]) -> None:
    """Both topics keyed by model, paced to RATE events per second."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    step, t0, sent = 100, time.monotonic(), 0
    try:
        # bad input mixed into the stream: counted by reason (the invalid-events panel)
        producer.send(topics[0], key=b"churn", value=b'{"model": "churn", "ts": trunc')
        for i in range(0, len(events), step):
            for e_chunk, topic in ((events[i:i + step], topics[0]),
                                   (labels[i // 2:(i + step) // 2], topics[1])):
                by_model: dict[str, list[bytes]] = {}
                for e in e_chunk:
                    by_model.setdefault(str(e["model"]), []).append(orjson.dumps(e))
                for model, rows in by_model.items():
                    producer.send(topic, key=model.encode(), value=b"\n".join(rows))
            sent += step
            ahead = sent / RATE - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        rest = labels[len(events) // 2:]
        for i in range(0, len(rest), step):
            producer.send(topics[1], key=b"churn",
                          value=b"\n".join(orjson.dumps(e) for e in rest[i:i + step]))
        producer.flush()
    finally:
        producer.close()


def substitute(expr: str, model: str) -> str:
    return (expr.replace("$__rate_interval", "1m").replace("$job", "driftwatch")
            .replace("$model", model).replace("$version", ".*"))


def targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every query of every panel and annotation."""
    out = [(p["title"], t) for p in dashboard["panels"] if p["type"] != "row"
           for t in p["targets"]]
    out += [(f"annotation {a['name']}", a)
            for a in dashboard.get("annotations", {}).get("list", []) if "expr" in a]
    return out


def by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    """The last value of each series of a range or instant result, by one label."""
    out = {}
    for s in result:
        value = s["values"][-1][1] if "values" in s else s["value"][1]
        out[s["metric"].get(label, "")] = float(value)
    return out


def test_every_panel_query_returns_series_and_the_faulty_model_stands_out(
        broker, prometheus_binaries, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = (f"predictions-{suffix}", f"labels-{suffix}")
    broker.create_topics(list(topics))
    ds, mle = LocalChannel("data-science"), LocalChannel("ml-engineering")
    base = demo_config(broker.bootstrap, ds.url, mle.url)
    contract = Contract(accuracy_min=0.6, latency_p95_ms=150, error_rate_max=0.02)
    config = dataclasses.replace(
        base, defaults=SETTINGS,
        kafka=dataclasses.replace(base.kafka, predictions_topic=topics[0],
                                  labels_topic=topics[1], group_id=f"g-{suffix}"),
        store=StoreConfig(url=f"sqlite:///{tmp_path / 'dw.db'}", checkpoint_interval=1.0),
        models=(ModelConfig("churn", task="binary_classification", contract=contract,
                            settings=SETTINGS),
                ModelConfig("eta", task="regression", contract=contract, settings=SETTINGS)))
    events = stream(DEMO_MODELS, N, FAULTS, seed=5)
    labels = _labels(events)
    store = Store(config.store.url)
    now = time.time()
    store.put_silence(new_silence(['model="eta"', 'kind="error_rate"'], ends_at=now + 3600,
                                  created_by="test", comment="muted alerts to show", now=now))
    daemon = Daemon(config, store=store)
    http = daemon.start_http()
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    prom = Prometheus(prometheus_binaries[0], tmp_path / "prometheus",
                      [http.url.removeprefix("http://")],
                      rule_files=[str(ROOT / "deploy" / "prometheus" / "rules.yml")]).start()
    try:
        assert wait_until(daemon.ready, 60), "the daemon never got its partitions"
        t0 = time.time()
        _produce(broker.bootstrap, topics, events, labels)
        registry = daemon.app.metrics.registry

        def consumed() -> float:
            return sum(registry.get_sample_value(
                "driftwatch_events_total", {"model": m, "type": "prediction"}) or 0.0
                for m in ("churn", "eta"))

        assert wait_until(lambda: consumed() >= len(events), 60), consumed()
        waited = ("driftwatch_alerts_suppressed", "driftwatch_performance",
                  "driftwatch_performance_estimate", "driftwatch_label_delay_seconds")
        assert wait_until(lambda: all(prom.query(f'{m}{{job="driftwatch"}}')
                                      for m in waited), 30), (
            {m: prom.query(f'{m}{{job="driftwatch"}}') for m in waited},
            [a.labels for p in daemon.shards.values() for a in p.book.firing()], prom.log())
        time.sleep(4.0)  # a few more scrapes and rule evaluations of the final state
        end = time.time()

        # the live /metrics is clean for promtool, and the docs list exactly its names
        body = urllib.request.urlopen(f"{http.url}/metrics", timeout=5).read()
        check = subprocess.run([prometheus_binaries[1], "check", "metrics"], input=body,
                               capture_output=True, timeout=60)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
        exposed = set(re.findall(rb"^# TYPE (\S+)", body, re.M))
        documented = set(re.findall(r"^\| `([a-z0-9_:]+)`", (ROOT / "docs" / "dashboards.md")
                                    .read_text(), re.M))
        assert {n.decode() for n in exposed} == documented

        # every query of every panel returns series
        generated = dashboards.generate()
        empty = []
        for name, dashboard in generated.items():
            for title, t in targets(dashboard):
                found = []
                for model in ("churn", "eta"):
                    expr = substitute(t["expr"], model)
                    found += prom.query(expr, at=end) if t.get("instant") else \
                        prom.query_range(expr, t0, end)
                if not found:
                    empty.append(f"{name}: {title}: {t['expr']}")
        assert not empty, "panels without series:\n" + "\n".join(empty)

        # the fault panels: the faulty model stands out
        def panel(name: str, title: str, model: str = "churn") -> list[list[dict]]:
            d = generated[dashboards.FILES[name]]
            p = next(p for p in d["panels"] if p.get("title") == title)
            return [prom.query(substitute(t["expr"], model), at=end) for t in p["targets"]]

        worst = by(panel("fleet", "Worst drift score by model")[0], "model")
        assert worst["churn"] >= 1.0 > worst["eta"], worst
        firing = panel("fleet", "Firing alerts by model and fault")[0]
        faults = {(s["metric"]["model"], s["metric"]["fault"]) for s in firing}
        assert ("churn", "model") in faults and ("eta", "infrastructure") in faults, faults
        assert ("churn", "infrastructure") not in faults and ("eta", "model") not in faults
        scores = by(panel("model", "Drift score per feature")[0], "feature")
        assert scores["age"] >= 1.0 and max(v for f, v in scores.items()
                                            if f not in ("age", "__prediction__",
                                                         "__joint__")) < 1.0, scores
        for model, slow in (("churn", False), ("eta", True)):
            lat = panel("model", "Latency against the contract", model)
            p95, ref95 = float(lat[1][0]["value"][1]), float(lat[4][0]["value"][1])
            assert (p95 > 1.5 * ref95) is slow, (model, p95, ref95)
            err = panel("model", "Error rate against the contract", model)
            rate, contract_rate = float(err[0][0]["value"][1]), float(err[1][0]["value"][1])
            assert (rate > contract_rate) is slow, (model, rate, contract_rate)
        # the canary: both versions listed, v3 the champion, v4 a challenger with a verdict
        events_by, champion = panel("model", "Tracked versions")
        assert set(by(events_by, "model_version")) == {"v3", "v4"}, events_by
        assert by(champion, "model_version") == {"v3": 1.0, "v4": 0.0}, champion
        verdicts = panel("model", "Challenger verdicts")[0]
        assert [(s["metric"]["model_version"], s["metric"]["verdict"]) in
                {("v4", "pending"), ("v4", "no_worse")} for s in verdicts] == [True], verdicts
        muted = panel("daemon", "Muted alerts")[0]
        assert {(s["metric"]["model"], s["metric"]["kind"], s["metric"]["reason"])
                for s in muted} == {("eta", "error_rate", "silenced")}, muted
        annotations = prom.query_range(substitute(
            generated[dashboards.FILES["model"]]["annotations"]["list"][0]["expr"], "churn"),
            t0, end)
        assert {s["metric"]["team"] for s in annotations} == {"data-science"}, annotations
    finally:
        prom.stop()
        daemon.request_stop()
        runner.join(timeout=30)
        ds.close()
        mle.close()
    assert not runner.is_alive()
