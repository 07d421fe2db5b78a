"""label_delay within minutes: labels overdue past a deadline learned from the reference.

Replay-level streams: the simulator's two demo models (``churn`` labelled,
``eta`` never), with label events generated here for churn -- the label is
drawn from the predicted probability (a calibrated model: no performance
change), after a delay the scenario chooses -- merged in event-time order.
Defaults everywhere but the window sizes: TTL 24 h, deadline floor 15 min,
factor 5 x p99.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.app import build
from monitor.batch import LabelColumns, PredictionColumns
from monitor.config.types import Config, MonitorSettings
from monitor.join import LabelJoin
from monitor.performance_watch import LabelDeadline, PerformanceWatch
from monitor.replay import replay
from monitor.simulate import DEMO_MODELS, stream, write_jsonl
from tests import join_reference

CONFIG = Config(defaults=MonitorSettings(reference_events=2_000, window_events=1_000))
T0 = datetime(2026, 1, 1).timestamp()  # simulate.stream's default start (UTC below)
MIN = 60.0
HOUR = 3_600.0

Delay = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def labelled(n: int, delay: Delay, *, drop: Callable[[np.ndarray], np.ndarray] | None = None,
             seed: int = 1, interval_s: float = 0.5) -> tuple[list[dict], float]:
    """The demo stream (``n`` events per model) plus churn's labels: ``delay(pred_ts,
    rng)`` seconds after each prediction, minus the labels whose event time ``drop``
    flags.  Returns the events and the stream's start."""
    events = stream(DEMO_MODELS, n, seed=seed, interval_s=interval_s)
    t0 = min(float(e["ts"]) for e in events)  # type: ignore[arg-type]
    preds = [e for e in events if e["model"] == "churn" and "prediction" in e]
    rng = np.random.default_rng(seed + 100)
    pts = np.array([float(e["ts"]) for e in preds])  # type: ignore[arg-type]
    p = np.array([float(e["prediction"]) for e in preds])  # type: ignore[arg-type]
    lts = pts + delay(pts, rng)
    y = (rng.random(pts.size) < p).astype(int)
    keep = np.ones(pts.size, dtype=bool) if drop is None else ~drop(lts)
    labels = [{"type": "label", "id": e["id"], "model": "churn", "ts": round(float(t), 3),
               "label": int(v)}
              for e, t, v, k in zip(preds, lts.tolist(), y.tolist(), keep.tolist(), strict=True)
              if k]
    merged = sorted(events + labels, key=lambda e: float(e["ts"]))  # type: ignore[arg-type]
    return merged, t0


def within_a_minute(pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.exponential(15.0, pts.size)  # p99 ~ 70 s


def run_replay(tmp_path: Path, events: list[dict]):
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), events)
    return replay(CONFIG, [path])


def label_delay(alerts) -> list:
    return [a for a in alerts if a.labels["kind"] == "label_delay"]


def test_labels_that_stop_page_ml_engineering_within_30_minutes() -> None:
    events, t0 = labelled(14_000, within_a_minute)  # 7,000 s per model
    stop = t0 + 1.5 * HOUR
    events = [e for e in events if e.get("type") != "label" or float(e["ts"]) < stop]
    # live-like: small batches, the watermark moving a few seconds at a time
    app = build(CONFIG, registry=CollectorRegistry(), notify=False)
    lines = [orjson.dumps(e) for e in events]
    out, emitted_at = [], None
    for k in range(0, len(lines), 200):
        changes = app.pipeline.process_lines(lines[k:k + 200])
        if label_delay(changes) and emitted_at is None:
            emitted_at = app.pipeline.watermark
        out += changes
    assert [(a.status, a.labels["kind"], a.labels["model"]) for a in out] == [
        ("firing", "label_delay", "churn")], [a.labels for a in out]
    a = out[0]
    assert a.labels["team"] == "ml-engineering" and a.labels["fault"] == "infrastructure"
    assert a.evidence["detector"] == "label_deadline_cusum"
    # first evidence: the first prediction left without a label crossed the 15 min deadline
    assert stop + 10 * MIN <= a.starts_at <= stop + 30 * MIN, (a.starts_at - stop) / MIN
    assert emitted_at is not None
    assert emitted_at <= stop + 30 * MIN, (emitted_at - stop) / MIN
    assert a.starts_at <= emitted_at
    ev = a.evidence
    assert ev["deadline_seconds"] == 15 * MIN
    assert 40 < ev["ref_delay_p99"] < 120
    assert stop - 2 * MIN <= ev["first_overdue_ts"] <= stop + MIN
    assert a.starts_at == ev["first_overdue_ts"] + 15 * MIN
    # labels of the last predictions before the stop were due after it: partly overdue
    assert ev["overdue"] >= 10 and ev["cur_rate"] < 0.5 and ev["expected_rate"] > 0.99
    text = a.annotations["description"]
    assert f"{ev['overdue']} of the {ev['predictions']} predictions of churn" in text
    assert "no label within 15 min" in text and "p99 " in text
    # the TTL coverage test never got to run: a day had not passed
    w = app.pipeline.perf["churn"]
    assert w.expected_rate is None and w.late.active and "eta" not in app.pipeline.perf


def test_labels_on_time_raise_no_label_delay(tmp_path: Path) -> None:
    events, _ = labelled(40_000, within_a_minute, seed=2)  # 5.5 h of event time
    result = run_replay(tmp_path, events)
    assert result.alerts == [], [a.labels for a in result.alerts]


def test_labels_on_time_are_watched() -> None:
    """The null above is not vacuous: the deadline watch ran on every prediction."""
    events, _ = labelled(12_000, within_a_minute, seed=2)
    app = build(CONFIG, registry=CollectorRegistry(), notify=False)
    lines = [orjson.dumps(e) for e in events]
    for k in range(0, len(lines), 1_000):
        assert app.pipeline.process_lines(lines[k:k + 1_000]) == []
    late = app.pipeline.perf["churn"].late
    assert late.active and late.deadline == 15 * MIN
    assert late.resolved_n > 9_000 and late.overdue_n < 10


def test_labels_three_hours_late_from_the_start_are_normal(tmp_path: Path) -> None:
    def three_hours(pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return 3 * HOUR + rng.normal(0.0, 10 * MIN, pts.size)

    # 26 h of event time, one prediction per model every 5 s
    events, t0 = labelled(18_700, three_hours, seed=3, interval_s=5.0)
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), events)
    app = build(CONFIG, registry=CollectorRegistry(), notify=False)
    alerts = []
    for k in range(0, len(events), 2_000):
        alerts += app.pipeline.process_lines(
            [orjson.dumps(e) for e in events[k:k + 2_000]])
    assert alerts == [], [a.labels for a in alerts]
    late = app.pipeline.perf["churn"].late
    # the learned deadline says ~3 h is normal: 5 x p99 (~3.4 h)
    assert late.active and late.deadline is not None and 15 * HOUR < late.deadline < 19 * HOUR
    assert late.resolved_n > 500  # and predictions were tested against it


def test_labels_that_turn_hours_late_page(tmp_path: Path) -> None:
    turn = None

    def late_after(pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.where(pts < turn, rng.exponential(30.0, pts.size),
                        2 * HOUR + rng.exponential(60.0, pts.size))

    base, t0 = labelled(10, within_a_minute)
    turn = t0 + 1.5 * HOUR
    events, _ = labelled(16_000, late_after, seed=4)  # 8,000 s per model
    result = run_replay(tmp_path, events)
    lab = label_delay(result.alerts)
    assert [(a.status, a.labels["model"]) for a in lab] == [("firing", "churn")]
    a = lab[0]
    assert a.labels["team"] == "ml-engineering"
    assert turn + 15 * MIN <= a.starts_at <= turn + 30 * MIN, (a.starts_at - turn) / MIN
    assert a.evidence["cur_rate"] < 0.1


def test_label_delay_resolves_when_labels_resume(tmp_path: Path) -> None:
    events, t0 = labelled(20_000, within_a_minute, seed=5)  # 10,000 s per model
    stop, back = t0 + 1.0 * HOUR, t0 + 1.75 * HOUR
    events = [e for e in events
              if e.get("type") != "label" or not stop <= float(e["ts"]) < back]
    result = run_replay(tmp_path, events)
    lab = label_delay(result.alerts)
    assert [a.status for a in lab] == ["firing", "resolved"], [a.labels for a in result.alerts]
    assert lab[1].fingerprint == lab[0].fingerprint
    assert stop + 10 * MIN <= lab[0].starts_at <= stop + 30 * MIN
    # resolved after two clean windows (500 predictions each) of on-time labels
    assert lab[1].ends_at is not None and back + 15 * MIN < lab[1].ends_at < back + 60 * MIN
    assert not [a for a in result.alerts if a.labels["kind"] != "label_delay"]


def test_state_round_trip_mid_stream_gives_identical_alerts() -> None:
    events, t0 = labelled(14_000, within_a_minute, seed=6)
    stop, back = t0 + 1.0 * HOUR, t0 + 1.5 * HOUR
    events = [e for e in events
              if e.get("type") != "label" or not stop <= float(e["ts"]) < back]
    chunks = [[orjson.dumps(e) for e in events[k:k + 1_000]]
              for k in range(0, len(events), 1_000)]

    def alerts(cut: int | None) -> list[dict]:
        app = build(CONFIG, registry=CollectorRegistry(), notify=False)
        out = []
        for i, chunk in enumerate(chunks):
            if i == cut:
                saved = json.loads(json.dumps(app.pipeline.to_state(), allow_nan=False))
                app = build(CONFIG, registry=CollectorRegistry(), notify=False)
                app.pipeline.load_state(saved)
            out += [a.to_json() for a in app.pipeline.process_lines(chunk)]
        return out

    whole = alerts(None)
    assert [(a["status"], a["labels"]["kind"]) for a in whole] == [
        ("firing", "label_delay"), ("resolved", "label_delay")]
    n = len(chunks)
    # learning the cohort, deadline just learned, mid-outage, just before it resolves
    for cut in (2, 6, n * 5 // 14, n * 9 // 14):
        assert alerts(cut) == whole, cut


# -- the join and the watch on their own ---------------------------------------------------


def test_join_hands_each_prediction_out_once_at_its_deadline() -> None:
    j = LabelJoin(ttl_seconds=100)
    j.add_predictions("m", preds(["a", "b", "c", "d"], [0.0, 1.0, 2.0, 3.0]))
    j.add_labels("m", labels(["a", "c"], [5.0, 40.0]))
    pts, lts = j.due("m", 2.5)  # a, b, c are older than the cutoff
    assert pts.tolist() == [0.0, 1.0, 2.0]
    assert lts[0] == 5.0 and np.isnan(lts[1]) and lts[2] == 40.0
    assert j.due("m", 2.5)[0].size == 0  # once each
    j.add_labels("m", labels(["b"], [60.0]))  # late: after it was handed out
    # a prediction arriving late (older than the cutoff) is handed out next time
    j.add_predictions("m", preds(["e"], [2.2]))
    saved = json.loads(json.dumps(j.to_state()))
    k = LabelJoin.from_state(saved)
    assert k.to_state() == saved
    for x in (j, k):
        pts, lts = x.due("m", 2.5)
        assert pts.tolist() == [2.2] and np.isnan(lts).all()
        x.expire(103.5)  # d expires at the TTL before its deadline was asked for
        assert x.due("m", 1_000.0)[0].size == 0
        assert x.counts("m")["unlabelled"] == 2
        assert x.to_state()["models"]["m"]["rows"]["ids"] == []  # nothing left behind


def test_join_state_from_before_deadlines_loads() -> None:
    j = join_reference.LabelJoin(ttl_seconds=100)  # the format of fae88db's checkpoints
    j.add_predictions("m", preds(["a", "b"], [0.0, 1.0]))
    j.add_labels("m", labels(["a"], [5.0]))
    old = j.to_state()
    for key in ("due_ids", "due_cut", "labelled_ids", "labelled_ts"):
        del old["models"]["m"][key]
    k = LabelJoin.from_state(json.loads(json.dumps(old)))
    pts, lts = k.due("m", 50.0)  # every remembered prediction is due; joined = on time
    assert pts.tolist() == [0.0, 1.0] and lts[0] == 0.0 and np.isnan(lts[1])


def test_watch_state_from_before_deadlines_loads() -> None:
    w = PerformanceWatch.build(CONFIG.model("churn"))
    w.late.predictions(np.arange(5.0))
    s = json.loads(json.dumps(w.to_state()))
    assert LabelDeadline.from_state(s["deadlines"]).to_state() == w.late.to_state()
    del s["deadlines"]
    fresh = PerformanceWatch.from_state(s).late
    assert fresh.seen == 0 and fresh.reference is None and fresh.cohort_size == w.reference_n


def test_long_tailed_delays_get_the_ttl_as_deadline() -> None:
    """A truncated sample of a long tail never settles early: the cohort waits a TTL."""
    s = CONFIG.defaults
    late = LabelDeadline("m", 1_000, 500)
    rng = np.random.default_rng(0)
    pts = np.arange(1_000.0)
    late.predictions(pts)
    d = rng.exponential(3 * HOUR, pts.size)
    for t in np.arange(1_000.0, 30 * HOUR, 600.0):  # labels join as event time passes
        due = (pts + d >= t - 600.0) & (pts + d < t)
        late.joined(pts[due], (pts + d)[due])
        if late.learn(t, 24 * HOUR, s) is not None or late.reference is not None:
            break
    assert late.reference is not None and late.deadline == 24 * HOUR
    assert late.reference["learned_at"] >= 999.0 + 24 * HOUR


def _obj(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def preds(ids, ts) -> PredictionColumns:
    n = len(ids)
    return PredictionColumns(
        model="m", ts=np.asarray(ts, dtype=np.float64), ids=_obj(ids), versions=_obj(["v1"] * n),
        prediction=np.full(n, 0.5), prediction_class=_obj([None] * n),
        latency_ms=np.full(n, np.nan), error=np.zeros(n, dtype=bool))


def labels(ids, ts) -> LabelColumns:
    n = len(ids)
    return LabelColumns("m", np.asarray(ts, dtype=np.float64), _obj(ids), np.ones(n),
                        _obj([None] * n))


def _learned(seed: int = 0) -> LabelDeadline:
    """A deadline learned on 1,000 predictions labelled within a minute."""
    late = LabelDeadline("m", 1_000, 500)
    pts = np.arange(1_000.0)
    late.predictions(pts)
    late.joined(pts, pts + np.random.default_rng(seed).exponential(15.0, pts.size))
    assert late.learn(1_000.0 + 20 * MIN, 24 * HOUR, CONFIG.defaults) == 15 * MIN
    return late


# after the cohort: a blip of six labels lost together (an alarm, drained by the
# on-time labels after it; too few to page), two lost just before every 500-row window
# boundary (the CUSUM is above zero there), then labels that stop
_TS = np.arange(1_000.0, 9_000.0)
_LATE = np.zeros(_TS.size, dtype=bool)
_LATE[600:606] = True
for _k in range(2, 13):
    _LATE[500 * _k - 3:500 * _k - 1] = True
_LATE[6_000:] = True
_LABEL_TS = np.where(_LATE, np.nan, _TS + 20.0)


def _pages(cuts: list[int]) -> list[tuple[float, float | None]]:
    late = _learned()
    out: list[tuple[float, float | None]] = []
    bounds = [0, *sorted(set(cuts)), _TS.size]
    for a, b in zip(bounds, bounds[1:], strict=False):
        for ev in late.resolve(_TS[a:b], _LABEL_TS[a:b], CONFIG.model("m")):
            if ev.findings:
                out.append((ev.now, ev.findings[0].window[0]))
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, _TS.size - 1), max_size=40))
def test_label_delay_pages_do_not_depend_on_where_the_hand_outs_cut(cuts: list[int]) -> None:
    """The episode a page counts ends where the CUSUM drains on an on-time label, found
    row by row: cut the deadline hand-outs anywhere, the pages are the same.  (Judged
    once per hand-out, a blip's episode outlived its drain in long hand-outs and a later
    alarm paged sooner: 27 s apart between chunk sizes on a stream with labels 3 h late.)"""
    whole = _pages([])
    assert whole, "labels that stop must page"
    assert _pages(cuts) == whole
