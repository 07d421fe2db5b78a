"""Event contract v1 decoder: raw Kafka values or replay lines -> columnar batches.

This is the hot path, so events are never materialised as objects: orjson
parses whole messages or lines, each field is validated and appended to a
plain per-model list, and every list becomes one numpy array at the end of the
batch.  Bad input is never fatal and never takes good data down with it: each
rejected event (or undecodable line/message) is counted under one short reason.
Feature types are fixed per model on first sight (or by config) so that a feed
that starts sending strings where numbers were expected shows up as
``type_mismatches`` instead of silently changing a column's meaning.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import repeat
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson

from monitor.batch import DecodedBatch, LabelColumns, PredictionColumns
from monitor.codec import shared_strings
from monitor.config.types import LimitsConfig
from monitor.limits import Caps

INVALID_REASONS = (
    "message_too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "unknown_type",
    "missing_model",
    "bad_model",
    "missing_id",
    "bad_id",
    "missing_ts",
    "bad_ts",
    "missing_prediction",
    "bad_prediction",
    "bad_version",
    "bad_latency",
    "bad_status",
    "bad_features",
    "bad_segment",
    "bad_resources",
    "missing_label",
    "bad_label",
)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
FEATURE_TYPES = (NUMERIC, CATEGORICAL)
EVENT_TYPES = ("prediction", "label")

MAX_MODEL_CHARS = 200
MAX_SAMPLES_PER_REASON = 3
SAMPLE_BYTES = 500
TS_MIN = 946_684_800.0  # 2000-01-01T00:00:00Z
TS_MAX = 4_133_980_800.0  # 2101-01-01T00:00:00Z (exclusive)

_NAN = math.nan
_EMPTY: dict[str, Any] = {}
_UNPARSED = object()
_NUMERIC_OK = frozenset((float, int, bool, type(None)))
_CATEGORICAL_OK = frozenset((str, type(None)))
_BOM = b"\xef\xbb\xbf"
_JSONDecodeError = orjson.JSONDecodeError
_loads = orjson.loads


# int64: orjson parses a JSON integer below as a float (above up to 2**64 - 1 as an
# int, and as a float past that; msgspec's bounds stop at int64, so the path of
# ``_event`` takes those)
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _Common(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    """The common shape of an event, validated by msgspec in one compiled pass.

    Every value it accepts is one that ``Decoder._event`` accepts as it is (or as
    it converts it: ints of numeric fields come as floats, as numpy and float()
    would make them, both correctly rounded); anything else -- a string ts, a
    segment value to stringify, resources, nulls where a field is required,
    nested feature values, integers orjson would parse as floats -- fails here
    or in ``Decoder._fast`` and the line takes the per-event path, which gives
    its exact reason.  So do keys outside the contract: msgspec skips an unknown
    key's value without checking it (invalid UTF-8 in it passes), orjson does not."""

    type: Literal["prediction", "label", None] = None
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MODEL_CHARS)] | None = None
    id: Annotated[str, msgspec.Meta(min_length=1)] | _Int | None = None
    ts: Annotated[float, msgspec.Meta(ge=TS_MIN, lt=TS_MAX)] | None = None
    status: Literal["ok", "error", None] = None
    prediction: float | str | bool | None = None
    label: float | str | bool | None = None
    model_version: str | _Int | float | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)] | None = None
    segment: dict[str, str] | None = None
    features: dict[str, float | str | bool | None] | None = None
    resources: None = None


_common = msgspec.json.Decoder(_Common).decode
_MsgspecError = msgspec.DecodeError  # ValidationError is one


def _floats(xs: list[Any]) -> np.ndarray:
    """float64 column of floats, ints and bools, as np.array(xs, dtype=float64) but
    at a third of its cost; TypeError for any other value (None and strings too)."""
    return np.array(array("d", xs))


class _Reject(Exception):
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Predictions:
    __slots__ = ("ts", "ids", "versions", "pred", "pred_class", "latency", "error",
                 "feats", "segs", "seg_keys", "bad", "res")

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.ids: list[str] = []
        self.versions: list[str] = []
        self.pred: list[float] = []
        self.pred_class: list[str | None] = []
        self.latency: list[float] = []
        self.error: list[bool] = []
        # one dict per row (shared empty dict when absent); columns are cut at the end
        self.feats: list[dict[str, Any]] = []
        self.segs: list[dict[str, str]] = []
        self.seg_keys: dict[str, None] = {}
        # feature -> rows whose value was of a type no column can hold (seen on first
        # sight of the name, before it had a type); the columns add their own at the end
        self.bad: dict[str, list[int]] = {}
        # serving resources (RESOURCES), NaN where absent; None until a row has any
        self.res: dict[str, list[float]] | None = None


class _Labels:
    __slots__ = ("ts", "ids", "label", "label_class")

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.ids: list[str] = []
        self.label: list[float] = []
        self.label_class: list[str | None] = []


def _parse_ts(v: Any) -> float:
    tv = type(v)
    if tv is float or tv is int:
        t = float(v)
    elif tv is str:
        if len(v) < 20 or v[4] != "-" or v[10] not in "Tt ":
            raise _Reject("bad_ts")
        try:
            d = datetime.fromisoformat(v)
        except ValueError:
            try:
                d = datetime.fromisoformat(v.upper())
            except ValueError:
                raise _Reject("bad_ts") from None
        if d.tzinfo is None:
            raise _Reject("bad_ts")
        t = d.timestamp()
    elif v is None:
        raise _Reject("missing_ts")
    else:
        raise _Reject("bad_ts")
    if not TS_MIN <= t < TS_MAX:
        raise _Reject("bad_ts")
    return t


def _parse_id(v: Any) -> str:
    tv = type(v)
    if tv is str:
        if v:
            return v
        raise _Reject("bad_id")
    if tv is int:
        return str(v)
    if v is None:
        raise _Reject("missing_id")
    raise _Reject("bad_id")


def _parse_version(v: Any) -> str:
    if v is None or v == "":
        return "unknown"
    if type(v) is int or type(v) is float:
        return str(v)
    raise _Reject("bad_version")


def _parse_latency(v: Any) -> float:
    if v is None:
        return _NAN
    if type(v) is int:
        latency = float(v)
        if latency >= 0.0:
            return latency
    raise _Reject("bad_latency")


RESOURCES = ("memory_mb", "gpu_memory_mb")  # the keys read from an event's "resources"


def _parse_resources(v: Any) -> tuple[float, ...]:
    """The event's serving resources, NaN where not given; other keys are ignored."""
    if type(v) is not dict:
        raise _Reject("bad_resources")
    out = []
    for k in RESOURCES:
        x = v.get(k)
        if x is None:
            out.append(_NAN)
        elif (type(x) is int or type(x) is float) and 0.0 <= x < math.inf:
            out.append(float(x))
        else:
            raise _Reject("bad_resources")
    return tuple(out)


def _coerce_segment(seg: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in seg.items():
        tv = type(v)
        if tv is str:
            out[k] = v
        elif tv is bool:
            out[k] = "true" if v else "false"
        elif tv is int or tv is float:
            out[k] = str(v)
        elif v is not None:
            raise _Reject("bad_segment")
    return out


def _parse_lines(value: bytes) -> Iterator[tuple[Any, bytes]]:
    """(document or _UNPARSED, raw line) for every non-blank line of a message."""
    for line in value.split(b"\n"):
        try:
            yield _loads(line), line
        except _JSONDecodeError:
            if line and not line.isspace():
                yield _UNPARSED, line


class Decoder:
    """Stateful batch decoder; one per pipeline (it remembers feature types)."""

    # events of the common shape through msgspec (``_fast``); False: every event by
    # orjson and ``_event``, the reference the tests hold the fast path to
    fast = True

    def __init__(self, feature_types: dict[str, dict[str, str]] | None = None,
                 max_features: int = 100, max_message_bytes: int = 4_000_000,
                 limits: LimitsConfig | None = None) -> None:
        self.configured: dict[str, dict[str, str]] = {}
        for model, types in (feature_types or {}).items():
            for name, kind in types.items():
                if kind not in FEATURE_TYPES:
                    raise ValueError(f"{model}.{name}: feature type must be one of "
                                     f"{FEATURE_TYPES}, got {kind!r}")
            self.configured[model] = dict(types)
        self.max_features = max_features
        self.max_message_bytes = max_message_bytes
        self._types: dict[str, dict[str, str]] = {m: dict(t) for m, t in self.configured.items()}
        # names seen only with nested (list/object) values: no column can hold them, but
        # they count against max_features like the typed ones (their mismatch series)
        self._untyped: dict[str, set[str]] = {}
        self.caps = Caps(limits, self.configured)
        # with a dead-letter topic: every rejected event of decode_messages, whole, as
        # (index of its message in the values, reason, raw bytes); None: not collected
        self.dead: list[tuple[int, str, bytes]] | None = None
        self._message = 0
        self.max_name_chars = self.caps.limits.max_name_chars
        self.type_mismatches: Counter[tuple[str, str]] = Counter()  # since this decoder began

    # -- state ---------------------------------------------------------------
    def feature_types(self, model: str) -> dict[str, str]:
        """Configured and inferred types of the tracked features of ``model``."""
        return dict(self._types.get(model, {}))

    def to_state(self) -> dict[str, Any]:
        inferred = {
            model: {k: t for k, t in types.items() if k not in self.configured.get(model, {})}
            for model, types in self._types.items()
        }
        return {
            "version": 1,
            "feature_types": {m: t for m, t in inferred.items() if t},
            "untyped_features": {m: sorted(s) for m, s in self._untyped.items() if s},
            "caps": self.caps.to_state(),
        }

    def load_state(self, state: dict[str, Any], models: Iterable[str] = ()) -> None:
        """A saved state; ``models`` are admitted whatever ``max_models`` (the pipeline
        holds their state already)."""
        if state.get("version") != 1:
            raise ValueError(f"unsupported decoder state version {state.get('version')!r}")
        self._types = {m: dict(t) for m, t in self.configured.items()}
        for model, types in state.get("feature_types", {}).items():
            mine = self._types.setdefault(model, {})
            for name, kind in types.items():
                if kind in FEATURE_TYPES:
                    mine.setdefault(name, kind)
        # (a state saved before the caps remembered every name dropped past max_features
        # as "dropped_features": ignored now -- past the cap nothing is remembered)
        self._untyped = {m: set(names) - self._types.get(m, {}).keys()
                         for m, names in state.get("untyped_features", {}).items()}
        self.caps.load_state(state.get("caps", {}), [*self._types, *models])

    # -- decoding ------------------------------------------------------------
    def decode_messages(self, values: Iterable[bytes], default_type: str | None) -> DecodedBatch:
        """Kafka message values: one object, an array of objects, or ndjson each."""
        if default_type is not None and default_type not in EVENT_TYPES:
            raise ValueError(f"default_type must be one of {EVENT_TYPES} or None")
        is_label = default_type == "label"
        batch = DecodedBatch()
        preds: dict[str, _Predictions] = {}
        labels: dict[str, _Labels] = {}
        limit = self.max_message_bytes
        fast = self._fast if self.fast else None
        for i, value in enumerate(values):
            self._message = i
            if not value:
                continue
            if len(value) > limit:
                self._invalid(batch, "message_too_large", value)
                continue
            if value[:1] in b"[{" and b"\n{" not in value:
                if fast is not None and fast(value, batch, preds, labels, is_label):
                    continue
                try:
                    doc = _loads(value)
                except _JSONDecodeError:
                    if b"\n" not in value or not self._lines(value, batch, preds, labels,
                                                              is_label, quiet=True):
                        self._undecodable(batch, value)
                    continue
                if type(doc) is list:
                    for ev in doc:
                        self._event(ev, None, batch, preds, labels, is_label)
                else:
                    self._event(doc, value, batch, preds, labels, is_label)
            else:
                self._lines(value, batch, preds, labels, is_label, quiet=False)
        self._finish(batch, preds, labels)
        return batch

    def decode_lines(self, lines: Iterable[bytes]) -> DecodedBatch:
        """Replay input: one JSON object per line; blank lines are skipped."""
        batch = DecodedBatch()
        preds: dict[str, _Predictions] = {}
        labels: dict[str, _Labels] = {}
        limit = self.max_message_bytes
        event = self._event
        fast = self._fast if self.fast else None
        for line in lines:
            if len(line) > limit:
                self._invalid(batch, "message_too_large", line)
                continue
            if fast is not None and fast(line, batch, preds, labels, False):
                continue
            try:
                ev = _loads(line)
            except _JSONDecodeError:
                if not line or line.isspace():
                    continue
                ev = self._retry(line, batch)
                if ev is None:
                    continue
            event(ev, line, batch, preds, labels, False)
        self._finish(batch, preds, labels)
        return batch

    def _lines(self, value: bytes, batch: DecodedBatch, preds: dict[str, _Predictions],
               labels: dict[str, _Labels], is_label: bool, quiet: bool) -> bool:
        """Decode an ndjson message line by line.  With ``quiet`` (a failed whole
        parse of what may be one pretty-printed document) nothing is recorded
        unless some line holds an object, so a broken document counts once."""
        event = self._event
        if quiet:
            parsed: Iterable[tuple[Any, bytes]] = list(_parse_lines(value))
            if not any(type(d) is dict for d, _ in parsed):
                return False
        else:
            parsed = self._parse_lines_fast(value, batch, preds, labels, is_label)
        for doc, line in parsed:
            if doc is _UNPARSED:
                doc = self._retry(line, batch)
                if doc is None:
                    continue
            if type(doc) is list:
                for ev in doc:
                    event(ev, None, batch, preds, labels, is_label)
            else:
                event(doc, line, batch, preds, labels, is_label)
        return True

    def _parse_lines_fast(self, value: bytes, batch: DecodedBatch,
                          preds: dict[str, _Predictions], labels: dict[str, _Labels],
                          is_label: bool) -> Iterator[tuple[Any, bytes]]:
        """``_parse_lines``, less the lines ``_fast`` decodes (in their turn)."""
        fast = self._fast if self.fast else None
        for line in value.split(b"\n"):
            if fast is not None and fast(line, batch, preds, labels, is_label):
                continue
            try:
                yield _loads(line), line
            except _JSONDecodeError:
                if line and not line.isspace():
                    yield _UNPARSED, line

    def _retry(self, raw: bytes, batch: DecodedBatch) -> Any:
        """Error path of a parse: tolerate a BOM, else count why it failed."""
        if raw.startswith(_BOM):
            try:
                return _loads(raw[3:])
            except _JSONDecodeError:
                pass
        self._undecodable(batch, raw)
        return None

    def _undecodable(self, batch: DecodedBatch, raw: bytes) -> None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            self._invalid(batch, "invalid_utf8", raw)
        else:
            self._invalid(batch, "invalid_json", raw)

    def _invalid(self, batch: DecodedBatch, reason: str, raw: bytes | None,
                 ev: Any = None) -> None:
        batch.invalid[reason] += 1
        sample = batch.invalid[reason] <= MAX_SAMPLES_PER_REASON
        if sample or self.dead is not None:
            if raw is None:
                try:
                    raw = orjson.dumps(ev)
                except TypeError:
                    raw = repr(ev).encode()
            if sample:
                batch.invalid_samples.append((reason, bytes(raw[:SAMPLE_BYTES])))
            if self.dead is not None:
                self.dead.append((self._message, reason, bytes(raw)))

    def _fast(self, raw: bytes, batch: DecodedBatch, preds: dict[str, _Predictions],
              labels: dict[str, _Labels], is_label: bool) -> bool:
        """One event of the common shape (``_Common``), decoded as ``_event`` would
        decode its orjson document; False (nothing done) for any other line, which
        then takes the per-event path."""
        try:
            e = _common(raw)
        except _MsgspecError:
            return False
        model = e.model
        id_ = e.id
        ts = e.ts
        if model is None or id_ is None or ts is None:
            return False
        kind = e.type
        if (is_label if kind is None else kind == "label"):
            v = e.label
            if v is None:
                return False
            if model not in self.caps.models and not self.caps.admit(model):
                batch.dropped["model_limit"] += 1
                return True
            lacc = labels.get(model)
            if lacc is None:
                lacc = labels[model] = _Labels()
            lacc.ts.append(ts)
            lacc.ids.append(id_ if type(id_) is str else str(id_))
            if type(v) is str:
                lacc.label.append(_NAN)
                lacc.label_class.append(v)
            else:
                lacc.label.append(float(v))
                lacc.label_class.append(None)
            return True

        num: float = _NAN
        cls: str | None = None
        error = e.status == "error"
        if not error:
            p = e.prediction
            if p is None:
                return False
            if type(p) is str:
                cls = p
            else:
                num = float(p)
        if model not in self.caps.models and not self.caps.admit(model):
            batch.dropped["model_limit"] += 1
            return True
        version = e.model_version
        if type(version) is not str or not version:
            version = "unknown" if version is None or version == "" else str(version)
        latency = e.latency_ms
        seg = e.segment
        if seg is None:
            seg = _EMPTY
        feats: dict[str, Any] | None = e.features
        if feats is None:
            feats = _EMPTY

        acc = preds.get(model)
        if acc is None:
            acc = preds[model] = _Predictions()
        acc.ts.append(ts)
        acc.ids.append(id_ if type(id_) is str else str(id_))
        acc.versions.append(version)
        acc.pred.append(num)
        acc.pred_class.append(cls)
        acc.latency.append(_NAN if latency is None else latency)
        acc.error.append(error)
        acc.segs.append(seg)
        if acc.res is not None:
            for col in acc.res.values():
                col.append(_NAN)
        self._add_features(model, feats, seg, acc, batch)
        return True

    def _event(self, ev: Any, raw: bytes | None, batch: DecodedBatch,
               preds: dict[str, _Predictions], labels: dict[str, _Labels],
               is_label: bool) -> None:
        if type(ev) is not dict:
            self._invalid(batch, "not_an_object", raw, ev)
            return
        get = ev.get
        admitted = self.caps.models
        try:
            kind = get("type")
            if kind is None:
                label = is_label
            elif kind == "prediction":
                label = False
            elif kind == "label":
                label = True
            else:
                raise _Reject("unknown_type")

            model = get("model")
            if type(model) is not str or not 0 < len(model) <= MAX_MODEL_CHARS:
                raise _Reject("missing_model" if model is None else "bad_model")
            if model not in admitted and not self.caps.admit(model):
                batch.dropped["model_limit"] += 1
                return
            id_ = get("id")
            if type(id_) is not str or not id_:
                id_ = _parse_id(id_)
            ts = get("ts")
            if type(ts) is not float or not TS_MIN <= ts < TS_MAX:
                ts = _parse_ts(ts)

            if label:
                self._label(ev, model, id_, ts, labels)
                return

            status = get("status")
            if status is None or status == "ok":
                error = False
                p: Any = get("prediction")
                tp = type(p)
                if tp is float:
                    num, cls = p, None
                elif tp is str:
                    num, cls = _NAN, p
                elif tp is int or tp is bool:
                    num, cls = float(p), None
                elif p is None:
                    raise _Reject("missing_prediction")
                else:
                    raise _Reject("bad_prediction")
            elif status == "error":
                error = True
                num, cls = _NAN, None
            else:
                raise _Reject("bad_status")

            version = get("model_version")
            if type(version) is not str or not version:
                version = _parse_version(version)

            latency = get("latency_ms")
            if type(latency) is not float or not 0.0 <= latency < math.inf:
                latency = _parse_latency(latency)

            seg = get("segment")
            if seg is None:
                seg = _EMPTY
            elif type(seg) is not dict:
                raise _Reject("bad_segment")
            else:
                for v in seg.values():
                    if type(v) is not str:
                        seg = _coerce_segment(seg)
                        break

            res = get("resources")
            if res is not None:
                res = _parse_resources(res)

            feats = get("features")
            if feats is None:
                feats = _EMPTY
            elif type(feats) is not dict:
                raise _Reject("bad_features")
        except _Reject as r:
            self._invalid(batch, r.reason, raw, ev)
            return

        acc = preds.get(model)
        if acc is None:
            acc = preds[model] = _Predictions()
        acc.ts.append(ts)
        acc.ids.append(id_)
        acc.versions.append(version)
        acc.pred.append(num)
        acc.pred_class.append(cls)
        acc.latency.append(latency)
        acc.error.append(error)
        acc.segs.append(seg)
        if res is not None or acc.res is not None:
            if acc.res is None:
                acc.res = {k: [_NAN] * (len(acc.ts) - 1) for k in RESOURCES}
            for k, x in zip(RESOURCES, res or (_NAN,) * len(RESOURCES), strict=True):
                acc.res[k].append(x)
        self._add_features(model, feats, seg, acc, batch)

    def _add_features(self, model: str, feats: dict[str, Any], seg: dict[str, str] | None,
                      acc: _Predictions, batch: DecodedBatch) -> None:
        """An accepted prediction's features and segment keys (both paths): new
        feature names learn their type first (:meth:`_learn`)."""
        if seg and not seg.keys() <= acc.seg_keys.keys():
            acc.seg_keys.update(dict.fromkeys(seg))
        types = self._types.get(model)
        if types is None:
            types = self._types[model] = {}
        if feats and not feats.keys() <= types.keys():
            feats = self._learn(model, feats, types, acc, batch)
        acc.feats.append(feats)

    def _learn(self, model: str, feats: dict[str, Any], types: dict[str, str],
               acc: _Predictions, batch: DecodedBatch) -> dict[str, Any]:
        """First sight of feature names: infer their types, or drop them past the caps
        (``max_features``, nested-valued names included; ``max_name_chars``), counted
        and not remembered.

        Returns the features to keep for this row (nested values of unknown
        features are mismatches; dropped names are removed)."""
        untyped = self._untyped.get(model)
        if untyped is None:
            untyped = self._untyped[model] = set()
        drop: set[str] = set()
        dropped = batch.dropped
        for k, v in feats.items():
            if k in types:
                continue
            tv = type(v)
            if v is None:
                continue
            if k not in untyped:
                if len(k) > self.max_name_chars:
                    dropped["name_too_long"] += 1
                    drop.add(k)
                    continue
                if len(types) + len(untyped) >= self.max_features:
                    dropped["feature_limit"] += 1
                    drop.add(k)
                    continue
            if tv is str:
                kind = CATEGORICAL
            elif tv is float or tv is int or tv is bool:
                kind = NUMERIC
            else:
                untyped.add(k)
                acc.bad.setdefault(k, []).append(len(acc.feats))  # this row
                continue
            untyped.discard(k)
            types[k] = kind
        if drop:
            return {k: v for k, v in feats.items() if k not in drop}
        return feats

    @staticmethod
    def _label(ev: dict[str, Any], model: str, id_: str, ts: float,
               labels: dict[str, _Labels]) -> None:
        v: Any = ev.get("label")
        tv = type(v)
        if tv is float or tv is int or tv is bool:
            num, cls = float(v), None
        elif tv is str:
            num, cls = _NAN, v
        elif v is None:
            raise _Reject("missing_label")
        else:
            raise _Reject("bad_label")
        acc = labels.get(model)
        if acc is None:
            acc = labels[model] = _Labels()
        acc.ts.append(ts)
        acc.ids.append(id_)
        acc.label.append(num)
        acc.label_class.append(cls)

    @staticmethod
    def _column(name: str, kind: str, rows: list[dict[str, Any]],
                bad: dict[str, list[int]]) -> np.ndarray:
        """One feature's column; the rows whose value had another type are null in it
        and added to ``bad[name]``."""
        vals = list(map(dict.get, rows, repeat(name, len(rows))))
        wrong: list[int] = []
        if kind == NUMERIC:
            try:
                return _floats(vals)  # floats, ints and bools only: the common case
            except TypeError:
                pass
            seen = set(map(type, vals))
            if seen <= _NUMERIC_OK:
                return np.array(vals, dtype=np.float64)
            out = np.full(len(vals), _NAN)
            for i, v in enumerate(vals):
                tv = type(v)
                if tv is float or tv is int or tv is bool:
                    out[i] = v
                elif v is not None:
                    wrong.append(i)
        else:
            seen = set(map(type, vals))
            if seen <= _CATEGORICAL_OK:
                return np.array(shared_strings(vals), dtype=object)
            out = np.empty(len(vals), dtype=object)
            for i, v in enumerate(vals):
                if type(v) is str:
                    out[i] = sys.intern(v)
                elif v is not None:
                    wrong.append(i)
        if wrong:
            bad.setdefault(name, []).extend(wrong)
        return out

    def _finish(self, batch: DecodedBatch, preds: dict[str, _Predictions],
                labels: dict[str, _Labels]) -> None:
        for model, a in preds.items():
            numeric: dict[str, np.ndarray] = {}
            categorical: dict[str, np.ndarray] = {}
            bad = a.bad
            for name, kind in self._types.get(model, {}).items():
                col = self._column(name, kind, a.feats, bad)
                (numeric if kind == NUMERIC else categorical)[name] = col
            mismatched: dict[str, np.ndarray] = {}
            for name, rows in sorted(bad.items()):
                flags = mismatched[name] = np.zeros(len(a.ts), dtype=bool)
                flags[rows] = True  # a row seen both untyped and typed counts once
                batch.type_mismatches[model, name] = int(flags.sum())
            ts = _floats(a.ts)
            batch.predictions[model] = PredictionColumns(
                model=model,
                ts=ts,
                ids=np.array(a.ids, dtype=object),
                versions=self.caps.versions_of(model,
                                               np.array(shared_strings(a.versions), dtype=object),
                                               ts, batch.dropped, batch.evicted_versions),
                prediction=_floats(a.pred),
                prediction_class=np.array(shared_strings(a.pred_class), dtype=object),
                latency_ms=_floats(a.latency),
                error=np.array(a.error, dtype=bool),
                numeric=numeric,
                categorical=categorical,
                segments=self.caps.segments_of(model, a.seg_keys, a.segs, batch.dropped),
                mismatched=mismatched,
                resources={k: _floats(v) for k, v in (a.res or {}).items()},
            )
        for model, b in labels.items():
            batch.labels[model] = LabelColumns(
                model=model,
                ts=_floats(b.ts),
                ids=np.array(b.ids, dtype=object),
                label=_floats(b.label),
                label_class=np.array(shared_strings(b.label_class), dtype=object),
            )
        self.type_mismatches.update(batch.type_mismatches)


