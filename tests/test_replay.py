"""Replay scenarios on generated streams with known faults."""

from pathlib import Path

import orjson
import pytest

from monitor.cli import main
from monitor.config.types import Config, IntegrationConfig, MonitorSettings, ReceiverConfig
from monitor.replay import replay
from monitor.simulate import DEMO_MODELS, Fault, stream, write_jsonl

SMALL = Config(defaults=MonitorSettings(reference_events=2_000, window_events=1_000))


def run(tmp_path: Path, faults: list[Fault], n: int = 8_000, config: Config = SMALL,
        seed: int = 1):
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), stream(DEMO_MODELS, n, faults, seed=seed))
    return replay(config, [path], alerts_out=tmp_path / "alerts.jsonl")


def firing(result, **labels):
    return [a for a in result.alerts if a.status == "firing"
            and all(a.labels.get(k) == v for k, v in labels.items())]


def test_long_stationary_stream_raises_nothing(tmp_path: Path) -> None:
    # 2 models x 160,000 events = 320,000 events, 300+ windows with the defaults
    result = run(tmp_path, [], n=160_000, config=Config(), seed=11)
    assert result.events == 320_000
    assert result.invalid == 0
    assert result.alerts == []


def test_shifted_feature_goes_to_data_science(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("churn", "shift", 4_000, {"feature": "age", "sigmas": 0.5})])
    drift = firing(result, kind="data_drift", model="churn", feature="age")
    assert drift, [a.labels for a in result.alerts]
    a = drift[0]
    assert a.labels["fault"] == "model" and a.labels["team"] == "data-science"
    assert a.evidence["detector"] in ("ks", "cusum") and a.evidence["p_value"] < 1e-5
    assert a.annotations["attribution"]
    # nothing else about churn's features, and nothing for eta
    assert not [x for x in result.alerts if x.labels["model"] == "eta"]
    assert {x.labels.get("feature") for x in firing(result, kind="data_drift")} == {"age"}


def test_slower_model_goes_to_ml_engineering(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("eta", "latency", 4_000, {"factor": 1.25})])
    lat = firing(result, kind="latency_regression", model="eta")
    assert lat and lat[0].labels["team"] == "ml-engineering"
    assert lat[0].labels["fault"] == "infrastructure"
    assert not [x for x in result.alerts if x.labels["kind"] != "latency_regression"]


def test_tail_only_latency_regression_is_caught(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("churn", "latency", 4_000,
                                  {"tail_fraction": 0.03, "tail_ms": 150.0})])
    lat = firing(result, kind="latency_regression", model="churn")
    assert lat and lat[0].labels["team"] == "ml-engineering"


def test_error_spike_goes_to_ml_engineering(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("churn", "errors", 4_000, {"rate": 0.03})])
    err = firing(result, kind="error_rate", model="churn")
    assert err and err[0].labels["team"] == "ml-engineering"
    assert err[0].evidence["cur_rate"] > err[0].evidence["ref_rate"]


def test_silent_model_is_a_traffic_drop_then_resolves(tmp_path: Path) -> None:
    # eta is silent for 3,000 events (1,500 s of event time) while churn goes on
    result = run(tmp_path, [Fault("eta", "silence", 4_000, end=7_000)], n=10_000)
    drops = [a for a in result.alerts if a.labels["kind"] == "traffic_drop"]
    assert [a.status for a in drops] == ["firing", "resolved"]
    assert drops[0].labels["model"] == "eta" and drops[0].labels["team"] == "ml-engineering"
    assert drops[1].fingerprint == drops[0].fingerprint


def test_alerts_out_is_every_state_change_as_contract_json(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("eta", "latency", 4_000, {"factor": 1.5})])
    lines = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [a.to_json() for a in result.alerts]
    obj = orjson.loads(lines[0])
    assert set(obj) == {"fingerprint", "status", "labels", "annotations", "startsAt", "endsAt",
                        "evidence", "receivers", "muted_by"}
    assert obj["startsAt"].endswith("Z") and obj["receivers"] == ["default"]
    assert {"alertname", "kind", "fault", "team", "model", "model_version",
            "severity"} <= set(obj["labels"])


def test_replay_is_deterministic(tmp_path: Path) -> None:
    faults = [Fault("churn", "shift", 4_000, {"feature": "tenure_months", "sigmas": 0.6})]
    a = run(tmp_path, faults)
    b = run(tmp_path, faults)
    assert [x.to_json() for x in a.alerts] == [x.to_json() for x in b.alerts]


def test_cli_replay_writes_alerts_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "e.jsonl"
    write_jsonl(str(events), stream(DEMO_MODELS, 8_000,
                                    [Fault("eta", "errors", 4_000, {"rate": 0.05})], seed=3))
    cfg = tmp_path / "c.toml"
    cfg.write_text("[defaults]\nreference_events = 2000\nwindow_events = 1000\n")
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", "--config", str(cfg), str(events), "--alerts-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ErrorRate" in printed and "team=ml-engineering" in printed
    assert any(orjson.loads(x)["labels"]["kind"] == "error_rate"
               for x in out.read_bytes().splitlines())


def test_null_flood_is_a_data_quality_break_for_ml_engineering(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("churn", "nulls", 4_000, {"feature": "age", "rate": 0.3})])
    dq = firing(result, kind="data_quality", model="churn", feature="age")
    assert dq and dq[0].labels["team"] == "ml-engineering"
    assert "null" in dq[0].annotations["description"]
    assert not firing(result, team="data-science")


def test_stuck_default_on_one_host_never_pages_data_science(tmp_path: Path) -> None:
    # pod-2 (a quarter of churn's traffic) sends age = 0: a broken replica, not a changed world
    result = run(tmp_path, [Fault("churn", "stuck", 4_000,
                                  {"feature": "age", "value": 0.0, "host": "pod-2"})])
    dq = firing(result, kind="data_quality", model="churn", feature="age")
    assert dq and dq[0].labels["team"] == "ml-engineering"
    assert not firing(result, team="data-science"), [a.labels for a in result.alerts]


def test_drift_on_one_host_only_is_a_broken_replica_for_ml_engineering(tmp_path: Path) -> None:
    # pod-2 (a quarter of churn's traffic) sends age shifted by 3 sd; its siblings do not
    result = run(tmp_path, [Fault("churn", "shift", 4_000,
                                  {"feature": "age", "sigmas": 3.0, "host": "pod-2"})])
    drift = firing(result, kind="data_drift", model="churn", feature="age")
    assert drift, [a.labels for a in result.alerts]
    assert drift[0].labels["team"] == "ml-engineering"
    assert drift[0].labels["segment"] == "host=pod-2"
    assert "confined to segment host=pod-2" in drift[0].annotations["attribution"]
    assert not firing(result, team="data-science"), [a.labels for a in result.alerts]


def test_slow_release_is_a_deployment_fault_for_ml_engineering(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("eta", "version", 4_000, {"version": "v8"}),
                            Fault("eta", "latency", 4_000, {"factor": 1.4})])
    lat = firing(result, kind="latency_regression", model="eta")
    assert lat and lat[0].labels["team"] == "ml-engineering"
    assert lat[0].labels["model_version"] == "v8"
    assert "v8" in lat[0].annotations["attribution"]  # the reason names the deploy
    assert not firing(result, team="data-science"), [a.labels for a in result.alerts]


def test_miscalibrated_release_is_a_model_fault_for_data_science(tmp_path: Path) -> None:
    # v4 of churn scores every customer higher on the very same inputs
    result = run(tmp_path, [Fault("churn", "version", 4_000, {"version": "v4"}),
                            Fault("churn", "outputs", 4_000, {"shift": 1.0})])
    out = firing(result, kind="prediction_drift", model="churn")
    assert out and out[0].labels["team"] == "data-science", [a.labels for a in result.alerts]
    assert "v4" in out[0].annotations["attribution"]
    assert not firing(result, kind="data_drift"), [a.labels for a in result.alerts]
    assert not firing(result, team="ml-engineering"), [a.labels for a in result.alerts]


def test_renamed_field_is_a_schema_break_for_ml_engineering(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("churn", "rename", 4_000, {"feature": "age", "to": "age_years"})])
    sv = firing(result, kind="schema_violation", model="churn", feature="age")
    assert sv and sv[0].labels["team"] == "ml-engineering"
    assert "missing" in sv[0].annotations["description"]
    assert "'age_years'" in sv[0].annotations["description"]  # named as a likely rename
    # the nulls the rename leaves behind are the same break: no second alert, no page for DS
    assert not firing(result, kind="data_quality", model="churn", feature="age")
    assert not firing(result, team="data-science"), [a.labels for a in result.alerts]


def test_field_arriving_as_another_type_is_a_schema_break(tmp_path: Path) -> None:
    result = run(tmp_path, [Fault("churn", "retype", 4_000, {"feature": "tenure_months"})])
    sv = firing(result, kind="schema_violation", model="churn", feature="tenure_months")
    assert sv and sv[0].labels["team"] == "ml-engineering"
    assert "another type" in sv[0].annotations["description"]
    assert not firing(result, team="data-science"), [a.labels for a in result.alerts]
    assert result.invalid == 0  # the events themselves are kept: only the value is dropped


@pytest.mark.parametrize("fault", [
    Fault("churn", "stuck", 4_000, {"feature": "age", "value": 0.0, "host": "pod-2"}),
    Fault("eta", "latency", 4_000, {"factor": 1.3}),
])
def test_alerts_do_not_depend_on_how_the_stream_is_batched(tmp_path: Path, fault) -> None:
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), stream(DEMO_MODELS, 8_000, [fault], seed=2))

    def rounded(x):  # batch sizes may change the last bits of a cumulative sum
        if isinstance(x, float):
            return float(f"{x:.9g}")
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return [rounded(v) for v in x] if isinstance(x, list) else x

    runs = [[rounded(a.to_json()) for a in replay(SMALL, [path], chunk_lines=chunk).alerts]
            for chunk in (250, 3_000, 50_000)]
    assert runs[0] and runs[0] == runs[1] == runs[2]


def test_replay_notify_delivers_an_incident_that_fires_and_resolves(tmp_path: Path) -> None:
    # eta silent from event 4,000 to 6,000: a traffic drop that fires, then resolves
    out = tmp_path / "delivered.jsonl"
    config = Config(defaults=SMALL.defaults, receivers=(ReceiverConfig(
        "default", (IntegrationConfig("file", {"path": str(out)}),)),))
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), stream(DEMO_MODELS, 8_000, [Fault("eta", "silence", 4_000, end=6_000)],
                                  seed=1))
    result = replay(config, [path], notify=True)
    changes = [(a.labels["alertname"], a.status) for a in result.alerts]
    assert ("TrafficDrop", "firing") in changes and ("TrafficDrop", "resolved") in changes
    delivered = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    drops = [a["status"] for a in delivered if a["labels"]["alertname"] == "TrafficDrop"]
    assert drops == ["firing", "resolved"]  # as the daemon would have sent them
