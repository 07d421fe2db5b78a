"""``[limits]``: the caps on what the event stream can make driftwatch remember.

Each key is an integer with a floor below which monitoring would not work (one
model, one version, one segment key...); everything past a cap is dropped and
counted (``driftwatch_dropped_total{reason}``, see :mod:`monitor.limits`).
"""

from __future__ import annotations

from typing import Any

from monitor.config.check import Table, integer
from monitor.config.types import LimitsConfig

# key -> smallest value that still lets driftwatch do its job
FLOORS = {
    "max_models": 1,
    "max_versions_per_model": 1,
    "max_segment_keys": 1,
    "max_segment_values": 2,  # one value is no comparison
    "max_name_chars": 16,
}


def parse_limits(t: Table, ctx: Any = None) -> LimitsConfig:
    d = LimitsConfig()
    return LimitsConfig(**{key: t.take(key, integer(ge=floor), getattr(d, key))
                           for key, floor in FLOORS.items()})
