"""The sequential watch on the model's outputs: a numeric prediction stream (normal
CUSUMs, like a feature's) and the shares of predicted classes (Bernoulli CUSUMs),
the input breaks a prediction alarm finds in its own rows, and the alerts they make."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.attribution import attribute
from monitor.batch import PredictionColumns
from monitor.config.types import Config, MonitorSettings
from monitor.pipeline import take
from monitor.replay import replay
from monitor.sequential import PREDICTION, SeqAlarm, SequentialWatch, alarm_findings
from monitor.simulate import DEMO_MODELS, stream, write_jsonl

SETTINGS = MonitorSettings()
CLASSES = np.array(["stay", "churn", "unsure"], dtype=object)


def columns(n: int, rng: np.random.Generator, *, shift: float = 0.0, start: int = 0,
            classes: bool = False, t0: float = 0.0) -> PredictionColumns:
    """A model scoring sigmoid(x + y + noise); ``shift`` is added to the logit from row
    ``start`` on (a miscalibrated model: same inputs, other outputs)."""
    x, y = rng.normal(size=n), rng.normal(size=n)
    logit = x + 0.5 * y + 0.3 * rng.normal(size=n) + np.where(np.arange(n) >= start, shift, 0)
    p = (1 / (1 + np.exp(-logit))).round(4)
    pred_class = np.full(n, None, dtype=object)
    if classes:
        pred_class = np.where(p > 0.7, "churn", np.where(p < 0.3, "stay", "unsure")).astype(object)
        p = np.full(n, np.nan)
    return PredictionColumns(
        model="m", ts=t0 + np.arange(n, dtype=float), ids=np.arange(n).astype(str).astype(object),
        versions=np.full(n, "v1", dtype=object), prediction=p, prediction_class=pred_class,
        latency_ms=rng.lognormal(np.log(40), 0.3, size=n), error=np.zeros(n, dtype=bool),
        numeric={"x": x, "y": y},
        categorical={"plan": rng.choice(np.array(["a", "b"], dtype=object), size=n)})


def watch_for(ref: PredictionColumns) -> SequentialWatch:
    w = SequentialWatch.build(ref, SETTINGS)
    assert w is not None
    return w


def predicted(alarms: list[SeqAlarm]) -> list[SeqAlarm]:
    return [a for a in alarms if a.kind == "prediction_drift"]


# -- the numeric stream -----------------------------------------------------------


def test_the_prediction_is_a_two_sided_stream_with_its_own_alert_key():
    w = watch_for(columns(5_000, np.random.default_rng(0)))
    assert w.bank is not None and PREDICTION in w.streams
    i = w.streams.index(PREDICTION)
    assert w.bank.directions[i] == 0
    # one key more than the inputs, latency and errors: an equal share of the budget
    assert w.bank.arl0[i] == pytest.approx(w.bank.arl0[w.streams.index("x")])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_miscalibrated_model_is_caught_within_tens_of_events(seed):
    rng = np.random.default_rng(seed)
    w = watch_for(columns(5_000, rng))
    cur = columns(6_000, rng, shift=1.0, start=3_000, t0=10_000)
    alarms = predicted(w.update(cur))
    assert alarms, "a +1 logit shift must be caught"
    a = alarms[0]
    delay = a.ts - (10_000 + 3_000)
    assert 0 <= delay < SETTINGS.window_events / 10  # a window would wait 2,000
    assert a.feature is None and a.direction == 1 and a.recent_mean > a.ref_mean
    assert a.broken is None and a.drifting is None  # the inputs did not move
    # no input alarm: the inputs are unchanged
    assert not [x for x in w.update(columns(100, rng, shift=1.0)) if x.kind == "data_drift"]


def test_a_prediction_alarm_reads_true():
    rng = np.random.default_rng(4)
    w = watch_for(columns(5_000, rng))
    cur = columns(2_000, rng, shift=1.0, start=500, t0=10_000)
    cur.versions = np.where(np.arange(cur.n) >= 500, "v4", "v1").astype(object)
    (a,) = predicted(w.update(cur))[:1]
    assert a.version == "v4" and a.new_version
    (f,) = alarm_findings("churn", "v1", a, SETTINGS.alpha, SETTINGS.window_events)
    assert f.kind == "prediction_drift" and f.detector == "cusum" and f.feature is None
    assert f.summary == "Prediction drift in the predictions of churn"
    assert f.description.startswith(
        f"Predictions of churn moved up: mean {a.ref_mean:.3g} in the reference, "
        f"{a.recent_mean:.3g} over the last {a.recent_n} events (sequential CUSUM")
    assert f"crossed its threshold over the last {a.run_length} events" in f.description
    assert f.details["new_version"] == "v4" and f.model_version == "v4"
    (v,) = attribute([f])
    assert v.team == "data-science"
    assert "unchanged inputs after deploy of v4" in v.reason


@pytest.mark.parametrize("classes", [False, True])
def test_stationary_outputs_raise_no_prediction_alarm(classes):
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        w = watch_for(columns(5_000, rng, classes=classes))
        got = []
        for _ in range(4):  # 20,000 events
            got += predicted(w.update(columns(5_000, rng, classes=classes)))
        assert got == [], (seed, got)


def test_outputs_that_move_with_their_inputs_name_them():
    rng = np.random.default_rng(5)
    w = watch_for(columns(5_000, rng))
    cur = columns(3_000, rng)
    cur.numeric["x"] = cur.numeric["x"] + np.where(np.arange(cur.n) >= 1_000, 1.0, 0.0)
    cur.prediction = np.where(np.arange(cur.n) >= 1_000,
                              1 / (1 + np.exp(-(np.log(cur.prediction / (1 - cur.prediction))
                                                + 1.0))), cur.prediction)
    (a,) = predicted(w.update(cur))[:1]
    assert a.drifting == ["x"] and a.broken is None
    (f,) = alarm_findings("m", "v1", a, SETTINGS.alpha, SETTINGS.window_events)
    assert "input 'x' drifted" in f.description
    (v,) = attribute([f])
    assert "along with the inputs ('x')" in v.reason


# -- class predictions ------------------------------------------------------------


def test_a_shift_in_predicted_classes_is_a_prediction_alarm():
    rng = np.random.default_rng(6)
    w = watch_for(columns(5_000, rng, classes=True))
    assert PREDICTION not in w.streams
    assert {r.kind for r in w.rates if r.source == "prediction"} == {"prediction_drift"}
    cur = columns(4_000, rng, classes=True, shift=1.0, start=1_000, t0=10_000)
    alarms = predicted(w.update(cur))
    assert alarms and alarms[0].ts - 11_000 < SETTINGS.window_events / 4
    f = alarm_findings("m", "v1", alarms[0], SETTINGS.alpha, SETTINGS.window_events)[-1]
    assert f.detector == "bernoulli_cusum" and f.kind == "prediction_drift"
    assert "predicted class" in f.description and f.feature is None


# -- broken feeds -------------------------------------------------------------------


FILL = -2.0  # what the model takes for a missing 'x', and the default a stuck feed sends


def imputed(cur: PredictionColumns, broken: np.ndarray) -> None:
    """The model sees FILL for 'x' where the feed broke: its outputs move there."""
    logit = np.log(cur.prediction / (1 - cur.prediction)) - cur.numeric["x"] + FILL
    cur.prediction = np.where(broken, (1 / (1 + np.exp(-logit))).round(4), cur.prediction)


@pytest.mark.parametrize("how", ["nulls", "all_nulls", "renamed", "stuck"])
def test_outputs_moved_by_a_broken_input_are_the_breaks_symptom(how):
    rng = np.random.default_rng(7)
    w = watch_for(columns(5_000, rng))
    cur = columns(3_000, rng)
    on = np.arange(cur.n) >= 1_000
    hit = on & (rng.random(cur.n) < (0.4 if how == "nulls" else 1.0))
    imputed(cur, hit)
    if how == "stuck":  # the feed sends the default the model then sees
        cur.numeric["x"] = np.where(hit, FILL, cur.numeric["x"])
    elif how != "renamed":
        cur.numeric["x"] = np.where(hit, np.nan, cur.numeric["x"])
    if how == "renamed":  # in a batch of its own, as the decoder would hand it over
        head = take(cur, 0, 1_000)
        tail = take(cur, 1_000, cur.n)
        tail.numeric["x_new"] = tail.numeric.pop("x")
        alarms = w.update(head) + w.update(tail)
    else:
        alarms = w.update(cur)
    (a,) = predicted(alarms)[:1]
    assert a.broken and a.broken[0][0] == "x", a
    kind = "schema_violation" if how in ("renamed", "all_nulls") else "data_quality"
    assert a.broken[0][1] == kind
    findings = alarm_findings("m", "v1", a, SETTINGS.alpha, SETTINGS.window_events)
    assert [f.kind for f in findings] == [kind, "prediction_drift"]  # the break first
    if how == "renamed":
        assert "'x_new' (a rename?)" in findings[0].description
    verdicts = attribute(findings)
    assert all(v.team == "ml-engineering" for v in verdicts), [v.reason for v in verdicts]
    assert "input 'x'" in verdicts[1].reason and "predictions" in verdicts[1].reason


def test_a_retyped_input_is_named_as_retyped():
    rng = np.random.default_rng(8)
    w = watch_for(columns(5_000, rng))
    cur = columns(2_000, rng)
    hit = np.arange(cur.n) >= 500
    imputed(cur, hit)
    cur.numeric["x"] = np.where(hit, np.nan, cur.numeric["x"])  # the decoder dropped them
    cur.mismatched["x"] = hit  # ... as wrong-typed
    (a,) = predicted(w.update(cur))[:1]
    f = alarm_findings("m", "v1", a, SETTINGS.alpha, SETTINGS.window_events)[0]
    assert f.kind == "schema_violation" and f.details["problem"] == "type_change"
    assert "another type" in f.description
    # counted on the alarm's own rows: those since 'x' was last seen, all retyped
    rows = int(f.statistic)
    assert f.details["count"] == rows == f.details["rows"] > 0
    assert f"{rows} of the last {rows} events" in f.description


def test_a_field_gone_without_wrong_types_is_not_called_retyped():
    rng = np.random.default_rng(8)
    w = watch_for(columns(5_000, rng))
    cur = columns(2_000, rng)
    hit = np.arange(cur.n) >= 500
    imputed(cur, hit)
    cur.numeric["x"] = np.where(hit, np.nan, cur.numeric["x"])
    cur.mismatched["x"] = np.arange(cur.n) < 400  # wrong-typed rows, but not these
    (a,) = predicted(w.update(cur))[:1]
    f = alarm_findings("m", "v1", a, SETTINGS.alpha, SETTINGS.window_events)[0]
    assert f.kind == "schema_violation" and f.details["problem"] == "missing_field"


SMALL = Config(defaults=MonitorSettings(reference_events=2_000, window_events=1_000))
START = 4_000


def _imputed_stream(kind: str) -> list[dict[str, object]]:
    """churn's events where 'age' breaks from START on and the model, imputing 0 for
    it, scores differently: its outputs move with the broken feed."""
    events = stream(DEMO_MODELS, 8_000, [], seed=3)
    for ev in events:
        if ev["model"] != "churn" or int(str(ev["id"]).split("-")[1]) < START:
            continue
        feats = ev["features"]
        assert isinstance(feats, dict)
        age = feats["age"]
        if kind == "nulls":
            feats["age"] = None
        elif kind == "renamed":
            feats["age_years"] = feats.pop("age")
        elif kind == "stuck":
            feats["age"] = -1.0
        if "prediction" in ev:  # sigmoid(z) with z's age term 0.04 * (age - 40)
            p = float(ev["prediction"])  # type: ignore[arg-type]
            z = math.log(p / (1 - p)) - 0.04 * (age - (-1.0 if kind == "stuck" else 0.0))
            ev["prediction"] = round(1 / (1 + math.exp(-z)), 4)
    return events


@pytest.mark.parametrize("kind", ["nulls", "renamed", "stuck"])
def test_a_broken_feed_never_reaches_data_science_as_prediction_drift(tmp_path: Path, kind):
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), _imputed_stream(kind))
    # in small chunks, as a live daemon meets them: the dispatcher's inhibition only knows
    # the alerts fired so far, so a prediction alert ahead of the break would go out
    alerts = [a for a in replay(SMALL, [path], chunk_lines=200).alerts
              if a.status == "firing"]
    churn = [a for a in alerts if a.labels["model"] == "churn"]
    pred = [i for i, a in enumerate(churn) if a.labels["kind"] == "prediction_drift"]
    brk = [i for i, a in enumerate(churn)
           if a.labels["kind"] in ("data_quality", "schema_violation")
           and a.labels.get("feature") == "age"]
    assert brk, [a.labels for a in churn]
    assert pred, "the outputs moved: the prediction watch must see it"
    first = churn[pred[0]]
    assert first.evidence["detector"] == "cusum"
    # caught between window closes, with the break ahead of it, and for ML engineering
    assert (first.starts_at - churn[brk[0]].starts_at) >= 0 and brk[0] < pred[0]
    assert first.labels["team"] == "ml-engineering"
    assert "'age'" in first.annotations["attribution"]
    assert not [a.labels for a in alerts if a.labels["team"] == "data-science"]


# -- state and batching ---------------------------------------------------------------


def key(a: SeqAlarm) -> tuple[object, ...]:
    return (a.kind, a.feature, a.ts, a.direction, a.k, a.what, a.recent_mean, a.version,
            json.dumps(a.broken, sort_keys=True, default=str), a.drifting)


def broken_stream(rng: np.random.Generator) -> PredictionColumns:
    cur = columns(7_000, rng, shift=0.8, start=1_500, t0=10_000)
    hit = (np.arange(cur.n) >= 4_500) & (rng.random(cur.n) < 0.5)
    imputed(cur, hit)
    cur.numeric["x"] = np.where(hit, np.nan, cur.numeric["x"])
    cur.categorical["plan"] = np.where(np.arange(cur.n) >= 6_000, None, cur.categorical["plan"])
    return cur


@pytest.mark.parametrize("cut", [1, 1_520, 4_510, 6_999])
def test_state_round_trips_mid_stream(cut):
    rng = np.random.default_rng(9)
    ref = columns(5_000, rng)
    cur = broken_stream(rng)
    a, b = watch_for(ref), watch_for(ref)
    whole = a.update(cur)
    first = b.update(take(cur, 0, cut))
    c = SequentialWatch.from_state(json.loads(json.dumps(b.to_state())), ref, SETTINGS)
    got = first + c.update(take(cur, cut, cur.n))
    assert len(predicted(whole)) >= 2 and any(x.broken for x in whole)
    assert [key(x) for x in got] == [key(x) for x in whole]
    # and an alarm kept until its window closes round-trips as plain data
    assert [SeqAlarm(*json.loads(json.dumps(x.to_state()))) for x in got] == got


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 6_999), max_size=6))
def test_alarms_do_not_depend_on_how_the_stream_is_batched(cuts):
    rng = np.random.default_rng(10)
    ref = columns(5_000, rng)
    cur = broken_stream(rng)
    whole = watch_for(ref).update(cur)
    w = watch_for(ref)
    edges = [0, *sorted(set(cuts)), cur.n]
    got = [x for lo, hi in zip(edges[:-1], edges[1:], strict=True)
           for x in w.update(take(cur, lo, hi))]
    assert predicted(whole) and [key(x) for x in got] == [key(x) for x in whole]


def test_a_state_from_before_the_prediction_stream_loads_and_runs_without_it():
    rng = np.random.default_rng(11)
    ref = columns(5_000, rng)
    built = watch_for(ref)
    # what the watch of the code before saved: no prediction stream, no categorical tails
    old = SequentialWatch([s for s in built.streams if s != PREDICTION], ref, SETTINGS)
    old.update(columns(1_000, rng))
    state = json.loads(json.dumps(old.to_state()))
    del state["ctail"]
    back = SequentialWatch.from_state(state, ref, SETTINGS)
    assert PREDICTION not in back.streams
    assert back.update(columns(1_000, rng, shift=1.0)) is not None  # it runs on
    # an alarm saved before SeqAlarm grew its input fields loads too
    saved = old.to_state()  # (any alarm list of 14 fields)
    a = SeqAlarm("data_drift", "x", 1.0, 2.0, 1.0, 0.5, 1, 0.0, 1.0, None, None, None,
                 "v1", False)
    assert saved and SeqAlarm(*a.to_state()[:14]) == a
