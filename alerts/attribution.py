"""Attribution: is a finding a model fault or an infrastructure fault?

The default class of a finding comes from its kind (:data:`alerts.model.KINDS`);
the evidence of the same evaluation can overturn it (docs/alerts.md):

* drift (input or prediction) on feature F while a ``data_quality`` or
  ``schema_violation`` finding on F is in the same evaluation: a broken feed,
  not a changed world -> infrastructure; the model's predictions (no feature)
  moving while an input's feed is broken are that break's symptom, too;
* drift confined to one segment (``Finding.segment`` is only set when the other
  segments are shown close to the reference, by the monitor's localisation) -> a broken
  replica or host -> infrastructure; outputs that moved only with it are its symptom;
* prediction drift right after a deploy (``details["new_version"]``) with no
  input drift: the new model behaves differently -> model (with that reason);
* latency / error-rate regressions that started with a deploy stay
  infrastructure, and the reason names the version.

Every verdict carries a one-sentence ``reason`` that becomes the alert's
``attribution`` annotation, so the on-call engineer sees *why* it is theirs.
The detail keys read here are ``new_version`` and, for data-quality evidence,
any ``ref_<x>`` / ``cur_<x>`` pair (``ref_null_rate`` -> "null rate 0.02 → 0.41").
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.model import INFRA_FAULT, KINDS, MODEL_FAULT, TEAM_FOR_FAULT, Alert, Finding, rfc3339

DRIFT_KINDS = ("data_drift", "prediction_drift")
BREAK_KINDS = ("data_quality", "schema_violation")
_OWNERS = "so the model's owners should review"


@dataclass(frozen=True)
class Attributed:
    """A finding with its fault class, owning team and the reason for both."""

    finding: Finding
    fault: str
    team: str
    reason: str


def _num(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, int | float) and not isinstance(x, bool) else str(x)


def _change(details: Mapping[str, Any]) -> str:
    """``null rate 0.02 → 0.41`` from every ``ref_x``/``cur_x`` pair in the details."""
    parts = [
        f"{k[4:].replace('_', ' ')} {_num(v)} → {_num(details['cur_' + k[4:]])}"
        for k, v in details.items()
        if k.startswith("ref_") and "cur_" + k[4:] in details
    ]
    return ", ".join(parts)


def _subject(f: Finding) -> str:
    if f.kind == "prediction_drift":
        return "drift in the predictions" if f.feature is None else f"drift in '{f.feature}'"
    return f"drift in '{f.feature}'" if f.feature is not None else "input drift"


def _break_text(b: Finding, same: bool = True) -> str:
    what = "a data-quality break" if b.kind == "data_quality" else "a schema violation"
    where = ("in the same feature" if same else f"in input '{b.feature}'") \
        if b.feature is not None else "in the same window"
    evidence = _change(b.details) or b.summary
    return f"{what} {where} ({evidence})" if evidence else f"{what} {where}"


def _default_reason(f: Finding, drifting: Sequence[str]) -> str:
    feat = f"'{f.feature}'" if f.feature else "the model"
    version = f.details.get("new_version")
    k = f.kind
    if k == "data_drift":
        return (
            f"input distribution of {feat} shifted and nothing seen points at a broken "
            f"feed: by default the world changed, {_OWNERS}"
        )
    if k == "prediction_drift":
        if drifting:
            inputs = ", ".join(f"'{d}'" for d in drifting)
            return f"outputs shifted along with the inputs ({inputs}): the world changed, {_OWNERS}"
        return (
            f"predictions shifted with no input drift and no new "
            f"model version: the model's behaviour changed, {_OWNERS}"
        )
    if k == "label_drift":
        return f"the distribution of ground-truth labels shifted: the world changed, {_OWNERS}"
    if k == "performance_degradation":
        if version:
            return f"model quality fell after deploy of {version}: the new model performs worse"
        return (
            f"model quality fell against ground truth: the model no longer fits the data, {_OWNERS}"
        )
    if k in ("latency_regression", "error_rate"):
        what = "serving latency" if k == "latency_regression" else "the error rate"
        if version:
            return (
                f"{what} rose starting with the deploy of {version}: a serving regression "
                "for ML engineering to roll back or fix"
            )
        return (
            f"{what} rose with no new model version deployed: a serving or "
            "infrastructure problem, not the model"
        )
    if k == "version_regression":
        if f.feature == "unapproved_version":
            return (f"version {f.model_version} serves traffic but the handover contract does "
                    "not approve it: a deployment for ML engineering to check or roll back")
        return (f"version {f.model_version} serves worse than the champion beside it: a "
                "serving regression for ML engineering to roll back or fix")
    if k == "resource_usage":
        return ("serving memory is over the handover contract's limit: a serving or "
                "capacity problem for ML engineering, not the model's predictions")
    if k == "traffic_drop":
        return (
            "the model stopped receiving traffic while the stream went on: a serving or "
            "routing problem, not the model"
        )
    if k == "schema_violation":
        return f"events for {feat} break the input schema: a broken pipeline, not a changed world"
    if k == "data_quality":
        change = _change(f.details)
        where = f" in {feat}" if f.feature else ""
        return (
            f"data-quality break{where}"
            + (f" ({change})" if change else "")
            + ": a broken feed, not a changed world"
        )
    if k == "state_lost":
        return ("driftwatch's stored state for these models was unreadable: an "
                "infrastructure problem of the monitor itself, not of any model")
    return "ground-truth labels stopped arriving: the label pipeline is broken, not the model"


def _verdict(
    f: Finding, breaks: Mapping[str | None, Finding], drifting: Sequence[str]
) -> tuple[str, str]:
    also = ""  # a break elsewhere that does not explain this drift
    chal, champ = f.details.get("challenger_version"), f.details.get("champion_version")
    if chal is not None and champ is not None:
        # a challenger compared with the champion serving beside it, on the same traffic:
        # the world is the same for both, so what differs is the version
        if f.kind == "version_regression":
            return INFRA_FAULT, (
                f"challenger {chal} is slower or fails more than champion {champ} on the same "
                "traffic: a serving regression for ML engineering to roll back or fix")
        return MODEL_FAULT, (
            f"challenger {chal} predicts worse or differently than champion {champ} on the "
            f"same traffic: the new model's behaviour, {_OWNERS}")
    if f.kind == "prediction_drift" and f.feature is None:
        # breaks the outputs are shown to have held steady through do not explain them
        before = {str(x) for x in f.details.get("breaks_before", ())}
        if before & {str(b) for b in breaks if b is not None}:
            breaks = {k: b for k, b in breaks.items() if k not in before}
            also = ("; the outputs held steady through the earlier break in "
                    + ", ".join(f"'{x}'" for x in sorted(before)) + ", alerted on its own")
    if f.kind in DRIFT_KINDS:
        b = breaks.get(f.feature)
        if b is None and f.kind == "prediction_drift" and f.feature is None:
            b = next((x for x in breaks.values() if x.feature is not None), None)
            inputs = [*drifting, *(str(x) for x in f.details.get("drifting_inputs", ()))]
            clean = [d for d in dict.fromkeys(inputs) if d not in breaks]
            if b is not None and clean:
                # an input whose feed is sound drifts with the outputs: the world moved
                # them; the break elsewhere is its own alert
                also = f"; {_break_text(b, False)} is alerted on its own"
                drifting, b = clean, None
        if b is not None:
            return INFRA_FAULT, (
                f"{_subject(f)} coincides with {_break_text(b, b.feature == f.feature)}: "
                "a broken feed, not a changed world"
            )
        if f.details.get("symptom_of"):
            return INFRA_FAULT, (
                f"{_subject(f)} follows the inputs ({f.details.get('symptom_inputs', '')}) "
                f"of segment {f.details['symptom_of']}, whose drift is confined to it: a "
                "broken replica or host, not a changed world"
            )
        if f.kind == "prediction_drift" and not drifting:  # inputs its alarm saw drift
            drifting = [str(x) for x in f.details.get("drifting_inputs", ())]
        if f.segment:
            return INFRA_FAULT, (
                f"{_subject(f)} is confined to segment {f.segment}: it differs from the "
                "other segments, which are shown close to the reference: a broken replica "
                "or host, not a changed world"
            )
        version = f.details.get("new_version")
        if f.kind == "prediction_drift" and version and not drifting:
            return MODEL_FAULT, (
                f"outputs shifted on unchanged inputs after deploy of {version}: "
                "the new model behaves differently"
            )
    return KINDS[f.kind][1], _default_reason(f, drifting) + also


def attribute(findings: Sequence[Finding], firing_inputs: Sequence[str] = (),
              earlier_breaks: Collection[str] = ()) -> list[Attributed]:
    """Attribute every finding of one evaluation (one model, one window), in order.
    ``firing_inputs``: features whose input drift already fires for the model, so no
    reason says the inputs are unchanged while another alert says they moved.
    ``earlier_breaks``: inputs whose break the model's outputs were shown to have held
    steady through (a firing prediction alert's ``breaks_before``): not their cause."""
    breaks: dict[str | None, Finding] = {}
    for f in findings:
        if f.kind in BREAK_KINDS:
            breaks.setdefault(f.feature, f)
    drifting = list(dict.fromkeys([*rank_features(findings), *firing_inputs]))
    out: list[Attributed] = []
    for f in findings:
        if earlier_breaks and f.kind == "prediction_drift" and f.feature is None:
            # the alert keeps the evidence, so the next window judges it the same way
            f.details["breaks_before"] = sorted(
                {*earlier_breaks, *(str(x) for x in f.details.get("breaks_before", ()))})
        fault, reason = _verdict(f, breaks, drifting)
        out.append(Attributed(f, fault, TEAM_FOR_FAULT[fault], reason))
    return out


def rank_features(findings: Sequence[Finding]) -> list[str]:
    """Features with input drift, strongest first (smallest p-value, then largest statistic)."""

    def strength(f: Finding) -> tuple[float, float]:
        p = f.p_value if f.p_value is not None and not math.isnan(f.p_value) else math.inf
        return (p, -f.statistic)

    drift = sorted((f for f in findings if f.kind == "data_drift" and f.feature), key=strength)
    return list(dict.fromkeys(str(f.feature) for f in drift))


def _plain(v: Any) -> Any:
    """JSON-safe copy: numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and callable(v.item) and not isinstance(v, str | bytes):
        return v.item()
    return v


def to_alert(a: Attributed, status: str, starts_at: float, ends_at: float | None) -> Alert:
    """The alert contract object for an attributed finding."""
    f = a.finding
    labels = {
        "alertname": KINDS[f.kind][0],
        "kind": f.kind,
        "fault": a.fault,
        "team": a.team,
        "model": f.model,
        "model_version": f.model_version,
        "severity": f.severity,
    }
    if f.feature is not None:
        labels["feature"] = f.feature
    if f.segment is not None:
        labels["segment"] = f.segment
    evidence: dict[str, Any] = {
        "detector": f.detector,
        "statistic": _plain(f.statistic),
        "p_value": _plain(f.p_value),
        "threshold": _plain(f.threshold),
        "reference_n": _plain(f.reference_n),
        "current_n": _plain(f.current_n),
        "window": [rfc3339(float(f.window[0])), rfc3339(float(f.window[1]))],
    }
    for k, v in f.details.items():
        evidence.setdefault(str(k), _plain(v))
    annotations = {"summary": f.summary, "description": f.description, "attribution": a.reason}
    return Alert(
        labels=labels,
        annotations=annotations,
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        evidence=evidence,
    )
