"""Label join: delayed and early labels, TTL expiry, duplicates, memory bound, state."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.batch import LabelColumns, PredictionColumns
from monitor.join import Joined, LabelJoin


def _obj(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def preds(ids, ts, prediction=None, classes=None, error=None, model="m") -> PredictionColumns:
    n = len(ids)
    ts = np.asarray(ts, dtype=np.float64)
    prediction = (np.full(n, np.nan) if prediction is None
                  else np.asarray(prediction, dtype=np.float64))
    classes = _obj([None] * n) if classes is None else _obj(classes)
    return PredictionColumns(
        model=model, ts=ts, ids=_obj(ids), versions=_obj(["v1"] * n), prediction=prediction,
        prediction_class=classes, latency_ms=np.full(n, np.nan),
        error=np.zeros(n, dtype=bool) if error is None else np.asarray(error, dtype=bool))


def labels(ids, ts, label=None, classes=None, model="m") -> LabelColumns:
    n = len(ids)
    label = np.full(n, np.nan) if label is None else np.asarray(label, dtype=np.float64)
    classes = _obj([None] * n) if classes is None else _obj(classes)
    return LabelColumns(model, np.asarray(ts, dtype=np.float64), _obj(ids), label, classes)


def as_pairs(j: Joined) -> dict[str, tuple]:
    return {i: (pt, lt, p, pc, lab, lc) for i, pt, lt, p, pc, lab, lc in zip(
        j.ids, j.pred_ts, j.label_ts, j.prediction, j.prediction_class, j.label, j.label_class,
        strict=True)}


def test_in_order_join_returns_columns_and_tracks_coverage_and_delay():
    j = LabelJoin(ttl_seconds=100)
    out = j.add_predictions("m", preds(["a", "b", "c"], [1, 2, 3], [0.9, 0.2, 0.6]))
    assert out.n == 0
    got = j.add_labels("m", labels(["a", "c"], [11, 33], [1, 0]))
    assert got.model == "m" and got.n == 2
    assert as_pairs(got) == {"a": (1.0, 11.0, 0.9, None, 1.0, None),
                             "c": (3.0, 33.0, 0.6, None, 0.0, None)}
    assert got.pred_ts.dtype == np.float64 and got.label.dtype == np.float64
    assert np.array_equal(got.delay, [10.0, 30.0])
    assert j.coverage("m") == 1.0  # nothing expired yet: 2 joined of 2 resolved
    stats = j.expire(watermark=150)  # cutoff 50: b is unlabelled
    assert stats["m"].unlabelled == 1 and stats["m"].orphan_labels == 0
    assert j.coverage("m") == pytest.approx(2 / 3)
    d = j.delay_summary("m")
    assert d.n == 2 and d.p50 == pytest.approx(20.0) and d.p95 == pytest.approx(29.0)
    assert j.counts("m")["pending"] == 0


def test_out_of_order_labels_across_batches_and_class_models():
    j = LabelJoin(ttl_seconds=1000)
    ids = [f"id{i}" for i in range(10)]
    j.add_predictions("m", preds(ids, np.arange(10.0), classes=[f"c{i % 3}" for i in range(10)]))
    order = [7, 2, 9, 0]
    first = j.add_labels("m", labels([ids[i] for i in order], [50.0] * 4,
                                     classes=[f"c{i % 2}" for i in order]))
    assert list(first.ids) == [ids[i] for i in order]
    assert list(first.pred_ts) == [7.0, 2.0, 9.0, 0.0]
    assert list(first.prediction_class) == ["c1", "c2", "c0", "c0"]
    assert list(first.label_class) == ["c1", "c0", "c1", "c0"]
    assert np.isnan(first.prediction).all()
    rest = j.add_labels("m", labels(ids[::-1], [60.0] * 10, [1.0] * 10))
    assert sorted(rest.ids) == sorted(set(ids) - {ids[i] for i in order})
    assert j.counts("m")["duplicate_labels"] == 4  # the first label of an id wins
    assert j.counts("m")["joined"] == 10


def test_labels_before_predictions_are_held_and_joined_on_arrival():
    j = LabelJoin(ttl_seconds=100)
    early = j.add_labels("m", labels(["x", "y"], [5.0, 6.0], [1.0, 0.0]))
    assert early.n == 0 and j.counts("m")["held"] == 2
    got = j.add_predictions("m", preds(["y", "z"], [4.0, 4.5], [0.3, 0.8]))
    assert as_pairs(got) == {"y": (4.0, 6.0, 0.3, None, 0.0, None)}
    assert j.counts("m")["held"] == 1 and j.counts("m")["pending"] == 1
    # another label for y after the join is a duplicate, not a new orphan
    assert j.add_labels("m", labels(["y"], [7.0], [1.0])).n == 0
    assert j.counts("m")["duplicate_labels"] == 1 and j.counts("m")["held"] == 1
    # a repeated prediction id is ignored (first wins) and counted
    assert j.add_predictions("m", preds(["y"], [9.0], [0.9])).n == 0
    assert j.counts("m")["duplicate_predictions"] == 1
    # the held label of x expires as an orphan; z as unlabelled
    stats = j.expire(watermark=200)
    assert (stats["m"].orphan_labels, stats["m"].unlabelled) == (1, 1)
    c = j.counts("m")
    assert (c["held"], c["pending"], c["orphan_labels"], c["unlabelled"]) == (0, 0, 1, 1)


def test_ttl_expiry_is_by_event_time_and_counts_each_row_once():
    j = LabelJoin(ttl_seconds=10)
    # arrival order is not event-time order
    j.add_predictions("m", preds(["late", "a", "b", "c"], [1.0, 5.0, 12.0, 20.0]))
    j.add_labels("m", labels(["o1", "o2"], [3.0, 25.0]))
    s = j.expire(watermark=15.0)  # cutoff 5: "late" (ts 1) and orphan o1 (ts 3)
    assert (s["m"].unlabelled, s["m"].orphan_labels) == (1, 1)
    assert j.add_labels("m", labels(["late"], [16.0])).n == 0  # too late: held as orphan
    assert j.add_labels("m", labels(["a"], [16.0])).n == 1  # ts 5 is not < cutoff 5
    s = j.expire(watermark=15.0)  # idempotent
    assert (s["m"].unlabelled, s["m"].orphan_labels) == (0, 0)
    s = j.expire(watermark=40.0)  # cutoff 30: b, c, orphans late and o2; a's tombstone
    assert (s["m"].unlabelled, s["m"].orphan_labels) == (2, 2)
    c = j.counts("m")
    assert (c["joined"], c["unlabelled"], c["orphan_labels"]) == (1, 3, 3)
    assert j.coverage("m") == pytest.approx(1 / 4)
    # after the tombstone expired, the id may be reused
    j.add_predictions("m", preds(["a"], [50.0]))
    assert j.add_labels("m", labels(["a"], [51.0])).n == 1


def test_error_rows_are_not_remembered():
    j = LabelJoin()
    j.add_predictions("m", preds(["a", "b"], [1.0, 2.0], [0.5, np.nan], error=[False, True]))
    assert j.counts("m")["predictions"] == 1
    assert list(j.add_labels("m", labels(["a", "b"], [3.0, 3.0])).ids) == ["a"]


def test_eviction_bounds_memory_and_drops_the_oldest_first():
    j = LabelJoin(ttl_seconds=1e9, max_pending=100)
    ts = np.arange(150.0)
    rng = np.random.default_rng(0)
    perm = rng.permutation(150)  # arrival order shuffled: eviction goes by event time
    j.add_predictions("m", preds([f"p{i}" for i in perm], ts[perm]))
    c = j.counts("m")
    assert c["pending"] == 100 and c["evicted"] == 50
    got = j.add_labels("m", labels([f"p{i}" for i in range(150)], np.full(150, 200.0)))
    assert sorted(got.ids) == sorted(f"p{i}" for i in range(50, 150))
    # the bound is global over models; tombstones count but are not "evicted"
    j.add_predictions("n", preds([f"q{i}" for i in range(60)], 300.0 + np.arange(60),
                                 model="n"))
    assert j.counts("m")["evicted"] == 50  # model m's 60 oldest entries were tombstones
    assert sum(m.n_alive for m in j._models.values()) == 100
    # held labels are bounded too
    j.add_labels("n", labels([f"orphan{i}" for i in range(150)], np.arange(150.0), model="n"))
    assert j.counts("n")["held"] + j.counts("m")["held"] <= 100
    assert j.counts("n")["evicted_labels"] >= 50
    assert j.expire(1.0)["n"].evicted_labels == j.counts("n")["evicted_labels"]
    assert j.expire(1.0)["n"].evicted_labels == 0  # reported once


def test_invalid_parameters_refused():
    for kwargs in ({"ttl_seconds": 0}, {"max_pending": 0}, {"delay_window": 0}):
        with pytest.raises(ValueError):
            LabelJoin(**kwargs)


def test_delay_summary_is_bounded_to_the_recent_window():
    j = LabelJoin(delay_window=100)
    ids = [str(i) for i in range(1000)]
    j.add_predictions("m", preds(ids, np.zeros(1000)))
    # old joins had delay 1000; the 100 most recent have delay 10
    j.add_labels("m", labels(ids[:900], np.full(900, 1000.0)))
    j.add_labels("m", labels(ids[900:], np.full(100, 10.0)))
    d = j.delay_summary("m")
    assert (d.n, d.p50, d.p95) == (100, 10.0, 10.0)
    assert j.delay_summary("unknown").n == 0 and j.coverage("unknown") is None


# -- state round trip and invariants over random streams ----------------------------------


def random_ops(seed: int, n_ops: int = 60, pool: int = 80):
    """Interleaved prediction/label batches of two models, plus watermarks."""
    rng = np.random.default_rng(seed)
    ops: list[tuple[str, str | None, Any]] = []
    clock, counter = 0.0, 0
    for _ in range(n_ops):
        clock += float(rng.exponential(5.0))
        model = str(rng.choice(["m", "n"]))
        k = int(rng.integers(1, 12))
        ids = [f"i{v}" for v in rng.integers(0, pool, size=k)]
        ts = clock - rng.uniform(0, 20, size=k)
        vals = counter + np.arange(k, dtype=np.float64)
        counter += k
        kind = rng.choice(["pred", "label", "expire"], p=[0.45, 0.45, 0.1])
        if kind == "pred":
            ops.append(("pred", model, preds(ids, ts, vals, model=model)))
        elif kind == "label":
            ops.append(("label", model, labels(ids, ts, vals, model=model)))
        else:
            ops.append(("expire", None, clock))
    return ops


def apply(j: LabelJoin, op):
    kind, model, arg = op
    if kind == "pred":
        return as_pairs_list(j.add_predictions(model, arg))
    if kind == "label":
        return as_pairs_list(j.add_labels(model, arg))
    return {k: vars(v) for k, v in j.expire(arg).items()}


def as_pairs_list(j: Joined):
    return [(j.model, *row) for row in zip(j.ids, j.pred_ts, j.label_ts, j.prediction,
                                            j.label, strict=True)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_state_round_trip_mid_stream_gives_identical_results(seed):
    ops = random_ops(seed, n_ops=120)
    a = LabelJoin(ttl_seconds=30, max_pending=40, delay_window=16)
    for op in ops[:60]:
        apply(a, op)
    b = LabelJoin.from_state(json.loads(json.dumps(a.to_state())))
    assert b.to_state() == a.to_state()
    for op in ops[60:]:
        assert apply(a, op) == apply(b, op)
    for model in ("m", "n"):
        assert a.counts(model) == b.counts(model)
        assert a.coverage(model) == b.coverage(model)
        assert a.delay_summary(model) == b.delay_summary(model)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ttl=st.sampled_from([5.0, 30.0, 1e9]),
       max_pending=st.sampled_from([5, 50, 10_000]))
def test_every_label_joins_at_most_one_prediction_and_totals_add_up(seed, ttl, max_pending):
    j = LabelJoin(ttl_seconds=ttl, max_pending=max_pending)
    # prediction and label values are unique per event, so each pair names its two events
    pred_id, label_id = {}, {}
    joined = []
    for op in random_ops(seed):
        kind, model, arg = op
        if kind == "pred":
            pred_id.update((v, (model, i)) for v, i in zip(arg.prediction.tolist(), arg.ids,
                                                           strict=True))
        elif kind == "label":
            label_id.update((v, (model, i)) for v, i in zip(arg.label.tolist(), arg.ids,
                                                            strict=True))
        out = apply(j, op)
        if kind != "expire":
            joined += out
    used_labels = [row[5] for row in joined]
    used_preds = [row[4] for row in joined]
    assert len(set(used_labels)) == len(used_labels)  # a label event joins at most once
    assert len(set(used_preds)) == len(used_preds)  # so does a prediction event
    for model, jid, _pts, _lts, p, lab in joined:
        assert pred_id[p] == (model, jid) == label_id[lab]
    for model in ("m", "n"):
        c = j.counts(model)
        assert c["predictions"] == c["joined"] + c["unlabelled"] + c["evicted"] + c["pending"]
        assert c["labels"] == (c["joined"] + c["duplicate_labels"] + c["orphan_labels"]
                               + c["evicted_labels"] + c["held"])
        assert c["joined"] == sum(row[0] == model for row in joined)
    assert sum(m.n_alive for m in j._models.values()) <= max_pending
    assert sum(len(m.held) for m in j._models.values()) <= max_pending


# -- before a model's first label: the early buffer ---------------------------------------


def test_early_buffer_is_bounded_by_count_and_ttl_and_counts_its_drops():
    j = LabelJoin(ttl_seconds=100, max_early=100)
    for k in range(5):  # 250 rows, one per second
        ids = [f"p{i}" for i in range(50 * k, 50 * k + 50)]
        j.add_early("m", preds(ids, [float(i) for i in range(50 * k, 50 * k + 50)]))
    c = j.counts("m")
    assert c["early"] == 100 and c["early_evicted"] == 150 and c["early_expired"] == 0
    assert j.models == [] and j.early_models == ["m"]
    j.expire(watermark=260.0)  # drops ts < 160
    c = j.counts("m")
    assert c["early"] == 90 and c["early_expired"] == 10
    assert j.early_dropped() == {"m": 160} and j.early_dropped() == {}
    # a state round trip keeps the buffer; a state from before buffers loads without one
    s = json.loads(json.dumps(j.to_state()))
    j2 = LabelJoin.from_state(s)
    assert j2.counts("m") == j.counts("m") and j2.max_early == 100
    del s["early"], s["max_early"]
    assert LabelJoin.from_state(s).early_models == []
    # the first label: the buffer joins, in arrival order
    cols = j2.take_early("m")
    assert cols is not None and cols.ids.tolist() == [f"p{i}" for i in range(160, 250)]
    assert j2.early_models == [] and j2.take_early("m") is None
    j2.add_predictions("m", cols)
    got = j2.add_labels("m", labels(["p200", "p10"], [300.0, 300.0]))
    assert got.ids.tolist() == ["p200"]


def test_merge_orders_pairs_by_completion_time():
    j = LabelJoin()
    j.add_labels("m", labels(["a"], [5.0]))  # held: joins when its prediction comes
    first = j.add_predictions("m", preds(["a", "b"], [9.0, 1.0]))
    second = j.add_labels("m", labels(["b"], [3.0]))
    merged = Joined.merge("m", [first, second])
    assert merged.ids.tolist() == ["b", "a"]  # b completed at 3, a at 9
    assert Joined.merge("m", []).n == 0


def test_unlabelled_models_share_one_bounded_early_buffer(monkeypatch):
    """However many models never get labels, their early buffers hold at most
    MAX_EARLY_TOTAL rows together (each trimmed to its share as it grows)."""
    import monitor.join as join_module

    monkeypatch.setattr(join_module, "MAX_EARLY_TOTAL", 1_000)
    j = LabelJoin()
    for rnd in range(3):
        for m in range(20):
            ids = [f"{m}-{rnd}-{i}" for i in range(200)]
            j.add_early(f"m{m}", preds(ids, [float(rnd * 200 + i) for i in range(200)],
                                       model=f"m{m}"))
    held = sum(e.n for e in j._early.values())
    assert held <= 1_000
    assert all(e.n == 50 for e in j._early.values())  # an even share each
    assert sum(e.evicted for e in j._early.values()) == 20 * 600 - held


def test_a_label_joined_after_it_was_held_does_not_expire_a_newer_held_label():
    """Held labels expire by their own age: the heap entry left by a held label that
    joined since must not make expiry drop the next, younger, held label."""
    j = LabelJoin(ttl_seconds=100)
    assert j.add_labels("m", labels(["old", "young"], [10.0, 90.0], [1, 0])).n == 0
    assert j.add_predictions("m", preds(["old"], [5.0], [0.7])).n == 1  # old joins
    s = j.expire(watermark=150.0)  # cutoff 50: the young label (ts 90) is not due
    assert s["m"].orphan_labels == 0 and j.counts("m")["held"] == 1
    got = j.add_predictions("m", preds(["young"], [80.0], [0.2]))
    assert got.n == 1 and list(got.ids) == ["young"]
    s = j.expire(watermark=300.0)
    assert s["m"].orphan_labels == 0


def test_the_label_cap_evicts_the_oldest_live_held_label():
    """Eviction over the cap compares the models' oldest live held labels, not a stale
    entry of a label that joined since."""
    j = LabelJoin(ttl_seconds=1000, max_pending=2)
    j.add_labels("a", labels(["a1", "a2"], [10.0, 50.0], model="a"))
    j.add_predictions("a", preds(["a1"], [5.0], model="a"))  # a1 joins: a's oldest is 50
    j.add_labels("b", labels(["b1"], [20.0], model="b"))
    j.add_labels("b", labels(["b2"], [30.0], model="b"))  # 3 held: the oldest, b1, goes
    assert j.counts("b")["evicted_labels"] == 1 and j.counts("a")["evicted_labels"] == 0
    assert j.add_predictions("a", preds(["a2"], [45.0], model="a")).n == 1
    assert j.add_predictions("b", preds(["b2"], [25.0], model="b")).n == 1


def test_an_id_sent_again_after_it_expired_is_handed_out_once():
    """Its first deadline went with it: the one ``due`` hands out is the second's."""
    j = LabelJoin(ttl_seconds=8)
    j.add_predictions("m", preds(["a"], [154.0], [0.3]))
    assert j.expire(watermark=168.0)["m"].unlabelled == 1
    j.add_predictions("m", preds(["a", "b"], [154.0, 155.0], [0.3, 0.4]))
    pred_ts, label_ts = j.due("m", 174.0)
    assert pred_ts.tolist() == [154.0, 155.0] and np.isnan(label_ts).all()
