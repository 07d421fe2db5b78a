"""`driftwatch demo`: the whole path on this machine in under two minutes.

Starts the embedded broker on a free loopback port, two local "team
channels", and the daemon; produces traffic for two models -- ``churn``,
whose input ``age`` drifts (the world changed: data science), and ``eta``,
which starts serving 60 % slower (infrastructure: ML engineering) -- and
prints the alerts as each team's channel receives them.  Cleans up on exit.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from kafka import KafkaProducer

from monitor.broker import EmbeddedBroker
from monitor.channels import LocalChannel
from monitor.config.types import (
    Config,
    HttpConfig,
    IntegrationConfig,
    KafkaConfig,
    MonitorSettings,
    ReceiverConfig,
    RouteConfig,
)
from monitor.daemon import Daemon
from monitor.simulate import DEMO_MODELS, Fault, ndjson_chunks, stream

EVENTS_PER_MODEL = 9_000
FAULT_AT = 4_000
DEMO_FAULTS = (
    Fault("churn", "shift", FAULT_AT, {"feature": "age", "sigmas": 1.0}),
    Fault("eta", "latency", FAULT_AT, {"factor": 1.6}),
)


def demo_config(bootstrap: str, ds_url: str, mle_url: str) -> Config:
    settings = MonitorSettings(reference_events=2_000, window_events=1_000)
    return Config(
        kafka=KafkaConfig(bootstrap_servers=(bootstrap,), group_id="driftwatch-demo",
                          session_timeout_ms=6_000),
        http=HttpConfig(host="127.0.0.1", port=0),
        defaults=settings,
        route=RouteConfig(
            receiver="ml-engineering", group_by=("alertname", "model"), group_wait=0.0,
            group_interval=60.0, repeat_interval=3600.0,
            routes=(RouteConfig(receiver="data-science", matchers=('team="data-science"',)),),
        ),
        receivers=(
            ReceiverConfig("data-science", (IntegrationConfig("webhook", {"url": ds_url}),)),
            ReceiverConfig("ml-engineering", (IntegrationConfig("webhook", {"url": mle_url}),)),
        ),
    )


def produce(bootstrap: str, topic: str, events_per_s: float, stop: threading.Event) -> int:
    """Send the demo traffic, keyed by model, paced to ``events_per_s``."""
    events = stream(DEMO_MODELS, EVENTS_PER_MODEL, DEMO_FAULTS, seed=7)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    sent, t0 = 0, time.monotonic()
    try:
        per_model: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            per_model.setdefault(str(e["model"]), []).append(e)
        chunks = {m: list(ndjson_chunks(evs, 100)) for m, evs in per_model.items()}
        for i in range(max(len(c) for c in chunks.values())):
            for model, cs in chunks.items():
                if i < len(cs) and not stop.is_set():
                    producer.send(topic, key=model.encode(), value=cs[i])
                    sent += cs[i].count(b"\n") + 1
            ahead = sent / events_per_s - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    return sent


def _printer(name: str, payload: dict[str, Any]) -> None:
    for a in payload.get("alerts", []):
        lab = a["labels"]
        extra = f" feature={lab['feature']}" if "feature" in lab else ""
        print(f"  -> [{name} channel] {a['status'].upper():8} {lab['alertname']} "
              f"model={lab['model']}{extra} fault={lab['fault']}\n"
              f"       {a['annotations'].get('summary', '')}\n"
              f"       why: {a['annotations'].get('attribution', '')}", flush=True)


def run_demo(timeout: float = 110.0, out: Any = None) -> int:
    out = out or sys.stdout
    t_start = time.monotonic()
    ds, mle = LocalChannel("data-science", _printer), LocalChannel("ml-engineering", _printer)
    stop = threading.Event()
    with EmbeddedBroker() as broker:
        broker.create_topics(["predictions", "labels"])
        print(f"embedded broker on {broker.bootstrap}; topics predictions, labels", file=out)
        daemon = Daemon(demo_config(broker.bootstrap, ds.url, mle.url))
        http = daemon.start_http()
        print(f"daemon metrics on {http.url}/metrics", file=out)
        runner = threading.Thread(target=daemon.run, name="daemon", daemon=True)
        runner.start()
        print(f"producing {EVENTS_PER_MODEL} events per model for churn and eta; "
              f"faults from event {FAULT_AT}: churn.age +1 sigma, eta latency x1.6", file=out,
              flush=True)
        producer = threading.Thread(target=produce, args=(broker.bootstrap, "predictions",
                                                          3_000.0, stop), daemon=True)
        producer.start()

        def both() -> bool:
            return (any(a["labels"]["kind"] == "data_drift" for a in ds.alerts())
                    and any(a["labels"]["kind"] == "latency_regression" for a in mle.alerts()))

        deadline = t_start + timeout
        while time.monotonic() < deadline and not both():
            time.sleep(0.25)
        ok = both()
        stop.set()
        daemon.request_stop()
        runner.join(timeout=20)
        producer.join(timeout=10)
    ds.close()
    mle.close()
    wrong = [a for a in ds.alerts() if a["labels"]["team"] != "data-science"] + \
        [a for a in mle.alerts() if a["labels"]["team"] != "ml-engineering"]
    print(f"\n{len(ds.alerts())} alert(s) to data-science, {len(mle.alerts())} to "
          f"ml-engineering, {len(wrong)} to the wrong team, in "
          f"{time.monotonic() - t_start:.0f}s", file=out)
    if ok and not wrong:
        print("demo OK: input drift -> data science, latency regression -> ML engineering",
              file=out)
        return 0
    print("demo FAILED: not every team received its alert", file=out)
    return 1
