"""Per-model windows in event time: a warm-up reference and tumbling windows.

A :class:`Frame` is a growable set of columns (the prediction columns of one
model).  :class:`ModelWindows` routes each incoming batch first into the
reference until it holds ``reference_events`` rows, then into the current
window, which closes after ``window_events`` rows or ``window_seconds`` of
event time, whichever comes first.  Closed windows are returned to the caller
for evaluation.  All state round-trips through JSON-able dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from monitor.batch import PredictionColumns
from monitor.codec import f64_from_text, f64_to_text, object_array

_FLOAT_COLS = ("ts", "prediction", "latency_ms")
_OBJ_COLS = ("versions", "prediction_class")
# a model that gets a row or two per batch would keep one set of tiny arrays (one per
# feature, ~200 bytes each) per row: small chunks are merged with their predecessor while
# it is at most twice their size (a binary counter: O(log n) chunks, O(n log n) copying)
SMALL_CHUNK_ROWS = 256


@dataclass
class Frame:
    """Columns of one model: concatenated lazily (chunks until ``compact``)."""

    chunks: list[PredictionColumns] = field(default_factory=list)
    n: int = 0

    def append(self, cols: PredictionColumns) -> None:
        if cols.n:
            self.chunks.append(cols)
            self.n += cols.n
            c = self.chunks
            while len(c) >= 2 and c[-1].n < SMALL_CHUNK_ROWS and c[-2].n <= 2 * c[-1].n:
                c[-2:] = [concat(c[-2:])]

    def compact(self) -> PredictionColumns | None:
        """One PredictionColumns holding every row (None when empty)."""
        if not self.chunks:
            return None
        if len(self.chunks) > 1:
            self.chunks = [concat(self.chunks)]
        return self.chunks[0]

    def to_state(self) -> dict[str, Any] | None:
        cols = self.compact()
        if cols is None:
            return None
        state = columns_to_state(cols)
        del state["ids"]  # not kept (without_ids)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Frame:
        frame = cls()
        if state is not None:  # a state saved when frames kept ids: dropped
            frame.append(without_ids(columns_from_state(state)))
        return frame


def _empty_like(arr: np.ndarray, n: int) -> np.ndarray:
    if arr.dtype == object:
        return np.full(n, None, dtype=object)
    return np.full(n, np.nan, dtype=arr.dtype)


def _merge_dicts(chunks: list[dict[str, np.ndarray]], sizes: list[int]) -> dict[str, np.ndarray]:
    names: dict[str, np.ndarray] = {}
    for d in chunks:
        for k, v in d.items():
            names.setdefault(k, v)
    return {
        k: np.concatenate(
            [d[k] if k in d else _empty_like(proto, n) for d, n in zip(chunks, sizes, strict=True)]
        )
        for k, proto in names.items()
    }


def _merge_flags(chunks: list[dict[str, np.ndarray]], sizes: list[int]
                 ) -> dict[str, np.ndarray]:
    """Per-row flags of the chunks in order; a name absent from a chunk is False there."""
    names = sorted({k for d in chunks for k in d})
    return {k: np.concatenate([d[k] if k in d else np.zeros(n, dtype=bool)
                               for d, n in zip(chunks, sizes, strict=True)])
            for k in names}


def concat(chunks: list[PredictionColumns]) -> PredictionColumns:
    """Rows of every chunk in order; a feature absent from a chunk is null there."""
    sizes = [c.n for c in chunks]
    return PredictionColumns(
        model=chunks[0].model,
        ts=np.concatenate([c.ts for c in chunks]),
        ids=np.concatenate([c.ids for c in chunks]),
        versions=np.concatenate([c.versions for c in chunks]),
        prediction=np.concatenate([c.prediction for c in chunks]),
        prediction_class=np.concatenate([c.prediction_class for c in chunks]),
        latency_ms=np.concatenate([c.latency_ms for c in chunks]),
        error=np.concatenate([c.error for c in chunks]),
        numeric=_merge_dicts([c.numeric for c in chunks], sizes),
        categorical=_merge_dicts([c.categorical for c in chunks], sizes),
        segments=_merge_dicts([c.segments for c in chunks], sizes),
        mismatched=_merge_flags([c.mismatched for c in chunks], sizes),
    )


def take(cols: PredictionColumns, start: int, stop: int) -> PredictionColumns:
    s = slice(start, stop)
    return PredictionColumns(
        model=cols.model,
        ts=cols.ts[s],
        ids=cols.ids[s],
        versions=cols.versions[s],
        prediction=cols.prediction[s],
        prediction_class=cols.prediction_class[s],
        latency_ms=cols.latency_ms[s],
        error=cols.error[s],
        numeric={k: v[s] for k, v in cols.numeric.items()},
        categorical={k: v[s] for k, v in cols.categorical.items()},
        segments={k: v[s] for k, v in cols.segments.items()},
        mismatched={k: v[s] for k, v in cols.mismatched.items() if v[s].any()},
    )




def without_ids(cols: PredictionColumns) -> PredictionColumns:
    """``cols`` with every id None: no reader of a window or a reference reads its ids
    (the label join and the version watch take them from the batch), and a str id is
    ~70 bytes a row, the largest column of a reference after the floats."""
    return replace(cols, ids=np.full(cols.n, None, dtype=object))


def kept(cols: PredictionColumns, start: int, stop: int) -> PredictionColumns:
    """Rows ``start:stop`` as a frame keeps them: without ids, and, when they are part of
    the batch, in arrays of their own (a slice would keep the whole batch's columns
    alive: a reference filled from one batch of 20,000 rows kept all 20,000)."""
    part = take(cols, start, stop)
    if stop - start < cols.n:
        own = {k: getattr(part, k).copy() for k in (*_FLOAT_COLS, *_OBJ_COLS, "error")}
        part = replace(part, **own,
                       numeric={k: v.copy() for k, v in part.numeric.items()},
                       categorical={k: v.copy() for k, v in part.categorical.items()},
                       segments={k: v.copy() for k, v in part.segments.items()},
                       mismatched={k: v.copy() for k, v in part.mismatched.items()})
    return without_ids(part)


def columns_to_state(c: PredictionColumns) -> dict[str, Any]:
    """JSON-able form: float columns as base64 little-endian f8, strings as lists."""
    return {
        "model": c.model,
        **{k: f64_to_text(getattr(c, k)) for k in _FLOAT_COLS},
        **{k: getattr(c, k).tolist() for k in _OBJ_COLS},
        "ids": c.ids.tolist(),
        "error": np.flatnonzero(c.error).tolist(),
        "numeric": {k: f64_to_text(v) for k, v in c.numeric.items()},
        "categorical": {k: v.tolist() for k, v in c.categorical.items()},
        "segments": {k: v.tolist() for k, v in c.segments.items()},
        "mismatched": {k: np.flatnonzero(v).tolist() for k, v in c.mismatched.items()},
    }



def columns_from_state(s: dict[str, Any]) -> PredictionColumns:
    ts = f64_from_text(s["ts"])
    error = np.zeros(ts.shape[0], dtype=bool)
    error[np.asarray(s["error"], dtype=np.int64)] = True
    return PredictionColumns(
        model=s["model"],
        ts=ts,
        ids=object_array(s["ids"]) if "ids" in s else np.full(ts.shape[0], None, dtype=object),
        versions=object_array(s["versions"]),
        prediction=f64_from_text(s["prediction"]),
        prediction_class=object_array(s["prediction_class"]),
        latency_ms=f64_from_text(s["latency_ms"]),
        error=error,
        numeric={k: f64_from_text(v) for k, v in s["numeric"].items()},
        categorical={k: object_array(v) for k, v in s["categorical"].items()},
        segments={k: object_array(v) for k, v in s["segments"].items()},
        mismatched={k: _flags(ts.shape[0], rows)  # none in a state saved before them
                    for k, rows in s.get("mismatched", {}).items()},
    )


def _flags(n: int, rows: list[int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[np.asarray(rows, dtype=np.int64)] = True
    return out


@dataclass
class ModelWindows:
    """Reference + current window of one model, advanced batch by batch."""

    reference_events: int
    window_events: int
    window_seconds: float | None = None
    reference: Frame = field(default_factory=Frame)
    current: Frame = field(default_factory=Frame)
    current_start: float | None = None  # event time of the current window's first row
    windows_closed: int = 0

    @property
    def reference_ready(self) -> bool:
        return self.reference.n >= self.reference_events

    def add(self, cols: PredictionColumns) -> list[PredictionColumns]:
        """Feed rows; returns the windows this batch closed, oldest first."""
        closed: list[PredictionColumns] = []
        pos = 0
        while pos < cols.n:
            if not self.reference_ready:
                stop = min(cols.n, pos + self.reference_events - self.reference.n)
                self.reference.append(kept(cols, pos, stop))
                pos = stop
                continue
            if self.current_start is None:
                self.current_start = float(cols.ts[pos])
            stop = min(cols.n, pos + self.window_events - self.current.n)
            full = stop - pos == self.window_events - self.current.n
            if self.window_seconds is not None:
                late = np.flatnonzero(cols.ts[pos:stop] - self.current_start >= self.window_seconds)
                if late.size:  # the row that crosses the boundary opens the next window
                    stop, full = pos + int(late[0]), True
            self.current.append(kept(cols, pos, stop))
            pos = stop
            if full:
                window = self.current.compact()
                if window is not None:
                    closed.append(window)
                    self.windows_closed += 1
                self.current = Frame()
                self.current_start = None
        return closed

    def to_state(self) -> dict[str, Any]:
        return {
            "reference_events": self.reference_events,
            "window_events": self.window_events,
            "window_seconds": self.window_seconds,
            "reference": self.reference.to_state(),
            "current": self.current.to_state(),
            "current_start": self.current_start,
            "windows_closed": self.windows_closed,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> ModelWindows:
        return cls(
            reference_events=s["reference_events"],
            window_events=s["window_events"],
            window_seconds=s["window_seconds"],
            reference=Frame.from_state(s["reference"]),
            current=Frame.from_state(s["current"]),
            current_start=s["current_start"],
            windows_closed=s["windows_closed"],
        )
