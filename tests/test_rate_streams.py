"""The sequential watch's Bernoulli CUSUMs: errors, slow tails and category shares."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from detectors.bernoulli import posterior_mean, rate_bound
from monitor.batch import PredictionColumns
from monitor.config.types import MonitorSettings
from monitor.pipeline import take
from monitor.rate_streams import indicator, rate_streams
from monitor.sequential import (
    BASELINE_MAX,
    KS,
    LATENCY,
    SequentialWatch,
    alarm_findings,
    floor_scale,
    retune_due,
    stream_key,
)

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


def test_every_rate_stream_is_centred_on_its_baseline_with_alternatives_one_way():
    rs = rate_streams(stream(5_000, np.random.default_rng(1)), SETTINGS)
    kinds = {(r.kind, r.source) for r in rs}
    assert kinds == {("error_rate", "error"), ("latency_regression", "latency"),
                     ("data_drift", "category")}
    for r in rs:
        rise = all(q > r.p0 for q in r.p1)
        assert rise or all(q < r.p0 for q in r.p1)
        if r.rule == "mul":  # the slow tails: multiples of the upper bound
            assert r.p0 == rate_bound(r.hits, r.n, upper=True) and r.p0 > r.rate
        else:
            assert r.p0 == posterior_mean(r.hits, r.n)
            assert r.p0 == pytest.approx(r.rate, abs=0.5 / r.n)


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


def test_the_latency_cusums_are_tuned_to_the_latency_floor():
    ref = stream(5_000, np.random.default_rng(8))
    watch = SequentialWatch.build(ref, SETTINGS)
    assert watch is not None and watch.bank is not None
    i = watch.streams.index(LATENCY)
    # a 10 % slow-down of a lognormal with sigma 0.35 is a 0.27 sd shift of its log
    assert watch.bank.k[i, 0] == pytest.approx(np.log(1.1) / 0.35 / 2, rel=0.05)
    assert np.allclose(watch.bank.k[i] / watch.bank.k[i, 0], np.asarray(KS) / KS[0])
    assert np.array_equal(watch.bank.k[watch.streams.index("x")], KS)  # features as they were
    unfloored = SequentialWatch.build(ref, replace(SETTINGS, latency_min_ratio=1.0))
    assert unfloored is not None and unfloored.bank is not None
    assert np.array_equal(unfloored.bank.k[i], KS)
    assert floor_scale(np.full(5_000, 40.0), 1.1) == KS[-1] / KS[0]  # steady: capped
    assert floor_scale(np.empty(0), 1.1) == 1.0


@pytest.mark.parametrize(("factor", "floor", "alarms"),
                         [(1.04, 1.10, False), (1.04, 1.0, True), (1.10, 1.10, True)])
def test_a_slow_down_below_the_latency_floor_is_tolerated_and_one_at_it_is_caught(
        factor, floor, alarms):
    rng = np.random.default_rng(9)
    settings = replace(SETTINGS, latency_min_ratio=floor)
    watch = SequentialWatch.build(stream(5_000, rng), settings)
    assert watch is not None
    got = []
    for _ in range(10):  # 100,000 events 4 % slower: a 0.11 sd shift, below a 10 % floor
        cur = stream(10_000, rng)
        cur.latency_ms = cur.latency_ms * factor
        got += [a for a in watch.update(cur) if a.kind == "latency_regression"]
        if alarms and got:
            break
    assert bool(got) == alarms
    if alarms and factor == 1.10:
        assert got[0].ts < SETTINGS.window_events and got[0].what is None  # the CUSUM


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
    clean = stream(2_000, rng)
    for w in (a, b):  # grown baselines (score centres, rates) survive the round trip too
        w.update(clean)
        w.window_closed({("data_drift", "x"), ("error_rate", None)}, set())
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
    # re-centred on the grown baseline, within 2.5 standard errors of the true 1 %
    assert sharper == posterior_mean(*watch.baseline[err]) and sharper != first
    assert abs(sharper - 0.01) < 2.5 * np.sqrt(0.01 * 0.99 / 25_000)
    # a window that alerted on the key (or was not tested) teaches nothing
    bad = stream(2_000, rng)
    bad.error = rng.random(bad.n) < 0.05
    watch.update(bad)
    watch.window_closed({("error_rate", None)}, {("error_rate", None)})
    watch.update(bad)
    watch.window_closed(set(), set())
    assert watch.baseline[err][1] == 25_000 and watch.rate_bank.p0[err] == sharper


def test_score_baselines_grow_with_quiet_blocks_and_recentre_the_cusums():
    rng = np.random.default_rng(7)
    ref = stream(5_000, rng)
    watch = SequentialWatch.build(ref, SETTINGS)
    assert watch is not None and watch.bank is not None
    x, lat = watch.streams.index("x"), watch.streams.index(LATENCY)
    assert watch.zbase[x] == [0.0, 5_000.0]
    assert watch.bank.sigma[x] == pytest.approx(5_000 ** -0.5)
    first = watch.bank.h[x].copy()
    cur = stream(9_000, rng)  # four blocks of window_events and a half
    cur.numeric["x"] = cur.numeric["x"] + 0.02  # far inside the sequential floor
    assert watch.update(cur) == []
    total, n = watch.zbase[x]
    assert n == 13_000 and watch.zbase[lat][1] == 13_000
    assert watch.bank.center[x] == pytest.approx(total / n)
    assert 0.0 < watch.bank.center[x] < 0.03  # the blocks' scores sit a little higher
    assert watch.bank.sigma[x] == pytest.approx(13_000 ** -0.5)
    assert np.all(watch.bank.h[x] < first)
    # a block in which a CUSUM of the stream alarmed teaches nothing
    bad = stream(1_000, rng)
    bad.numeric["x"] = bad.numeric["x"] + 2.0
    assert [a.feature for a in watch.update(bad) if a.kind == "data_drift"][0] == "x"
    assert watch.zbase[x][1] == 13_000 and watch.zbase[lat][1] == 15_000
    # and the baseline stops at BASELINE_MAX references
    watch.update(stream(50_000, rng))
    cap = BASELINE_MAX * SETTINGS.reference_events
    assert cap <= watch.zbase[x][1] < cap + SETTINGS.window_events


def test_score_baselines_do_not_depend_on_how_the_stream_is_batched():
    rng = np.random.default_rng(10)
    ref = stream(5_000, rng)
    cur = stream(16_000, rng)
    cur.numeric["x"] = cur.numeric["x"] + np.where(np.arange(cur.n) > 9_000, 0.15, 0.0)
    runs = []
    for cuts in ([0, 16_000], [0, 1_999, 2_000, 2_001, 7_777, 16_000],
                 list(range(0, 16_001, 333)) + [16_000]):
        watch = SequentialWatch.build(ref, SETTINGS)
        assert watch is not None and watch.bank is not None
        got = []
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            got += [(a.ts, a.feature, a.k, round(a.threshold, 9))
                    for a in watch.update(take(cur, lo, hi))]
        # equal up to the order of floating-point sums
        runs.append((got, np.round(watch.bank.center, 9).tolist(),
                     np.round(watch.zbase, 6).tolist()))
    assert runs[0][0] and any(a[1] == "x" for a in runs[0][0])
    assert runs[0] == runs[1] == runs[2]


def test_a_tenth_of_a_standard_deviation_is_caught_by_the_smallest_cusum():
    rng = np.random.default_rng(8)
    watch = SequentialWatch.build(stream(5_000, rng), SETTINGS)
    assert watch is not None and KS[0] == 0.05
    assert watch.update(stream(16_000, rng)) == []  # quiet blocks sharpen the centre first
    cur = stream(20_000, rng)
    cur.numeric["x"] = cur.numeric["x"] + 0.1  # KS distance ~0.04: below the window floor
    alarms = [a for a in watch.update(cur) if a.kind == "data_drift" and a.feature == "x"]
    assert alarms and alarms[0].k == 0.05 and alarms[0].direction == 1
    assert alarms[0].ts < 12_000


def test_a_state_from_before_score_baselines_loads_with_the_reference_as_baseline():
    rng = np.random.default_rng(9)
    ref = stream(5_000, rng)
    watch = SequentialWatch.build(ref, SETTINGS)
    assert watch is not None
    watch.update(stream(3_000, rng))
    state = json.loads(json.dumps(watch.to_state()))
    for key in ("zbase", "zpending", "zalarmed", "zrows"):
        del state[key]
    del state["bank"]["center"], state["bank"]["sigma"]
    old = SequentialWatch.from_state(state, ref, SETTINGS)
    assert old.zbase == [[0.0, 5_000.0] for _ in old.streams]
    assert old.bank is not None and old.bank.sigma.tolist() == [0.0] * len(old.streams)
    old.update(stream(2_000, rng))  # it runs on, and a quiet block re-centres it
    assert old.bank.sigma[old.streams.index("x")] == pytest.approx(7_000 ** -0.5)


def test_a_state_restored_under_shorter_windows_closes_its_block_at_once():
    rng = np.random.default_rng(11)
    ref = stream(5_000, rng)
    watch = SequentialWatch.build(ref, SETTINGS)
    assert watch is not None
    watch.update(stream(1_500, rng))  # three quarters of a 2,000-row block
    shorter = replace(SETTINGS, window_events=500)
    back = SequentialWatch.from_state(json.loads(json.dumps(watch.to_state())), ref, shorter)
    back.update(stream(700, rng))  # the 1,500 rows close at once, then 500 more do
    x = back.streams.index("x")
    assert back.zbase[x][1] == 5_000 + 1_500 + 500


def alarm_rates(watch: SequentialWatch) -> dict[tuple[str, str | None], float]:
    """Each alert key's nominal false alarms per event: the sum of 1 / ARL0 over its
    CUSUMs."""
    assert watch.bank is not None and watch.rate_bank is not None
    out: dict[tuple[str, str | None], float] = {}
    for i, (s, d) in enumerate(zip(watch.streams, watch.bank.directions, strict=True)):
        k = stream_key(s)
        out[k] = out.get(k, 0.0) + (1 if d else 2) * float(np.sum(1 / watch.bank.cusum_arl0(i)))
    for r, row in zip(watch.rates, watch.rate_bank.arl0, strict=True):
        out[(r.kind, r.feature)] = out.get((r.kind, r.feature), 0.0) + len(r.p1) / row
    return out


def test_every_alert_key_gets_an_equal_share_of_the_sequential_budget():
    rng = np.random.default_rng(6)
    watch = SequentialWatch.build(stream(5_000, rng), SETTINGS)
    assert watch is not None
    rates = alarm_rates(watch)
    assert set(rates) == {("data_drift", "x"), ("data_drift", "cat"),
                          ("latency_regression", None), ("error_rate", None),
                          ("prediction_drift", None)}
    total = SETTINGS.alpha / SETTINGS.window_events
    assert sum(rates.values()) == pytest.approx(total)
    assert all(r == pytest.approx(total / len(rates)) for r in rates.values())


def test_a_numeric_streams_budget_goes_to_its_ks_in_proportion_to_one_over_k():
    rng = np.random.default_rng(6)
    watch = SequentialWatch.build(stream(5_000, rng), SETTINGS)
    assert watch is not None and watch.bank is not None
    for i in range(len(watch.streams)):
        rate = 1 / watch.bank.cusum_arl0(i)
        assert rate / rate.sum() == pytest.approx((1 / np.array(KS)) / np.sum(1 / np.array(KS)))
        assert rate.sum() == pytest.approx(len(KS) / watch.bank.arl0[i])


def test_a_feature_with_many_values_does_not_thin_out_the_error_rates_budget():
    rng = np.random.default_rng(7)
    ref = stream(5_000, rng)
    wide = replace(ref, categorical={
        **ref.categorical, "city": rng.choice([f"c{i}" for i in range(30)], size=ref.n)})
    narrow, many = SequentialWatch.build(ref, SETTINGS), SequentialWatch.build(wide, SETTINGS)
    assert narrow is not None and many is not None
    assert many.rate_bank is not None and narrow.rate_bank is not None
    assert len(many.rate_bank.cusums) > len(narrow.rate_bank.cusums) + 10
    # one more alert key (city), whatever its CUSUMs: the error rate's share goes 1/5 -> 1/6
    err = [i for i, r in enumerate(many.rates) if r.kind == "error_rate"][0]
    assert many.rate_bank.arl0[err] == pytest.approx(narrow.rate_bank.arl0[err] * 6 / 5)


def test_a_rate_baseline_keeps_learning_past_ten_references_and_retunes_seldom():
    rng = np.random.default_rng(9)
    ref = stream(5_000, rng)
    ref.error = np.zeros(ref.n, dtype=bool)
    ref.error[rng.choice(ref.n, 35, replace=False)] = True  # 0.7 %: an unlucky reference
    watch = SequentialWatch.build(ref, SETTINGS)
    assert watch is not None and watch.rate_bank is not None
    err = next(i for i, r in enumerate(watch.rates) if r.kind == "error_rate")
    cap = BASELINE_MAX * SETTINGS.reference_events
    retuned = []
    for _ in range(60):  # 120,000 events at the true 1 %
        watch.update(stream(2_000, rng))
        watch.window_closed({("error_rate", None)}, set())
        counts = watch.rate_bank.counts[err]
        assert counts is not None
        if not retuned or counts[1] != retuned[-1]:
            retuned.append(counts[1])
    assert watch.baseline[err][1] == 125_000  # past the cap: it keeps learning ...
    # ... retuned at every window up to the cap, then at every 10 % of growth
    steps = [(a, b) for a, b in zip(retuned, retuned[1:], strict=False) if b > cap]
    assert steps and all(b >= 1.1 * a for a, b in steps) and len(steps) < 10
    assert all(b - a == 2_000 for a, b in zip(retuned, retuned[1:], strict=False) if b <= cap)
    # the unlucky start is diluted: from 0.7 % to within 2.5 standard errors of 1 %
    assert watch.rate_bank.p0[err] > 0.01 - 2.5 * np.sqrt(0.01 * 0.99 / 125_000)


def test_retune_is_due_at_every_window_up_to_ten_references_then_at_every_tenth():
    assert retune_due(12_000, 10_000, 5_000)
    assert retune_due(50_000, 48_000, 5_000)
    assert not retune_due(52_000, 50_000, 5_000) and retune_due(56_000, 50_000, 5_000)
    assert not retune_due(50_000, 50_000, 5_000)


def test_a_wider_distribution_caught_by_a_cusum_is_drift_and_a_sentinel_flood_a_break():
    def wider(c, rng):  # the CUSUM's excursion rows are the extreme ones by construction
        c.numeric["x"] = c.numeric["x"] * 2.0
    alarms = [a for a in first_alarms(wider, seed=3) if a.feature == "x"]
    assert alarms and all(a.quality is None for a in alarms)

    def unit_change(c, rng):  # a third of the rows now in another unit
        c.numeric["x"] = np.where(rng.random(c.n) < 0.3, 1_000 * c.numeric["x"],
                                  c.numeric["x"])
    broken = [a for a in first_alarms(unit_change, seed=3) if a.feature == "x"]
    assert broken and any(a.quality is not None and a.quality[0] == "out_of_range"
                          for a in broken)


def test_streams_that_count_the_same_thing_share_one_indicator_column_and_others_do_not():
    rng = np.random.default_rng(3)
    watch = SequentialWatch.build(stream(5_000, rng, ids=True), SETTINGS)
    assert watch is not None
    cur = stream(700, rng, ids=True)
    cur.categorical["cat"][::9] = None
    got = watch._indicators(cur)
    want = [indicator(r, cur) for r in watch.rates]
    assert len(got) == len(want) == len(watch.rates)
    for g, w in zip(got, want, strict=True):
        assert g.tobytes() == w.tobytes()
    assert len({id(g) for g in got}) < len(got)  # a category's rise and fall share theirs
