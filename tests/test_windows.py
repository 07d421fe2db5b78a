import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.batch import PredictionColumns
from monitor.windows import ModelWindows, columns_from_state, columns_to_state, concat


def cols(start: int, n: int, *, dt: float = 1.0, with_plan: bool = True) -> PredictionColumns:
    idx = np.arange(start, start + n)
    obj = np.empty(n, dtype=object)
    obj[:] = [f"id-{i}" for i in idx]
    cat = {"plan": np.array(["a" if i % 2 else "b" for i in idx], dtype=object)}
    return PredictionColumns(
        model="m",
        ts=1_700_000_000.0 + idx * dt,
        ids=obj,
        versions=np.full(n, "v1", dtype=object),
        prediction=idx.astype(float),
        prediction_class=np.full(n, None, dtype=object),
        latency_ms=idx * 0.5,
        error=idx % 7 == 0,
        numeric={"x": idx.astype(float)},
        categorical=cat if with_plan else {},
        segments={"host": np.full(n, "h", dtype=object)},
    )


def test_reference_then_count_windows() -> None:
    w = ModelWindows(reference_events=100, window_events=50)
    closed = w.add(cols(0, 260))
    assert w.reference.n == 100 and w.reference_ready
    assert [c.n for c in closed] == [50, 50, 50]
    assert closed[0].ts[0] == 1_700_000_000.0 + 100
    assert w.current.n == 10


def test_time_closes_window_before_count() -> None:
    w = ModelWindows(reference_events=10, window_events=1000, window_seconds=30.0)
    closed = w.add(cols(0, 100))
    # rows 10..39 fall in [t10, t10+30); the row at t40 opens the next window
    assert [c.n for c in closed] == [30, 30]
    assert closed[1].ts[0] - closed[0].ts[0] == 30.0


def test_feature_absent_from_one_chunk_is_null_there() -> None:
    merged = concat([cols(0, 3), cols(3, 2, with_plan=False)])
    assert merged.n == 5
    assert merged.categorical["plan"].tolist()[3:] == [None, None]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 90), min_size=1, max_size=12))
def test_batching_does_not_change_windows(sizes: list[int]) -> None:
    """However the stream is cut into batches, the same windows close."""
    total = sum(sizes)
    whole = ModelWindows(reference_events=37, window_events=23, window_seconds=17.0)
    expected = whole.add(cols(0, total, dt=0.7))
    parts = ModelWindows(reference_events=37, window_events=23, window_seconds=17.0)
    got, pos = [], 0
    for n in sizes:
        got += parts.add(cols(pos, n, dt=0.7))
        pos += n
    assert [c.ts.tolist() for c in got] == [c.ts.tolist() for c in expected]
    assert parts.current.n == whole.current.n


def test_state_round_trips_through_json() -> None:
    w = ModelWindows(reference_events=100, window_events=50, window_seconds=60.0)
    w.add(cols(0, 130))
    state = orjson.loads(orjson.dumps(w.to_state()))
    back = ModelWindows.from_state(state)
    assert back.to_state() == w.to_state()
    # and it keeps going identically
    assert [c.n for c in back.add(cols(130, 100))] == [c.n for c in w.add(cols(130, 100))]


def test_columns_state_keeps_values_and_nulls() -> None:
    c = cols(0, 5)
    c.numeric["x"][2] = np.nan
    back = columns_from_state(orjson.loads(orjson.dumps(columns_to_state(c))))
    assert np.array_equal(back.numeric["x"], c.numeric["x"], equal_nan=True)
    assert back.error.tolist() == c.error.tolist()
    assert back.categorical["plan"].tolist() == c.categorical["plan"].tolist()
