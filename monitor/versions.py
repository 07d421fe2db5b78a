"""Champion and challenger: versions of one model serving side by side, compared live.

When two or more ``model_version`` values of one model serve in the same period
(a canary, an A/B split, or a shadow that answers the same ``id`` as the champion),
each challenger is compared with the champion on the events both served since the
challenger appeared, with the confidence sequences of :mod:`detectors.versions`
(anytime-valid: read after every block of events, no peeking penalty):

==================  ==============================================  ===========  =================
metric              per event                                       margin       alert when worse
==================  ==============================================  ===========  =================
latency_p50         log latency (ok requests)                        latency_min  version_regression
                                                                    _ratio       (ML engineering)
latency_p95         1 if slower than the champion's p95              0.05         version_regression
error_rate          1 if ``status="error"``                          error_rate_  version_regression
                                                                    min_increase
predictions         the numeric prediction (in champion sd), or      drift_min_   prediction_drift
                    1 if of class c (the champion's top classes)     effect       (data science)
expected_accuracy   max(p, 1 - p) of a binary score (CBPE)           accuracy     performance_
                                                                    margin       degradation
accuracy / mae      1 if right / absolute error, once labels join    accuracy     performance_
                                                                    margin /     degradation
                                                                    10 % of MAE
agreement           shadow: 1 if both versions' outputs agree        agreement_   prediction_drift
                                                                    min (only
                                                                    if set)
==================  ==============================================  ===========  =================

The champion is ``[models.contract] champion``, else the (approved) version with
most events in the model's first ``reference_events``; when it stops serving, the
live (approved) version with most events.  Each challenger spends the model's
``alpha`` (split evenly over :data:`SLOTS` metric slots), once for its whole
rollout.  A challenger worse on a metric raises the alert of its kind, with
``model_version`` the challenger and ``segment="model_version=<v>"``; one no
worse on every metric it has data for (labelled ones included once labels join),
after ``version_min_events`` of its events, is announced once as a resolved
``VersionNoWorse`` for each team (label ``verdict="no_worse"``): promote it.

The rest of the handover contract: a version not in ``approved_versions`` that
serves is a ``version_regression`` (``feature="unapproved_version"``) for ML
engineering, and is compared as a challenger; the events' optional ``resources``
(``memory_mb``, ``gpu_memory_mb``) are checked per ``host`` segment against
``memory_mb_max`` / ``gpu_memory_mb_max`` (``resource_usage``, the median of a
host's last :data:`MEMORY_READINGS` readings, hardware named from the
``hardware`` segment).

Checks run at every :data:`BLOCK` events of the model (and every ``BLOCK``
joined labels), cut out of the batches by the model's own event count, so the
verdicts do not depend on how the stream is batched.  What an outsider can grow
is capped and counted: versions per model (:data:`MAX_VERSIONS`), ids remembered
for shadow pairs and labels (:data:`MAX_IDS`), hosts (:data:`MAX_HOSTS`).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from alerts.attribution import Attributed, attribute, to_alert
from alerts.book import AlertBook
from alerts.model import INFRA_FAULT, MODEL_FAULT, TEAM_FOR_FAULT, Alert, Finding, rfc3339
from detectors.versions import EITHER, HIGHER, LOWER, NO_WORSE, WORSE, Comparison
from monitor.batch import PredictionColumns
from monitor.config.types import Config, ModelConfig
from monitor.join import Joined

MAX_VERSIONS = 8  # versions tracked per model; later ones are counted, not tracked
MAX_IDS = 20_000  # prediction ids remembered per model while versions are compared
MAX_DROPPED_NAMES = 1_000  # names of versions past the cap, remembered to count them
MAX_HOSTS = 64  # host segments whose memory is tracked per model
MAX_CLASSES = 4  # predicted classes compared (the champion's most frequent)
SLOTS = 6 + MAX_CLASSES  # metric slots a challenger's alpha is split over (Bonferroni)
CALIBRATION = 200  # champion events that fix the scales (p95 threshold, prediction sd)
CALIBRATION_LABELS = 100  # champion labelled pairs that fix the MAE margin
MAE_MARGIN = 0.10  # a challenger's MAE may be this much (relative) above the champion's
P95_MARGIN = 0.05  # share of requests above the champion's p95 may rise by this much
BLOCK = 100  # verdicts are read every BLOCK events (and BLOCK joined labels) of a model
RETIRE_WINDOWS = 10  # a version unseen for this many windows' events stops serving
MEMORY_READINGS = 50  # a host's memory is the median of its last this many readings
MEMORY_MIN_READINGS = 10
KS_TO_SD = 2.5  # a KS distance d between normals is a mean shift of about 2.5 d sd
ML_METRICS = ("latency_p50", "latency_p95", "error_rate")
LABELLED = ("accuracy", "mae")  # measured on labels: read every BLOCK joined labels
RESOURCE_LIMITS = {"memory_mb": "memory_mb_max", "gpu_memory_mb": "gpu_memory_mb_max"}


def _segment(version: str) -> str:
    return f"model_version={version}"


def _kind(metric: str) -> str:
    if metric in ML_METRICS:
        return "version_regression"
    if metric in ("accuracy", "mae", "expected_accuracy"):
        return "performance_degradation"
    return "prediction_drift"


@dataclass
class VersionInfo:
    events: int = 0
    errors: int = 0
    first_ts: float = math.inf
    last_ts: float = -math.inf
    last_seen: int = 0  # the model's event count at this version's latest event
    approved: bool = True

    def to_state(self) -> list[Any]:
        return [self.events, self.errors, _fin(self.first_ts), _fin(self.last_ts),
                self.last_seen, self.approved]

    @classmethod
    def from_state(cls, s: list[Any]) -> VersionInfo:
        return cls(int(s[0]), int(s[1]), _unfin(s[2], math.inf), _unfin(s[3], -math.inf),
                   int(s[4]), bool(s[5]))


@dataclass
class Challenger:
    """One challenger's comparison with the champion it started beside."""

    version: str
    champion: str
    started: float
    events: int = 0  # challenger events since it started
    pairs: int = 0  # shadow pairs (same id answered by both)
    metrics: dict[str, Comparison] = field(default_factory=dict)
    # the metric's verdict and the event time it was reached, once not pending
    decided: dict[str, tuple[str, float]] = field(default_factory=dict)
    scales: dict[str, Any] = field(default_factory=dict)  # p95, sd, classes, mae
    cal_lat: list[float] = field(default_factory=list)
    cal_pred: list[float] = field(default_factory=list)
    cal_cls: Counter[str] = field(default_factory=Counter)
    cal_n: int = 0
    cal_abs: list[float] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)  # alert kinds raised
    promoted: float | None = None

    @property
    def calibrated(self) -> bool:
        return self.cal_n >= CALIBRATION

    def verdict(self) -> str:
        if any(v == WORSE for v, _ in self.decided.values()):
            return WORSE
        return NO_WORSE if self.promoted is not None else "pending"

    def to_state(self) -> dict[str, Any]:
        return {"version": self.version, "champion": self.champion, "started": self.started,
                "events": self.events, "pairs": self.pairs,
                "metrics": {k: c.to_state() for k, c in self.metrics.items()},
                "decided": {k: list(v) for k, v in self.decided.items()},
                "scales": self.scales, "cal_lat": self.cal_lat, "cal_pred": self.cal_pred,
                "cal_cls": dict(self.cal_cls), "cal_n": self.cal_n, "cal_abs": self.cal_abs,
                "fired": self.fired, "promoted": self.promoted}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Challenger:
        return cls(s["version"], s["champion"], float(s["started"]), int(s["events"]),
                   int(s["pairs"]),
                   {k: Comparison.from_state(c) for k, c in s["metrics"].items()},
                   {k: (str(v[0]), float(v[1])) for k, v in s["decided"].items()},
                   dict(s["scales"]), list(s["cal_lat"]), list(s["cal_pred"]),
                   Counter(s["cal_cls"]), int(s["cal_n"]), list(s["cal_abs"]),
                   list(s["fired"]), s["promoted"])


@dataclass
class ModelVersions:
    n: int = 0  # prediction events of the model
    labels: int = 0  # joined labels of the model
    versions: dict[str, VersionInfo] = field(default_factory=dict)
    reference: Counter[str] = field(default_factory=Counter)  # versions in the reference
    champion: str | None = None
    challengers: dict[str, Challenger] = field(default_factory=dict)
    dropped: int = 0  # events of versions past MAX_VERSIONS
    dropped_names: set[str] = field(default_factory=set)  # at most MAX_DROPPED_NAMES
    ids: OrderedDict[str, list[tuple[str, float, str | None]]] = field(
        default_factory=OrderedDict)
    evicted: int = 0  # ids forgotten past MAX_IDS
    memory: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    hardware: dict[str, str] = field(default_factory=dict)
    hosts_dropped: int = 0
    memory_firing: dict[tuple[str, str], float] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return {"n": self.n, "labels": self.labels,
                "versions": {k: v.to_state() for k, v in self.versions.items()},
                "reference": dict(self.reference), "champion": self.champion,
                "challengers": {k: c.to_state() for k, c in self.challengers.items()},
                "dropped": self.dropped, "dropped_names": sorted(self.dropped_names),
                "ids": [[k, [[e[0], _fin(e[1]), e[2]] for e in v]] for k, v in self.ids.items()],
                "evicted": self.evicted,
                "memory": [[h, r, list(q)] for (h, r), q in self.memory.items()],
                "hardware": self.hardware, "hosts_dropped": self.hosts_dropped,
                "memory_firing": [[h, r, v] for (h, r), v in self.memory_firing.items()]}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> ModelVersions:
        return cls(int(s["n"]), int(s["labels"]),
                   {k: VersionInfo.from_state(v) for k, v in s["versions"].items()},
                   Counter(s["reference"]), s["champion"],
                   {k: Challenger.from_state(c) for k, c in s["challengers"].items()},
                   int(s["dropped"]), set(s["dropped_names"]),
                   OrderedDict((k, [(str(e[0]), _unfin(e[1], math.nan), e[2]) for e in v])
                               for k, v in s["ids"]),
                   int(s["evicted"]),
                   {(h, r): deque(q, maxlen=MEMORY_READINGS) for h, r, q in s["memory"]},
                   dict(s["hardware"]), int(s["hosts_dropped"]),
                   {(h, r): float(v) for h, r, v in s["memory_firing"]})


def _fin(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _unfin(x: float | None, default: float) -> float:
    return default if x is None else float(x)


class VersionWatch:
    """Every model's versions, challengers and serving resources (one per pipeline)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.models: dict[str, ModelVersions] = {}

    # -- predictions ----------------------------------------------------------------
    def predictions(self, model: str, cols: PredictionColumns, book: AlertBook) -> list[Alert]:
        """Fold one batch of the model's predictions in; the alert changes it caused."""
        mcfg = self.config.model(model)
        mv = self.models.setdefault(model, ModelVersions())
        changes = self._memory(mcfg, mv, cols, book)
        if not mv.challengers and mv.champion is not None and cols.n and bool(
                (cols.versions == mv.champion).all()):
            # the champion alone (the usual case): nothing to judge, no block cutting
            return changes + self._block(mcfg, mv, cols, slice(0, cols.n), book)
        start = 0
        while start < cols.n:
            # cut at the model's block boundaries: checks see the same events however
            # the stream was batched
            stop = min(cols.n, start + BLOCK - mv.n % BLOCK)
            changes += self._block(mcfg, mv, cols, slice(start, stop), book)
            start = stop
        return changes

    def _block(self, mcfg: ModelConfig, mv: ModelVersions, cols: PredictionColumns,
               rows: slice, book: AlertBook) -> list[Alert]:
        changes: list[Alert] = []
        versions = cols.versions[rows].astype(str)
        ts = cols.ts[rows]
        err = np.asarray(cols.error[rows], dtype=bool)
        approved = mcfg.contract.approved_versions
        names, first, counts = np.unique(versions, return_index=True, return_counts=True)
        for i in np.argsort(first):
            v, k = str(names[i]), int(counts[i])
            info = mv.versions.get(v)
            if info is None:
                if len(mv.versions) >= MAX_VERSIONS:
                    mv.dropped += k
                    if v not in mv.dropped_names and len(mv.dropped_names) < MAX_DROPPED_NAMES:
                        mv.dropped_names.add(v)
                    continue
                info = mv.versions[v] = VersionInfo(approved=not approved or v in approved)
                if not info.approved:
                    changes += self._unapproved(mcfg, v, float(ts[first[i]]), book)
            at = versions == v
            info.events += k
            info.errors += int(err[at].sum())
            info.first_ts = min(info.first_ts, float(ts[at].min()))
            info.last_ts = max(info.last_ts, float(ts[at].max()))
            info.last_seen = mv.n + int(np.flatnonzero(at)[-1]) + 1
            if mv.n < mcfg.settings.reference_events:
                left = mcfg.settings.reference_events - mv.n
                mv.reference[v] += int(at[:left].sum())
        mv.n += len(versions)
        now = float(ts[-1])  # the block's last event: the same however it was batched
        if mv.n % BLOCK == 0:
            changes += self._retire(mcfg, mv, now, book)
        self._choose_champion(mcfg, mv, now)
        if mv.champion is None:
            return changes
        for v, info in mv.versions.items():
            if v != mv.champion and v not in mv.challengers and info.events:
                at = np.flatnonzero(versions == v)
                mv.challengers[v] = Challenger(v, mv.champion,
                                               started=float(ts[at[0]]) if at.size else now)
        if mv.challengers:
            self._feed(mcfg, mv, cols, rows, versions)
        if mv.n % BLOCK == 0:
            for c in list(mv.challengers.values()):
                changes += self._judge(mcfg, mv, c, now, book)
        return changes

    def _choose_champion(self, mcfg: ModelConfig, mv: ModelVersions, now: float) -> None:
        if mv.champion is not None and mv.champion in mv.versions:
            return
        want = mcfg.contract.champion
        if want is not None:
            mv.champion = want if want in mv.versions else None
            return
        live = {v: i for v, i in mv.versions.items() if i.events}
        if not live:
            return
        if mv.champion is None and mv.n < mcfg.settings.reference_events and len(live) < 2:
            return  # one version so far: nothing to compare, the reference still fills
        pool = {v: i for v, i in live.items() if i.approved} or live
        if mv.champion is None and mv.reference:
            scores = {v: mv.reference.get(v, 0) for v in pool}
        else:  # the champion stopped serving: the live version with most events
            scores = {v: i.events for v, i in pool.items()}
        mv.champion = max(sorted(scores), key=lambda v: scores[v])
        mv.challengers.pop(mv.champion, None)

    def _retire(self, mcfg: ModelConfig, mv: ModelVersions, now: float,
                book: AlertBook) -> list[Alert]:
        """Versions that stopped serving: their comparisons end and alerts resolve."""
        limit = RETIRE_WINDOWS * mcfg.settings.window_events
        changes: list[Alert] = []
        for v, info in list(mv.versions.items()):
            if mv.n - info.last_seen <= limit:
                continue
            del mv.versions[v]
            ended = [v] if v != mv.champion else list(mv.challengers)
            for cv in ended:
                c = mv.challengers.pop(cv, None)
                if c is not None:
                    changes += self._resolve_version(mcfg.name, cv, book, now,
                                                     f"{v} stopped serving")
            if v not in ended:
                changes += self._resolve_version(mcfg.name, v, book, now, f"{v} stopped serving")
            if v == mv.champion:
                mv.champion = None
        return changes

    @staticmethod
    def _resolve_version(model: str, version: str, book: AlertBook, now: float,
                         why: str) -> list[Alert]:
        out: list[Alert] = []
        for kind, feature in (("version_regression", None), ("performance_degradation", None),
                              ("prediction_drift", None),
                              ("version_regression", "unapproved_version")):
            key = (model, kind, feature, _segment(version))
            for a in book.firing():
                if (a.labels.get("kind"), a.labels.get("feature"),
                        a.labels.get("segment")) == (kind, feature, key[3]):
                    a.annotations["resolution"] = why
            out += book.resolve(key, now)
        return out

    # -- the per-event observations --------------------------------------------------
    def _feed(self, mcfg: ModelConfig, mv: ModelVersions, cols: PredictionColumns,
              rows: slice, versions: np.ndarray) -> None:
        champ = versions == mv.champion
        lat = cols.latency_ms[rows]
        err = np.asarray(cols.error[rows], dtype=bool)
        pred = cols.prediction[rows]
        cls = cols.prediction_class[rows]
        ids = cols.ids[rows]
        for c in mv.challengers.values():
            if c.champion != mv.champion:
                continue
            chal = versions == c.version
            c.events += int(chal.sum())
            if not c.calibrated:  # this block's events set scales: they are not compared
                self._calibrate(mcfg, c, lat[champ & ~err], pred[champ & ~err],
                                cls[champ & ~err], int((champ & ~err).sum()))
                continue
            for name, x in self._observations(c, lat, err, pred, cls).items():
                comp = c.metrics.get(name)
                if comp is not None:
                    comp.update(x[champ], x[chal], narrow=False)
        self._remember(mcfg, mv, ids, versions, pred, cls)

    def _calibrate(self, mcfg: ModelConfig, c: Challenger, lat: np.ndarray, pred: np.ndarray,
                   cls: np.ndarray, n: int) -> None:
        """The champion's first CALIBRATION ok events fix the scales; then the metrics
        are built (their events count from there, for both versions)."""
        c.cal_lat += [float(x) for x in lat[np.isfinite(lat)]][:CALIBRATION]
        c.cal_pred += [float(x) for x in pred[np.isfinite(pred)]][:CALIBRATION]
        c.cal_cls.update(str(x) for x in cls if x is not None)
        c.cal_n += n
        if not c.calibrated:
            return
        s = mcfg.settings
        alpha = s.alpha / SLOTS
        acc_margin = mcfg.contract.accuracy_margin or s.version_accuracy_margin
        if c.cal_lat:
            c.scales["p95"] = float(np.quantile(c.cal_lat, 0.95))
            c.metrics["latency_p50"] = Comparison(math.log(s.latency_min_ratio)
                                                  if s.latency_min_ratio > 1 else 0.01,
                                                  alpha, HIGHER)
            c.metrics["latency_p95"] = Comparison(P95_MARGIN, alpha, HIGHER, bernoulli=True)
        c.metrics["error_rate"] = Comparison(max(s.error_rate_min_increase, 1e-4), alpha,
                                             HIGHER, bernoulli=True)
        effect = max(s.drift_min_effect, 0.01)
        if c.cal_pred:
            sd = float(np.std(c.cal_pred)) or 1.0
            c.scales["sd"] = sd
            c.metrics["predictions"] = Comparison(KS_TO_SD * effect, alpha, EITHER)
            p = np.asarray(c.cal_pred)
            if mcfg.task == "binary_classification" or (
                    mcfg.task is None and bool(((p >= 0) & (p <= 1)).all())):
                c.metrics["expected_accuracy"] = Comparison(acc_margin, alpha, LOWER)
        elif c.cal_cls:
            c.scales["classes"] = [k for k, _ in c.cal_cls.most_common(MAX_CLASSES)]
            for k in c.scales["classes"]:
                c.metrics[f"class:{k}"] = Comparison(effect, alpha, EITHER, bernoulli=True)
        if mcfg.contract.agreement_min is not None:
            c.metrics["agreement"] = Comparison(acc_margin, alpha, LOWER, bernoulli=True,
                                                target=mcfg.contract.agreement_min)
        c.cal_lat, c.cal_pred, c.cal_cls = [], [], Counter()

    @staticmethod
    def _observations(c: Challenger, lat: np.ndarray, err: np.ndarray, pred: np.ndarray,
                      cls: np.ndarray) -> dict[str, np.ndarray]:
        nan = np.nan
        out: dict[str, np.ndarray] = {}
        ok = ~err & np.isfinite(lat)
        if "p95" in c.scales:
            with np.errstate(divide="ignore"):
                out["latency_p50"] = np.where(ok, np.log(np.maximum(lat, 1e-3)), nan)
            out["latency_p95"] = np.where(ok, (lat > c.scales["p95"]).astype(float), nan)
        out["error_rate"] = err.astype(float)
        if "sd" in c.scales:
            out["predictions"] = np.where(err, nan, pred / c.scales["sd"])
            out["expected_accuracy"] = np.where(err, nan, np.maximum(pred, 1 - pred))
        for k in c.scales.get("classes", ()):
            out[f"class:{k}"] = np.where(err, nan, (cls == k).astype(float))
        return out

    def _remember(self, mcfg: ModelConfig, mv: ModelVersions, ids: np.ndarray,
                  versions: np.ndarray, pred: np.ndarray, cls: np.ndarray) -> None:
        """Ids of the compared versions: a second version answering one is a shadow
        pair (agreement); a label joining one scores every version that answered."""
        active = {c.version: c for c in mv.challengers.values() if c.champion == mv.champion}
        keep = np.flatnonzero(np.isin(versions, [str(mv.champion), *active]))
        if keep.size == 0:
            return
        get = mv.ids.get
        agree: dict[str, list[float]] = {}
        for id_, v, p, k in zip(ids[keep].tolist(), versions[keep].tolist(),
                                pred[keep].tolist(), cls[keep].tolist(), strict=True):
            entry = (v, p, k)
            seen = get(id_)
            if seen is None:
                mv.ids[id_] = [entry]
                continue
            if any(e[0] == v for e in seen):
                continue
            seen.append(entry)
            # a shadow pair: the champion and a challenger answered the same id
            if v == mv.champion:
                pairs = [(active[e[0]], e) for e in seen if e[0] in active]
                champ_entry = entry
            else:
                pairs = [(active[v], entry)] if v in active else []
                champ_entry = next((e for e in seen if e[0] == mv.champion), entry)
                if champ_entry is entry:
                    pairs = []
            for c, chal_entry in pairs:
                c.pairs += 1
                if "agreement" in c.metrics:
                    agree.setdefault(c.version, []).append(
                        float(_agree(mcfg, champ_entry, chal_entry)))
        for v, xs in agree.items():
            active[v].metrics["agreement"].update(challenger=np.asarray(xs), narrow=False)
        while len(mv.ids) > MAX_IDS:
            mv.ids.popitem(last=False)
            mv.evicted += 1

    # -- labels -----------------------------------------------------------------------
    def labels(self, model: str, joined: Joined, book: AlertBook) -> list[Alert]:
        """Joined (prediction, label) pairs: accuracy or MAE per compared version."""
        mv = self.models.get(model)
        if mv is None or joined.n == 0:
            return []
        if not mv.challengers:
            mv.labels += joined.n
            return []
        mcfg = self.config.model(model)
        changes: list[Alert] = []
        # scores wait here per (challenger, metric, arm) and are added in bulk before
        # every check and at the end (sums: the order within a block changes nothing)
        pending: dict[tuple[str, str, bool], list[float]] = {}
        pop = mv.ids.pop
        for i, (id_, value, label_cls) in enumerate(zip(
                joined.ids.tolist(), joined.label.tolist(), joined.label_class.tolist(),
                strict=True)):
            mv.labels += 1
            entries = pop(id_, None)
            if entries:
                for v, num, cls in entries:
                    self._score(mcfg, mv, v, num, cls, (value, label_cls), pending)
            if mv.labels % BLOCK == 0:
                self._flush(mv, pending)
                now = float(max(joined.pred_ts[i], joined.label_ts[i]))
                for c in list(mv.challengers.values()):
                    changes += self._judge(mcfg, mv, c, now, book, labelled=True)
        self._flush(mv, pending)
        return changes

    @staticmethod
    def _flush(mv: ModelVersions, pending: dict[tuple[str, str, bool], list[float]]) -> None:
        for (version, name, is_champion), xs in pending.items():
            c = mv.challengers.get(version)
            comp = c.metrics.get(name) if c is not None else None
            if comp is not None and xs:
                arr = np.asarray(xs, dtype=np.float64)
                comp.update(arr if is_champion else None, None if is_champion else arr,
                            narrow=False)
        pending.clear()

    def _score(self, mcfg: ModelConfig, mv: ModelVersions, version: str, num: float,
               cls: str | None, label: tuple[float, Any],
               pending: dict[tuple[str, str, bool], list[float]]) -> None:
        value, label_cls = label
        regression = mcfg.task == "regression" or (
            mcfg.task is None and label_cls is None and value not in (0.0, 1.0))
        if label_cls is not None or cls is not None:
            x = float(cls is not None and cls == label_cls)
        elif regression:
            x = abs(num - value)
        elif math.isfinite(num):
            x = float((num >= 0.5) == (value >= 0.5))
        else:
            return
        name = "mae" if regression else "accuracy"
        for c in mv.challengers.values():
            if version not in (c.version, c.champion) or c.champion != mv.champion:
                continue
            if not c.calibrated:
                continue
            if name not in c.metrics and name == "mae":
                if version == c.champion:
                    c.cal_abs.append(x)
                if len(c.cal_abs) >= CALIBRATION_LABELS:
                    margin = MAE_MARGIN * (float(np.mean(c.cal_abs)) or 1.0)
                    c.metrics["mae"] = Comparison(margin, mcfg.settings.alpha / SLOTS, HIGHER)
                continue
            if name not in c.metrics:
                s = mcfg.settings
                c.metrics[name] = Comparison(
                    mcfg.contract.accuracy_margin or s.version_accuracy_margin,
                    s.alpha / SLOTS, LOWER, bernoulli=True)
            pending.setdefault((c.version, name, version == c.champion), []).append(x)

    # -- verdicts ---------------------------------------------------------------------
    def _judge(self, mcfg: ModelConfig, mv: ModelVersions, c: Challenger, now: float,
               book: AlertBook, labelled: bool = False) -> list[Alert]:
        """Read the verdicts of the metrics of one stream: the predictions' (every BLOCK
        events) or, with ``labelled``, those measured on labels (every BLOCK labels)."""
        changes: list[Alert] = []
        fresh: dict[str, list[str]] = {}
        for name, comp in c.metrics.items():
            if (name in LABELLED) != labelled:
                continue
            comp.narrow()
            v = comp.verdict
            if name in c.decided and c.decided[name][0] == WORSE:
                continue
            if v == WORSE:
                c.decided[name] = (v, now)
                fresh.setdefault(_kind(name), []).append(name)
            elif v == NO_WORSE and name not in c.decided:
                c.decided[name] = (v, now)
        findings = []
        for kind, names in fresh.items():
            if kind in c.fired:
                continue
            c.fired.append(kind)
            findings.append(self._finding(mcfg, c, kind, names, now))
        if findings:
            changes += book.update(mcfg.name, [], _attributed(findings), now=now)
        if self._no_worse(mcfg, mv, c):
            c.promoted = max(t for _, t in c.decided.values())
            changes += self._promote(mcfg, c, c.promoted)
        return changes

    @staticmethod
    def _no_worse(mcfg: ModelConfig, mv: ModelVersions, c: Challenger) -> bool:
        """No worse on every metric it has data for, after version_min_events of its
        events; a labelled model waits for its accuracy (or MAE) too -- unless its labels
        come so late that their ids were forgotten (MAX_IDS): then it goes without."""
        if c.promoted is not None or c.fired or c.events < mcfg.settings.version_min_events:
            return False
        if mv.labels and not mv.evicted and not any(n in c.metrics for n in LABELLED):
            return False
        needed = [n for n, comp in c.metrics.items() if comp.challenger.n or comp.champion.n]
        return bool(needed) and all(c.decided.get(n, ("",))[0] == NO_WORSE for n in needed)

    def _finding(self, mcfg: ModelConfig, c: Challenger, kind: str, names: list[str],
                 now: float) -> Finding:
        parts = [self._describe(n, c.metrics[n]) for n in names]
        first = c.metrics[names[0]]
        whose = "serving" if kind == "version_regression" else "model quality"
        details: dict[str, Any] = {
            "champion_version": c.champion, "challenger_version": c.version,
            "metrics": {n: _table_row(c.metrics[n]) for n in names},
            "challenger_events": c.events, **_declared(mcfg)}
        if c.pairs:
            details["shadow_pairs"] = c.pairs
        return Finding(
            kind=kind, model=mcfg.name, model_version=c.version,
            detector="confidence_sequence", statistic=first.estimate, p_value=None,
            threshold=first.alpha, reference_n=first.champion.n, current_n=first.challenger.n,
            window=(c.started, now), severity="warning", segment=_segment(c.version),
            summary=(f"{mcfg.name} {c.version} is worse than the champion {c.champion} "
                     f"serving beside it ({', '.join(names)})"),
            description=(f"Challenger {c.version} against champion {c.champion} on the same "
                         f"events since {_when(c.started)}: " + "; ".join(parts)
                         + f". Each interval holds at every time with probability >= "
                         f"{1 - first.alpha:.6g} (anytime-valid), {whose} worse beyond half "
                         "the margin."),
            details=details)

    @staticmethod
    def _describe(name: str, comp: Comparison) -> str:
        lo, hi = comp.interval
        return (f"{name} {_signed(comp.estimate)} [{_signed(lo)}, {_signed(hi)}] "
                f"(margin {comp.margin:.3g}; {comp.champion.n} vs {comp.challenger.n} events)")

    def _promote(self, mcfg: ModelConfig, c: Challenger, now: float) -> list[Alert]:
        """The resolved-style notification both teams get: promote the challenger."""
        rows = "; ".join(self._describe(n, comp) for n, comp in c.metrics.items()
                         if c.decided.get(n, ("",))[0] == NO_WORSE)
        out = []
        for kind, fault in (("version_regression", INFRA_FAULT),
                            ("performance_degradation", MODEL_FAULT)):
            f = Finding(
                kind=kind, model=mcfg.name, model_version=c.version,
                detector="confidence_sequence", statistic=0.0, p_value=None,
                threshold=mcfg.settings.alpha, reference_n=0, current_n=c.events,
                window=(c.started, now), segment=_segment(c.version),
                summary=(f"{mcfg.name} {c.version} is no worse than the champion "
                         f"{c.champion} on every metric: ready to promote"),
                description=(f"After {c.events} events of {c.version} beside {c.champion}: "
                             f"{rows}."),
                details={"champion_version": c.champion, "challenger_version": c.version,
                         "verdict": NO_WORSE, **_declared(mcfg)})
            a = to_alert(Attributed(f, fault, TEAM_FOR_FAULT[fault],
                                    f"challenger {c.version} no worse than {c.champion} within "
                                    "the contract's margins: both teams may promote it"),
                         "resolved", starts_at=c.started, ends_at=now)
            a.labels["alertname"] = "VersionNoWorse"
            a.labels["verdict"] = NO_WORSE
            out.append(a)
        return out

    def _unapproved(self, mcfg: ModelConfig, version: str, now: float,
                    book: AlertBook) -> list[Alert]:
        approved = ", ".join(mcfg.contract.approved_versions)
        f = Finding(
            kind="version_regression", model=mcfg.name, model_version=version,
            detector="contract", statistic=1.0, p_value=None, threshold=0.0, reference_n=0,
            current_n=1, window=(now, now), severity="critical",
            feature="unapproved_version", segment=_segment(version),
            summary=f"{mcfg.name} {version} serves traffic but is not an approved version",
            description=(f"The contract approves {approved}; {version} is serving. It is "
                         "compared with the champion as a challenger."),
            details={"approved_versions": list(mcfg.contract.approved_versions),
                     **_declared(mcfg)})
        return book.update(mcfg.name, [], _attributed([f]), now=now)

    # -- serving memory ---------------------------------------------------------------
    def _memory(self, mcfg: ModelConfig, mv: ModelVersions, cols: PredictionColumns,
                book: AlertBook) -> list[Alert]:
        limits = {r: getattr(mcfg.contract, k) for r, k in RESOURCE_LIMITS.items()}
        if not cols.resources or not any(v is not None for v in limits.values()):
            return []
        hosts = cols.segments.get("host")
        hw = cols.segments.get("hardware")
        touched: set[tuple[str, str]] = set()
        for r, values in cols.resources.items():
            if limits.get(r) is None:
                continue
            for i in np.flatnonzero(np.isfinite(values)):
                h = "" if hosts is None or hosts[i] is None else str(hosts[i])
                q = mv.memory.get((h, r))
                if q is None:
                    if len({k[0] for k in mv.memory} | {h}) > MAX_HOSTS:
                        mv.hosts_dropped += 1
                        continue
                    q = mv.memory[(h, r)] = deque(maxlen=MEMORY_READINGS)
                q.append(float(values[i]))
                if hw is not None and hw[i] is not None:
                    mv.hardware[h] = str(hw[i])
                touched.add((h, r))
        changes: list[Alert] = []
        now = float(cols.ts.max())
        for h, r in sorted(touched):
            q = mv.memory[(h, r)]
            limit = limits[r]
            if limit is None or len(q) < MEMORY_MIN_READINGS:
                continue
            med = float(np.median(q))
            key = (mcfg.name, "resource_usage", r, f"host={h}" if h else None)
            if med > limit and (h, r) not in mv.memory_firing:
                mv.memory_firing[(h, r)] = med
                where = f"host {h}" + (f" ({mv.hardware[h]})" if h in mv.hardware else "") \
                    if h else "the model's servers"
                f = Finding(
                    kind="resource_usage", model=mcfg.name, model_version=_last_version(cols),
                    detector="contract", statistic=med, p_value=None, threshold=limit,
                    reference_n=0, current_n=len(q), window=(now, now), severity="warning",
                    feature=r, segment=key[3],
                    summary=f"{mcfg.name} uses {med:.0f} {_unit(r)} on {where}, over the "
                            f"contract's {limit:.0f}",
                    description=(f"Median of the last {len(q)} readings of {r} on {where}: "
                                 f"{med:.0f}, above {RESOURCE_LIMITS[r]} = {limit:.0f}."),
                    details={"hardware": mv.hardware.get(h), **_declared(mcfg)})
                changes += book.update(mcfg.name, [], _attributed([f]), now=now)
            elif med <= limit and (h, r) in mv.memory_firing:
                del mv.memory_firing[(h, r)]
                changes += book.resolve(key, now)
        return changes

    # -- surfaces -----------------------------------------------------------------------
    def table(self, model: str) -> dict[str, Any] | None:
        """The comparison table of one model (``/api/models/{model}/versions``)."""
        mv = self.models.get(model)
        if mv is None:
            return None
        mcfg = self.config.model(model)
        total = sum(i.events for i in list(mv.versions.values())) or 1
        return {
            "model": model, "champion": mv.champion, **_declared(mcfg),
            "approved_versions": list(mcfg.contract.approved_versions),
            "versions": {v: {"events": i.events, "share": i.events / total,
                             "error_rate": i.errors / i.events if i.events else None,
                             "approved": i.approved, "first_ts": _fin(i.first_ts),
                             "last_ts": _fin(i.last_ts)}
                         for v, i in list(mv.versions.items())},
            "comparisons": [{
                "challenger": c.version, "champion": c.champion,
                "mode": "shadow" if c.pairs else "split", "started": c.started,
                "events": c.events, "shadow_pairs": c.pairs, "verdict": c.verdict(),
                "calibrating": not c.calibrated,
                "metrics": {n: {**_table_row(comp),
                                "verdict": c.decided.get(n, (comp.verdict,))[0]}
                            for n, comp in list(c.metrics.items())},
            } for c in list(mv.challengers.values())],
            "memory": {f"{h or '*'}/{r}": {"median": float(np.median(q)), "readings": len(q),
                                           "hardware": mv.hardware.get(h)}
                       for (h, r), q in list(mv.memory.items()) if q},
            "dropped": {"versions": len(mv.dropped_names), "events": mv.dropped,
                        "ids_evicted": mv.evicted, "hosts": mv.hosts_dropped},
        }

    def samples(self) -> Iterable[tuple[str, ModelVersions]]:
        return list(self.models.items())

    def to_state(self) -> dict[str, Any]:
        return {k: v.to_state() for k, v in self.models.items()}

    def load_state(self, s: dict[str, Any] | None) -> None:
        self.models = {k: ModelVersions.from_state(v) for k, v in (s or {}).items()}


def model_metadata(mcfg: ModelConfig, watch: VersionWatch) -> dict[str, Any]:
    """What ``/api/models`` shows of a model's contract and versions."""
    mv = watch.models.get(mcfg.name)
    return {**_declared(mcfg), "approved_versions": list(mcfg.contract.approved_versions),
            "champion": mv.champion if mv is not None else None,
            "versions": sorted(mv.versions) if mv is not None else []}


def models_handler(models: Callable[[], dict[str, Any]],
                   table: Callable[[str], dict[str, Any] | None]
                   ) -> Callable[[str, str, bytes, Any], tuple[int, Any]]:
    """The ``/api/models`` handler of the HTTP server: ``GET /api/models`` (every model)
    and ``GET /api/models/{model}/versions`` (its comparison table).  Reads only: the
    caller (``monitor.webauth.Caller``) is not needed."""
    def handle(method: str, rest: str, body: bytes, caller: Any = None) -> tuple[int, Any]:
        if method != "GET":
            return 405, {"error": "method not allowed"}
        if rest == "":
            return 200, models()
        model, _, what = rest.rpartition("/")
        if what != "versions" or not model:
            return 404, {"error": "not found"}
        t = table(unquote(model))
        return (200, t) if t is not None else (404, {"error": f"unknown model {model!r}"})
    return handle


def format_table(t: dict[str, Any]) -> str:
    """A model's comparison table for a person (``driftwatch versions``)."""
    declared = ", ".join(str(x) for x in (t.get("framework"), t.get("parameter_count")
                                           and f"{t['parameter_count']:,} parameters") if x)
    head = f"{t['model']}: champion {t['champion'] or '(none yet)'}"
    if declared:
        head += f" ({declared})"
    if t["approved_versions"]:
        head += f"; approved: {', '.join(t['approved_versions'])}"
    lines = [head, f"  {'version':16} {'events':>9} {'share':>7} {'errors':>8}  approved"]
    for v, r in t["versions"].items():
        er = "-" if r["error_rate"] is None else f"{r['error_rate']:.4f}"
        lines.append(f"  {v:16} {r['events']:9d} {r['share']:7.1%} {er:>8}  "
                     f"{'yes' if r['approved'] else 'NO'}")
    for c in t["comparisons"]:
        state = "calibrating" if c["calibrating"] else c["verdict"]
        lines.append(f"  challenger {c['challenger']} vs {c['champion']} ({c['mode']}, "
                     f"{c['events']} events since {_when(c['started'])}): {state}")
        lines.append(f"    {'metric':18} {'estimate':>10} {'lower':>10} {'upper':>10} "
                     f"{'margin':>8}  verdict")
        for name, m in c["metrics"].items():
            cells = [_cell(m[k]) for k in ("estimate", "lower", "upper")]
            lines.append(f"    {name:18} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} "
                         f"{m['margin']:8.3g}  {m['verdict']}")
    for where, m in t["memory"].items():
        lines.append(f"  memory {where}: median {m['median']:.0f} over {m['readings']} readings"
                     + (f" ({m['hardware']})" if m["hardware"] else ""))
    d = t["dropped"]
    if any(d.values()):
        lines.append(f"  dropped: {d['versions']} versions ({d['events']} events) past the cap, "
                     f"{d['ids_evicted']} ids evicted, {d['hosts']} host readings")
    return "\n".join(lines)


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{x:+.4g}"


def _agree(mcfg: ModelConfig, a: tuple[str, float, str | None],
           b: tuple[str, float, str | None]) -> bool:
    """Do two versions' outputs for one id agree?  Classes: equal; binary scores: the
    same side of 0.5; regression values: within 5 % of each other."""
    if a[2] is not None or b[2] is not None:
        return a[2] == b[2]
    x, y = a[1], b[1]
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    if mcfg.task != "regression" and 0 <= x <= 1 and 0 <= y <= 1:
        return (x >= 0.5) == (y >= 0.5)
    return abs(x - y) <= 0.05 * max(abs(x), abs(y), 1e-12)


def _attributed(findings: list[Finding]) -> list[Attributed]:
    return attribute(findings)


def _declared(mcfg: ModelConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if mcfg.contract.framework is not None:
        out["framework"] = mcfg.contract.framework
    if mcfg.contract.parameter_count is not None:
        out["parameter_count"] = mcfg.contract.parameter_count
    return out


def declared_annotation(mcfg: ModelConfig) -> str | None:
    """``"xgboost, 120000 parameters"``: the model's declared metadata, for alerts."""
    d = _declared(mcfg)
    parts = [str(d["framework"])] if "framework" in d else []
    if "parameter_count" in d:
        parts.append(f"{d['parameter_count']:,} parameters")
    return ", ".join(parts) or None


def _table_row(comp: Comparison) -> dict[str, Any]:
    lo, hi = comp.interval
    return {"estimate": _fin(comp.estimate) if comp.challenger.n else None,
            "lower": _fin(lo), "upper": _fin(hi), "margin": comp.margin,
            "champion_n": comp.champion.n, "challenger_n": comp.challenger.n}


def _signed(x: float) -> str:
    return f"{x:+.3g}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _when(ts: float) -> str:
    return str(rfc3339(ts))


def _unit(resource: str) -> str:
    return "MB" + (" of GPU memory" if resource.startswith("gpu") else "")


def _last_version(cols: PredictionColumns) -> str:
    return str(cols.versions[-1]) if cols.n else "unknown"


class VersionCollector(Collector):
    """Per-version gauges and counters, read at scrape time (bounded: MAX_VERSIONS
    versions per model, a fixed set of metrics per comparison, MAX_HOSTS hosts)."""

    def __init__(self, samples: Any) -> None:
        self._samples = samples

    def collect(self) -> Iterable[Any]:
        events = CounterMetricFamily("driftwatch_version_events",
                                     "Prediction events per tracked model version.",
                                     labels=["model", "model_version"])
        role = GaugeMetricFamily("driftwatch_version_champion",
                                 "1 for the champion version, 0 for challengers.",
                                 labels=["model", "model_version"])
        bound = GaugeMetricFamily(
            "driftwatch_version_difference",
            "Challenger minus champion per metric: estimate and anytime-valid bounds.",
            labels=["model", "model_version", "metric", "bound"])
        verdict = GaugeMetricFamily(
            "driftwatch_version_verdict",
            "1 on the challenger's current verdict (worse, no_worse, pending).",
            labels=["model", "model_version", "verdict"])
        dropped = CounterMetricFamily(
            "driftwatch_versions_dropped",
            "Events of versions past the per-model cap, not tracked.", labels=["model"])
        memory = GaugeMetricFamily("driftwatch_serving_memory_mb",
                                   "Median of the latest serving-memory readings per host.",
                                   labels=["model", "host", "resource"])
        for model, mv in self._samples():
            for v, info in list(mv.versions.items()):
                events.add_metric([model, v], info.events)
                role.add_metric([model, v], 1.0 if v == mv.champion else 0.0)
            for c in list(mv.challengers.values()):
                for vd in (WORSE, NO_WORSE, "pending"):
                    verdict.add_metric([model, c.version, vd], 1.0 if c.verdict() == vd else 0.0)
                for name, comp in list(c.metrics.items()):
                    row = _table_row(comp)
                    for b, key in (("estimate", "estimate"), ("lower", "lower"),
                                   ("upper", "upper")):
                        if row[key] is not None:
                            bound.add_metric([model, c.version, name, b], row[key])
            dropped.add_metric([model], mv.dropped)
            for (h, r), q in list(mv.memory.items()):
                if q:
                    memory.add_metric([model, h, r], float(np.median(q)))
        yield from (events, role, bound, verdict, dropped, memory)
