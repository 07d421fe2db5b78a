"""The columnar label join against the dict-and-heap join it replaced
(tests/join_reference.py: fae88db's monitor/join.py with two bugs fixed, see its
header): every output identical on
random streams -- duplicates, labels first, ties of event time, TTL expiry, the cap,
deadlines, state round trips -- and old checkpoints load (migrated on read)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import join as new
from tests import join_reference as ref
from tests.test_join import labels, preds


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        if a.dtype == object or b.dtype == object:
            return a.dtype == b.dtype and a.tolist() == b.tolist()
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def joined_cols(j) -> list:
    return [j.model, j.ids, j.pred_ts, j.label_ts, j.prediction, j.prediction_class, j.label,
            j.label_class]


def ops(seed: int, n_ops: int, pool: int, tie: bool, classes: bool) -> list:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str | None, Any]] = []
    clock, counter = 0.0, 0
    for _ in range(n_ops):
        clock += float(rng.exponential(4.0))
        model = str(rng.choice(["m", "n"]))
        k = int(rng.integers(0, 14))
        ids = [f"i{v}" for v in rng.integers(0, pool, size=k)]
        ts = clock - rng.uniform(0, 25, size=k)
        if tie:  # whole seconds: many predictions share an event time
            ts = np.floor(ts)
        vals = counter + np.arange(k, dtype=np.float64)
        counter += k
        cls = [str(rng.choice(["a", "b"])) if classes else None for _ in range(k)]
        kind = str(rng.choice(["pred", "label", "due", "expire", "save"],
                              p=[0.4, 0.35, 0.1, 0.1, 0.05]))
        if kind == "pred":
            err = rng.random(k) < 0.1
            out.append(("pred", model, preds(ids, ts, vals, cls, error=err, model=model)))
        elif kind == "label":
            out.append(("label", model, labels(ids, ts, vals, cls, model=model)))
        elif kind == "due":
            out.append(("due", model, clock - float(rng.uniform(0, 30))))
        else:
            out.append((kind, None, clock))
    return out


def step(j, op):
    kind, model, arg = op
    if kind == "pred":
        return joined_cols(j.add_predictions(model, arg))
    if kind == "label":
        return joined_cols(j.add_labels(model, arg))
    if kind == "due":
        return list(j.due(model, arg))
    if kind == "expire":
        return [(k, vars(v)) for k, v in sorted(j.expire(arg).items())]
    return []


def observe(j) -> list:
    return [(m, j.counts(m), j.coverage(m), vars(j.delay_summary(m))) for m in ("m", "n")]


def run_both(seed, ttl, max_pending, pool, tie, classes, n_ops=80):
    a = ref.LabelJoin(ttl_seconds=ttl, max_pending=max_pending, delay_window=32)
    b = new.LabelJoin(ttl_seconds=ttl, max_pending=max_pending, delay_window=32)
    for op in ops(seed, n_ops, pool, tie, classes):
        if op[0] == "save":  # old checkpoint -> new join; new checkpoint -> new join
            # (the reference restarts from its checkpoint too: a restart rebuilds the
            # held labels' heap without stale entries, which expiry can tell apart)
            old = json.loads(json.dumps(a.to_state()))
            a = ref.LabelJoin.from_state(old)
            b = new.LabelJoin.from_state(old if seed % 2 else json.loads(json.dumps(
                b.to_state())))
            continue
        ra, rb = step(a, op), step(b, op)
        assert len(ra) == len(rb)
        for x, y in zip(ra, rb, strict=True):
            assert _same(x, y), (op, x, y)
        assert observe(a) == observe(b)
    return a, b


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ttl=st.sampled_from([8.0, 40.0, 1e9]),
       max_pending=st.sampled_from([3, 20, 10_000]), pool=st.sampled_from([10, 60, 10_000]),
       tie=st.booleans(), classes=st.booleans())
def test_columnar_join_equals_the_reference(seed, ttl, max_pending, pool, tie, classes):
    run_both(seed, ttl, max_pending, pool, tie, classes)


@pytest.mark.parametrize("seed", range(4))
def test_state_round_trip_and_old_state_migration(seed):
    a, b = run_both(seed, 40.0, 30, 50, True, seed % 2 == 0, n_ops=120)
    state = json.loads(json.dumps(b.to_state()))
    assert new.LabelJoin.from_state(state).to_state() == state
    migrated = new.LabelJoin.from_state(json.loads(json.dumps(a.to_state()))).to_state()
    # the old format kept no arrival order (pending ids, then joined ones): rows by id
    for s in (migrated, state):
        for ms in s["models"].values():
            ms["rows"] = by_id(ms.pop("rows"))
    assert migrated == state


def by_id(rs: dict) -> dict:
    ids, ts, flags, pred, pcls, lts = new._rows_state(rs)
    return {i: (t, f, p.tobytes(), c, lt.tobytes()) for i, t, f, p, c, lt in zip(
        ids.tolist(), ts.tolist(), flags.tolist(), pred, pcls.tolist(), lts, strict=True)}


def test_hash_collisions_never_join_the_wrong_id(monkeypatch):
    """Every id to one of three keys: the index holds one id per key, the others go
    to the collision dict; the results still equal the reference join's."""
    monkeypatch.setattr(new, "_keys", lambda ids: np.fromiter(
        (len(i) % 3 for i in ids), dtype=np.int64, count=len(ids)))
    for seed in range(30):
        run_both(seed, 40.0, 25 if seed % 2 else 10_000, 40, seed % 3 == 0, False)


def test_compaction_and_index_merges_keep_results(monkeypatch):
    monkeypatch.setattr(new, "_BLOCK", 4)
    for seed in range(20):  # a small pool: labels find their predictions after compactions
        run_both(seed, 8.0, 10_000, 60 if seed % 2 else 10_000, seed % 2 == 0, False,
                 n_ops=200)
