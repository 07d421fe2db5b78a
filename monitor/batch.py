"""Columnar batches: what the decoder hands to the pipeline.

Events are decoded in batches straight into numpy columns grouped by model,
so no per-event Python object flows through the pipeline.  Row ``i`` of every
column of a :class:`PredictionColumns` belongs to the same event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PredictionColumns:
    """Valid prediction events of one model, in arrival order.

    - ``ts``: float64 epoch seconds (event time).
    - ``ids``, ``versions``: object arrays of str.
    - ``prediction``: float64 (NaN where the event was an error or the
      prediction is a class label); ``prediction_class``: object array of str
      (None where numeric or missing) -- a model's predictions are one or the
      other in practice, but both columns always have ``n`` rows.
    - ``latency_ms``: float64, NaN where absent.
    - ``error``: bool, True where ``status == "error"``.
    - ``numeric``: feature name -> float64 (NaN = null or absent; bools as 0/1).
    - ``categorical``: feature name -> object array of str (None = null/absent).
    - ``segments``: segment key -> object array of str (None = absent).
    - ``mismatched``: feature name -> bool, True where the row's value arrived as
      another type than the feature's and was dropped (null in its column); only
      features with such rows (absent: none).  Per row, so a window counts its own.
    - ``resources``: ``memory_mb`` / ``gpu_memory_mb`` -> float64 (NaN where not
      given), from the events' optional ``resources`` object; empty when no event of
      the batch had one.  Read by :mod:`monitor.versions` only (not kept in windows).
    """

    model: str
    ts: np.ndarray
    ids: np.ndarray
    versions: np.ndarray
    prediction: np.ndarray
    prediction_class: np.ndarray
    latency_ms: np.ndarray
    error: np.ndarray
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    segments: dict[str, np.ndarray] = field(default_factory=dict)
    mismatched: dict[str, np.ndarray] = field(default_factory=dict)
    resources: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])


@dataclass
class LabelColumns:
    """Valid label events of one model: ``ts`` float64, ``ids`` object,
    ``label`` float64 (NaN where a class string), ``label_class`` object."""

    model: str
    ts: np.ndarray
    ids: np.ndarray
    label: np.ndarray
    label_class: np.ndarray

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])


@dataclass
class DecodedBatch:
    predictions: dict[str, PredictionColumns] = field(default_factory=dict)
    labels: dict[str, LabelColumns] = field(default_factory=dict)
    # reason -> count of rejected events (or undecodable messages)
    invalid: Counter[str] = field(default_factory=Counter)
    # up to a few examples per reason, for logs and the dead-letter topic:
    # (reason, raw bytes of the offending event or message, truncated)
    invalid_samples: list[tuple[str, bytes]] = field(default_factory=list)
    # (model, feature) -> values of the wrong type, dropped from their column (the rows:
    # PredictionColumns.mismatched)
    type_mismatches: Counter[tuple[str, str]] = field(default_factory=Counter)
    # cap -> things dropped past it in this batch (see monitor.limits.DROP_REASONS)
    dropped: Counter[str] = field(default_factory=Counter)
    # (model, version) evicted in this batch (max_versions_per_model): forget its series
    evicted_versions: list[tuple[str, str]] = field(default_factory=list)
