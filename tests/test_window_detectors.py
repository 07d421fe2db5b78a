"""The window's drift detectors as the daemon runs them: configurable per model,
one joint test across features, one Holm family, and silent on stationary data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.app import build
from monitor.batch import DecodedBatch, PredictionColumns
from monitor.config.load import ConfigError, parse_config
from monitor.config.types import Config, ModelConfig, MonitorSettings
from monitor.evaluate import dominant_version, evaluate_window

CATS = np.array(["a", "b", "c"], dtype=object)


def columns(lo: int, n: int, rng: np.random.Generator, *, rho: float = 0.8,
            shift: float = 0.0) -> PredictionColumns:
    z0, z1 = rng.normal(size=n), rng.normal(size=n)
    x0 = z0 + shift
    x1 = rho * z0 + np.sqrt(1 - rho * rho) * z1
    idx = np.arange(lo, lo + n)
    return PredictionColumns(
        model="m", ts=1.7e9 + idx * 0.5, ids=idx.astype(str).astype(object),
        versions=np.full(n, "v1", dtype=object), prediction=rng.random(n),
        prediction_class=np.full(n, None, dtype=object),
        latency_ms=rng.lognormal(3.5, 0.3, n), error=rng.random(n) < 0.01,
        numeric={"x0": x0, "x1": x1, "x2": rng.normal(size=n)},
        categorical={"c": rng.choice(CATS, size=n, p=[0.5, 0.3, 0.2])})


def firing(settings: MonitorSettings, change_at: int, n: int, seed: int = 0, **change):
    app = build(Config(defaults=settings), registry=CollectorRegistry(), notify=False)
    rng = np.random.default_rng(seed)
    out = []
    for lo in range(0, n, 1_000):
        kw = change if lo >= change_at else {}
        batch = DecodedBatch(predictions={"m": columns(lo, 1_000, rng, **kw)})
        out += [a for a in app.pipeline.process(batch) if a.status == "firing"]
    return out


def test_a_correlation_flip_invisible_per_feature_is_joint_drift_for_data_science():
    alerts = firing(MonitorSettings(), change_at=9_000, n=20_000, rho=-0.8)
    drift = [a for a in alerts if a.labels["kind"] == "data_drift"]
    assert drift, [a.labels for a in alerts]
    joint = drift[0]
    assert "feature" not in joint.labels or joint.labels["feature"] in (None, "")
    assert joint.labels["team"] == "data-science"
    assert "move together" in joint.annotations["description"]
    assert joint.evidence["detector"] == "pca_reconstruction"
    # with the joint test off nothing sees it: the marginals did not move
    off = firing(MonitorSettings(joint_drift="off"), change_at=9_000, n=20_000, rho=-0.8)
    assert not [a for a in off if a.labels["kind"] == "data_drift"]


@pytest.mark.parametrize("detector", ["ks", "cvm", "ad", "wasserstein", "psi", "js", "hellinger"])
def test_any_numeric_detector_can_run_the_windows(detector):
    rng = np.random.default_rng(1)
    model = ModelConfig("m", settings=MonitorSettings(numeric_drift=(detector,),
                                                      joint_drift="off"))
    ref = columns(0, 5_000, rng)
    quiet = evaluate_window(model, ref, columns(5_000, 2_000, rng))
    assert quiet.findings == []
    assert {r.detector for k, r in quiet.results if k[2] == "x0"} == {detector, "null_rate",
                                                                       "stuck_value",
                                                                       "out_of_range"}
    ev = evaluate_window(model, ref, columns(7_000, 2_000, rng, shift=0.5))
    [f] = ev.findings
    assert (f.kind, f.feature, f.detector) == ("data_drift", "x0", detector)


def test_every_detector_at_once_stays_silent_on_a_stationary_stream():
    s = MonitorSettings(numeric_drift=tuple(["ks", "cvm", "ad", "wasserstein", "psi", "js",
                                             "hellinger"]),
                        categorical_drift=("chi2", "tv", "psi", "js"), joint_drift="mmd")
    assert firing(s, change_at=10**9, n=60_000, seed=3) == []


@pytest.mark.parametrize(("table", "message"), [
    ({"numeric_drift": ["ks", "nope"]}, "defaults.numeric_drift: must be a non-empty list of "
                                        "distinct names out of ks, cvm, ad"),
    ({"categorical_drift": []}, "defaults.categorical_drift: must be a non-empty list"),
    ({"joint_drift": "umap"}, "defaults.joint_drift: must be one of pca, mmd, off"),
])
def test_detector_names_are_checked(table, message):
    with pytest.raises(ConfigError) as e:
        parse_config({"defaults": table})
    assert any(message in p for p in e.value.problems), e.value.problems


def test_binary_classifier_growing_unsure_shows_an_estimated_accuracy_drop():
    rng = np.random.default_rng(2)
    model = ModelConfig("m", task="binary_classification")
    ref = columns(0, 5_000, rng)
    ref.prediction = 1 / (1 + np.exp(-3 * rng.normal(size=ref.n)))
    cur = columns(5_000, 2_000, rng)
    cur.prediction = 1 / (1 + np.exp(-1.5 * rng.normal(size=cur.n)))  # closer to 0.5
    ev = evaluate_window(model, ref, cur)
    cbpe = [r for k, r in ev.results if r.detector == "cbpe_accuracy"]
    assert cbpe and cbpe[0].p_value < 1e-6 and cbpe[0].details["cur_value"] < 0.85
    assert [f.kind for f in ev.findings] == ["prediction_drift"]
    # without a known task, or with scores that are not probabilities, no estimate
    plain = evaluate_window(ModelConfig("m"), ref, cur)
    assert not [r for k, r in plain.results if r.detector == "cbpe_accuracy"]
    cur.prediction = cur.prediction * 3
    broken = evaluate_window(model, ref, cur)
    assert not [r for k, r in broken.results if r.detector == "cbpe_accuracy"]


def test_a_reference_is_prepared_once_and_forgotten_with_it():
    import gc

    from monitor import evaluate

    rng = np.random.default_rng(4)
    model = ModelConfig("m")
    ref = columns(0, 5_000, rng)
    ref.numeric["x1"][::50] = np.nan
    windows = [columns(5_000, 2_000, rng), columns(7_000, 2_000, rng, shift=0.4)]
    first = [evaluate_window(model, ref, w) for w in windows]
    prep = evaluate.prepare(ref)
    assert [evaluate_window(model, ref, w) for w in windows] == first  # from the cache
    assert evaluate.prepare(ref) is prep
    # the same tests with the reference prepared afresh for every window
    fresh = [evaluate._tests(model, ref, w, model.task) for w in windows]
    cached = [evaluate._tests(model, ref, w, model.task, prep) for w in windows]
    assert [[t.result for t in ts] for ts in fresh] == [[t.result for t in ts] for ts in cached]
    key = id(ref)
    del ref, prep
    gc.collect()
    assert key not in evaluate._PREPARED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["v1", "v2", "v10", "é", "v1\x00", ""]), min_size=1, max_size=30))
def test_dominant_version_equals_numpys_unique(versions):
    arr = np.array(versions + [None], dtype=object)[:-1]
    vals, counts = np.unique(arr.astype(str), return_counts=True)
    assert dominant_version(arr) == str(vals[int(np.argmax(counts))])
