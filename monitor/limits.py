"""Caps on what the event stream can make driftwatch remember (``[limits]``).

Anyone who can write to the input topics can invent model names, versions,
segment keys and values, and feature names; each would otherwise become state,
checkpoint bytes and metric series forever.  :class:`Caps` admits them up to
the configured caps and the decoder drops the rest, counting each drop under
one of :data:`DROP_REASONS` (``driftwatch_dropped_total{reason}``): a dropped
thing is never remembered one by one, so a flood of new names costs a counter
increment, not memory.  The first drop of each reason is logged once
(:class:`monitor.metrics.Metrics.dropped`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from monitor.codec import object_array, shared_strings
from monitor.config.types import LimitsConfig

# reason -> the config key whose cap it is (bounded: the label values of the counter)
DROP_REASONS = {
    "model_limit": "limits.max_models",
    "version_limit": "limits.max_versions_per_model",
    "version_evicted": "limits.max_versions_per_model",
    "segment_key_limit": "limits.max_segment_keys",
    "segment_value_limit": "limits.max_segment_values",
    "feature_limit": "defaults.max_features",
    "name_too_long": "limits.max_name_chars",
}

UNKNOWN_VERSION = "unknown"


class Caps:
    """What the decoder admitted so far, per model, and the caps on it."""

    def __init__(self, limits: LimitsConfig | None = None, configured: Iterable[str] = ()) -> None:
        self.limits = limits or LimitsConfig()
        self.configured = tuple(configured)
        self.models: dict[str, None] = dict.fromkeys(self.configured)  # configured: always in
        self.versions: dict[str, dict[str, float]] = {}  # model -> version -> last event time
        self.segments: dict[str, dict[str, set[str]]] = {}  # model -> key -> admitted values

    # -- models ----------------------------------------------------------------------
    def admit(self, model: str) -> bool:
        """Whether ``model`` may be tracked (it is from now on when True)."""
        if model in self.models:
            return True
        if len(self.models) >= self.limits.max_models:
            return False
        self.models[model] = None
        return True

    # -- versions --------------------------------------------------------------------
    def versions_of(self, model: str, versions: np.ndarray, ts: np.ndarray,
                    dropped: Counter[str], evicted: list[tuple[str, str]]) -> np.ndarray:
        """The batch's version column, capped: a new version past the cap evicts the
        version idle longest (oldest last event, not in this batch); when every known
        version is in this batch the new one's rows are counted as ``unknown``."""
        known = self.versions.setdefault(model, {})
        in_batch = dict.fromkeys(versions.tolist())
        if not in_batch.keys() <= known.keys():
            refused: dict[str, str] = {}
            for v in [v for v in in_batch if v not in known]:
                if v == UNKNOWN_VERSION and refused:
                    continue
                if len(v) > self.limits.max_name_chars:
                    refused[v] = "name_too_long"
                elif len(known) < self.limits.max_versions_per_model:
                    known[v] = -np.inf
                else:
                    idle = [k for k in known if k not in in_batch]
                    if idle:
                        oldest = min(idle, key=known.__getitem__)
                        del known[oldest]
                        evicted.append((model, oldest))
                        dropped["version_evicted"] += 1
                        known[v] = -np.inf
                    else:
                        refused[v] = "version_limit"
            if refused:
                versions = versions.copy()
                for v, reason in refused.items():
                    rows = versions == v
                    dropped[reason] += int(rows.sum())
                    versions[rows] = UNKNOWN_VERSION
                in_batch = dict.fromkeys(versions.tolist())
        for v in in_batch:
            if v in known:
                last = ts if len(in_batch) == 1 else ts[versions == v]
                known[v] = max(known[v], float(last.max()))
        return versions

    # -- segments --------------------------------------------------------------------
    def segments_of(self, model: str, keys: Iterable[str], segs: list[dict[str, str]],
                    dropped: Counter[str]) -> dict[str, np.ndarray]:
        """The batch's segment columns, capped: keys past ``max_segment_keys`` and
        values past ``max_segment_values`` (per key) are left out (absent in the row)."""
        lim = self.limits
        known = self.segments.setdefault(model, {})
        out: dict[str, np.ndarray] = {}
        for k in keys:
            admitted = known.get(k)
            if admitted is None:
                reason = ("name_too_long" if len(k) > lim.max_name_chars else
                          "segment_key_limit" if len(known) >= lim.max_segment_keys else None)
                if reason is not None:
                    dropped[reason] += sum(1 for s in segs if k in s)
                    continue
                admitted = known[k] = set()
            col: list[Any] = shared_strings([s.get(k) for s in segs])
            distinct = set(col)
            distinct.discard(None)
            if not distinct <= admitted:
                refused: dict[str, str] = {}
                for v in dict.fromkeys(col):
                    if v is None or v in admitted:
                        continue
                    if len(v) > lim.max_name_chars:
                        refused[v] = "name_too_long"
                    elif len(admitted) < lim.max_segment_values:
                        admitted.add(v)
                    else:
                        refused[v] = "segment_value_limit"
                if refused:
                    for v, n in Counter(v for v in col if v in refused).items():
                        dropped[refused[v]] += n
                    col = [None if v in refused else v for v in col]
            out[k] = object_array(col)
        return out

    # -- state -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"models": list(self.models),
                "versions": {m: [[v, _finite(t)] for v, t in vs.items()]
                             for m, vs in self.versions.items()},
                "segments": {m: {k: sorted(vals) for k, vals in keys.items()}
                             for m, keys in self.segments.items()}}

    def load_state(self, s: dict[str, Any], models: Iterable[str] = ()) -> None:
        """A saved state; ``models`` (what the pipeline already holds state for) are
        admitted whatever the cap: a state saved before the caps existed lacks them."""
        self.models = dict.fromkeys([*self.configured, *s.get("models", ()), *models])
        self.versions = {m: {v: (-np.inf if t is None else float(t)) for v, t in vs}
                         for m, vs in s.get("versions", {}).items()}
        self.segments = {m: {k: set(vals) for k, vals in keys.items()}
                         for m, keys in s.get("segments", {}).items()}


def _finite(t: float) -> float | None:
    return float(t) if np.isfinite(t) else None
