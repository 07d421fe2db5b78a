"""Wrong-typed values are counted per row: a window counts its own, however batched.

A feature whose values start arriving as strings mid-window, on one host only: every
chunk size gives the same alerts, the SchemaViolation starts no earlier than the first
retyped event, and its count is the number of retyped events in its window.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.batch import PredictionColumns
from monitor.config.types import Config, MonitorSettings
from monitor.replay import replay
from monitor.windows import Frame, columns_from_state, columns_to_state, concat, take
from tests.scenarios.judge import rounded
from tests.scenarios.streams import Fault, StreamSpec, generate, write_jsonl

FEATURE = "tenure_months"
START = 5_500  # mid-window: reference 2,000 events, windows of 1,000
CHUNKS = (97, 1_000, 20_000)


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list[list[dict]]]:
    d: Path = tmp_path_factory.mktemp("retype")
    spec = StreamSpec("3hosts", "none", 9_000,
                      (Fault("retype", START, feature=FEATURE, host="pod-1"),), seed=4)
    events = generate(spec)
    path = d / "events.jsonl"
    write_jsonl(str(path), events)
    cfg = Config(defaults=MonitorSettings(reference_events=2_000, window_events=1_000))
    outs = []
    for chunk in CHUNKS:
        out = d / f"alerts-{chunk}.jsonl"
        replay(cfg, [path], alerts_out=out, chunk_lines=chunk)
        outs.append([orjson.loads(x) for x in out.read_bytes().splitlines()])
    return events, outs


def _retyped(events: list[dict]) -> list[float]:
    """Event times of the predictions that carried FEATURE as a string."""
    return sorted(float(e["ts"]) if isinstance(e["ts"], int | float) else _ts(str(e["ts"]))
                  for e in events if e.get("type", "prediction") == "prediction"
                  and isinstance((e.get("features") or {}).get(FEATURE), str))


def test_alerts_identical_at_every_chunk_size(replays):
    _, outs = replays
    assert outs[0], "the retype raised nothing"
    assert all(rounded(o) == rounded(outs[0]) for o in outs[1:])


def test_schema_violation_counts_its_own_window(replays):
    events, outs = replays
    bad = np.asarray(_retyped(events))
    assert bad.size > 100
    for out in outs:
        fired = [x for x in out if x["status"] == "firing"
                 and x["labels"].get("alertname") == "SchemaViolation"]
        assert fired, "no SchemaViolation"
        x = fired[0]
        ev = x["evidence"]
        assert ev["problem"] == "type_change" and x["labels"]["feature"] == FEATURE
        # never before the first retyped event
        assert _ts(x["startsAt"]) >= bad.min()
        start, end = (_ts(t) for t in ev["window"])
        assert start == pytest.approx(bad.min())  # the evidence starts at the first one
        # the count is the retyped events of that window (the first window with any:
        # every retyped event up to its end), well below the window's size
        real = int(np.sum(bad <= end + 1e-6))
        assert ev["count"] == ev["statistic"] == real
        assert 0 < real < ev["current_n"]
        assert f"{real} of the {ev['current_n']} events" in x["annotations"]["description"]


def _cols(n: int, bad: list[int] | None) -> PredictionColumns:
    f = np.zeros(n)
    return PredictionColumns(
        model="m", ts=np.arange(n, dtype=float), ids=np.array([str(i) for i in range(n)],
                                                             dtype=object),
        versions=np.full(n, "v1", dtype=object), prediction=f.copy(),
        prediction_class=np.full(n, None, dtype=object), latency_ms=f.copy(),
        error=np.zeros(n, dtype=bool), numeric={"x": f.copy()},
        mismatched={} if bad is None else {"x": np.isin(np.arange(n), bad)})


def test_row_flags_survive_concat_take_and_state():
    a, b = _cols(5, [1, 3]), _cols(4, None)
    both = concat([a, b])
    assert np.flatnonzero(both.mismatched["x"]).tolist() == [1, 3]
    assert both.mismatched["x"].shape == (9,)
    assert "x" not in take(both, 4, 9).mismatched  # none in those rows
    assert np.flatnonzero(take(both, 2, 9).mismatched["x"]).tolist() == [1]
    back = columns_from_state(orjson.loads(orjson.dumps(columns_to_state(both))))
    assert np.array_equal(back.mismatched["x"], both.mismatched["x"])
    old = columns_to_state(both)
    del old["mismatched"]  # a state saved before the flags: none
    assert columns_from_state(old).mismatched == {}
    frame = Frame()
    frame.append(b)
    frame.append(a)
    assert np.flatnonzero(frame.compact().mismatched["x"]).tolist() == [5, 7]
