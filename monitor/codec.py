"""JSON-safe encodings of numpy columns, shared by every piece of pipeline state."""

from __future__ import annotations

import base64
import sys
from typing import Any

import numpy as np


def f64_to_text(values: Any) -> str:
    """float64 column -> base64 of little-endian f8 (exact, NaN/inf included)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode()


def f64_from_text(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").copy()


def object_array(values: list[Any]) -> np.ndarray:
    """A 1-d object array of ``values`` (np.array would nest lists or infer a dtype)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def shared_strings(values: list[Any]) -> list[Any]:
    """``values`` with every str replaced by its interned copy (anything else as is).

    A decoded column holds a fresh str per row even when it repeats a handful of
    values (versions, categories, segments): ~50-80 bytes a row where a pointer to one
    shared object is 8.  Interned strings are shared across batches too, and freed with
    their last use (CPython's interning is not immortal for them).
    """
    canon = {v: sys.intern(v) for v in set(values) if type(v) is str}
    return list(map(canon.get, values, values)) if canon else values
