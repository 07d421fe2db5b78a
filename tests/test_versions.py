"""Champion and challenger through replay (monitor.versions): verdicts, teams, surfaces."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.cli import main
from monitor.config.load import check_config, parse_config
from monitor.replay import replay

T0 = 1_780_000_000.0


def _config(**contract: Any) -> Any:
    return parse_config({
        "defaults": {"reference_events": 1000, "window_events": 500, "alpha": 1e-3,
                     "error_rate_min_increase": 0.02, "drift_min_effect": 0.1,
                     "version_min_events": 500, "version_accuracy_margin": 0.05},
        "models": [{"name": "m", "task": "binary_classification",
                    "contract": {"framework": "xgboost", "parameter_count": 1200, **contract}}],
    })


def _events(n: int, *, share: float = 0.5, slow: float = 1.0, flip: float = 0.0,
            err: float = 0.01, labels: bool = True, shadow: bool = False,
            disagree: float = 0.0, seed: int = 1, v2: str = "v2",
            start: int = 1000, tail: int = 0) -> list[dict[str, Any]]:
    """``start`` events of v1 alone, then ``n`` events split v1 / ``v2`` (``share`` to v2;
    with ``shadow`` every id answered by both), then ``tail`` events of v1 alone.  v2 is
    ``slow`` times slower, its label agreement flipped on a ``flip`` share, its outputs
    changed on ``disagree``."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for i in range(start + n + tail):
        ts = T0 + i
        p = float(rng.random())
        y = int(rng.random() < (0.95 if p >= 0.5 else 0.05) if p >= 0.5
                else rng.random() < 0.05)
        lat = float(20 * np.exp(rng.normal(0, 0.3)))
        base = {"type": "prediction", "id": f"i{i}", "model": "m", "ts": ts,
                "features": {"x": float(rng.normal())}}
        versions = ["v1"]
        if start <= i < start + n:
            versions = ["v1", v2] if shadow else [v2 if rng.random() < share else "v1"]
        for v in versions:
            ev = dict(base, model_version=v)
            fail = rng.random() < err
            ev["status"] = "error" if fail else "ok"
            pv = p
            if v == v2 and rng.random() < disagree:
                pv = 1 - p
            if not fail:
                ev["prediction"] = pv
            ev["latency_ms"] = lat * (slow if v == v2 else 1.0)
            out.append(ev)
        if labels:
            yv = y
            if "v1" not in versions and rng.random() < flip:
                yv = 1 - y
            out.append({"type": "label", "id": f"i{i}", "model": "m", "ts": ts + 5,
                        "label": yv})
    return out


def _run(tmp_path: Path, events: list[dict[str, Any]], config: Any) -> Any:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    return replay(config, [path], alerts_out=tmp_path / "alerts.jsonl")


def _firing(result: Any, **labels: str) -> list[Any]:
    return [a for a in result.alerts if a.status == "firing"
            and all(a.labels.get(k) == v for k, v in labels.items())]


def test_canary_slower_is_a_version_regression_for_ml_engineering(tmp_path: Path) -> None:
    result = _run(tmp_path, _events(3000, share=0.2, slow=1.3, labels=False), _config())
    hits = _firing(result, kind="version_regression", model_version="v2")
    assert hits, [a.labels for a in result.alerts]
    a = hits[0]
    assert a.labels["team"] == "ml-engineering" and a.labels["segment"] == "model_version=v2"
    assert a.labels["alertname"] == "VersionRegression"
    assert "latency_p50" in a.evidence["metrics"]
    lo = a.evidence["metrics"]["latency_p50"]["lower"]
    assert lo > np.log(1.1) / 2  # the interval lies beyond half the margin
    assert a.evidence["champion_version"] == "v1"
    assert a.annotations["model_declared"] == "xgboost, 1,200 parameters"
    assert "v1" in a.annotations["attribution"]
    assert not _firing(result, segment="model_version=v2", team="data-science")


def test_a_rolled_back_challenger_resolves_its_alert(tmp_path: Path) -> None:
    # retired once unseen for 10 windows (5,000 events of the model)
    result = _run(tmp_path, _events(2000, share=0.3, slow=1.3, labels=False, tail=5200),
                  _config())
    mine = [a for a in result.alerts if a.labels.get("kind") == "version_regression"]
    assert [a.status for a in mine] == ["firing", "resolved"], [a.labels for a in mine]
    assert mine[1].annotations["resolution"] == "v2 stopped serving"


def test_challenger_less_accurate_is_a_model_fault_for_data_science(tmp_path: Path) -> None:
    result = _run(tmp_path, _events(4000, flip=0.3), _config())
    hits = _firing(result, kind="performance_degradation", segment="model_version=v2")
    assert hits, [a.labels for a in result.alerts]
    a = hits[0]
    assert a.labels["team"] == "data-science" and a.labels["model_version"] == "v2"
    assert a.evidence["metrics"]["accuracy"]["upper"] < -0.025
    assert not _firing(result, kind="version_regression")


def test_a_copy_of_the_champion_is_announced_no_worse_and_raises_nothing(
        tmp_path: Path) -> None:
    """Both teams are told, through their own receivers (replay --notify)."""
    ds, mle = tmp_path / "ds.jsonl", tmp_path / "mle.jsonl"
    config = dataclasses.replace(_config(), **{k: getattr(parse_config({
        "route": {"receiver": "ml-engineering",
                  "routes": [{"matchers": ['team="data-science"'], "receiver": "data-science"}]},
        "receivers": [{"name": "data-science", "file": [{"path": str(ds)}]},
                      {"name": "ml-engineering", "file": [{"path": str(mle)}]}],
    }), k) for k in ("route", "receivers")})
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in _events(8000)) + b"\n")
    result = replay(config, [path], notify=True)
    for out, team in ((ds, "data-science"), (mle, "ml-engineering")):
        got = [orjson.loads(x) for x in out.read_bytes().splitlines()]
        assert [(a["labels"]["alertname"], a["status"], a["labels"]["team"]) for a in got] \
            == [("VersionNoWorse", "resolved", team)]
    mine = [a for a in result.alerts if a.labels.get("segment") == "model_version=v2"]
    assert mine and all(a.status == "resolved" for a in mine), [a.labels for a in mine]
    teams = {a.labels["team"] for a in mine if a.labels.get("verdict") == "no_worse"}
    assert teams == {"data-science", "ml-engineering"}
    assert all(a.labels["alertname"] == "VersionNoWorse" for a in mine)
    # labelled: the promotion waited for the accuracy
    assert "accuracy" in mine[0].annotations["description"]
    assert not [a for a in result.alerts if a.status == "firing"], \
        [a.labels for a in result.alerts]


def test_shadow_pairs_measure_agreement(tmp_path: Path) -> None:
    result = _run(tmp_path, _events(2500, shadow=True, disagree=0.3, labels=False),
                  _config(agreement_min=0.9))
    hits = _firing(result, kind="prediction_drift", segment="model_version=v2")
    assert hits, [a.labels for a in result.alerts]
    a = hits[0]
    assert "agreement" in a.evidence["metrics"] and a.evidence["shadow_pairs"] > 100
    assert a.labels["team"] == "data-science"
    assert a.evidence["metrics"]["agreement"]["upper"] < 0  # below agreement_min


def test_unapproved_version_alerts_ml_engineering_and_becomes_the_challenger(
        tmp_path: Path) -> None:
    result = _run(tmp_path, _events(600, v2="v9", labels=False),
                  _config(approved_versions=["v1", "v2"]))
    hits = _firing(result, kind="version_regression", feature="unapproved_version")
    assert len(hits) == 1 and hits[0].labels["model_version"] == "v9"
    assert hits[0].labels["team"] == "ml-engineering" and hits[0].labels["severity"] == "critical"
    assert hits[0].evidence["approved_versions"] == ["v1", "v2"]


def test_memory_over_the_contract_on_one_host(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    events = []
    for i in range(400):
        host = "pod-2" if i % 2 else "pod-1"
        mem = 3000 if host == "pod-2" and i > 200 else 1000
        events.append({"id": f"i{i}", "model": "m", "ts": T0 + i, "prediction": 0.3,
                       "model_version": "v1", "segment": {"host": host, "hardware": "t4"},
                       "resources": {"memory_mb": mem + float(rng.normal(0, 10))}})
    result = _run(tmp_path, events, _config(memory_mb_max=2048))
    hits = _firing(result, kind="resource_usage")
    assert len(hits) == 1, [a.labels for a in result.alerts]
    a = hits[0]
    assert a.labels["segment"] == "host=pod-2" and a.labels["feature"] == "memory_mb"
    assert a.labels["team"] == "ml-engineering" and a.evidence["hardware"] == "t4"
    assert a.evidence["statistic"] > 2048


def test_verdicts_do_not_depend_on_the_batching(tmp_path: Path) -> None:
    events = _events(3000, share=0.3, slow=1.3, labels=False)
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    seen = []
    for chunk in (37, 20_000):
        r = replay(_config(), [path], chunk_lines=chunk)
        seen.append([(a.fingerprint, a.status, a.starts_at) for a in r.alerts
                     if a.labels.get("kind") == "version_regression"])
    assert seen[0] and seen[0] == seen[1]


def test_state_round_trips_through_the_pipeline(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.app import build

    events = _events(1500, share=0.5, labels=False)
    lines = [orjson.dumps(e) for e in events]
    app = build(_config(), registry=CollectorRegistry())
    app.pipeline.process_lines(lines[:1500])
    state = orjson.loads(orjson.dumps(app.pipeline.to_state()))
    other = build(_config(), registry=CollectorRegistry())
    other.pipeline.load_state(state)
    assert other.pipeline.versions.table("m") == app.pipeline.versions.table("m")
    app.pipeline.process_lines(lines[1500:])
    other.pipeline.process_lines(lines[1500:])
    assert other.pipeline.versions.table("m") == app.pipeline.versions.table("m")
    table = app.pipeline.versions.table("m")
    assert table is not None and table["champion"] == "v1"
    assert table["comparisons"][0]["challenger"] == "v2"
    assert "latency_p50" in table["comparisons"][0]["metrics"]
    text = app.metrics.registry.get_sample_value(
        "driftwatch_version_events_total", {"model": "m", "model_version": "v2"})
    assert text is not None and text > 500


def test_check_config_names_a_champion_outside_the_approved_versions(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[models]]\nname = "m"\n[models.contract]\n'
                    'approved_versions = ["v1"]\nchampion = "v2"\nparameter_count = 0\n')
    errors, _ = check_config(path)
    assert any("models[0].contract.champion: must be one of approved_versions (v1)" in e
               for e in errors), errors
    assert any("models[0].contract.parameter_count" in e for e in errors), errors


def test_versions_command_prints_the_table(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in
                                _events(3000, share=0.2, slow=1.3, labels=False)) + b"\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[defaults]\nreference_events = 1000\nwindow_events = 500\nalpha = 1e-3\n')
    assert main(["versions", "--config", str(cfg), str(path)]) == 0
    out = capsys.readouterr().out
    assert "champion v1" in out and "v2" in out and "worse" in out and "latency_p50" in out
    assert main(["versions", "--config", str(cfg), "--json", str(path)]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["m"]["comparisons"][0]["verdict"] == "worse"


def test_http_api_and_the_versions_command_read_the_daemon(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """GET /api/models/{model}/versions on the daemon's server; `driftwatch versions`
    reads the same table from the daemon's checkpoint in the store."""
    import urllib.error
    import urllib.request

    from prometheus_client import CollectorRegistry

    from monitor.config.types import HttpConfig, StoreConfig
    from monitor.daemon import Daemon
    from monitor.store import Store

    url = f"sqlite:///{tmp_path / 'dw.db'}"
    config = dataclasses.replace(_config(approved_versions=["v1", "v2"]),
                                 http=HttpConfig(port=0), store=StoreConfig(url=url))
    store = Store(url)
    d = Daemon(config, registry=CollectorRegistry(), store=store)
    p = d.shard(0)
    p.process_lines([orjson.dumps(e) for e in _events(3000, share=0.2, slow=1.3,
                                                       labels=False)])
    http = d.start_http()
    try:
        table = orjson.loads(urllib.request.urlopen(
            f"{http.url}/api/models/m/versions", timeout=5).read())
        models = orjson.loads(urllib.request.urlopen(f"{http.url}/api/models", timeout=5).read())
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{http.url}/api/models/nope/versions", timeout=5)
        assert err.value.code == 404
    finally:
        http.stop()
    assert table["champion"] == "v1" and table["comparisons"][0]["verdict"] == "worse"
    row = table["comparisons"][0]["metrics"]["latency_p50"]
    assert row["lower"] > 0 and row["verdict"] == "worse"
    assert models["m"]["framework"] == "xgboost" and models["m"]["parameter_count"] == 1200
    assert models["m"]["versions"] == ["v1", "v2"]
    store.save_checkpoint(d.row(0), {"pipeline": p.to_state()}, {}, 0.0)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\nurl = "{url}"\n')
    assert main(["versions", "--config", str(cfg), "--json"]) == 0
    got = orjson.loads(capsys.readouterr().out)["m"]
    assert got["comparisons"] == table["comparisons"] and got["versions"] == table["versions"]


def test_versions_past_the_cap_are_counted_not_tracked() -> None:
    from dataclasses import replace

    from prometheus_client import CollectorRegistry

    from monitor.app import build
    from monitor.config.types import LimitsConfig
    from monitor.versions import MAX_VERSIONS

    # the decoder's own cap ([limits] max_versions_per_model, 3 by default) raised past
    # the watch's, so the watch's is the one reached
    app = build(replace(_config(), limits=LimitsConfig(max_versions_per_model=MAX_VERSIONS + 4)),
                registry=CollectorRegistry())
    lines = [orjson.dumps({"id": f"i{i}", "model": "m", "ts": T0 + i, "prediction": 0.5,
                           "model_version": f"v{i % (MAX_VERSIONS + 2)}"})
             for i in range(2000)]
    app.pipeline.process_lines(lines)
    table = app.pipeline.versions.table("m")
    assert table is not None and len(table["versions"]) == MAX_VERSIONS
    assert table["dropped"]["versions"] == 2 and table["dropped"]["events"] == 400
    assert app.metrics.registry.get_sample_value(
        "driftwatch_versions_dropped_total", {"model": "m"}) == 400
