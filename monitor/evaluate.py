"""One window of one model against its reference: every test, one budget.

Each closed window runs every applicable detector (feature drift, prediction
drift, latency, error rate, and the model's contract).  The window's tests
form one family: Holm's step-down procedure keeps the probability that a
stationary window raises *anything* at or below ``settings.alpha``.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from alerts.model import Finding
from detectors.budget import holm
from detectors.categorical import category_counts, chi2_test
from detectors.distance import (
    ad_test,
    categorical_js_test,
    categorical_psi_test,
    cvm_test,
    hellinger_test,
    js_test,
    psi_test,
    tv_test,
    wasserstein_test,
)
from detectors.latency import latency_contract_test, latency_test
from detectors.multivariate import PcaReference, mmd_test, pca_reconstruction_test
from detectors.numeric import SortedSample, ks_test
from detectors.performance import cbpe_test
from detectors.quality import (
    null_rate_test,
    out_of_range_test,
    stuck_value_test,
)
from detectors.rates import error_rate_contract_test, error_rate_test
from detectors.result import TestResult
from monitor.batch import PredictionColumns
from monitor.config.types import ModelConfig
from monitor.localize import CONFINED, GLOBAL, MAX_SEGMENT_VALUES, localise, testable
from monitor.schema import presence, schema_findings

Key = tuple[str, str, str | None, str | None]
DriftTest = Callable[[np.ndarray, np.ndarray, float], TestResult]

# Window drift detectors by config name; each gets the model's drift floor where
# the floor is on the same scale (KS distance, total variation), else its own.
NUMERIC_DRIFT: dict[str, DriftTest] = {
    "ks": lambda r, c, floor: ks_test(r, c, min_effect=floor),
    "cvm": lambda r, c, floor: cvm_test(r, c),
    "ad": lambda r, c, floor: ad_test(r, c),
    "wasserstein": lambda r, c, floor: wasserstein_test(r, c),
    "psi": lambda r, c, floor: psi_test(r, c),
    "js": lambda r, c, floor: js_test(r, c),
    "hellinger": lambda r, c, floor: hellinger_test(r, c),
}
CATEGORICAL_DRIFT: dict[str, DriftTest] = {
    "chi2": lambda r, c, floor: chi2_test(r, c, min_effect=floor),
    "tv": lambda r, c, floor: tv_test(r, c, min_effect=floor),
    "psi": lambda r, c, floor: categorical_psi_test(r, c),
    "js": lambda r, c, floor: categorical_js_test(r, c),
}
JOINT_DRIFT = ("pca", "mmd", "off")


@dataclass
class Evaluation:
    """What one window concluded: the keys it tested and the findings it raised."""

    model: str
    window: tuple[float, float]
    n: int
    evaluated: list[Key] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    results: list[tuple[Key, TestResult]] = field(default_factory=list)


@dataclass
class _Test:
    kind: str
    feature: str | None
    result: TestResult
    describe: Callable[[TestResult], tuple[str, str]]
    severity: str = "warning"


def dominant_version(versions: np.ndarray) -> str:
    """The most frequent model_version in a batch or window (the first in sorted
    order among equally frequent ones)."""
    counted = Counter(versions.tolist())
    # str as numpy's unicode arrays hold them (no trailing NUL): np.unique's answer
    if counted and all(type(v) is str and not v.endswith("\0") for v in counted):
        return min(counted.items(), key=lambda vc: (-vc[1], vc[0]))[0]
    vals, counts = np.unique(versions.astype(str), return_counts=True)
    return str(vals[int(np.argmax(counts))]) if vals.size else "unknown"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _drift_text(kind: str, what: str, model: str) -> Callable[[TestResult], tuple[str, str]]:
    def text(r: TestResult) -> tuple[str, str]:
        d = r.details
        if r.detector == "ks":
            change = (f"mean {_fmt(d['ref_mean'])} → {_fmt(d['cur_mean'])}, "
                      f"std {_fmt(d['ref_std'])} → {_fmt(d['cur_std'])}")
        elif r.detector in ("chi2", "tv"):
            change = f"total variation {_fmt(r.effect)}"
        elif r.detector == "pca_reconstruction":
            change = (f"reconstruction error off the reference's {d['components']} principal "
                      f"components up {r.effect:.0%} across {d['features']} numeric features: "
                      "how they move together changed")
        elif r.detector == "mmd":
            change = f"joint distribution of the numeric features, MMD² {_fmt(r.effect)}"
        else:
            change = f"{r.detector} effect {_fmt(r.effect)}"
        if d.get("new_categories"):
            change += f", new categories {d['new_categories']}"
        label = "Input" if kind == "data_drift" else "Prediction"
        return (f"{label} drift in {what} of {model}",
                f"{what} of {model} moved away from its reference ({change}; "
                f"{r.detector} statistic {_fmt(r.statistic)}, p={r.p_value:.2g}).")
    return text


def _latency_text(model: str) -> Callable[[TestResult], tuple[str, str]]:
    def text(r: TestResult) -> tuple[str, str]:
        d = r.details
        if r.detector == "latency_contract":
            return (f"{model} breaks its latency contract",
                    f"p95 latency {_fmt(d.get('cur_p95', float('nan')))} ms exceeds the "
                    f"contract of {_fmt(d.get('p95_max_ms', float('nan')))} ms.")
        return (f"{model} serves slower than its reference",
                f"latency p50 {_fmt(d['ref_p50'])} → {_fmt(d['cur_p50'])} ms, p95 "
                f"{_fmt(d['ref_p95'])} → {_fmt(d['cur_p95'])} ms, p99 {_fmt(d['ref_p99'])} → "
                f"{_fmt(d['cur_p99'])} ms ({d.get('subtest', 'shift')} test, "
                f"p={r.p_value:.2g}).")
    return text


def _error_text(model: str) -> Callable[[TestResult], tuple[str, str]]:
    def text(r: TestResult) -> tuple[str, str]:
        d = r.details
        if r.detector == "error_rate_contract":
            return (f"{model} breaks its error-rate contract",
                    f"error rate {d['cur_rate']:.2%} exceeds the contract of "
                    f"{d['max_rate']:.2%}.")
        return (f"{model} fails more requests than its reference",
                f"error rate {d['ref_rate']:.2%} → {d['cur_rate']:.2%} (p={r.p_value:.2g}).")
    return text


# A numeric feature is "stuck" when one exact value it (almost) never took in the
# reference -- a default like 0 or -1 -- gains 10 points of share.  Categorical
# features have no stuck test: a category gaining share is drift (chi-square).
STUCK_MIN_SHARE = 0.10
STUCK_MAX_REF_SHARE = 0.01
# ... and dominates the rows: seen this many times as often as any other value.  In the
# 50-odd rows of a CUSUM's excursion over a shifted world a rounded value seen 5 times
# against others seen 3 or 4 is a tenth of them by chance, not a stuck default
STUCK_DOMINANCE = 3
# Out of range means broken units or sentinels, not a shifted world: a fifth of the
# window beyond the reference's 0.1 %-99.9 % range widened by its own width on each
# side (N(0, 1): beyond +-9.3).  A world that moved by 4 sigma is drift, not a broken
# feed; a value in other units (x1000, seconds for ms) is far out.
OUT_OF_RANGE_MIN_INCREASE = 0.20
OUT_OF_RANGE_MARGIN = 1.0


def _nulls(values: np.ndarray) -> int:
    if values.dtype == object:
        return int(np.equal(values, np.asarray(None, dtype=object)).sum())
    return int(np.isnan(values).sum())


def _dominates(values: np.ndarray | SortedSample) -> bool:
    """Is the most frequent finite value seen STUCK_DOMINANCE times as often as the next?"""
    _, counts = (values if isinstance(values, SortedSample) else SortedSample.of(values)).runs
    if counts.size < 2:
        return counts.size == 1
    top2 = np.sort(counts)[-2:]
    return bool(top2[1] >= STUCK_DOMINANCE * top2[0])


def quality_results(ref: np.ndarray, cur: np.ndarray, *,
                    range_margin: float = OUT_OF_RANGE_MARGIN,
                    reference: FeatureReference | None = None,
                    cur_sorted: SortedSample | None = None) -> list[TestResult]:
    """Data-quality tests of one feature: null spikes, stuck values, out-of-range floods
    (beyond the reference's range widened by ``range_margin`` of its width each side).
    ``reference`` (``ref`` prepared) and ``cur_sorted`` (``cur`` sorted) spare the work."""
    ref_nulls = reference.nulls if reference is not None else _nulls(ref)
    results = [null_rate_test(ref_nulls, ref.size, _nulls(cur), cur.size)]
    if ref.dtype != object:
        rs = reference.sample if reference is not None and reference.sample is not None \
            else SortedSample.of(ref)
        cs = cur_sorted if cur_sorted is not None else SortedSample.of(cur)
        stuck = stuck_value_test(rs, cs, min_share=STUCK_MIN_SHARE)
        if stuck.insufficient or stuck.details.get("ref_share", 1.0) < STUCK_MAX_REF_SHARE:
            if not stuck.insufficient and not _dominates(cs):
                stuck = replace(stuck, p_value=1.0)  # no value stands out: not stuck
            results.append(stuck)
        results.append(out_of_range_test(rs, cs, min_increase=OUT_OF_RANGE_MIN_INCREASE,
                                         margin=range_margin))
    return results


@dataclass(frozen=True, eq=False)
class FeatureReference:
    """One reference column as the window tests read it: its nulls, and its finite
    values sorted (numeric) or its category counts (categorical)."""

    nulls: int
    sample: SortedSample | None = None
    counts: dict[str, int] | None = None

    @classmethod
    def numeric(cls, values: np.ndarray) -> FeatureReference:
        return cls(_nulls(values), sample=SortedSample.of(values))

    @classmethod
    def categorical(cls, values: np.ndarray) -> FeatureReference:
        return cls(_nulls(values), counts=category_counts(values))


class PreparedReference:
    """What the window tests read of one reference, each part computed at its first
    use and kept for every later window (:func:`prepare`).  A cache: never part of a
    checkpoint; it refers to its reference weakly, so it never keeps one alive.

    It holds a sorted copy of each numeric column, the predictions and the latencies
    (8 bytes a row each; the CUSUMs read the same arrays: monitor.sequential) and the
    PCA test's held-out errors (4 bytes a row); the rest is a few numbers per column.
    """

    def __init__(self, ref: PredictionColumns) -> None:
        self._ref = weakref.ref(ref)
        self.joint: dict[tuple[str, ...], PcaReference] = {}

    @property
    def ref(self) -> PredictionColumns:
        ref = self._ref()
        if ref is None:  # pragma: no cover - the cache entry goes with its reference
            raise RuntimeError("the prepared reference outlived its reference")
        return ref

    @cached_property
    def numeric(self) -> dict[str, FeatureReference]:
        return {f: FeatureReference.numeric(v) for f, v in self.ref.numeric.items()}

    @cached_property
    def categorical(self) -> dict[str, FeatureReference]:
        return {f: FeatureReference.categorical(v) for f, v in self.ref.categorical.items()}

    @cached_property
    def prediction(self) -> SortedSample:
        """Finite predictions (none: a classifier's labels)."""
        return SortedSample.of(self.ref.prediction)

    @cached_property
    def prediction_classes(self) -> dict[str, int] | None:
        """Counts of the predicted classes; None when no row has one."""
        classes = self.ref.prediction_class
        return category_counts(classes) if any(v is not None for v in classes) else None

    @cached_property
    def latency(self) -> SortedSample:
        return SortedSample.of(self.ref.latency_ms)

    @cached_property
    def errors(self) -> int:
        return int(self.ref.error.sum())

    @cached_property
    def versions(self) -> frozenset[str]:
        return frozenset(self.ref.versions.astype(str).tolist())

    @cached_property
    def presence(self) -> dict[str, float]:
        """monitor.schema's share of rows with each feature."""
        return presence(self.ref)

    def pca(self, joint: list[str]) -> PcaReference:
        """The PCA test's fit of the reference's columns ``joint``."""
        key = tuple(joint)
        fitted = self.joint.get(key)
        if fitted is None:
            ref = self.ref
            fitted = PcaReference.fit(np.column_stack([ref.numeric[f] for f in joint]))
            self.joint[key] = fitted
        return fitted


# id of a reference -> its prepared form, dropped when the reference is collected (a
# rebuilt reference is a new object); references are never written after they fill
_PREPARED: dict[int, tuple[int, PreparedReference]] = {}


def prepare(ref: PredictionColumns) -> PreparedReference:
    """The prepared form of ``ref`` (one per reference object, for as long as it lives)."""
    key = id(ref)
    hit = _PREPARED.get(key)
    if hit is not None and hit[0] == ref.n:
        return hit[1]
    prep = PreparedReference(ref)
    if hit is None:
        weakref.finalize(ref, _PREPARED.pop, key, None)
    _PREPARED[key] = (ref.n, prep)
    return prep


def _quality_text(feat: str, model: str) -> Callable[[TestResult], tuple[str, str]]:
    def text(r: TestResult) -> tuple[str, str]:
        d = r.details
        if r.detector == "null_rate":
            what = f"null rate {d['ref_rate']:.1%} → {d['cur_rate']:.1%}"
        elif r.detector == "stuck_value":
            what = (f"value {d['value']!r} went from {d['ref_share']:.1%} to "
                    f"{d['cur_share']:.1%} of events")
        else:
            what = (f"{d['cur_share']:.1%} of values outside the reference range "
                    f"[{d['low']:.3g}, {d['high']:.3g}]")
        return (f"Data-quality break in '{feat}' of {model}",
                f"'{feat}' of {model}: {what} ({r.detector}, p={r.p_value:.2g}).")
    return text


def _cbpe_text(model: str) -> Callable[[TestResult], tuple[str, str]]:
    def text(r: TestResult) -> tuple[str, str]:
        d = r.details
        return (f"{model} is less sure of its predictions: estimated accuracy fell",
                f"accuracy estimated from {model}'s own probabilities (CBPE, no labels; it "
                f"assumes they are calibrated) {d['ref_value']:.1%} → {d['cur_value']:.1%} "
                f"(Welch test, p={r.p_value:.2g}); the scores moved towards the threshold.")
    return text


def _probabilities(v: np.ndarray) -> np.ndarray | None:
    """A binary classifier's probabilities, or None if any finite value is not one."""
    p = v[np.isfinite(v)]
    return p if p.size and bool(((p >= 0) & (p <= 1)).all()) else None


def _tests(model: ModelConfig, ref: PredictionColumns, cur: PredictionColumns,
           task: str | None = None, prep: PreparedReference | None = None) -> list[_Test]:
    s, name = model.settings, model.name
    p = prep if prep is not None else PreparedReference(ref)
    tests: list[_Test] = []
    cur_sorted = {f: SortedSample.of(v) for f, v in cur.numeric.items() if f in ref.numeric}
    for feat, values in ref.numeric.items():
        if feat in cur.numeric:
            text = _drift_text("data_drift", f"'{feat}'", name)
            sample = p.numeric[feat].sample
            assert sample is not None
            tests += [_Test("data_drift", feat,
                            ks_test(sample, cur_sorted[feat], min_effect=s.drift_min_effect)
                            if d == "ks" else
                            NUMERIC_DRIFT[d](values, cur.numeric[feat], s.drift_min_effect),
                            text) for d in s.numeric_drift]
    for feat, values in ref.categorical.items():
        if feat in cur.categorical:
            text = _drift_text("data_drift", f"'{feat}'", name)
            counts = p.categorical[feat].counts
            assert counts is not None
            tests += [_Test("data_drift", feat,
                            chi2_test(counts, cur.categorical[feat],
                                      min_effect=s.drift_min_effect)
                            if d == "chi2" else
                            CATEGORICAL_DRIFT[d](values, cur.categorical[feat],
                                                 s.drift_min_effect),
                            text) for d in s.categorical_drift]
    joint = sorted(f for f in ref.numeric if f in cur.numeric)
    if s.joint_drift != "off" and len(joint) >= 2:
        cm = np.column_stack([cur.numeric[f] for f in joint])
        if s.joint_drift == "pca":
            r = pca_reconstruction_test(p.pca(joint), cm)
        else:
            r = mmd_test(np.column_stack([ref.numeric[f] for f in joint]), cm)
        tests.append(_Test("data_drift", None, r,
                           _drift_text("data_drift", "the numeric features", name)))
    for feats, cur_feats, prepared in ((ref.numeric, cur.numeric, p.numeric),
                                       (ref.categorical, cur.categorical, p.categorical)):
        for feat, values in feats.items():
            if feat in cur_feats:
                tests += [_Test("data_quality", feat, r, _quality_text(feat, name))
                          for r in quality_results(values, cur_feats[feat],
                                                   reference=prepared[feat],
                                                   cur_sorted=cur_sorted.get(feat)
                                                   if feats is ref.numeric else None)]
    pred_text = _drift_text("prediction_drift", "the predictions", name)
    if p.prediction.size:
        r = ks_test(p.prediction, cur.prediction, min_effect=s.drift_min_effect)
        tests.append(_Test("prediction_drift", None, r, pred_text))
        if task == "binary_classification":
            ref_p, cur_p = _probabilities(ref.prediction), _probabilities(cur.prediction)
            if ref_p is not None and cur_p is not None:
                tests.append(_Test("prediction_drift", None, cbpe_test(ref_p, cur_p),
                                   _cbpe_text(name)))
    elif p.prediction_classes is not None:
        r = chi2_test(p.prediction_classes, cur.prediction_class,
                      min_effect=s.drift_min_effect)
        tests.append(_Test("prediction_drift", None, r, pred_text))
    cur_lat = cur.latency_ms
    if p.latency.size:
        lat_text = _latency_text(name)
        tests.append(_Test("latency_regression", None,
                           latency_test(p.latency, cur_lat, min_ratio=s.latency_min_ratio),
                           lat_text))
        if model.contract.latency_p95_ms is not None:
            r = latency_contract_test(cur_lat, p95_max_ms=model.contract.latency_p95_ms)
            tests.append(_Test("latency_regression", None, r, lat_text, "critical"))
    err_text = _error_text(name)
    tests.append(_Test("error_rate", None, error_rate_test(
        p.errors, ref.n, int(cur.error.sum()), cur.n,
        min_increase=s.error_rate_min_increase), err_text))
    if model.contract.error_rate_max is not None:
        r = error_rate_contract_test(int(cur.error.sum()), cur.n,
                                     max_rate=model.contract.error_rate_max)
        tests.append(_Test("error_rate", None, r, err_text, "critical"))
    return tests


def _localize(model: ModelConfig, ref: PredictionColumns, cur: PredictionColumns,
              ev: Evaluation) -> None:
    """Drift shown confined to one segment becomes that segment's finding (an
    infrastructure fault; :mod:`monitor.localize`); drift shown in every segment says
    so.  Each tested feature's per-segment keys count as evaluated, so a segment alert
    resolves once the segment is clean again."""
    if not cur.segments:
        return
    groups = {k: testable(v) for k, v in sorted(cur.segments.items())}
    segs = {k: cur.segments[k] for k, (_, n) in groups.items() if n <= MAX_SEGMENT_VALUES}
    tested = sorted({k[2] for k in ev.evaluated if k[1] == "data_drift" and k[2] is not None})
    ev.evaluated += [(model.name, "data_drift", f, f"{k}={v}") for f in tested
                     for k in segs for v in groups[k][0]]
    if any(k[1] == "prediction_drift" for k in ev.evaluated):  # the outputs' segment alerts
        ev.evaluated += [(model.name, "prediction_drift", None, f"{k}={v}")
                         for k in segs for v in groups[k][0]]
    for i, f in enumerate(ev.findings):
        if f.kind != "data_drift" or f.feature is None:
            continue
        ref_v = ref.numeric.get(f.feature, ref.categorical.get(f.feature))
        cur_v = cur.numeric.get(f.feature, cur.categorical.get(f.feature))
        if ref_v is None or cur_v is None:
            continue
        loc = localise(ref_v, cur_v, segs, floor=model.settings.drift_min_effect)
        if loc.verdict == CONFINED:
            ev.findings[i] = replace(f, segment=loc.segment, details={**f.details, **loc.details},
                                     description=f"{f.description} {confined_text(loc.details)}")
        elif loc.verdict == GLOBAL:
            ev.findings[i] = replace(f, details={**f.details, "localisation": GLOBAL},
                                     description=f"{f.description} Every segment drifts.")
    # outputs and the joint distribution that move only because one replica's inputs did
    # are that replica's symptom, when every input drift of the window is confined to it
    feature_drift = [f for f in ev.findings if f.kind == "data_drift" and f.feature is not None]
    where = {f.segment for f in feature_drift}
    if len(where) == 1 and None not in where:
        segment = next(iter(where))
        inputs = ", ".join(sorted(f"'{f.feature}'" for f in feature_drift))
        for i, f in enumerate(ev.findings):
            if f.kind in ("prediction_drift", "data_drift") and f.feature is None:
                # the outputs' alert is that segment's (as the CUSUM on them finds it)
                ev.findings[i] = replace(
                    f, segment=segment if f.kind == "prediction_drift" else None,
                    details={**f.details, "symptom_of": segment, "symptom_inputs": inputs})


def confined_text(loc: Mapping[str, Any]) -> str:
    """Why a drift is called confined, in the evidence's own figures."""
    return (f"Only {loc['segment']} drifts: it differs from the other segments in the same "
            f"rows (p={loc['peers_p_value']:.2g}), and they are within "
            f"{loc['peers_distance_bound']:.3g} of the reference (below "
            f"{loc['peers_limit']:.3g}: {', '.join(loc['stable_segments'])} match it).")


def evaluate_window(model: ModelConfig, ref: PredictionColumns, cur: PredictionColumns,
                    task: str | None = None) -> Evaluation:
    """Test ``cur`` against ``ref`` under the model's family-wise budget, and check
    its schema (wrong-typed values: the window's own rows, ``cur.mismatched``).
    ``task`` (the configured one by default) enables the label-free
    accuracy estimate of binary classifiers."""
    window = (float(np.min(cur.ts)), float(np.max(cur.ts)))
    ev = Evaluation(model.name, window, cur.n)
    if cur.n < model.settings.min_window_events:
        return ev
    prep = prepare(ref)
    tests = [t for t in _tests(model, ref, cur, task or model.task, prep)
             if not t.result.insufficient]
    rejected = holm([t.result.p_value for t in tests], model.settings.alpha)
    version = dominant_version(cur.versions)
    new_version = version if version not in prep.versions else None
    best: dict[Key, tuple[_Test, TestResult]] = {}
    for t, rej in zip(tests, rejected, strict=True):
        key: Key = (model.name, t.kind, t.feature, None)
        if key not in ev.evaluated:
            ev.evaluated.append(key)
        ev.results.append((key, t.result))
        if rej and t.result.effect >= t.result.min_effect:
            prev = best.get(key)
            if prev is None or t.result.p_value < prev[1].p_value:
                best[key] = (t, t.result)
    for key, (t, r) in best.items():
        summary, description = t.describe(r)
        details = dict(r.details)
        if new_version is not None:
            details["new_version"] = new_version
        ev.findings.append(Finding(
            kind=t.kind, model=model.name, model_version=version, detector=r.detector,
            statistic=float(r.statistic), p_value=float(r.p_value),
            threshold=model.settings.alpha, reference_n=r.reference_n, current_n=r.current_n,
            window=window, summary=summary, description=description, severity=t.severity,
            feature=key[2], details=details,
        ))
    _localize(model, ref, cur, ev)
    keys, broken = schema_findings(model.name, version, ref, cur, window, prep.presence)
    ev.evaluated += [k for k in keys if k not in ev.evaluated]
    # a schema break is the cause of the nulls it leaves behind: one alert, not two
    gone = {f.feature for f in broken}
    ev.findings = [f for f in ev.findings
                   if not (f.kind == "data_quality" and f.feature in gone)] + broken
    # joint drift in a window with a broken feed is the break's symptom, not a changed world
    if any(f.kind in ("data_quality", "schema_violation") for f in ev.findings):
        ev.findings = [f for f in ev.findings
                       if not (f.kind == "data_drift" and f.feature is None)]
    return ev
