"""A partition whose stored state is lost: the ML-engineering alert that says so.

When a checkpoint row cannot be read (corrupt JSON, a state this driftwatch
cannot load), the daemon sets it aside (:meth:`monitor.store.Store.quarantine_checkpoint`,
kept for inspection) and monitors the partition afresh from the stored offsets
rather than pausing it forever.  Its models' references then warm up again, so
until they are full no drift, latency or error test runs for them: a
``state_lost`` alert (infrastructure, ML engineering) says so from the moment
the state is set aside, and resolves when every model of the partition has a
full reference again.
"""

from __future__ import annotations

from alerts.attribution import attribute
from alerts.model import Alert, Finding
from monitor.pipeline import Pipeline

ALL_MODELS = "*"  # the alert's model label: every model of the partition
KEY = (ALL_MODELS, "state_lost", None, None)


def state_lost(p: Pipeline, row: str, reason: str, now: float) -> list[Alert]:
    """Fire the alert in ``p``'s book (so it survives checkpoints) and dispatch it."""
    finding = Finding(
        kind="state_lost", model=ALL_MODELS, model_version="unknown", detector="checkpoint",
        statistic=0.0, p_value=None, threshold=0.0, reference_n=0, current_n=0,
        window=(now, now), severity="critical",
        summary=f"driftwatch lost the stored monitoring state of checkpoint {row}",
        description=(f"The checkpoint {row} could not be read ({reason[:300]}); it was "
                     "quarantined (table driftwatch_checkpoint_quarantine) and its partitions "
                     "are monitored afresh from the stored offsets. Until their references "
                     "fill again no drift, latency or error test runs for their models."),
        details={"checkpoint": row, "reason": reason[:500]})
    return p.notify(p.book.update(ALL_MODELS, [], attribute([finding]), now=now))


def rebuilt(p: Pipeline, now: float) -> list[Alert]:
    """Resolve the alert once every model of the partition has a full reference."""
    if not p.book.is_firing(KEY) or not p.models:
        return []
    if not all(st.windows.reference_ready for st in p.models.values()):
        return []
    return p.notify(p.book.resolve(KEY, now))
