"""Realistic prediction traffic with injected faults, for the demo, tests and benchmarks.

Two model shapes: ``churn`` (binary classifier: probability output, numeric and
categorical features, four serving hosts) and ``eta`` (regression).  Each
model emits events ``interval_s`` apart in event time; faults start at an
event index and change exactly one thing, so a test knows what must be caught
and which team owns it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson

HOSTS = ("pod-0", "pod-1", "pod-2", "pod-3")


@dataclass(frozen=True)
class Fault:
    """A change injected into one model's traffic from event index ``start`` on.

    kinds: ``shift`` (params: feature, sigmas, optionally host: one replica
    only), ``latency`` (factor, and/or tail_fraction + tail_ms), ``errors``
    (rate), ``silence`` (events dropped from ``start`` to ``end``), ``stuck``
    (feature, value, host: one replica sends a constant), ``nulls`` (feature,
    rate: the feed drops the value), ``rename`` (feature, to: the field arrives
    under another name), ``retype`` (feature: its values arrive as strings),
    ``outputs`` (shift: added to churn's logit / eta's minutes: a model that
    scores differently on the same inputs), ``version`` (version, optionally
    share: a canary serving that share of the traffic beside the old version).
    """

    model: str
    kind: str
    start: int
    params: dict[str, float | str] = field(default_factory=dict)
    end: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    shape: str  # "churn" | "eta"
    version: str = "v1"
    latency_median_ms: float = 30.0
    error_rate: float = 0.002
    hosts: tuple[str, ...] = HOSTS  # () : events carry no segment


def _features(shape: str, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    if shape == "churn":
        return {
            "age": rng.normal(40.0, 10.0, n).round(1),
            "tenure_months": rng.exponential(24.0, n).round(1),
            "monthly_spend": rng.lognormal(3.5, 0.5, n).round(2),
            "plan": rng.choice(
                np.array(["basic", "pro", "enterprise"], dtype=object), n, p=[0.6, 0.3, 0.1]
            ),
            "region": rng.choice(
                np.array(["eu", "us", "apac"], dtype=object), n, p=[0.4, 0.4, 0.2]
            ),
        }
    return {
        "distance_km": rng.gamma(2.0, 4.0, n).round(2),
        "hour": rng.integers(0, 24, n).astype(float),
        "vehicle": rng.choice(np.array(["car", "bike", "van"], dtype=object), n, p=[0.6, 0.3, 0.1]),
    }


_SCALE = {
    "age": 10.0,
    "tenure_months": 24.0,
    "monthly_spend": 20.0,
    "distance_km": 5.6,
    "hour": 7.0,
}


def _predict(shape: str, f: dict[str, np.ndarray], rng: np.random.Generator,
             shift: np.ndarray) -> np.ndarray:
    if shape == "churn":
        z = -1.0 + 0.04 * (f["age"] - 40) - 0.03 * f["tenure_months"] + 0.01 * f["monthly_spend"]
        return (1.0 / (1.0 + np.exp(-(z + shift)))).round(4)
    return (5.0 + 2.2 * f["distance_km"] + shift
            + rng.normal(0, 1.0, f["hour"].shape[0])).round(2)


def model_events(
    spec: ModelSpec,
    n: int,
    faults: Sequence[Fault],
    *,
    seed: int,
    start_ts: float,
    interval_s: float,
) -> list[dict[str, object]]:
    """``n`` prediction events for one model, faults applied, in event-time order."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    feats = _features(spec.shape, rng, n)
    hosts = rng.choice(np.array(spec.hosts or ("",), dtype=object), n)
    latency = rng.lognormal(np.log(spec.latency_median_ms), 0.3, n)
    errors = rng.random(n) < spec.error_rate
    keep = np.ones(n, dtype=bool)
    version = np.full(n, spec.version, dtype=object)
    nulls: dict[str, np.ndarray] = {}
    renames: dict[str, tuple[np.ndarray, str]] = {}
    outputs = np.zeros(n)  # added to the churn logit / eta minutes: a miscalibrated model
    retypes: dict[str, np.ndarray] = {}
    for fault in faults:
        if fault.model != spec.name:
            continue
        p = fault.params
        on = (idx >= fault.start) & (idx < (fault.end if fault.end is not None else n))
        if fault.kind == "shift":
            name = str(p["feature"])
            if "host" in p:  # one replica only
                on = on & (hosts == p["host"])
            feats[name] = np.where(on, feats[name] + float(p["sigmas"]) * _SCALE[name], feats[name])
        elif fault.kind == "latency":
            latency = np.where(on, latency * float(p.get("factor", 1.0)), latency)
            if "tail_fraction" in p:
                tail = on & (rng.random(n) < float(p["tail_fraction"]))
                latency = np.where(tail, latency + float(p["tail_ms"]), latency)
        elif fault.kind == "errors":
            errors = np.where(on, rng.random(n) < float(p["rate"]), errors)
        elif fault.kind == "silence":
            keep &= ~on
        elif fault.kind == "stuck":
            mask = on & (hosts == p["host"])
            feats[str(p["feature"])] = np.where(mask, p["value"], feats[str(p["feature"])])
        elif fault.kind == "nulls":
            name = str(p["feature"])
            hit = on & (rng.random(n) < float(p["rate"]))
            nulls[name] = nulls.get(name, np.zeros(n, dtype=bool)) | hit
        elif fault.kind == "rename":
            renames[str(p["feature"])] = (on, str(p["to"]))
        elif fault.kind == "retype":
            retypes[str(p["feature"])] = on
        elif fault.kind == "outputs":
            outputs = np.where(on, float(p["shift"]), outputs)
        elif fault.kind == "version":
            if "share" in p:  # a canary beside the old version
                on = on & (rng.random(n) < float(p["share"]))
            version = np.where(on, str(p["version"]), version)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
    preds = _predict(spec.shape, feats, rng, outputs)
    ts = start_ts + idx * interval_s
    names = list(feats)
    none = np.asarray(None, dtype=object)
    cols = {k: np.where(nulls[k], none, feats[k]).tolist() if k in nulls else feats[k].tolist()
            for k in names}
    events: list[dict[str, object]] = []
    for i in np.flatnonzero(keep).tolist():
        ev: dict[str, object] = {
            "type": "prediction",
            "id": f"{spec.name}-{i}",
            "model": spec.name,
            "model_version": version[i],
            "ts": round(float(ts[i]), 3),
            "features": _schema(i, {k: cols[k][i] for k in names}, renames, retypes),
            "latency_ms": round(float(latency[i]), 2),
        }
        if spec.hosts:
            ev["segment"] = {"host": hosts[i]}
        if errors[i]:
            ev["status"] = "error"
        else:
            ev["prediction"] = float(preds[i])
        events.append(ev)
    return events


def _schema(i: int, feats: dict[str, object], renames: dict[str, tuple[np.ndarray, str]],
            retypes: dict[str, np.ndarray]) -> dict[str, object]:
    for name, on in retypes.items():
        if on[i]:
            feats[name] = str(feats[name])
    for name, (on, to) in renames.items():
        if on[i]:
            feats[to] = feats.pop(name)
    return feats


def stream(
    specs: Sequence[ModelSpec],
    n_per_model: int,
    faults: Sequence[Fault] = (),
    *,
    seed: int = 0,
    start_ts: float | None = None,
    interval_s: float = 0.5,
) -> list[dict[str, object]]:
    """All models' events merged in event-time order (stable across models)."""
    t0 = start_ts if start_ts is not None else datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    per_model = [
        model_events(s, n_per_model, faults, seed=seed + k, start_ts=t0, interval_s=interval_s)
        for k, s in enumerate(specs)
    ]
    merged = [e for evs in per_model for e in evs]
    merged.sort(key=lambda e: e["ts"])  # type: ignore[arg-type,return-value]
    return merged


def ndjson_chunks(events: Sequence[dict[str, object]], per_message: int = 200) -> Iterator[bytes]:
    """Kafka message values: ``per_message`` events as newline-delimited JSON."""
    for i in range(0, len(events), per_message):
        yield b"\n".join(orjson.dumps(e) for e in events[i : i + per_message])


def write_jsonl(path: str, events: Sequence[dict[str, object]]) -> None:
    with open(path, "wb") as fh:
        for e in events:
            fh.write(orjson.dumps(e) + b"\n")


DEMO_MODELS = (
    ModelSpec("churn", "churn", version="v3", latency_median_ms=30.0),
    ModelSpec("eta", "eta", version="v7", latency_median_ms=80.0),
)
