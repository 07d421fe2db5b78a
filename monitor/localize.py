"""Is a drift confined to one serving segment, or does it reach them all?

Events may carry segments (``{"host": "pod-2", "region": "eu"}``).  When a
feature drifts, its current rows are split by each segment key and the verdict
needs *positive* evidence either way (a test that is not significant proves
nothing):

* **confined** to segment ``s``: ``s`` drifts from the reference (p below
  :data:`LOCAL_ALPHA`, effect above the floor), ``s`` differs from its *peers in
  the same window* (the other values of the key, pooled: p below
  :data:`LOCAL_ALPHA`), and the peers are shown close to the reference -- an
  equivalence check: their distance to it plus its 95 % sampling margin
  (``1.36 * sqrt((n + m) / (n m))``, the two-sample KS bound, used for total
  variation too) stays below the larger of the effect floor and a third of the
  drift ``s`` shows.  One host or replica sending different data while its
  siblings, serving the same world, are seen to match the reference: a broken
  replica, an infrastructure fault;
* **global**: the peers of the most drifting value drift from the reference
  too (p below :data:`LOCAL_ALPHA`, effect above the floor) -- for every key
  with values to test.  The world changed: a model fault;
* **undecided**: neither is shown yet (too few rows, or peers neither close to
  the reference nor clearly drifting).  The caller waits for more rows when it
  can (a sequential alarm waits for its window), and otherwise keeps the default
  class of the finding.

Keys with the most values are tried first, so a broken host is named rather
than the region it is in.  This localises a finding already made under the
false-alarm budget; it raises no alarm of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.categorical import category_counts, chi2_test
from detectors.numeric import ks_test
from detectors.result import TestResult

MIN_SEGMENT_ROWS = 30
MAX_SEGMENT_VALUES = 50  # a segment key with more values is not used to localise drift
LOCAL_ALPHA = 1e-3
EQUIVALENCE_C = 1.36  # 95 % two-sample KS margin: c * sqrt((n + m) / (n m))
PEER_SHARE = 1 / 3  # peers are "close" below max(floor, this share of the segment's drift)

CONFINED, GLOBAL, UNDECIDED, NONE = "confined", "global", "undecided", "none"


@dataclass(frozen=True)
class Localisation:
    """What the segments say about one drift."""

    verdict: str  # CONFINED | GLOBAL | UNDECIDED | NONE (no segment to test)
    segment: str | None = None  # "host=pod-2" when confined
    details: dict[str, Any] = field(default_factory=dict)


def testable(seg: np.ndarray) -> tuple[list[str], int]:
    """The values of one segment column with enough rows to be tested on their own,
    and how many distinct values it has (absent ones not counted)."""
    counts = category_counts(seg)
    return [v for v, c in counts.items() if c >= MIN_SEGMENT_ROWS], len(counts)


def margin(n: int, m: int) -> float:
    """The 95 % sampling margin of a distance between samples of ``n`` and ``m``."""
    return EQUIVALENCE_C * math.sqrt((n + m) / (n * m)) if n and m else math.inf


def _drifts(r: TestResult) -> bool:
    return not r.insufficient and r.p_value < LOCAL_ALPHA and r.effect >= r.min_effect


def localise(ref: np.ndarray, cur: np.ndarray, segments: Mapping[str, np.ndarray], *,
             floor: float) -> Localisation:
    """Where the drift of ``cur`` against ``ref`` lives (see the module docstring)."""
    test = chi2_test if ref.dtype == object else ks_test
    keys = []
    split = False  # some key splits the rows, with too few of them to test yet
    for key in segments:
        seg = np.asarray(segments[key], dtype=object)
        if seg.shape[0] != cur.shape[0]:
            continue
        values, distinct = testable(seg)
        if 2 <= distinct <= MAX_SEGMENT_VALUES:
            split = True
            if len(values) >= 2:
                keys.append((-distinct, key, seg, values))
    if not keys:
        return Localisation(UNDECIDED if split else NONE)
    verdicts: list[str] = []
    for _, key, seg, values in sorted(keys, key=lambda k: (k[0], k[1])):
        segs = seg.astype(str)
        present = np.not_equal(seg, np.asarray(None, dtype=object))
        results = {v: test(ref, cur[segs == v], min_effect=floor) for v in values}
        drifting = {v: r for v, r in results.items() if _drifts(r)}
        if not drifting:
            verdicts.append(UNDECIDED)
            continue
        top = max(drifting, key=lambda v: (drifting[v].effect, v))
        mine = cur[segs == top]
        peers = cur[present & (segs != top)]
        apart = test(peers, mine, min_effect=floor)
        to_ref = test(ref, peers, min_effect=floor)
        if to_ref.insufficient or apart.insufficient:
            verdicts.append(UNDECIDED)
            continue
        bound = to_ref.effect + margin(to_ref.reference_n, to_ref.current_n)
        limit = max(floor, PEER_SHARE * drifting[top].effect)
        if _drifts(apart) and bound < limit:
            others = sorted(v for v in results if v != top)
            return Localisation(CONFINED, f"{key}={top}", {
                "segment": f"{key}={top}",
                "segment_p_value": float(drifting[top].p_value),
                "segment_effect": float(drifting[top].effect),
                "peers_p_value": float(apart.p_value),
                "peers_distance_bound": float(bound), "peers_limit": float(limit),
                "stable_segments": others})
        verdicts.append(GLOBAL if _drifts(to_ref) else UNDECIDED)
    if verdicts and all(v == GLOBAL for v in verdicts):
        return Localisation(GLOBAL)
    return Localisation(UNDECIDED)

