"""The evidence of sequential alerts (cusum, bernoulli_cusum): ``threshold`` is the
CUSUM's bound h, ``reference_n`` the stream's baseline, ``current_n`` the events of the
excursion that raised the alarm, and ``window`` spans that excursion -- whatever the
batches; and alarms kept in state by older versions still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.batch import PredictionColumns
from monitor.config.types import MonitorSettings
from monitor.sequential import SeqAlarm, SequentialWatch, alarm_findings
from monitor.windows import concat, take

SETTINGS = MonitorSettings()
REF = 5_000


def columns(n: int, rng: np.random.Generator, *, shift: float = 0.0, start: int = 0,
            t0: float = 0.0, errors: float = 0.0) -> PredictionColumns:
    x = rng.normal(size=n) + np.where(np.arange(n) >= start, shift, 0.0)
    err = (rng.random(n) < np.where(np.arange(n) >= start, errors, 0.0))
    return PredictionColumns(
        model="m", ts=t0 + np.arange(n, dtype=float), ids=np.arange(n).astype(str).astype(object),
        versions=np.full(n, "v1", dtype=object), prediction=np.full(n, np.nan),
        prediction_class=np.full(n, None, dtype=object),
        latency_ms=rng.lognormal(np.log(40), 0.3, size=n), error=err,
        numeric={"x": x})


def feed(w: SequentialWatch, cols: PredictionColumns, chunk: int) -> list[SeqAlarm]:
    out: list[SeqAlarm] = []
    for i in range(0, cols.n, chunk):
        out += w.update(take(cols, i, min(cols.n, i + chunk)))
    return out


@pytest.mark.parametrize("chunk", [97, 1_000, 20_000])
def test_a_drift_alarm_carries_its_baseline_and_excursion(chunk):
    rng = np.random.default_rng(11)
    ref = columns(REF, rng)
    # a quiet stretch first (its blocks join the baseline), then x moves by 0.5 sd
    cur = concat([columns(4_000, rng, t0=100_000.0),
                  columns(3_000, rng, shift=0.5, t0=104_000.0)])
    w = SequentialWatch.build(ref, SETTINGS)
    assert w is not None
    drift = [a for a in feed(w, cur, chunk) if a.kind == "data_drift"]
    assert drift, "a 0.5 sd shift must be caught"
    a = drift[0]
    assert a.baseline_n >= REF and a.baseline_n > REF  # the quiet blocks joined it
    assert a.run_length > 0
    (f,) = alarm_findings("m", "v1", a, SETTINGS.alpha, SETTINGS.window_events)
    assert f.detector == "cusum"
    assert f.reference_n == a.baseline_n >= REF
    assert f.current_n == a.run_length > 0
    # the window spans the excursion: from its first row to the alarm's
    row = int(np.flatnonzero(cur.ts == a.ts)[0])
    assert f.window == (float(cur.ts[row - a.run_length + 1]), a.ts)
    assert f.window[0] >= 104_000.0 - 200  # it began about where the shift did
    assert f.threshold == a.threshold > 0
    i = w.streams.index("x")
    j = int(np.argmin(np.abs(w.bank.k[i] - a.k)))
    assert a.threshold == pytest.approx(float(w.bank.h[i, j]))  # the bound h
    assert f"over the last {a.run_length} events" in f.description


def test_the_evidence_is_the_same_for_any_batches():
    rng = np.random.default_rng(12)
    ref = columns(REF, rng)
    cur = columns(6_000, rng, shift=0.25, start=3_000, t0=100_000.0)
    got = []
    for chunk in (97, 1_000, 6_000):
        w = SequentialWatch.build(ref, SETTINGS)
        assert w is not None
        alarms = [a for a in feed(w, cur, chunk) if a.kind == "data_drift"]
        got.append([(a.ts, a.baseline_n, a.run_length, a.since) for a in alarms])
    assert got[0] and got[0] == got[1] == got[2]


def test_an_excursion_that_spans_batches_and_a_restart_keeps_its_start():
    rng = np.random.default_rng(13)
    ref = columns(REF, rng)
    cur = columns(6_000, rng, shift=0.25, start=3_000, t0=100_000.0)
    whole = SequentialWatch.build(ref, SETTINGS)
    assert whole is not None
    want = [a for a in whole.update(cur) if a.kind == "data_drift"]
    assert want and want[0].run_length > 50
    cut = int(np.flatnonzero(cur.ts == want[0].ts)[0]) - 20  # inside the excursion
    w = SequentialWatch.build(ref, SETTINGS)
    assert w is not None
    first = w.update(take(cur, 0, cut))
    w = SequentialWatch.from_state(json.loads(json.dumps(w.to_state())), ref, SETTINGS)
    got = [a for a in first + w.update(take(cur, cut, cur.n)) if a.kind == "data_drift"]
    assert [(a.ts, a.run_length, a.since, a.baseline_n) for a in got] == \
        [(a.ts, a.run_length, a.since, a.baseline_n) for a in want]


def test_a_rate_alarm_carries_its_baseline_and_excursion():
    rng = np.random.default_rng(14)
    ref = columns(REF, rng, errors=0.02)
    cur = columns(4_000, rng, errors=0.2, start=1_000, t0=100_000.0)
    w = SequentialWatch.build(ref, SETTINGS)
    assert w is not None
    rates = [a for a in feed(w, cur, 333) if a.kind == "error_rate"]
    assert rates, "errors x10 must be caught"
    a = rates[0]
    (f,) = alarm_findings("m", "v1", a, SETTINGS.alpha, SETTINGS.window_events)
    assert f.detector == "bernoulli_cusum"
    assert f.reference_n == a.baseline_n >= REF
    assert f.current_n == a.run_length > 0
    row = int(np.flatnonzero(cur.ts == a.ts)[0])
    assert f.window == (float(cur.ts[row - a.run_length + 1]), a.ts)
    assert f"over the last {a.run_length} events" in f.description


def _alarm() -> SeqAlarm:
    return SeqAlarm(kind="data_drift", feature="x", ts=5.0, statistic=9.0, threshold=8.0,
                    k=0.25, direction=1, ref_mean=0.0, recent_mean=0.6, undecided=False,
                    quality=["nulls", 1e-9, 0.5, {"cur_nulls": 0.5}],
                    broken=None, drifting=None)


@pytest.mark.parametrize("fields", [14, 17])
def test_alarms_saved_before_the_evidence_still_load(fields):
    old = _alarm().to_state()[:fields]
    a = SeqAlarm(*json.loads(json.dumps(old)))
    assert a.baseline_n == 0 and a.run_length == 0 and a.since is None and a.recent_n == 0
    findings = alarm_findings("m", "v1", a, SETTINGS.alpha, SETTINGS.window_events)
    assert findings[0].window == (5.0, 5.0) and findings[0].current_n == 0
    assert "over the latest events" in findings[0].description
    assert findings[1].kind == "data_quality" and findings[1].current_n == 0


def test_alarm_state_round_trips_with_the_evidence():
    a = SeqAlarm(*_alarm().to_state()[:17], 7_000, 240, 1.5, 240)
    back = SeqAlarm(*json.loads(json.dumps(a.to_state())))
    assert back == a
    (f, _) = alarm_findings("m", "v1", back, SETTINGS.alpha, SETTINGS.window_events)
    assert (f.reference_n, f.current_n, f.window) == (7_000, 240, (1.5, 5.0))
