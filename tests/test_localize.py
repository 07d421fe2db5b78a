"""Localising drift to one segment: a broken replica, not a changed world."""

from __future__ import annotations

import numpy as np

from monitor.localize import CONFINED, localise


def confined_segment(ref, cur, segments, *, floor):
    """The localisation's details when it shows the drift confined, else None."""
    loc = localise(ref, cur, segments, floor=floor)
    return loc.details if loc.verdict == CONFINED else None

HOSTS = np.array(["pod-0", "pod-1", "pod-2", "pod-3"], dtype=object)


def test_drift_on_one_host_is_confined_and_global_drift_never_is():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5_000)
    host = rng.choice(HOSTS, size=2_000)
    cur = rng.normal(size=2_000)
    one = np.where(host == "pod-2", cur + 1.0, cur)
    loc = confined_segment(ref, one, {"host": host}, floor=0.05)
    assert loc is not None and loc["segment"] == "host=pod-2"
    assert loc["stable_segments"] == ["pod-0", "pod-1", "pod-3"]
    assert confined_segment(ref, cur + 1.0, {"host": host}, floor=0.05) is None
    assert confined_segment(ref, cur, {"host": host}, floor=0.05) is None


def test_categorical_drift_on_one_region_and_too_few_rows_to_tell():
    rng = np.random.default_rng(1)
    cats = np.array(["a", "b", "c"], dtype=object)
    ref = rng.choice(cats, size=5_000, p=[0.5, 0.3, 0.2])
    region = rng.choice(np.array(["eu", "us"], dtype=object), size=3_000)
    cur = rng.choice(cats, size=3_000, p=[0.5, 0.3, 0.2])
    cur = np.where(region == "us", "c", cur).astype(object)
    loc = confined_segment(ref, cur, {"region": region}, floor=0.05)
    assert loc is not None and loc["segment"] == "region=us"
    small = np.array(["eu"] * 2_990 + ["us"] * 10, dtype=object)  # us: too few rows
    assert confined_segment(ref, cur, {"region": small}, floor=0.05) is None
