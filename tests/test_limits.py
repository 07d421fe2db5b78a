"""Caps on what the event stream can make driftwatch remember ([limits], issue 27).

Each finding of the review is one test here: every one fails on the code before
the caps (no [limits], nothing counted, names remembered one by one)."""

from __future__ import annotations

import logging
import math

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, generate_latest

from monitor.app import build
from monitor.config.load import parse_config
from monitor.config.types import Config, LimitsConfig, MonitorSettings
from monitor.events import Decoder

T0 = 1_767_225_600.0


def ev(i: int, model: str = "m", **over: object) -> bytes:
    e: dict[str, object] = {"type": "prediction", "id": str(i), "model": model,
                            "ts": T0 + i, "prediction": 0.5, "latency_ms": 20.0}
    e.update(over)
    return orjson.dumps(e)


def series(registry: CollectorRegistry, family: str | None = None) -> int:
    """Sample lines of /metrics (of one family when given)."""
    text = generate_latest(registry).decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#")
               and (family is None or line.startswith(family)))


def test_limits_parse_with_defaults_and_name_the_key_and_value() -> None:
    assert parse_config({}).limits == LimitsConfig()
    assert parse_config({"limits": {"max_models": 7}}).limits.max_models == 7
    from monitor.config.load import validate

    _, problems = validate({"limits": {"max_versions_per_model": 0, "max_name_chars": "x"}})
    assert problems.errors == [
        "limits.max_versions_per_model: must be an integer >= 1 (got 0)",
        'limits.max_name_chars: must be an integer >= 16 (got "x")']


def test_models_past_the_cap_are_dropped_and_counted_predictions_and_labels() -> None:
    d = Decoder(limits=LimitsConfig(max_models=2))
    lines = [ev(i, f"m{i}") for i in range(5)]
    lines.append(orjson.dumps({"type": "label", "id": "1", "model": "m4", "ts": T0, "label": 1}))
    b = d.decode_lines(lines)
    assert sorted(b.predictions) == ["m0", "m1"] and not b.labels
    assert b.dropped == {"model_limit": 4}
    assert d.caps.to_state()["models"] == ["m0", "m1"]


def test_configured_models_are_always_admitted() -> None:
    d = Decoder(feature_types={"vip": {}}, limits=LimitsConfig(max_models=1))
    b = d.decode_lines([ev(0, "other"), ev(1, "vip")])
    assert sorted(b.predictions) == ["vip"] and b.dropped == {"model_limit": 1}


def test_a_new_version_past_the_cap_evicts_the_one_idle_longest_and_its_series() -> None:
    cfg = Config(limits=LimitsConfig(max_versions_per_model=2))
    app = build(cfg, registry=CollectorRegistry(), notify=False)
    p = app.pipeline
    p.process_lines([ev(0, model_version="v1"), ev(1, model_version="v2")])
    p.process_lines([ev(2, model_version="v2")])  # v1 is now the idle one
    p.process_lines([ev(3, model_version="v3")])
    # the serving series of the evicted version go (the champion/challenger watch keeps
    # its own bounded table, monitor.versions.MAX_VERSIONS, and retires idle versions)
    text = "\n".join(line for line in generate_latest(app.metrics.registry).decode().splitlines()
                     if line.startswith(("driftwatch_serving_latency", "driftwatch_predictions")))
    assert 'model_version="v1"' not in text
    assert 'model_version="v2"' in text and 'model_version="v3"' in text
    assert p.dropped == {"version_evicted": 1}
    # every version in one batch is active: the extra one counts as unknown, rows kept
    b = p.decoder.decode_lines([ev(4, model_version="v2"), ev(5, model_version="v3"),
                                ev(6, model_version="v9")])
    assert b.predictions["m"].versions.tolist() == ["v2", "v3", "unknown"]
    assert b.dropped == {"version_limit": 1}


def test_five_thousand_versions_give_a_bounded_number_of_latency_series() -> None:
    app = build(Config(), registry=CollectorRegistry(), notify=False)
    for start in range(0, 5_000, 500):
        app.pipeline.process_lines([ev(i, model_version=f"v{i}")
                                    for i in range(start, start + 500)])
    count = series(app.metrics.registry, "driftwatch_serving_latency_seconds_count")
    assert count <= LimitsConfig().max_versions_per_model + 1  # + "unknown"


def test_segment_keys_and_values_are_capped_one_new_key_per_event_costs_nothing() -> None:
    d = Decoder(limits=LimitsConfig(max_segment_keys=2, max_segment_values=3,
                                    max_name_chars=16))
    lines = [ev(i, segment={f"k{i}": "a"}) for i in range(100)]  # a new key per event
    lines += [ev(100 + i, segment={"k0": f"host-{i}"}) for i in range(10)]
    lines += [ev(200, segment={"k1": "x" * 17})]
    b = d.decode_lines(lines)
    segs = b.predictions["m"].segments
    assert sorted(segs) == ["k0", "k1"]
    assert sorted({v for v in segs["k0"].tolist() if v}) == ["a", "host-0", "host-1"]
    assert b.dropped == {"segment_key_limit": 98, "segment_value_limit": 8,
                         "name_too_long": 1}
    state = d.to_state()["caps"]["segments"]["m"]
    assert state == {"k0": ["a", "host-0", "host-1"], "k1": ["a"]}


def test_long_feature_names_are_dropped_and_counted() -> None:
    d = Decoder(limits=LimitsConfig(max_name_chars=20))
    b = d.decode_lines([ev(0, features={"ok": 1.0, "n" * 21: 2.0})])
    assert list(b.predictions["m"].numeric) == ["ok"]
    assert b.dropped == {"name_too_long": 1}
    assert "n" * 21 not in orjson.dumps(d.to_state()).decode()


def test_nested_valued_features_count_against_max_features() -> None:
    app = build(Config(defaults=MonitorSettings(max_features=10)), registry=CollectorRegistry(),
                notify=False)
    app.pipeline.process_lines([ev(i, features={f"nested{i}": [1, 2]}) for i in range(10_000)])
    assert series(app.metrics.registry, "driftwatch_type_mismatches_total") == 10
    assert app.pipeline.dropped == {"feature_limit": 9_990}


def test_feature_names_past_max_features_are_not_remembered() -> None:
    d = Decoder(max_features=5)
    before = len(orjson.dumps(d.to_state()))
    for start in range(0, 100_000, 10_000):
        d.decode_lines([ev(i, features={f"f{i}": 1.0}) for i in range(start, start + 10_000)])
    state = orjson.dumps(d.to_state())
    assert len(state) - before < 2_000  # five names, their types and the caps' bookkeeping
    assert b"f99999" not in state


def test_drops_are_counted_by_reason_and_each_cap_logged_once(caplog) -> None:
    app = build(Config(limits=LimitsConfig(max_models=1)), registry=CollectorRegistry(),
                notify=False)
    with caplog.at_level(logging.WARNING, logger="driftwatch.metrics"):
        for i in range(5):
            app.pipeline.process_lines([ev(i, "a"), ev(i, f"b{i}")])
    reg = app.metrics.registry
    assert reg.get_sample_value("driftwatch_dropped_total", {"reason": "model_limit"}) == 5
    logged = [r for r in caplog.records if "cap reached" in r.getMessage()]
    assert len(logged) == 1 and logged[0].__dict__["key"] == "limits.max_models"


def test_drop_counts_survive_a_checkpoint_like_the_other_stream_counters() -> None:
    app = build(Config(limits=LimitsConfig(max_models=1)), registry=CollectorRegistry(),
                notify=False)
    app.pipeline.process_lines([ev(0, "a"), ev(1, "b")])
    state = orjson.loads(orjson.dumps(app.pipeline.to_state()))
    counters = app.pipeline.counters_state()
    assert counters["dropped"] == [[{"reason": "model_limit"}, 1.0]]
    again = build(Config(limits=LimitsConfig(max_models=1)), registry=CollectorRegistry(),
                  notify=False)
    again.pipeline.load_state(state)
    again.metrics.restore_counters(counters)
    again.pipeline.process_lines([ev(2, "a"), ev(3, "c")])  # "a" is still the admitted one
    assert again.metrics.registry.get_sample_value(
        "driftwatch_dropped_total", {"reason": "model_limit"}) == 2
    assert sorted(again.pipeline.models) == ["a"]


def _rss_mb() -> float:
    import resource

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


# the bounds the flood below must stay under, with the default caps (the code before the
# caps: about 250 MB, a checkpoint of tens of MB and 50,000 x 20 series)
RSS_GROWTH_MB = 100
CHECKPOINT_BYTES = 4_000_000
METRIC_SERIES = 40_000


def test_a_flood_of_models_and_feature_names_stays_bounded() -> None:
    """50,000 models and 1,000,000 feature names straight into the pipeline: resident
    memory, the checkpoint and /metrics stay under stated bounds (defaults)."""
    cfg = Config()
    app = build(cfg, registry=CollectorRegistry(), notify=False)
    p = app.pipeline
    rss0 = _rss_mb()
    for start in range(0, 50_000, 5_000):
        p.process_lines([ev(i, f"model-{i}", model_version=f"v{i % 7}",
                            segment={"host": f"h{i}"}) for i in range(start, start + 5_000)])
    names = iter(range(1_000_000))
    for _ in range(10):  # 100 events of 1,000 new names each per batch, to ten models
        p.process_lines([ev(j, f"model-{j % 10}",
                            features={f"feature-{next(names)}": 1.0 for _ in range(1_000)})
                         for j in range(100)])
    growth = _rss_mb() - rss0
    checkpoint = len(orjson.dumps({"pipeline": p.to_state(), "counters": p.counters_state()}))
    n_series = series(app.metrics.registry)
    lim = cfg.limits
    assert len(p.models) == lim.max_models
    assert p.dropped["model_limit"] == 49_000
    assert p.dropped["feature_limit"] == 1_000_000 - 10 * cfg.defaults.max_features
    assert growth < RSS_GROWTH_MB, growth
    assert checkpoint < CHECKPOINT_BYTES, checkpoint
    assert n_series < METRIC_SERIES, n_series
    print(f"rss growth {growth:.0f} MB, checkpoint {checkpoint:,} bytes, {n_series:,} series")
    assert math.isfinite(float(np.float64(growth)))
