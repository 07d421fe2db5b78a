"""Pipeline state survives a JSON round trip mid-stream: a restart changes no alert."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from monitor.app import build
from monitor.config.types import Config, MonitorSettings
from monitor.simulate import DEMO_MODELS, Fault, ndjson_chunks, stream

CONFIG = Config(defaults=MonitorSettings(reference_events=2_000, window_events=1_000))


def alerts(chunks, state_at: int | None = None):
    app = build(CONFIG, registry=CollectorRegistry(), notify=False)
    out = []
    for i, chunk in enumerate(chunks):
        if i == state_at:
            saved = json.loads(json.dumps(app.pipeline.to_state(), allow_nan=False))
            app = build(CONFIG, registry=CollectorRegistry(), notify=False)
            app.pipeline.load_state(saved)
        out += [a.to_json() for a in app.pipeline.process_lines(chunk.split(b"\n"))]
    return out


def test_restart_from_state_gives_the_same_alerts() -> None:
    faults = [Fault("churn", "shift", 5_000, {"feature": "age", "sigmas": 0.5}),
              Fault("eta", "latency", 6_000, {"factor": 1.3})]
    chunks = list(ndjson_chunks(stream(DEMO_MODELS, 9_000, faults, seed=3), per_message=500))
    whole = alerts(chunks)
    assert {a["labels"]["kind"] for a in whole} >= {"data_drift", "latency_regression"}
    for cut in (5, 17, 23):  # in the reference, just after it, mid-fault
        assert alerts(chunks, state_at=cut) == whole
