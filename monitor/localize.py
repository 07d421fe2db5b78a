"""Is a drift confined to one serving segment?

Events may carry segments (``{"host": "pod-2", "region": "eu"}``).  When a
feature drifts, its current rows are split by each segment key and every
segment value with enough rows is tested against the whole reference.  The
drift is *confined* when exactly one value drifts clearly (p below
``LOCAL_ALPHA`` and an effect above the floor) while every other value looks
like the reference (p above ``STABLE_P``): one host or replica sending
different data while its siblings, serving the same world, do not -- a broken
replica, an infrastructure fault.  Genuine drift moves every segment and is
never confined.  This is a post-hoc localisation of a finding already made
under the false-alarm budget, not a new alarm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.categorical import chi2_test
from detectors.numeric import ks_test

MIN_SEGMENT_ROWS = 30
MAX_SEGMENT_VALUES = 50  # a segment key with more values is not used to localise drift
LOCAL_ALPHA = 1e-3
STABLE_P = 0.05


def testable(seg: np.ndarray) -> tuple[list[str], int]:
    """The values of one segment column with enough rows to be tested on their own,
    and how many distinct values it has (absent ones not counted)."""
    seg = np.asarray(seg, dtype=object)
    present = np.not_equal(seg, np.asarray(None, dtype=object))
    values, counts = np.unique(seg[present].astype(str), return_counts=True)
    return ([str(v) for v, c in zip(values, counts, strict=True) if c >= MIN_SEGMENT_ROWS],
            int(values.size))


def confined_segment(ref: np.ndarray, cur: np.ndarray, segments: Mapping[str, np.ndarray], *,
                     floor: float) -> dict[str, Any] | None:
    """``{"segment": "host=pod-2", ...}`` when the drift of ``cur`` against ``ref``
    is confined to one segment value; None otherwise (or when it cannot tell)."""
    categorical = ref.dtype == object
    test = chi2_test if categorical else ks_test
    for key in sorted(segments):
        seg = np.asarray(segments[key], dtype=object)
        if seg.shape[0] != cur.shape[0]:
            continue
        values, _ = testable(seg)
        if len(values) < 2:
            continue
        results = {v: test(ref, cur[seg == v], min_effect=floor) for v in values}
        results = {v: r for v, r in results.items() if not r.insufficient}
        drifting = [v for v, r in results.items()
                    if r.p_value < LOCAL_ALPHA and r.effect >= r.min_effect]
        stable = [v for v, r in results.items() if r.p_value >= STABLE_P]
        if len(drifting) == 1 and len(stable) == len(results) - 1 and len(results) >= 2:
            v = drifting[0]
            return {"segment": f"{key}={v}", "segment_p_value": float(results[v].p_value),
                    "segment_effect": float(results[v].effect),
                    "stable_segments": sorted(stable)}
    return None
