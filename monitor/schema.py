"""Schema checks of one window: fields that vanished, values of the wrong type.

Deterministic, not statistical: a field present in nearly every reference
event that is absent from *every* event of a window, or values arriving as a
different type than the model's feature type (counted by the decoder, which
drops them rather than change a column's meaning), are a broken pipeline.
Both raise ``schema_violation`` on the feature (ML engineering).  A field
that vanished while a new one appeared is named as a likely rename.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from alerts.model import Finding
from monitor.batch import PredictionColumns

Key = tuple[str, str, str | None, str | None]

MIN_PRESENCE = 0.9  # a field in fewer reference events is optional: its absence is no break
MISMATCH_MIN_SHARE = 0.01  # wrong-typed values in at least this share of a window's events
MISMATCH_MIN_COUNT = 10


def _presence(cols: PredictionColumns) -> dict[str, float]:
    n = max(cols.n, 1)
    out = {f: float(np.isfinite(v).sum()) / n for f, v in cols.numeric.items()}
    none = np.asarray(None, dtype=object)
    out.update({f: float(np.not_equal(v, none).sum()) / n for f, v in cols.categorical.items()})
    return out


def schema_findings(model: str, version: str, ref: PredictionColumns, cur: PredictionColumns,
                    mismatches: Mapping[str, int],
                    window: tuple[float, float]) -> tuple[list[Key], list[Finding]]:
    """The schema keys a window tests and the violations it finds."""
    before, now = _presence(ref), _presence(cur)
    required = sorted(f for f, p in before.items() if p >= MIN_PRESENCE)
    new = sorted(f for f, p in now.items() if p > 0 and before.get(f, 0.0) == 0.0)
    keys: list[Key] = [(model, "schema_violation", f, None)
                       for f in sorted(set(required) | set(mismatches))]
    findings = []

    def finding(feature: str, description: str, details: dict[str, Any]) -> Finding:
        return Finding(
            kind="schema_violation", model=model, model_version=version, detector="schema",
            statistic=float(details.get("count", cur.n)), p_value=None, threshold=0.0,
            reference_n=ref.n, current_n=cur.n, window=window,
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
    for f, count in sorted(mismatches.items()):
        if retyped(f):
            kind = "numeric" if f in ref.numeric else "categorical"
            findings.append(finding(f, (
                f"{count} values of '{f}' in {model}'s window of {cur.n} events arrived as "
                f"another type than the feature's ({kind}) and were dropped."),
                {"problem": "type_change", "count": count, "expected": kind}))
    return keys, findings
