"""Schema checks of one window: fields that vanished, values of the wrong type.

Deterministic, not statistical: a field present in nearly every reference
event that is absent from *every* event of a window, or values arriving as a
different type than the model's feature type (marked per row by the decoder,
which drops them rather than change a column's meaning: a window counts only
its own rows, however the stream was batched), are a broken pipeline.
Both raise ``schema_violation`` on the feature (ML engineering).  A field
that vanished while a new one appeared is named as a likely rename.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alerts.model import Finding, rfc3339
from monitor.batch import PredictionColumns

Key = tuple[str, str, str | None, str | None]

MIN_PRESENCE = 0.9  # a field in fewer reference events is optional: its absence is no break
MISMATCH_MIN_SHARE = 0.01  # wrong-typed values in at least this share of a window's events
MISMATCH_MIN_COUNT = 10


def presence(cols: PredictionColumns) -> dict[str, float]:
    """Each feature's share of the rows of ``cols`` that carry it."""
    n = max(cols.n, 1)
    out = {f: float(np.isfinite(v).sum()) / n for f, v in cols.numeric.items()}
    none = np.asarray(None, dtype=object)
    out.update({f: float(np.not_equal(v, none).sum()) / n for f, v in cols.categorical.items()})
    return out


def mismatch_counts(cols: PredictionColumns) -> dict[str, int]:
    """Each feature's rows of ``cols`` whose value arrived with another type."""
    return {f: n for f, v in sorted(cols.mismatched.items()) if (n := int(np.sum(v)))}


def schema_findings(model: str, version: str, ref: PredictionColumns, cur: PredictionColumns,
                    window: tuple[float, float], ref_presence: dict[str, float] | None = None
                    ) -> tuple[list[Key], list[Finding]]:
    """The schema keys a window tests and the violations it finds (wrong-typed values:
    the window's own rows, :attr:`PredictionColumns.mismatched`); ``ref_presence``:
    :func:`presence` of ``ref``, when known."""
    mismatches = mismatch_counts(cur)
    before = presence(ref) if ref_presence is None else ref_presence
    now = presence(cur)
    required = sorted(f for f, p in before.items() if p >= MIN_PRESENCE)
    new = sorted(f for f, p in now.items() if p > 0 and before.get(f, 0.0) == 0.0)
    keys: list[Key] = [(model, "schema_violation", f, None)
                       for f in sorted(set(required) | set(mismatches))]
    findings = []

    def finding(feature: str, description: str, details: dict[str, Any],
                since: float | None = None) -> Finding:
        return Finding(
            kind="schema_violation", model=model, model_version=version, detector="schema",
            statistic=float(details.get("count", cur.n)), p_value=None, threshold=0.0,
            reference_n=ref.n, current_n=cur.n,
            window=window if since is None else (since, window[1]),
            summary=f"Schema break in '{feature}' of {model}", description=description,
            feature=feature, details=details)

    def retyped(f: str) -> bool:
        return mismatches.get(f, 0) >= max(MISMATCH_MIN_COUNT, MISMATCH_MIN_SHARE * cur.n)

    for f in required:
        if now.get(f, 0.0) == 0.0 and not retyped(f):  # a retyped field is not missing
            rename = f" New in this window: {', '.join(repr(x) for x in new)} (a rename?)." \
                if new else ""
            findings.append(finding(f, (
                f"'{f}' is missing from all {cur.n} events of {model}'s window; the reference "
                f"had it in {before[f]:.0%} of events.{rename}"),
                {"problem": "missing_field", "ref_presence": before[f], "new_fields": new}))
    for f, count in mismatches.items():
        if retyped(f):
            kind = ("numeric" if f in ref.numeric else "categorical" if f in ref.categorical
                    else "a scalar")
            rows = np.flatnonzero(cur.mismatched[f])
            first = float(np.min(cur.ts[rows]))
            findings.append(finding(f, (
                f"{count} of the {cur.n} events of {model}'s window carried '{f}' as another "
                f"type than the feature's ({kind}), the first at {rfc3339(first)}; those "
                "values were dropped."),
                {"problem": "type_change", "count": count, "expected": kind,
                 "first_ts": first}, since=first))
    return keys, findings
