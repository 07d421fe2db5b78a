import gzip
import json
import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.batch import DecodedBatch, PredictionColumns
from monitor.events import INVALID_REASONS, Decoder
from monitor.simulate import DEMO_MODELS, ndjson_chunks, stream
from monitor.sources.files import iter_line_chunks

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def pred(i: int = 0, model: str = "m", **over: object) -> dict[str, object]:
    ev: dict[str, object] = {
        "type": "prediction",
        "id": f"{model}-{i}",
        "model": model,
        "model_version": "v1",
        "ts": T0 + i,
        "features": {"x": float(i), "plan": "basic"},
        "prediction": 0.5,
        "latency_ms": 12.5,
        "segment": {"host": "pod-0"},
    }
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not _DROP}


def label(i: int = 0, model: str = "m", **over: object) -> dict[str, object]:
    ev: dict[str, object] = {"type": "label", "id": f"{model}-{i}", "model": model,
                             "ts": T0 + i, "label": 1}
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not _DROP}


_DROP = object()


def dumps(ev: object) -> bytes:
    return orjson.dumps(ev)


def ndjson(*evs: object) -> bytes:
    return b"\n".join(dumps(e) for e in evs)


def n_valid(batch: DecodedBatch) -> int:
    return sum(c.n for c in batch.predictions.values()) + sum(
        c.n for c in batch.labels.values())


def assert_aligned(cols: PredictionColumns) -> None:
    n = cols.n
    for arr in (cols.ids, cols.versions, cols.prediction, cols.prediction_class,
                cols.latency_ms, cols.error):
        assert arr.shape == (n,)
    for arr in [*cols.numeric.values(), *cols.categorical.values(), *cols.segments.values()]:
        assert arr.shape == (n,)
    assert cols.ts.dtype == np.float64 and cols.prediction.dtype == np.float64
    assert cols.latency_ms.dtype == np.float64 and cols.error.dtype == bool
    assert cols.ids.dtype == object and cols.versions.dtype == object
    for arr in cols.numeric.values():
        assert arr.dtype == np.float64
    for arr in [*cols.categorical.values(), *cols.segments.values()]:
        assert arr.dtype == object
        assert all(v is None or type(v) is str for v in arr)


# -- shapes ------------------------------------------------------------------

def test_single_object_message() -> None:
    b = Decoder().decode_messages([dumps(pred(0))], None)
    c = b.predictions["m"]
    assert c.n == 1 and not b.invalid
    assert c.ids.tolist() == ["m-0"]
    assert c.versions.tolist() == ["v1"]
    assert c.ts.tolist() == [T0]
    assert c.prediction.tolist() == [0.5]
    assert c.prediction_class.tolist() == [None]
    assert c.latency_ms.tolist() == [12.5]
    assert c.error.tolist() == [False]
    assert c.numeric["x"].tolist() == [0.0]
    assert c.categorical["plan"].tolist() == ["basic"]
    assert c.segments["host"].tolist() == ["pod-0"]
    assert_aligned(c)


def test_array_message() -> None:
    b = Decoder().decode_messages([dumps([pred(i) for i in range(5)])], None)
    assert b.predictions["m"].ids.tolist() == [f"m-{i}" for i in range(5)]
    assert not b.invalid


def test_ndjson_message_with_blank_lines_and_crlf() -> None:
    msg = b"\r\n".join(dumps(pred(i)) for i in range(4)) + b"\r\n\r\n  \n"
    b = Decoder().decode_messages([msg], None)
    assert b.predictions["m"].ids.tolist() == [f"m-{i}" for i in range(4)]
    assert not b.invalid


def test_ndjson_with_indented_lines_falls_back_to_lines() -> None:
    msg = dumps(pred(0)) + b"\n  " + dumps(pred(1))
    b = Decoder().decode_messages([msg], None)
    assert b.predictions["m"].n == 2 and not b.invalid


def test_pretty_printed_object_is_one_event() -> None:
    msg = json.dumps(pred(0), indent=2).encode()
    b = Decoder().decode_messages([msg], None)
    assert b.predictions["m"].n == 1 and not b.invalid


def test_broken_pretty_printed_object_counts_once() -> None:
    msg = json.dumps(pred(0), indent=2).encode()[:-3]
    b = Decoder().decode_messages([msg], None)
    assert b.invalid == {"invalid_json": 1}
    assert n_valid(b) == 0


def test_default_type_and_mixed_stream() -> None:
    untyped_label = label(1, type=_DROP)
    untyped_pred = pred(2, type=_DROP)
    msg = ndjson(pred(0), label(0), untyped_label)
    d = Decoder()
    b = d.decode_messages([msg], "label")
    assert b.predictions["m"].n == 1
    assert b.labels["m"].ids.tolist() == ["m-0", "m-1"]
    b = d.decode_messages([ndjson(untyped_pred, label(3))], "prediction")
    assert b.predictions["m"].ids.tolist() == ["m-2"] and b.labels["m"].n == 1
    b = d.decode_messages([dumps(untyped_pred)], None)
    assert b.predictions["m"].n == 1 and not b.labels


def test_bad_default_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Decoder().decode_messages([], "labels")


def test_labels_numeric_and_class() -> None:
    b = Decoder().decode_lines([dumps(label(0, label=1)), dumps(label(1, label="cat")),
                                dumps(label(2, label=True)), dumps(label(3, label=0.25))])
    lab = b.labels["m"]
    assert lab.label[[0, 2, 3]].tolist() == [1.0, 1.0, 0.25]
    assert math.isnan(lab.label[1])
    assert lab.label_class.tolist() == [None, "cat", None, None]
    assert lab.ts.dtype == np.float64 and lab.ids.dtype == object


def test_grouped_by_model_in_arrival_order() -> None:
    evs = [pred(i, model="a" if i % 3 else "b") for i in range(12)]
    b = Decoder().decode_lines([dumps(e) for e in evs])
    assert b.predictions["a"].ids.tolist() == [e["id"] for e in evs if e["model"] == "a"]
    assert b.predictions["b"].ids.tolist() == [e["id"] for e in evs if e["model"] == "b"]
    assert np.all(np.diff(b.predictions["a"].ts) > 0)


def test_string_prediction_goes_to_class_column() -> None:
    b = Decoder().decode_lines([dumps(pred(0, prediction="churn")),
                                dumps(pred(1, prediction=True)),
                                dumps(pred(2, prediction=3))])
    c = b.predictions["m"]
    assert math.isnan(c.prediction[0]) and c.prediction[1:].tolist() == [1.0, 3.0]
    assert c.prediction_class.tolist() == ["churn", None, None]


def test_error_events_may_omit_prediction() -> None:
    b = Decoder().decode_lines([dumps(pred(0, status="error", prediction=_DROP)),
                                dumps(pred(1, status="ok")),
                                dumps(pred(2, status="error", prediction=0.9))])
    c = b.predictions["m"]
    assert c.error.tolist() == [True, False, True]
    assert math.isnan(c.prediction[0]) and math.isnan(c.prediction[2])
    assert c.prediction[1] == 0.5
    assert not b.invalid


def test_optional_fields_default() -> None:
    ev = {"id": 7, "model": "m", "ts": T0, "prediction": 1}
    c = Decoder().decode_lines([dumps(ev)]).predictions["m"]
    assert c.ids.tolist() == ["7"]
    assert c.versions.tolist() == ["unknown"]
    assert math.isnan(c.latency_ms[0])
    assert c.error.tolist() == [False]
    assert c.numeric == {} and c.categorical == {} and c.segments == {}


@pytest.mark.parametrize("ts", ["2026-01-01T00:00:00Z", "2026-01-01T02:00:00+02:00",
                                "2026-01-01t00:00:00z", "2026-01-01 00:00:00.000000Z",
                                "2026-01-01T00:00:00.123456789Z", T0, int(T0)])
def test_ts_formats(ts: object) -> None:
    b = Decoder().decode_lines([dumps(pred(0, ts=ts))])
    assert not b.invalid
    assert b.predictions["m"].ts[0] == pytest.approx(T0, abs=0.5)


def test_segment_scalars_are_stringified_and_nulls_absent() -> None:
    ev = pred(0, segment={"host": "pod-0", "gpu": 2, "spot": True, "zone": None})
    c = Decoder().decode_lines([dumps(ev), dumps(pred(1))]).predictions["m"]
    assert c.segments["gpu"].tolist() == ["2", None]
    assert c.segments["spot"].tolist() == ["true", None]
    assert c.segments["host"].tolist() == ["pod-0", "pod-0"]
    assert "zone" not in c.segments


def test_numeric_model_version_is_stringified() -> None:
    c = Decoder().decode_lines([dumps(pred(0, model_version=3))]).predictions["m"]
    assert c.versions.tolist() == ["3"]


# -- invalid input -----------------------------------------------------------

BAD_EVENTS = [
    ("not_an_object", "x"),
    ("not_an_object", 3),
    ("not_an_object", None),
    ("unknown_type", pred(type="score")),
    ("unknown_type", pred(type=1)),
    ("missing_model", pred(model=_DROP)),
    ("missing_model", pred(model=None)),
    ("bad_model", pred(model="")),
    ("bad_model", pred(model=5)),
    ("bad_model", pred(model="m" * 201)),
    ("missing_id", pred(id=_DROP)),
    ("bad_id", pred(id="")),
    ("bad_id", pred(id=True)),
    ("bad_id", pred(id=[1])),
    ("missing_ts", pred(ts=_DROP)),
    ("bad_ts", pred(ts="yesterday")),
    ("bad_ts", pred(ts="2026-01-01T00:00:00")),  # no offset
    ("bad_ts", pred(ts="2026-01-01")),
    ("bad_ts", pred(ts="1767225600")),
    ("bad_ts", pred(ts=T0 * 1000)),  # epoch milliseconds
    ("bad_ts", pred(ts=0)),
    ("bad_ts", pred(ts=-1.0)),
    ("bad_ts", pred(ts=1e300)),
    ("bad_ts", pred(ts="1999-12-31T23:59:59Z")),
    ("bad_ts", pred(ts="2101-01-01T00:00:00Z")),
    ("bad_ts", pred(ts=True)),
    ("bad_ts", pred(ts={"s": 1})),
    ("missing_prediction", pred(prediction=_DROP)),
    ("missing_prediction", pred(prediction=None)),
    ("bad_prediction", pred(prediction=[0.5])),
    ("bad_prediction", pred(prediction={"p": 0.5})),
    ("bad_version", pred(model_version=["v1"])),
    ("bad_version", pred(model_version=False)),
    ("bad_latency", pred(latency_ms=-1)),
    ("bad_latency", pred(latency_ms=-0.5)),
    ("bad_latency", pred(latency_ms="12")),
    ("bad_latency", pred(latency_ms=True)),
    ("bad_status", pred(status="failed")),
    ("bad_status", pred(status=0)),
    ("bad_features", pred(features=[1, 2])),
    ("bad_features", pred(features="x=1")),
    ("bad_segment", pred(segment="pod-0")),
    ("bad_segment", pred(segment={"host": ["pod-0"]})),
    ("bad_resources", pred(resources={"memory_mb": "2GB"})),
    ("bad_resources", pred(resources=[1024])),
    ("missing_label", label(label=_DROP)),
    ("missing_label", label(label=None)),
    ("bad_label", label(label=[1])),
    ("missing_id", label(id=_DROP)),
    ("bad_ts", label(ts="soon")),
]


@pytest.mark.parametrize(("reason", "ev"), BAD_EVENTS, ids=[r for r, _ in BAD_EVENTS])
def test_invalid_event_counted_and_neighbours_kept(reason: str, ev: object) -> None:
    assert reason in INVALID_REASONS
    lines = [dumps(pred(0)), dumps(ev), dumps(pred(1))]
    for b in (Decoder().decode_lines(lines),
              Decoder().decode_messages([b"\n".join(lines)], None),
              Decoder().decode_messages([dumps([pred(0), ev, pred(1)])], None),
              Decoder().decode_messages(lines, None)):
        assert b.invalid == {reason: 1}
        assert b.predictions["m"].ids.tolist() == ["m-0", "m-1"]
        assert b.invalid_samples[0][0] == reason
        assert b.invalid_samples[0][1] == dumps(ev)[:500]


def test_ndjson_lines_holding_arrays_are_expanded() -> None:
    msg = ndjson([pred(0), pred(1)], [1], pred(2))
    b = Decoder().decode_messages([msg], None)
    assert b.predictions["m"].ids.tolist() == ["m-0", "m-1", "m-2"]
    assert b.invalid == {"not_an_object": 1}
    b = Decoder().decode_lines(msg.split(b"\n"))
    assert b.predictions["m"].ids.tolist() == ["m-2"]
    assert b.invalid == {"not_an_object": 2}


def test_every_reason_is_reachable() -> None:
    covered = {r for r, _ in BAD_EVENTS} | {"invalid_json", "invalid_utf8", "message_too_large"}
    assert covered == set(INVALID_REASONS)


def test_truncated_line_in_ndjson_message() -> None:
    lines = [dumps(pred(i)) for i in range(5)]
    lines[2] = lines[2][:20]
    b = Decoder().decode_messages([b"\n".join(lines)], None)
    assert b.invalid == {"invalid_json": 1}
    assert b.predictions["m"].ids.tolist() == ["m-0", "m-1", "m-3", "m-4"]
    assert b.invalid_samples == [("invalid_json", lines[2])]


def test_truncated_array_message_counts_once_and_other_messages_kept() -> None:
    bad = dumps([pred(i) for i in range(3)])[:-10]
    b = Decoder().decode_messages([dumps(pred(0)), bad, dumps(pred(1))], None)
    assert b.invalid == {"invalid_json": 1}
    assert b.predictions["m"].n == 2


def test_invalid_utf8() -> None:
    bad_msg = dumps(pred(9))[:-2] + b'\xff"}'
    b = Decoder().decode_messages([bad_msg, dumps(pred(0))], None)
    assert b.invalid == {"invalid_utf8": 1}
    assert b.predictions["m"].n == 1
    lines = [dumps(pred(0)), b'{"id": "\xc3\x28"}', dumps(pred(1))]
    b = Decoder().decode_messages([b"\n".join(lines)], None)
    assert b.invalid == {"invalid_utf8": 1} and b.predictions["m"].n == 2
    b = Decoder().decode_lines(lines)
    assert b.invalid == {"invalid_utf8": 1} and b.predictions["m"].n == 2


def test_lone_surrogate_escape_is_rejected_not_raised() -> None:
    b = Decoder().decode_lines([b'{"id": "\\ud800", "model": "m", "ts": 1767225600, '
                                b'"prediction": 1}', dumps(pred(0))])
    assert sum(b.invalid.values()) == 1 and b.predictions["m"].n == 1


def test_utf8_bom_is_tolerated() -> None:
    b = Decoder().decode_lines([b"\xef\xbb\xbf" + dumps(pred(0))])
    assert b.predictions["m"].n == 1 and not b.invalid
    b = Decoder().decode_messages([b"\xef\xbb\xbf" + dumps(pred(0))], None)
    assert b.predictions["m"].n == 1 and not b.invalid


def test_message_too_large_counted_once() -> None:
    d = Decoder(max_message_bytes=1000)
    big = ndjson(*[pred(i) for i in range(20)])
    assert len(big) > 1000
    b = d.decode_messages([big, dumps(pred(99))], None)
    assert b.invalid == {"message_too_large": 1}
    assert b.predictions["m"].ids.tolist() == ["m-99"]
    assert b.invalid_samples[0] == ("message_too_large", big[:500])
    b = d.decode_lines([dumps(pred(0, id="x" * 2000)), dumps(pred(1))])
    assert b.invalid == {"message_too_large": 1} and b.predictions["m"].n == 1


@pytest.mark.parametrize("raw", [b"1e400", b'{"id": "a", "ts": 1e400}', b"NaN",
                                 b'{"prediction": Infinity}', b"{}{}", b"\x00\x01", b"]"])
def test_numbers_and_garbage_orjson_rejects(raw: bytes) -> None:
    b = Decoder().decode_lines([dumps(pred(0)), raw, dumps(pred(1))])
    assert b.invalid == {"invalid_json": 1}
    assert b.predictions["m"].n == 2


def test_big_integers_and_huge_strings() -> None:
    huge = "x" * 1_000_000
    lines = [dumps(pred(0, prediction=2**63, latency_ms=2**64 - 1)),
             dumps(pred(1, id=huge, features={"plan": huge, "x": -(2**63)})),
             b'{"id":"a","model":"m","ts":1767225600,"prediction":184467440737095516160}']
    b = Decoder().decode_lines(lines)
    c = b.predictions["m"]
    assert not b.invalid and c.n == 3
    assert c.prediction[0] == 2.0**63 and c.latency_ms[0] == 2.0**64
    assert c.ids[1] == huge and c.categorical["plan"][1] == huge
    assert c.numeric["x"][1] == -(2.0**63)
    assert c.prediction[2] == pytest.approx(1.8446744073709552e20)


def test_samples_capped_per_reason_and_truncated() -> None:
    bad = [b"{" + b"x" * 2000 for _ in range(10)] + [dumps(pred(i, status="?")) for i in range(5)]
    b = Decoder().decode_lines(bad)
    assert b.invalid == {"invalid_json": 10, "bad_status": 5}
    reasons = [r for r, _ in b.invalid_samples]
    assert reasons.count("invalid_json") == 3 and reasons.count("bad_status") == 3
    assert all(len(raw) <= 500 for _, raw in b.invalid_samples)
    b2 = Decoder().decode_lines(bad[:1])
    assert len(b2.invalid_samples) == 1  # the cap is per batch


def test_empty_messages_and_lines_are_ignored() -> None:
    b = Decoder().decode_messages([b"", b"\n\n", b"   "], None)
    assert n_valid(b) == 0 and not b.invalid
    b = Decoder().decode_lines([b"", b"  ", b"\t\r"])
    assert n_valid(b) == 0 and not b.invalid


# -- features ----------------------------------------------------------------

def test_absent_features_are_nan_or_none_and_rows_align() -> None:
    evs = [pred(0, features={"x": 1.0}),
           pred(1, features={"plan": "pro"}),
           pred(2, features=_DROP),
           pred(3, features={"x": None, "plan": None, "flag": True}),
           pred(4, features={"x": 5, "plan": "basic", "flag": False})]
    c = Decoder().decode_lines([dumps(e) for e in evs]).predictions["m"]
    assert_aligned(c)
    x = c.numeric["x"]
    assert x[0] == 1.0 and x[4] == 5.0 and np.isnan(x[1:4]).all()
    assert c.categorical["plan"].tolist() == [None, "pro", None, None, "basic"]
    assert np.isnan(c.numeric["flag"][:3]).all()
    assert c.numeric["flag"][3:].tolist() == [1.0, 0.0]


def test_type_inferred_on_first_sight_then_mismatches_nulled() -> None:
    d = Decoder()
    b = d.decode_lines([dumps(pred(0, features={"x": 1.0, "plan": "a"})),
                        dumps(pred(1, features={"x": "oops", "plan": 7})),
                        dumps(pred(2, features={"x": 2, "plan": "b"}))])
    c = b.predictions["m"]
    assert not b.invalid and c.n == 3
    assert c.numeric["x"][[0, 2]].tolist() == [1.0, 2.0] and math.isnan(c.numeric["x"][1])
    assert c.categorical["plan"].tolist() == ["a", None, "b"]
    assert d.type_mismatches == {("m", "x"): 1, ("m", "plan"): 1}
    assert b.type_mismatches == d.type_mismatches  # the batch carries its own count
    assert d.feature_types("m") == {"x": "numeric", "plan": "categorical"}
    b = d.decode_lines([dumps(pred(3, features={"x": "later"}))])
    assert "x" not in b.predictions["m"].categorical and np.isnan(b.predictions["m"].numeric["x"])
    assert d.type_mismatches[("m", "x")] == 2
    assert b.type_mismatches == {("m", "x"): 1}  # ... and only its own


def test_nested_feature_value_is_nulled_and_counted() -> None:
    d = Decoder()
    b = d.decode_lines([dumps(pred(0, features={"x": 1.0, "emb": [0.1, 0.2]})),
                        dumps(pred(1, features={"x": {"v": 1}, "emb": {"a": 1}}))])
    c = b.predictions["m"]
    assert not b.invalid and c.n == 2
    assert c.numeric["x"][0] == 1.0 and math.isnan(c.numeric["x"][1])
    assert "emb" not in c.numeric and "emb" not in c.categorical
    assert d.type_mismatches == {("m", "emb"): 2, ("m", "x"): 1}


def test_null_first_sight_does_not_fix_type() -> None:
    d = Decoder()
    b = d.decode_lines([dumps(pred(0, features={"z": None})),
                        dumps(pred(1, features={"z": "a"}))])
    assert b.predictions["m"].categorical["z"].tolist() == [None, "a"]


def test_known_features_present_even_when_absent_from_batch() -> None:
    d = Decoder()
    d.decode_lines([dumps(pred(0, features={"x": 1.0, "plan": "a"}))])
    c = d.decode_lines([dumps(pred(1, features={}))]).predictions["m"]
    assert np.isnan(c.numeric["x"]).all() and c.categorical["plan"].tolist() == [None]


def test_feature_types_are_per_model() -> None:
    d = Decoder()
    b = d.decode_lines([dumps(pred(0, model="a", features={"x": 1})),
                        dumps(pred(0, model="b", features={"x": "one"}))])
    assert "x" in b.predictions["a"].numeric and "x" in b.predictions["b"].categorical
    assert not d.type_mismatches


def test_configured_types_honoured() -> None:
    d = Decoder(feature_types={"m": {"zip": "categorical", "score": "numeric"}})
    b = d.decode_lines([dumps(pred(0, features={"zip": 12345, "score": "0.5"})),
                        dumps(pred(1, features={"zip": "12345", "score": 0.5}))])
    c = b.predictions["m"]
    assert c.categorical["zip"].tolist() == [None, "12345"]
    assert np.isnan(c.numeric["score"][0]) and c.numeric["score"][1] == 0.5
    assert d.type_mismatches == {("m", "zip"): 1, ("m", "score"): 1}
    b = Decoder(feature_types={"m": {"never_sent": "numeric"}}).decode_lines([dumps(pred(0))])
    assert np.isnan(b.predictions["m"].numeric["never_sent"]).all()


def test_bad_configured_type_rejected() -> None:
    with pytest.raises(ValueError, match="feature type"):
        Decoder(feature_types={"m": {"x": "float"}})


def test_max_features_cap_by_first_sight() -> None:
    d = Decoder(max_features=3)
    first = {f"f{i}": float(i) for i in range(5)}
    b = d.decode_lines([dumps(pred(0, features=first)),
                        dumps(pred(1, features={"f4": 4.0, "late": "x", "f0": 9.0}))])
    c = b.predictions["m"]
    assert sorted(c.numeric) == ["f0", "f1", "f2"] and not c.categorical
    assert c.numeric["f0"].tolist() == [0.0, 9.0]
    # f3 and f4, then f4 and late: each occurrence counted, no name kept
    assert b.dropped == {"feature_limit": 4}
    assert "dropped_features" not in d.to_state()
    assert not b.invalid


def test_max_features_counts_configured() -> None:
    d = Decoder(feature_types={"m": {"a": "numeric", "b": "numeric"}}, max_features=2)
    b = d.decode_lines([dumps(pred(0, features={"c": 1, "a": 2}))])
    assert sorted(b.predictions["m"].numeric) == ["a", "b"]
    assert b.dropped == {"feature_limit": 1}


# -- state -------------------------------------------------------------------

def mixed_lines() -> list[bytes]:
    return [dumps(pred(0, features={"x": 1, "plan": "a", "f1": 1, "f2": 2})),
            dumps(pred(1, features={"x": "s", "plan": 3, "f3": 3, "f4": None})),
            dumps(pred(2, model="n", features={"y": True})),
            dumps(label(0))]


def test_state_round_trip_decodes_identically() -> None:
    cfg = {"m": {"zip": "categorical"}}
    d = Decoder(feature_types=cfg, max_features=4)
    d.decode_lines(mixed_lines()[:3])
    state = json.loads(json.dumps(d.to_state()))
    assert state["feature_types"]["m"] == {"x": "numeric", "plan": "categorical",
                                           "f1": "numeric"}
    assert "dropped_features" not in state  # past the cap nothing is remembered
    d2 = Decoder(feature_types=cfg, max_features=4)
    d2.load_state(state)
    later = [dumps(pred(5, features={"x": "s", "f2": 1.0, "f3": 2.0, "plan": "b", "zip": "9"})),
             dumps(pred(6, model="n", features={"y": "str"}))]
    b1, b2 = d.decode_lines(later), d2.decode_lines(later)
    for model in ("m", "n"):
        c1, c2 = b1.predictions[model], b2.predictions[model]
        assert c1.numeric.keys() == c2.numeric.keys()
        assert c1.categorical.keys() == c2.categorical.keys()
        for k in c1.numeric:
            np.testing.assert_array_equal(c1.numeric[k], c2.numeric[k])
        for k in c1.categorical:
            assert c1.categorical[k].tolist() == c2.categorical[k].tolist()
    assert d2.to_state() == d.to_state()
    assert d2.feature_types("n") == {"y": "numeric"}


def test_config_wins_over_loaded_state() -> None:
    d = Decoder()
    d.decode_lines([dumps(pred(0, features={"zip": 1}))])
    d2 = Decoder(feature_types={"m": {"zip": "categorical"}})
    d2.load_state(d.to_state())
    assert d2.feature_types("m") == {"zip": "categorical"}


def test_load_state_rejects_unknown_version() -> None:
    with pytest.raises(ValueError):
        Decoder().load_state({"version": 99})


# -- realistic traffic & properties -------------------------------------------

def test_simulated_traffic_messages_and_lines_agree() -> None:
    events = stream(DEMO_MODELS, 600, ())
    msgs = list(ndjson_chunks(events, 200))
    b1 = Decoder().decode_messages(msgs, None)
    b2 = Decoder().decode_lines([line for m in msgs for line in m.split(b"\n")])
    assert not b1.invalid and not b2.invalid
    assert n_valid(b1) == len(events)
    for model, c1 in b1.predictions.items():
        c2 = b2.predictions[model]
        assert_aligned(c1)
        assert c1.ids.tolist() == c2.ids.tolist()
        np.testing.assert_array_equal(c1.prediction, c2.prediction)
        np.testing.assert_array_equal(c1.numeric[next(iter(c1.numeric))],
                                      c2.numeric[next(iter(c2.numeric))])
        assert c1.error.sum() == sum(1 for e in events
                                     if e["model"] == model and e.get("status") == "error")


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                           max_leaves=8)
field_values = {
    "type": st.sampled_from(["prediction", "label", "other"]) | json_scalars,
    "id": st.text(max_size=5) | st.integers(-(2**63), 2**63) | json_values,
    "model": st.sampled_from(["a", "b", ""]) | json_values,
    "ts": st.sampled_from([T0, "2026-01-01T00:00:00Z", int(T0)]) | json_values,
    "prediction": json_scalars | json_values,
    "label": json_scalars,
    "model_version": json_scalars,
    "latency_ms": json_scalars,
    "status": st.sampled_from(["ok", "error"]) | json_scalars,
    "features": st.dictionaries(st.sampled_from(["x", "y", "z", "w"]), json_values, max_size=4)
    | json_values,
    "segment": st.dictionaries(st.sampled_from(["host", "zone"]), json_scalars, max_size=2)
    | json_values,
}
events_st = st.fixed_dictionaries({}, optional=field_values)
line_st = (events_st.map(dumps) | json_values.map(dumps) | st.binary(max_size=40)
           | events_st.map(dumps).flatmap(lambda b: st.integers(0, len(b)).map(lambda k: b[:k])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_st, max_size=15), st.integers(1, 3))
def test_property_lines_never_raise_and_account_for_every_event(lines: list[bytes],
                                                               cap: int) -> None:
    d = Decoder(max_features=cap, max_message_bytes=400)
    b = d.decode_lines(lines)
    submitted = sum(1 for line in lines if line.strip())
    assert n_valid(b) + sum(b.invalid.values()) == submitted
    assert set(b.invalid) <= set(INVALID_REASONS)
    for c in b.predictions.values():
        assert_aligned(c)
        assert len(c.numeric) + len(c.categorical) <= cap
    json.dumps(d.to_state())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(line_st, max_size=5).map(b"\n".join)
                | st.lists(events_st, max_size=4).map(dumps), max_size=6),
       st.sampled_from([None, "prediction", "label"]))
def test_property_messages_never_raise(messages: list[bytes], default_type: str | None) -> None:
    b = Decoder().decode_messages(messages, default_type)
    assert set(b.invalid) <= set(INVALID_REASONS)
    for c in b.predictions.values():
        assert_aligned(c)


@settings(max_examples=100, deadline=None)
@given(st.lists(events_st, min_size=1, max_size=8))
def test_property_array_message_accounts_for_every_event(evs: list[dict]) -> None:
    b = Decoder().decode_messages([dumps(evs)], None)
    assert n_valid(b) + sum(b.invalid.values()) == len(evs)


# -- files -------------------------------------------------------------------

def write(path: Path, lines: list[bytes], *, gz: bool = False, trailing: bool = True) -> Path:
    data = b"\n".join(lines) + (b"\n" if trailing else b"")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_files_plain_and_gzip_detected_by_magic(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl", [b"1", b"2"])
    b = write(tmp_path / "b.jsonl", [b"3", b"4", b"5"], gz=True, trailing=False)
    c = write(tmp_path / "c.jsonl.gz", [b"6"])  # not actually gzip
    chunks = list(iter_line_chunks([a, str(b), c]))
    assert chunks == [[b"1", b"2", b"3", b"4", b"5", b"6"]]


def test_files_chunking_and_crlf(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b"".join(b"%d\r\n" % i for i in range(7)))
    chunks = list(iter_line_chunks([p, p], chunk_lines=3))
    assert [len(c) for c in chunks] == [3, 3, 3, 3, 2]
    assert [x for c in chunks for x in c] == [b"%d" % i for i in range(7)] * 2


def test_files_missing_file_named(tmp_path: Path) -> None:
    ok = write(tmp_path / "ok.jsonl", [b"1"])
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError) as exc:
        list(iter_line_chunks([ok, missing]))
    assert str(missing) in str(exc.value)


def test_files_decode_end_to_end(tmp_path: Path) -> None:
    lines = [dumps(pred(i)) for i in range(10)] + [b"", b"{broken"]
    p = write(tmp_path / "events.jsonl", lines, gz=True)
    d = Decoder()
    total, invalid = 0, 0
    for chunk in iter_line_chunks([p], chunk_lines=4):
        b = d.decode_lines(chunk)
        total += n_valid(b)
        invalid += sum(b.invalid.values())
    assert (total, invalid) == (10, 1)


def test_files_truncated_gzip_names_path(tmp_path: Path) -> None:
    p = tmp_path / "cut.jsonl"
    p.write_bytes(gzip.compress(b"\n".join(dumps(pred(i)) for i in range(200)))[:-30])
    with pytest.raises((EOFError, OSError)) as exc:
        list(iter_line_chunks([p]))
    assert any(str(p) in note for note in getattr(exc.value, "__notes__", []))
