"""The msgspec path of the decoder (``Decoder._fast``) decodes exactly as the per-event
path (``Decoder.fast = False``: orjson and ``Decoder._event``, the reference) on
generated input: every column (dtype, values bit for bit, order), the invalid
reasons, counts and samples, dead letters, drops, mismatches and the state after."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.batch import DecodedBatch
from monitor.config.types import LimitsConfig
from monitor.events import Decoder, _floats
from monitor.simulate import DEMO_MODELS, ndjson_chunks, stream

T0 = 1_767_225_600.0


def canon(a: np.ndarray) -> tuple[Any, ...]:
    """An array as dtype, shape and exact content (floats by their bits, objects
    by type and value)."""
    if a.dtype == object:
        return (a.dtype.str, a.shape, [(type(v).__name__, v) for v in a.tolist()])
    return (a.dtype.str, a.shape, a.tobytes())


def canon_cols(cols: dict[str, np.ndarray]) -> list[tuple[str, Any]]:
    return [(k, canon(v)) for k, v in cols.items()]


def canon_batch(b: DecodedBatch) -> dict[str, Any]:
    preds = []
    for model, c in b.predictions.items():
        preds.append((model, c.model, canon(c.ts), canon(c.ids), canon(c.versions),
                      canon(c.prediction), canon(c.prediction_class), canon(c.latency_ms),
                      canon(c.error), canon_cols(c.numeric), canon_cols(c.categorical),
                      canon_cols(c.segments), canon_cols(c.mismatched),
                      canon_cols(c.resources)))
    labels = [(model, c.model, canon(c.ts), canon(c.ids), canon(c.label),
               canon(c.label_class)) for model, c in b.labels.items()]
    return {"predictions": preds, "labels": labels, "invalid": list(b.invalid.items()),
            "samples": b.invalid_samples, "mismatches": list(b.type_mismatches.items()),
            "dropped": list(b.dropped.items()), "evicted": b.evicted_versions}


def decoder(fast: bool, **kw: Any) -> Decoder:
    limits = kw.pop("limits", None)
    d = Decoder(limits=limits, **kw)
    d.fast = fast
    d.dead = []
    return d


def canon_decoder(d: Decoder) -> tuple[Any, ...]:
    return (json.dumps(d.to_state()), list(d.type_mismatches.items()), d.dead)


def same_lines(batches: list[list[bytes]], **kw: Any) -> None:
    ref, new = decoder(False, **kw), decoder(True, **kw)
    for lines in batches:
        assert canon_batch(new.decode_lines(lines)) == canon_batch(ref.decode_lines(lines))
        assert canon_decoder(new) == canon_decoder(ref)


def same_messages(batches: list[list[bytes]], default_type: str | None, **kw: Any) -> None:
    ref, new = decoder(False, **kw), decoder(True, **kw)
    for values in batches:
        assert (canon_batch(new.decode_messages(values, default_type))
                == canon_batch(ref.decode_messages(values, default_type)))
        assert canon_decoder(new) == canon_decoder(ref)


# -- generated events, serialised by hand (duplicate keys, raw number text, escapes) --

class Raw(str):
    """JSON text written as it is."""


def enc(v: Any, ascii_: bool) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Pairs):
        return v.text(ascii_)
    if isinstance(v, list):
        return "[" + ",".join(enc(x, ascii_) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{enc(k, ascii_)}:{enc(x, ascii_)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return orjson.dumps(v).decode()  # shortest repr; non-finite floats become null
    return json.dumps(v, ensure_ascii=ascii_)


class Pairs(list):  # type: ignore[type-arg]
    """A JSON object as (key, value) pairs: keys may repeat."""

    def text(self, ascii_: bool) -> str:
        return "{" + ",".join(f"{enc(k, ascii_)}:{enc(v, ascii_)}" for k, v in self) + "}"


BIG = [2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30]
raw_numbers = st.sampled_from(
    ["-0", "-0.0", "0.0", "1e400", "-1e400", "1e-400", "4.9e-324", "1E3", "1.5e+2",
     "123456789012345678901234567890", "123456789012345678901234567890.5",
     "1767225600", "1767225600.000000000001", "1.7976931348623157e308", "01", "1.",
     ".5", "+1", "NaN", "Infinity", "1767225600e0", "0x10"]).map(Raw)
texts = (st.sampled_from(["", "a", "m", "n", "é", "模型", "pod-0", "v1", "x" * 200,
                          "x" * 201, "true", "null", "NaN", "\u2028", "a\\b", 'q"q',
                          "\x00", "\ud800", "\udfff", "\U0001f600"])
         | st.text(max_size=6)
         | st.text(st.characters(categories=["Cs", "Cc", "Lo", "So"]), max_size=3))
ints = st.sampled_from(BIG) | st.integers(-5, 5) | st.integers()
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 5e-324, 1.5, T0, T0 + 0.123, 946_684_800.0, 946_684_799.9,
     4_133_980_800.0, 4_133_980_799.9])
scalars = st.none() | st.booleans() | ints | floats | texts | raw_numbers
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3)
                      | st.dictionaries(texts, kids, max_size=3), max_leaves=6)


def obj(keys: st.SearchStrategy[str], vals: st.SearchStrategy[Any],
        max_size: int = 4) -> st.SearchStrategy[Pairs]:
    return st.lists(st.tuples(keys, vals), max_size=max_size).map(Pairs)


feature_names = st.sampled_from(["x", "y", "plan", "z", "é", "x" * 201]) | texts
feature_values = (floats | ints | st.booleans() | st.none() | st.sampled_from(
    ["basic", "pro", ""]) | raw_numbers | texts | values)
ts_values = (floats | st.sampled_from(
    [T0, int(T0), "2026-01-01T00:00:00Z", "2026-01-01t00:00:00z", "2026-01-01T00:00:00",
     "2026-01-01T00:00:00+01:00", "2026-01-01 00:00:00.5+00:00", "2101-01-01T00:00:00Z"])
             | raw_numbers | scalars)
fields: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["prediction", "label", "Prediction", "", "other"]) | scalars,
    "model": st.sampled_from(["m", "n", "é模型", "", "x" * 200, "x" * 201]) | scalars,
    "id": texts | ints | scalars,
    "ts": ts_values,
    "model_version": st.sampled_from(["v1", "v2", ""]) | ints | floats | scalars,
    "features": obj(feature_names, feature_values, 5) | scalars
    | st.lists(scalars, max_size=2),
    "latency_ms": floats | ints | raw_numbers | scalars,
    "segment": obj(st.sampled_from(["host", "zone"]) | texts, st.sampled_from(
        ["pod-0", "pod-1"]) | scalars | values, 3) | scalars,
    "prediction": floats | ints | st.booleans() | st.sampled_from(["yes", "no"]) | scalars
    | values,
    "status": st.sampled_from(["ok", "error", "OK", ""]) | scalars,
    "label": floats | ints | st.booleans() | st.sampled_from(["yes", "no"]) | scalars
    | values,
    "resources": obj(st.sampled_from(["memory_mb", "gpu_memory_mb", "other"]),
                     floats | ints | scalars, 3) | scalars,
    "extra": values,
}


near: dict[str, st.SearchStrategy[Any]] = {  # the right JSON type, odd values
    "type": st.sampled_from(["prediction", "label", None]),
    "model": texts,
    "id": texts | ints,
    "ts": floats | st.integers(946_684_700, 4_133_980_900) | raw_numbers,
    "model_version": texts | ints | floats | raw_numbers,
    "features": obj(feature_names, floats | ints | st.booleans() | st.none() | texts
                    | raw_numbers, 5),
    "latency_ms": floats | ints | raw_numbers | st.none(),
    "segment": obj(texts, texts, 3),
    "prediction": floats | ints | st.booleans() | texts | raw_numbers,
    "status": st.sampled_from(["ok", "error", None]),
    "label": floats | ints | st.booleans() | texts | raw_numbers,
}


@st.composite
def event(draw: st.DrawFn) -> str:
    """An event usually close to valid: most fields right, some odd (of the right
    JSON type or not), keys repeated."""
    pairs = Pairs()
    model = draw(st.sampled_from(["m", "n", "o"]))
    good: dict[str, Any] = {
        "type": draw(st.sampled_from(["prediction", "label", None])), "model": model,
        "id": draw(st.sampled_from(["i-1", "i-2"]) | st.integers(0, 9)),
        "ts": draw(st.sampled_from([T0, T0 + 0.5, int(T0)])),
        "model_version": draw(st.sampled_from(["v1", "v2"])),
        "features": draw(obj(st.sampled_from(["x", "y", "plan"]), st.sampled_from(
            [0.5, 1, -2.25, "basic", "pro", None, True]), 3)),
        "latency_ms": draw(st.sampled_from([12.5, 3, 0.0])),
        "segment": {"host": draw(st.sampled_from(["pod-0", "pod-1"]))},
        "prediction": draw(st.sampled_from([0.25, 1, "yes"])),
        "label": draw(st.sampled_from([1.0, 0, "yes", False])),
    }
    for k, v in good.items():
        if draw(st.integers(0, 19)) > 0:
            pairs.append((k, draw(near[k])) if draw(st.integers(0, 5)) == 0 else (k, v))
    if draw(st.integers(0, 2)) == 0:
        for k in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3)):
            pairs.insert(draw(st.integers(0, len(pairs))), (k, draw(fields[k])))
    if draw(st.integers(0, 3)) == 0:
        pairs = Pairs(draw(st.permutations(pairs)))
    return pairs.text(draw(st.booleans()))


@st.composite
def line(draw: st.DrawFn) -> bytes:
    text = draw(st.one_of(event(), event(), event(), values.map(lambda v: enc(v, False))))
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a lone surrogate written as it is: not UTF-8
        raw = text.encode("utf-8", "surrogatepass")
    kind = draw(st.integers(0, 19))
    if kind == 0:
        raw = b"\xef\xbb\xbf" + raw
    elif kind == 1:
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif kind == 2:
        raw = b" \t" + raw + b" \r"
    elif kind == 3:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\x00", b"\x0c"])) \
            + raw[at:]
    elif kind == 4:
        raw = b"[" + raw + b"," + raw + b"]"
    elif kind == 5:
        raw = draw(st.sampled_from([b"", b"   ", b"\r"]))
    return raw


limits_st = st.sampled_from([None, LimitsConfig(max_models=1, max_versions_per_model=1,
                                                max_segment_values=1, max_name_chars=3)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(line(), max_size=12), min_size=1, max_size=3),
       st.integers(1, 4), limits_st)
def test_fast_lines_decode_as_the_reference(batches: list[list[bytes]], max_features: int,
                                            limits: LimitsConfig | None) -> None:
    same_lines(batches, max_features=max_features, max_message_bytes=300, limits=limits)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(line() | st.lists(line(), max_size=4).map(b"\n".join)
                         | st.lists(event(), max_size=3).map(
                             lambda evs: ("[" + ",".join(evs) + "]").encode("utf-8",
                                                                        "surrogatepass")),
                         max_size=6), min_size=1, max_size=3),
       st.sampled_from([None, "prediction", "label"]), st.integers(1, 4), limits_st)
def test_fast_messages_decode_as_the_reference(batches: list[list[bytes]],
                                               default_type: str | None, max_features: int,
                                               limits: LimitsConfig | None) -> None:
    same_messages(batches, default_type, max_features=max_features, max_message_bytes=300,
                  limits=limits)


def test_fast_simulated_traffic_decodes_as_the_reference() -> None:
    events = stream(DEMO_MODELS, 300, ())
    messages = list(ndjson_chunks(events, 50))
    lines = [ln for m in messages for ln in m.split(b"\n")]
    same_lines([lines[:400], lines[400:]])
    same_messages([messages], None)
    same_messages([[orjson.dumps(e) for e in events]], None)


def test_fast_path_takes_the_common_shape() -> None:
    """The equality above would hold with a fast path that never fires: it does."""
    d = Decoder()
    ev = {"type": "prediction", "id": "a", "model": "m", "ts": T0, "prediction": 0.5,
          "features": {"x": 1}, "segment": {"host": "h"}, "latency_ms": 3}
    preds: dict[str, Any] = {}
    assert d._fast(orjson.dumps(ev), DecodedBatch(), preds, {}, False)
    assert not d._fast(orjson.dumps({**ev, "ts": "2026-01-01T00:00:00Z"}), DecodedBatch(),
                       preds, {}, False)
    assert not d._fast(orjson.dumps({**ev, "id": 2**63}), DecodedBatch(), preds, {}, False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats() | st.integers(-(2**63), 2**64 - 1) | st.booleans(), max_size=20),
       st.none() | st.text(max_size=3) | st.lists(st.integers(), max_size=1)
       | st.dictionaries(st.text(max_size=1), st.integers(), max_size=1))
def test_floats_column_is_numpys(xs: list[Any], other: Any) -> None:
    """_floats (array('d')) builds the float64 column np.array(dtype=float64) does, bit
    for bit, and refuses what a numeric column must check first (None, str, nested)."""
    assert canon(_floats(xs)) == canon(np.array(xs, dtype=np.float64))
    with pytest.raises(TypeError):
        _floats([*xs, other])
