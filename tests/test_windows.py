import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.batch import PredictionColumns
from monitor.codec import shared_strings
from monitor.sequential import last_rows
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


def test_frames_keep_no_ids_nor_the_batch() -> None:
    """A frame's rows own their arrays (a slice of the batch would keep all of it) and
    no ids: no reader of a window reads them, and a str id is ~70 bytes a row."""
    w = ModelWindows(reference_events=100, window_events=50)
    batch = cols(0, 130)
    closed = w.add(batch)
    ref, cur = w.reference.compact(), w.current.compact()
    assert ref is not None and cur is not None
    for c in (ref, cur, *closed):
        assert c.ids.tolist() == [None] * c.n
        for arr in (c.ts, c.versions, c.numeric["x"], c.categorical["plan"],
                    c.segments["host"]):
            assert not np.shares_memory(arr, batch.ts) and arr.base is None
        assert c.ts.tolist() == batch.ts[int(c.ts[0] - batch.ts[0]):][:c.n].tolist()
    assert "ids" not in w.to_state()["reference"]


def test_state_with_ids_still_loads() -> None:
    """A checkpoint from when frames kept ids loads, its ids dropped."""
    w = ModelWindows(reference_events=100, window_events=50)
    w.add(cols(0, 130))
    state = orjson.loads(orjson.dumps(w.to_state()))
    for part in ("reference", "current"):
        state[part]["ids"] = [f"id-{i}" for i in range(len(state[part]["versions"]))]
    back = ModelWindows.from_state(state)
    assert back.to_state() == w.to_state()
    assert back.reference.compact().ids.tolist() == [None] * 100  # type: ignore[union-attr]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "ccc", None]), max_size=30))
def test_shared_strings_keep_values_and_share_objects(values: list[str | None]) -> None:
    fresh = ["".join(list(v)) if v is not None else None for v in values]  # new objects
    out = shared_strings(fresh)
    assert out == values
    seen: dict[str, int] = {}
    for v in out:
        if v is not None:
            assert seen.setdefault(v, id(v)) == id(v)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 30), st.integers(0, 30), st.integers(1, 40))
def test_last_rows_is_the_concatenation_s_tail(a: int, b: int, n: int) -> None:
    old, new = np.arange(a, dtype=float), np.arange(100, 100 + b, dtype=float)
    got = last_rows(old, new, n)
    assert got.tolist() == np.concatenate([old, new])[-n:].tolist()
    assert got.dtype == np.float64 and got.base is None
