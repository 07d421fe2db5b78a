"""The sequential watch's Bernoulli CUSUMs: errors, slow tails and category shares."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.batch import PredictionColumns
from monitor.config_types import MonitorSettings
from monitor.pipeline import take
from monitor.rate_streams import rate_streams
from monitor.sequential import SequentialWatch, alarm_findings

SETTINGS = MonitorSettings()
CATS = np.array(["a", "b", "c", "d"], dtype=object)


def stream(n: int, rng: np.random.Generator, *, ids: bool = False) -> PredictionColumns:
    cat = {"cat": rng.choice(CATS, size=n, p=[0.4, 0.3, 0.2, 0.1])}
    if ids:  # a high-cardinality feature: most values are new every time
        cat["user"] = rng.integers(0, 10**7, size=n).astype(str).astype(object)
    return PredictionColumns(
        model="m", ts=np.arange(n, dtype=float), ids=np.arange(n).astype(str).astype(object),
        versions=np.full(n, "v1", dtype=object), prediction=rng.random(n),
        prediction_class=np.full(n, None, dtype=object),
        latency_ms=rng.lognormal(np.log(40), 0.35, size=n), error=rng.random(n) < 0.01,
        numeric={"x": rng.normal(size=n)}, categorical=cat)


def first_alarms(mutate, seed: int = 0, n: int = 8_000) -> list:
    rng = np.random.default_rng(seed)
    watch = SequentialWatch.build(stream(5_000, rng), SETTINGS)
    assert watch is not None
    cur = stream(n, rng)
    mutate(cur, rng)
    return watch.update(cur)


def test_every_rate_stream_has_its_in_control_rate_bounded_away_from_its_estimate():
    rs = rate_streams(stream(5_000, np.random.default_rng(1)), SETTINGS)
    kinds = {(r.kind, r.source) for r in rs}
    assert kinds == {("error_rate", "error"), ("latency_regression", "latency"),
                     ("data_drift", "category")}
    for r in rs:
        rise = all(q > r.p0 for q in r.p1)
        assert rise or all(q < r.p0 for q in r.p1)
        assert (r.p0 > r.rate) if rise else (r.p0 < r.rate)


def test_a_new_category_is_drift_in_its_feature_within_hundreds_of_events():
    def appear(c, rng):
        c.categorical["cat"] = np.where(rng.random(c.n) < 0.05, "new", c.categorical["cat"])
    alarms = [a for a in first_alarms(appear) if a.kind == "data_drift"]
    assert alarms and alarms[0].feature == "cat" and alarms[0].ts < 600
    assert "unseen" in (alarms[0].what or "")
    f = alarm_findings("m", "v1", alarms[0], SETTINGS.alpha, SETTINGS.window_events)
    assert f[0].detector == "bernoulli_cusum" and "rose" in f[0].description


def test_a_vanishing_category_is_a_fall_in_its_share():
    def vanish(c, rng):
        c.categorical["cat"] = np.where(c.categorical["cat"] == "d", "a", c.categorical["cat"])
    alarms = [a for a in first_alarms(vanish) if a.kind == "data_drift"]
    assert alarms and alarms[0].direction == -1 and "'d'" in (alarms[0].what or "")
    assert alarms[0].ts < 1_000 and alarms[0].recent_mean < 0.01


def test_an_error_rise_is_an_error_rate_alarm_before_a_window_fills():
    def fail(c, rng):
        c.error = c.error | (rng.random(c.n) < 0.04)
    alarms = [a for a in first_alarms(fail) if a.kind == "error_rate"]
    assert alarms and alarms[0].ts < SETTINGS.window_events
    f = alarm_findings("m", "v1", alarms[0], SETTINGS.alpha, SETTINGS.window_events)[0]
    assert f.details["cur_rate"] > f.details["ref_rate"]


def test_a_slow_tail_is_a_latency_regression():
    def tail(c, rng):
        c.latency_ms = c.latency_ms + np.where(rng.random(c.n) < 0.03, 150.0, 0.0)
    alarms = [a for a in first_alarms(tail) if a.kind == "latency_regression"]
    assert alarms and alarms[0].ts < SETTINGS.window_events
    assert "p99" in (alarms[0].what or "")


def test_a_small_change_below_the_floors_never_alarms():
    def small(c, rng):  # +0.1 % errors (floor 0.5 %), one category up 1 point (floor 5)
        c.error = c.error | (rng.random(c.n) < 0.001)
        flip = (c.categorical["cat"] == "b") & (rng.random(c.n) < 0.03)
        c.categorical["cat"] = np.where(flip, "a", c.categorical["cat"])
    alarms = [a for a in first_alarms(small, n=100_000) if a.what is not None]
    assert alarms == []


def test_long_stationary_stream_with_a_high_cardinality_feature_never_alarms():
    rng = np.random.default_rng(4)
    watch = SequentialWatch.build(stream(5_000, rng, ids=True), SETTINGS)
    assert watch is not None
    assert not any("'user'" in r.what and r.value is None and r.p0 < 0.9
                   for r in watch.rates)  # every reference id is a singleton
    alarms = []
    for _ in range(20):
        alarms += watch.update(stream(10_000, rng, ids=True))
    assert alarms == []


def key(a):
    return (a.kind, a.feature, a.ts, a.direction, a.k, a.what, a.recent_mean)


@pytest.mark.parametrize("cut", [1, 2_500, 6_999])
def test_state_round_trips_mid_stream(cut):
    rng = np.random.default_rng(5)
    ref = stream(5_000, rng)
    cur = stream(7_000, rng)
    cur.error = cur.error | (np.arange(cur.n) > 1_000) & (rng.random(cur.n) < 0.05)
    a = SequentialWatch.build(ref, SETTINGS)
    b = SequentialWatch.build(ref, SETTINGS)
    assert a is not None and b is not None
    whole = a.update(cur)
    first = b.update(take(cur, 0, cut))
    c = SequentialWatch.from_state(json.loads(json.dumps(b.to_state())), ref, SETTINGS)
    got = first + c.update(take(cur, cut, cur.n))
    # the same alarms; statistics equal up to the order of floating-point sums
    assert [key(x) for x in got] == [key(x) for x in whole]
    assert [x.statistic for x in got] == pytest.approx([x.statistic for x in whole])
    assert any(x.kind == "error_rate" for x in whole)


def test_clean_windows_sharpen_a_rate_baseline_and_alerted_ones_do_not():
    rng = np.random.default_rng(6)
    watch = SequentialWatch.build(stream(5_000, rng), SETTINGS)
    assert watch is not None and watch.rate_bank is not None
    err = next(i for i, r in enumerate(watch.rates) if r.kind == "error_rate")
    first = watch.rate_bank.p0[err]
    for _ in range(10):
        watch.update(stream(2_000, rng))
        watch.window_closed({("error_rate", None)}, set())
    sharper = watch.rate_bank.p0[err]
    assert watch.baseline[err][1] == 25_000
    # the bound tightens towards the true 1 %: half the reference's margin or less
    assert 0.01 < sharper < first and sharper - 0.01 < (first - 0.01) / 1.5
    # a window that alerted on the key (or was not tested) teaches nothing
    bad = stream(2_000, rng)
    bad.error = rng.random(bad.n) < 0.05
    watch.update(bad)
    watch.window_closed({("error_rate", None)}, {("error_rate", None)})
    watch.update(bad)
    watch.window_closed(set(), set())
    assert watch.baseline[err][1] == 25_000 and watch.rate_bank.p0[err] == sharper
