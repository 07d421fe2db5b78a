"""Conformance suite for the streaming change detectors in ``benchmarks.research.lib.sequential``.

Every detector class goes through the same properties: batch == element-wise,
JSON state round-trip, silence on constant streams, parameter validation,
detection delay, false-alarm rate, and (where River has the same method) agreement
with River's reference implementation.

Figures measured when this suite was written (50 seeds, change at t=1000 of N(0,1) ->
N(1,1), or Bernoulli 0.1 -> 0.3; false alarms on 10^6 stationary events, seed 123):

    detector      median delay   false alarms / 10^6   alarms identical to River
    ADWIN               55                 2                    50 / 50
    PageHinkley         38               624                    50 / 50
    CUSUM               10              1748                      -
    DDM                 82.5               1                    50 / 50
    EDDM                52.5              57                    50 / 50
    HDDM_A             122                 0                    50 / 50

(PageHinkley's defaults, threshold 50 and delta 0.005 as in River, are scale
dependent and alarm often on unit-variance noise; CUSUM k=0.5, h=5 has a textbook
two-sided ARL0 of ~465.)  The bounds asserted below leave headroom over these.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.research.lib.sequential import (
    ADWIN,
    CUSUM,
    DDM,
    EDDM,
    HDDM_A,
    PageHinkley,
    SequentialDetector,
)

CLASSES = [ADWIN, PageHinkley, CUSUM, DDM, EDDM, HDDM_A]

# Parameter variants exercised by the batch/state properties (every code path:
# ADWIN checking at every step, PH with fading factor = scalar fallback, one-sided
# tests, CUSUM with a known target, two-sided HDDM).
VARIANTS = [
    (ADWIN, {}),
    (ADWIN, {"delta": 0.05, "clock": 1, "max_buckets": 2, "min_window_length": 2,
             "grace_period": 0}),
    (PageHinkley, {}),
    (PageHinkley, {"threshold": 8.0, "alpha": 0.99, "direction": "decrease"}),
    (PageHinkley, {"delta": 0.1, "threshold": 10.0, "direction": "increase", "min_n": 1}),
    (CUSUM, {}),
    (CUSUM, {"target_mean": 0.0, "target_std": 1.0, "k": 0.25, "h": 4.0}),
    (CUSUM, {"target_std": 2.0, "direction": "increase", "warmup": 7}),
    (DDM, {}),
    (DDM, {"warning": 1.0, "drift": 1.5, "min_n": 5}),
    (EDDM, {}),
    (EDDM, {"alpha": 0.99, "beta": 0.98, "min_n": 3}),
    (HDDM_A, {}),
    (HDDM_A, {"drift_confidence": 0.05, "warning_confidence": 0.1, "two_sided": True}),
]
VARIANT_IDS = [f"{cls.name}-{i}" for i, (cls, _) in enumerate(VARIANTS)]

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def strict_json(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


def canonical(det: SequentialDetector) -> str:
    return json.dumps(det.to_state(), sort_keys=True, allow_nan=False)


def loop(det: SequentialDetector, xs) -> list[int]:
    return [i for i, x in enumerate(xs) if det.update(x)]


@st.composite
def streams(draw, binary: bool) -> np.ndarray:
    """Piecewise-stationary streams (so alarms happen), with a few hypothesis-chosen raw
    values - extremes of the segment, NaN, +-inf - written over them."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 1e-3, 250.0]))
    parts = []
    for length, level in draw(st.lists(st.tuples(st.integers(1, 500), st.floats(0.0, 1.0)),
                                       min_size=1, max_size=6)):
        if binary:
            parts.append((rng.random(length) < level).astype(float))
        else:
            parts.append(scale * rng.normal(6.0 * level - 3.0, 1.0 + 2.0 * level, length))
    xs = np.concatenate(parts)
    raw = (st.sampled_from([0.0, 1.0, math.nan, math.inf]) if binary else
           st.one_of(st.floats(-1e4, 1e4), st.sampled_from([math.nan, math.inf, -math.inf])))
    for i, v in draw(st.lists(st.tuples(st.integers(0, xs.size - 1), raw), max_size=4)):
        xs[i] = v
    return xs


def split_points(xs: np.ndarray, cuts: list[int]) -> list[int]:
    return sorted({0, xs.size, *(c % (xs.size + 1) for c in cuts)})


# -- (1) update_many == element-wise update --------------------------------------------


@pytest.mark.parametrize(("cls", "kwargs"), VARIANTS, ids=VARIANT_IDS)
@SETTINGS
@given(data=st.data())
def test_update_many_equals_update_loop(cls, kwargs, data):
    xs = data.draw(streams(cls.binary))
    cuts = split_points(xs, data.draw(st.lists(st.integers(0, 10**6), max_size=4)))
    one, many = cls(**kwargs), cls(**kwargs)
    expected = loop(one, xs.tolist())
    got: list[int] = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        res = many.update_many(xs[a:b])
        assert res.dtype == np.int64
        got.extend((res + a).tolist())
    assert got == expected
    assert canonical(many) == canonical(one)
    assert many.ignored == one.ignored == int((~np.isfinite(xs)).sum())


def change_stream(cls: type[SequentialDetector], seed: int, pre: int = 1000,
                  post: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if cls.binary:
        return np.concatenate([rng.random(pre) < 0.1, rng.random(post) < 0.3]).astype(float)
    return np.concatenate([rng.normal(0.0, 1.0, pre), rng.normal(1.0, 1.0, post)])


@pytest.mark.parametrize(("cls", "kwargs"), VARIANTS, ids=VARIANT_IDS)
def test_update_many_equals_update_loop_on_streams_with_many_alarms(cls, kwargs):
    # Not left to hypothesis' luck: streams with several changes, so the property is
    # checked across alarms and post-alarm resets.
    rng = np.random.default_rng(7)
    if cls.binary:
        xs = np.concatenate([rng.random(3000) < p for p in (0.05, 0.5, 0.02, 0.6)]).astype(float)
    else:
        xs = np.concatenate([rng.normal(m, s, 3000) for m, s in ((0, 1), (3, 1), (-2, 4), (6, 1))])
    one, many = cls(**kwargs), cls(**kwargs)
    expected = loop(one, xs.tolist())
    assert len(expected) >= 2
    assert many.update_many(xs).tolist() == expected
    assert canonical(many) == canonical(one)


# -- (2) JSON state round-trip -----------------------------------------------------------


@pytest.mark.parametrize(("cls", "kwargs"), VARIANTS, ids=VARIANT_IDS)
@SETTINGS
@given(data=st.data())
def test_state_round_trips_and_continues_identically(cls, kwargs, data):
    xs = data.draw(streams(cls.binary))
    cut = data.draw(st.integers(0, xs.size))
    original = cls(**kwargs)
    original.update_many(xs[:cut])
    state = strict_json(original.to_state())
    restored = cls.from_state(state)
    via_base = SequentialDetector.from_state(state)
    assert type(via_base) is cls
    assert canonical(restored) == canonical(original) == canonical(via_base)
    rest = xs[cut:].tolist()
    assert loop(restored, rest) == loop(original, rest) == via_base.update_many(xs[cut:]).tolist()
    assert canonical(restored) == canonical(original) == canonical(via_base)


def test_from_state_refuses_another_detectors_state():
    with pytest.raises(ValueError, match="name"):
        ADWIN.from_state(PageHinkley().to_state())
    with pytest.raises(ValueError, match="name"):
        SequentialDetector.from_state({"name": "nope", "params": {}, "n": 0, "ignored": 0,
                                       "state": {}})


# -- (3) constant streams never alarm ------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_constant_stream_never_alarms(cls):
    values = [0.0, 1.0] if cls.binary else [0.0, 1.0, -3.7, 0.1, 12345.678]
    for v in values:
        det = cls()
        assert det.update_many(np.full(100_000, v)).size == 0, v
        assert det.n == 100_000
        assert not any(det.update(v) for _ in range(2_000))


# -- (4) invalid parameters and inputs -----------------------------------------------

INVALID = [
    (ADWIN, {"delta": 0.0}, "delta"),
    (ADWIN, {"delta": 1.0}, "delta"),
    (ADWIN, {"delta": math.nan}, "delta"),
    (ADWIN, {"clock": 0}, "clock"),
    (ADWIN, {"clock": 2.5}, "clock"),
    (ADWIN, {"max_buckets": 1}, "max_buckets"),
    (ADWIN, {"min_window_length": 0}, "min_window_length"),
    (ADWIN, {"grace_period": -1}, "grace_period"),
    (PageHinkley, {"delta": -0.1}, "delta"),
    (PageHinkley, {"threshold": 0.0}, "threshold"),
    (PageHinkley, {"threshold": math.inf}, "threshold"),
    (PageHinkley, {"alpha": 0.0}, "alpha"),
    (PageHinkley, {"alpha": 1.01}, "alpha"),
    (PageHinkley, {"direction": "up"}, "direction"),
    (PageHinkley, {"min_n": 0}, "min_n"),
    (CUSUM, {"target_std": 0.0}, "target_std"),
    (CUSUM, {"target_mean": math.inf}, "target_mean"),
    (CUSUM, {"k": -0.5}, "k"),
    (CUSUM, {"h": 0.0}, "h"),
    (CUSUM, {"direction": "sideways"}, "direction"),
    (CUSUM, {"warmup": 1}, "warmup"),
    (CUSUM, {"warmup": True}, "warmup"),
    (DDM, {"warning": 0.0}, "warning"),
    (DDM, {"warning": 3.0, "drift": 2.0}, "drift"),
    (DDM, {"min_n": -5}, "min_n"),
    (EDDM, {"alpha": 1.5}, "alpha"),
    (EDDM, {"beta": 0.0}, "beta"),
    (EDDM, {"alpha": 0.9, "beta": 0.95}, "beta"),
    (HDDM_A, {"drift_confidence": 0.0}, "drift_confidence"),
    (HDDM_A, {"drift_confidence": 1.0}, "drift_confidence"),
    (HDDM_A, {"drift_confidence": 0.01, "warning_confidence": 0.001}, "warning_confidence"),
    (HDDM_A, {"two_sided": "yes"}, "two_sided"),
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_every_class_has_invalid_parameter_cases(cls):
    assert any(c is cls for c, _, _ in INVALID)


@pytest.mark.parametrize(("cls", "kwargs", "param"), INVALID,
                         ids=[f"{c.name}-{p}-{i}" for i, (c, _, p) in enumerate(INVALID)])
def test_invalid_parameters_are_refused(cls, kwargs, param):
    with pytest.raises(ValueError) as err:
        cls(**kwargs)
    msg = str(err.value)
    assert msg.startswith(param + " must")  # the parameter and the rule ...
    assert repr(kwargs[param]) in msg  # ... and the offending value


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_non_finite_inputs_are_ignored_and_counted(cls):
    det = cls()
    assert det.update(math.nan) is False
    assert det.update(math.inf) is False
    assert det.update_many(np.array([-math.inf, 0.0, math.nan, 1.0])).size == 0
    assert (det.ignored, det.n) == (4, 2)
    det.reset()
    assert (det.ignored, det.n) == (0, 0)
    assert canonical(det) == canonical(cls())


@pytest.mark.parametrize("cls", [DDM, EDDM, HDDM_A], ids=lambda c: c.name)
def test_error_detectors_refuse_non_binary_observations(cls):
    det = cls()
    det.update_many(np.array([0.0, 1.0, 0.0]))
    before = canonical(det)
    with pytest.raises(ValueError, match="0 or 1"):
        det.update(0.5)
    with pytest.raises(ValueError, match="0 or 1"):
        det.update_many(np.array([0.0, 1.0, 2.0]))
    assert canonical(det) == before  # a refused batch changes nothing


# -- (5) detection delay -------------------------------------------------------------

PRE = 1000
SEEDS = range(50)
# measured median delay (see module docstring) -> asserted bound
DELAY_BOUND = {"adwin": 80, "page_hinkley": 60, "cusum": 20, "ddm": 150, "eddm": 100,
               "hddm_a": 200}


def delay(alarms, change: int = PRE) -> float:
    after = [i for i in alarms if i >= change]
    return after[0] - change if after else math.inf


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_detects_an_abrupt_change(cls):
    delays = [delay(cls().update_many(change_stream(cls, s))) for s in SEEDS]
    assert sum(math.isinf(d) for d in delays) <= 3  # (measured: at most 1 of 50)
    assert np.median(delays) <= DELAY_BOUND[cls.name]


# -- (6) false alarms on stationary streams ------------------------------------------

# measured per 10^6 events (see module docstring) -> asserted bound
FALSE_ALARM_BOUND = {"adwin": 20, "page_hinkley": 1000, "cusum": 2500, "ddm": 20,
                     "eddm": 150, "hddm_a": 10}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_false_alarms_per_million_on_stationary_stream(cls):
    rng = np.random.default_rng(123)
    n = 1_000_000
    xs = (rng.random(n) < 0.1).astype(float) if cls.binary else rng.normal(size=n)
    per_million = cls().update_many(xs).size * 1_000_000 / n
    assert per_million <= FALSE_ALARM_BOUND[cls.name]


# -- (7) agreement with River --------------------------------------------------------

from river import drift as river_drift  # noqa: E402
from river.drift import binary as river_binary  # noqa: E402

RIVER_PAIRS = [
    ("adwin", ADWIN, lambda: river_drift.ADWIN(delta=0.002, clock=32, max_buckets=5,
                                               min_window_length=5, grace_period=10),
     lambda: ADWIN(0.002)),
    ("page_hinkley", PageHinkley,
     lambda: river_drift.PageHinkley(min_instances=30, delta=0.005, threshold=50.0,
                                     alpha=1.0, mode="both"),
     lambda: PageHinkley(delta=0.005, threshold=50.0, alpha=1.0, direction="both")),
    ("page_hinkley_fading", PageHinkley, lambda: river_drift.PageHinkley(),
     lambda: PageHinkley(alpha=1 - 1e-4)),
    ("ddm", DDM, lambda: river_binary.DDM(), lambda: DDM()),
    ("eddm", EDDM, lambda: river_binary.EDDM(), lambda: EDDM()),
    ("hddm_a", HDDM_A, lambda: river_binary.HDDMA(), lambda: HDDM_A()),
]


def river_alarms(det, xs: np.ndarray) -> list[int]:
    out = []
    for i, x in enumerate(xs.tolist()):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return out


@pytest.mark.parametrize(("label", "cls", "make_river", "make_ours"), RIVER_PAIRS,
                         ids=[p[0] for p in RIVER_PAIRS])
def test_agrees_with_river(label, cls, make_river, make_ours):
    ours_delays, river_delays, identical = [], [], 0
    for s in SEEDS:
        xs = change_stream(cls, s)
        theirs = river_alarms(make_river(), xs)
        mine = make_ours().update_many(xs).tolist()
        identical += mine == theirs
        ours_delays.append(delay(mine))
        river_delays.append(delay(theirs))
    ratio = np.median(ours_delays) / np.median(river_delays)
    assert 1 / 1.5 <= ratio <= 1.5
    # Same algorithm, same parameters: the alarm sequences themselves coincide
    # (measured: 50 of 50 seeds for every pair).
    assert identical >= 45
