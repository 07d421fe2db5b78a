"""Generated event streams for the scenario matrix (README "Events").

One binary classifier, ``churn`` (the features and the scoring function of
:mod:`monitor.simulate`, imported, not copied), served at a constant event
rate, with

- a segment layout: ``none`` (no ``segment`` field), ``3hosts``
  (``{"host": "pod-0".."pod-2"}``), ``12hosts`` (``pod-0..pod-11``) or
  ``2regions`` (``{"region": "eu"|"us", "host": "eu-0".."us-2"}``);
- a label mode: ``ontime`` (a label 10-60 s after each prediction),
  ``delayed`` (3 h +- 10 min after it, from the first prediction on) or
  ``none``;
- zero, one or two :class:`Fault`\\ s, abrupt or ramped linearly over
  ``ramp`` events.

Ground truth: every label is drawn from the *true* churn probability of the
*true* features (what the world did), while the prediction is the model's
score of the features it was *served* (a stuck or shifted replica changes the
served features only; a world drift changes both).  Nulls, renames and
retypes break the logged feed after scoring, as in :mod:`monitor.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from monitor.simulate import _SCALE, _features, _predict, write_jsonl

__all__ = [
    "FAULT_KINDS", "LABEL_MODES", "LAYOUTS", "MAGNITUDE", "Fault", "StreamSpec", "generate",
    "hosts_of", "write_jsonl",
]

MODEL = "churn"
VERSION = "v1"
T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()

LAYOUTS = ("none", "3hosts", "12hosts", "2regions")
LABEL_MODES = ("ontime", "delayed", "none")

# events per second of event time, per label mode (delayed streams must span > 3 h)
RATE = {"ontime": 25.0, "none": 25.0, "delayed": 20.0}
LABEL_DELAY_S = {"ontime": (10.0, 60.0), "delayed": (3 * 3600.0 - 600.0, 3 * 3600.0 + 600.0)}

BASE_ERROR_RATE = 0.005
LATENCY_MEDIAN_MS = 30.0

# Fault magnitudes: every one clearly detectable, so a miss is a product bug.
MAGNITUDE: dict[str, float] = {
    "data_drift": 1.5,  # sd, every segment (the world changed)
    "host_drift": 2.0,  # sd, on one host only (a broken replica)
    "output_drift": 1.0,  # added to the logit on the same inputs (a miscalibrated model)
    "concept_drift": 1.0,  # share of labels drawn from the inverted relation
    "latency": 1.5,  # x latency
    "errors": 0.05,  # error rate (from 0.005)
    "dead_feed": 1200.0,  # seconds without any prediction event
    "nulls": 0.3,  # share of the feature's values sent as null (one host: all of its values)
    "stuck": 33.0,  # monthly_spend stuck on this (in-range, near the median) value
}

# kind -> (team that must hear it, default feature, abrupt only?)
FAULT_KINDS: dict[str, tuple[str, str | None, bool]] = {
    "data_drift": ("data-science", "age", False),
    "output_drift": ("data-science", None, False),
    "concept_drift": ("data-science", None, False),
    "latency": ("ml-engineering", None, False),
    "errors": ("ml-engineering", None, False),
    "dead_feed": ("ml-engineering", None, True),
    "rename": ("ml-engineering", "age", True),
    "retype": ("ml-engineering", "tenure_months", True),
    "nulls": ("ml-engineering", "monthly_spend", False),
    "stuck": ("ml-engineering", "monthly_spend", True),
    "host_drift": ("ml-engineering", "age", False),
    "label_stop": ("ml-engineering", None, True),
}
RENAMED_TO = {"age": "age_years", "tenure_months": "tenure", "monthly_spend": "spend"}


@dataclass(frozen=True)
class Fault:
    """One change from event index ``start`` on (``ramp`` > 0: linear over that many
    events).  ``feature``/``host`` where the kind takes them (``host``: one segment
    host only; None: all traffic)."""

    kind: str
    start: int
    ramp: int = 0
    feature: str | None = None
    host: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    @property
    def team(self) -> str:
        return FAULT_KINDS[self.kind][0]

    def describe(self) -> str:
        bits = [self.kind]
        if self.feature:
            bits.append(self.feature)
        if self.host:
            bits.append(f"@{self.host}")
        if self.ramp:
            bits.append(f"ramp{self.ramp}")
        return ":".join(bits)


@dataclass(frozen=True)
class StreamSpec:
    layout: str
    labels: str
    n: int  # prediction events generated (a dead feed drops some of them)
    faults: tuple[Fault, ...] = ()
    seed: int = 0
    label_ttl_s: float = 300.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return RATE[self.labels]

    def ts_of(self, index: int) -> float:
        """Event time of prediction ``index`` (a dead feed shifts nothing: the
        events inside it are dropped, the clock goes on)."""
        return T0 + index / self.rate


def hosts_of(layout: str) -> tuple[tuple[dict[str, str], ...], str | None]:
    """The segment values of a layout and the key naming one host."""
    if layout == "none":
        return (), None
    if layout == "3hosts":
        return tuple({"host": f"pod-{i}"} for i in range(3)), "host"
    if layout == "12hosts":
        return tuple({"host": f"pod-{i}"} for i in range(12)), "host"
    if layout == "2regions":
        return tuple({"region": r, "host": f"{r}-{i}"} for r in ("eu", "us") for i in range(3)), \
            "host"
    raise ValueError(f"unknown layout {layout!r}")


def _ramp(f: Fault, idx: np.ndarray) -> np.ndarray:
    """0 before the fault, 1 at full strength, linear in between."""
    if f.ramp <= 0:
        return (idx >= f.start).astype(float)
    return np.clip((idx - f.start + 1) / f.ramp, 0.0, 1.0)


def generate(spec: StreamSpec) -> list[dict[str, object]]:
    """Prediction and label events of one stream, in event-time order."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n
    idx = np.arange(n)
    true = _features("churn", rng, n)
    segs, _ = hosts_of(spec.layout)
    seg_i = rng.integers(0, len(segs), n) if segs else np.zeros(n, dtype=int)
    host = (np.array([s["host"] for s in segs], dtype=object)[seg_i] if segs
            else np.full(n, None, dtype=object))
    latency = rng.lognormal(np.log(LATENCY_MEDIAN_MS), 0.3, n)
    u_err = rng.random(n)
    err_rate = np.full(n, BASE_ERROR_RATE)
    keep = np.ones(n, dtype=bool)
    out_shift = np.zeros(n)
    concept = np.zeros(n)
    label_stop_ts = np.inf
    nulls: dict[str, np.ndarray] = {}
    renames: dict[str, np.ndarray] = {}
    retypes: dict[str, np.ndarray] = {}
    u_null = rng.random(n)
    u_concept = rng.random(n)
    u_label = rng.random(n)
    # world drift first: it moves the true features (and so the labels)
    for f in spec.faults:
        if f.kind == "data_drift":
            r = _ramp(f, idx)
            name = f.feature or "age"
            true[name] = (true[name] + r * MAGNITUDE["data_drift"] * _SCALE[name]).round(1)
    served = {k: v.copy() for k, v in true.items()}
    for f in spec.faults:
        r = _ramp(f, idx)
        on = r > 0
        if f.host is not None:
            on = on & (host == f.host)
            r = np.where(on, r, 0.0)
        if f.kind == "data_drift":
            continue
        if f.kind == "host_drift":
            if f.host is None:
                raise ValueError("host_drift needs a host")
            name = f.feature or "age"
            served[name] = (served[name] + r * MAGNITUDE["host_drift"] * _SCALE[name]).round(1)
        elif f.kind == "output_drift":
            out_shift = out_shift + r * MAGNITUDE["output_drift"]
        elif f.kind == "concept_drift":
            concept = np.maximum(concept, r * MAGNITUDE["concept_drift"])
        elif f.kind == "latency":
            latency = latency * (1.0 + r * (MAGNITUDE["latency"] - 1.0))
        elif f.kind == "errors":
            err_rate = np.where(on, BASE_ERROR_RATE + r * (MAGNITUDE["errors"] - BASE_ERROR_RATE),
                                err_rate)
        elif f.kind == "dead_feed":
            gap = int(MAGNITUDE["dead_feed"] * spec.rate)
            keep &= ~((idx >= f.start) & (idx < f.start + gap))
        elif f.kind == "nulls":
            name = f.feature or "monthly_spend"
            # on all traffic a share of the values; on one host that host's whole feed
            rate = MAGNITUDE["nulls"] if f.host is None else 1.0
            nulls[name] = nulls.get(name, np.zeros(n, dtype=bool)) | (u_null < r * rate)
        elif f.kind == "stuck":
            name = f.feature or "monthly_spend"
            served[name] = np.where(on, MAGNITUDE["stuck"], served[name])
        elif f.kind == "rename":
            renames[f.feature or "age"] = on
        elif f.kind == "retype":
            retypes[f.feature or "tenure_months"] = on
        elif f.kind == "label_stop":
            label_stop_ts = spec.ts_of(f.start)
    p_true = _predict("churn", true, rng, np.zeros(n))
    pred = _predict("churn", served, rng, out_shift)
    errors = u_err < err_rate
    ts = T0 + idx / spec.rate
    names = list(served)
    cols = {k: served[k].tolist() for k in names}
    events: list[dict[str, object]] = []
    for i in np.flatnonzero(keep).tolist():
        feats: dict[str, object] = {}
        for k in names:
            v = cols[k][i]
            if k in nulls and nulls[k][i]:
                v = None
            elif k in retypes and retypes[k][i]:
                v = str(v)
            if k in renames and renames[k][i]:
                feats[RENAMED_TO[k]] = v
            else:
                feats[k] = v
        ev: dict[str, object] = {
            "type": "prediction", "id": f"{MODEL}-{i}", "model": MODEL,
            "model_version": VERSION, "ts": round(float(ts[i]), 3), "features": feats,
            "latency_ms": round(float(latency[i]), 2),
        }
        if errors[i]:
            ev["status"] = "error"
        else:
            ev["prediction"] = float(pred[i])
            ev["status"] = "ok"
        if segs:
            ev["segment"] = dict(segs[seg_i[i]])
        events.append(ev)
    if spec.labels != "none":
        lo, hi = LABEL_DELAY_S[spec.labels]
        delay = rng.uniform(lo, hi, n)
        y_p = np.where(u_concept < concept, 1.0 - p_true, p_true)
        y = (u_label < y_p).astype(int)
        # the stream ends with its last prediction: labels due later are not in it
        last = float(ts[keep].max()) if keep.any() else -np.inf
        for i in np.flatnonzero(keep).tolist():
            lts = float(ts[i] + delay[i])
            if lts >= label_stop_ts or lts > last:
                continue
            events.append({"type": "label", "id": f"{MODEL}-{i}", "model": MODEL,
                           "ts": round(lts, 3), "label": int(y[i])})
        events.sort(key=lambda e: e["ts"])  # type: ignore[arg-type,return-value]
    return events
