"""Runbook / dashboard links: templates by scope, filled from labels, shown by receivers,
set on alerts by a replay."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import orjson

from alerts.links import AnnotationTemplates, links, render
from alerts.model import Alert
from alerts.receivers.mail import html_body, text_body
from alerts.receivers.msteams import msteams_payload
from alerts.receivers.opsgenie import opsgenie_create
from alerts.receivers.pagerduty import pagerduty_event
from alerts.receivers.slack import slack_payload
from monitor.config.load import load_config, validate
from monitor.replay import replay
from monitor.simulate import DEMO_MODELS, Fault, stream, write_jsonl
from tests.alerts.support import FIRING, GROUP, uncommented

TEMPLATES = AnnotationTemplates(
    default={"runbook_url": "https://wiki.example.com/rb/{kind}",
             "dashboard_url": "https://grafana.example.com/d/dw?var-model={model}"},
    kinds={"latency_regression": {"runbook_url": "https://wiki.example.com/sre/latency"}},
    models={"churn": {"dashboard_url": "https://grafana.example.com/d/churn?f={feature}"}},
    model_kinds={("churn", "data_drift"): {"runbook_url": "https://wiki.example.com/churn"}},
)


def _alert(model: str, kind: str, **labels: str) -> Alert:
    a = copy.deepcopy(FIRING)
    a.labels.update(model=model, kind=kind, **labels)
    return a


def test_the_most_specific_template_wins_per_annotation() -> None:
    churn_drift = TEMPLATES.annotate(_alert("churn", "data_drift", feature="age"))
    assert links(churn_drift) == [("Runbook", "https://wiki.example.com/churn"),
                                  ("Dashboard", "https://grafana.example.com/d/churn?f=age")]
    eta_latency = TEMPLATES.annotate(_alert("eta", "latency_regression"))
    assert links(eta_latency) == [("Runbook", "https://wiki.example.com/sre/latency"),
                                  ("Dashboard", "https://grafana.example.com/d/dw?var-model=eta")]
    eta_errors = TEMPLATES.annotate(_alert("eta", "error_rate"))
    assert eta_errors.annotations["runbook_url"] == "https://wiki.example.com/rb/error_rate"
    assert links(AnnotationTemplates().annotate(_alert("eta", "error_rate"))) == []


def test_values_are_percent_encoded_and_missing_labels_are_empty() -> None:
    labels = {"model": "a b/c", "segment": "host=pod-3"}
    assert render("https://x/{model}?s={segment}&f={feature}", labels, url=True) == \
        "https://x/a%20b%2Fc?s=host%3Dpod-3&f="
    assert render("{model} {{literal}}", labels) == "a b/c {literal}"


def test_every_receiver_that_can_shows_the_links() -> None:
    a = TEMPLATES.annotate(_alert("churn", "data_drift", feature="age"))
    runbook, dashboard = a.annotations["runbook_url"], a.annotations["dashboard_url"]
    slack = slack_payload([a], GROUP)["blocks"]
    assert slack[-1] == {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Runbook"}, "url": runbook},
        {"type": "button", "text": {"type": "plain_text", "text": "Dashboard"}, "url": dashboard},
    ]}
    card = msteams_payload([a], GROUP)["attachments"][0]["content"]["body"][0]["items"]
    assert [x["url"] for x in card[-1]["actions"]] == [runbook, dashboard]
    assert pagerduty_event(a, "key")["links"] == [{"href": runbook, "text": "Runbook"},
                                                  {"href": dashboard, "text": "Dashboard"}]
    details = opsgenie_create(a, GROUP)["details"]
    assert details["runbook_url"] == runbook and details["dashboard_url"] == dashboard
    assert f"Runbook: {runbook}" in text_body([a], GROUP)
    assert f'<a href="{dashboard}">Dashboard</a>' in html_body([a], GROUP)
    plain = slack_payload([FIRING], GROUP)["blocks"]  # no links: no buttons
    assert all(b["type"] != "actions" for b in plain)


def test_config_parses_every_scope(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("""
[annotations]
runbook_url = "https://wiki.example.com/rb/{kind}"
[annotations.kinds.latency_regression]
runbook_url = "https://wiki.example.com/sre/latency"
[[models]]
name = "churn"
[models.annotations]
dashboard_url = "https://grafana.example.com/d/churn?f={feature}"
[models.annotations.kinds.data_drift]
runbook_url = "https://wiki.example.com/churn"
""")
    config = load_config(path)
    assert config.annotations.default == {"runbook_url": "https://wiki.example.com/rb/{kind}"}
    assert config.annotations.kinds == {
        "latency_regression": {"runbook_url": "https://wiki.example.com/sre/latency"}}
    assert config.annotations.models == {
        "churn": {"dashboard_url": "https://grafana.example.com/d/churn?f={feature}"}}
    assert config.annotations.model_kinds == {
        ("churn", "data_drift"): {"runbook_url": "https://wiki.example.com/churn"}}


def test_config_errors_name_the_key() -> None:
    _, problems = validate({
        "annotations": {"runbook_url": "https://x/{nope}", "summary": "s",
                        "kinds": {"drift": {}}},
        "models": [{"name": "m", "annotations": {"dashboard_url": "grafana/{model}"}}],
    })
    assert problems.errors == [
        "annotations.runbook_url: unknown label {nope} (labels: alertname, kind, fault, team, "
        'model, model_version, severity, feature, segment) (got "https://x/{nope}")',
        "annotations.kinds.drift: unknown alert kind (kinds: data_drift, prediction_drift, "
        "label_drift, performance_degradation, latency_regression, error_rate, traffic_drop, "
        'schema_violation, data_quality, label_delay, version_regression, resource_usage, '
        'state_lost) (got "drift")',
        "annotations.summary: unknown key (annotations take runbook_url and dashboard_url)",
        "models[0].annotations.dashboard_url: must be an http:// or https:// URL template "
        '(got "grafana/{model}")',
    ]


def test_replayed_alerts_carry_the_links(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, """
[defaults]
reference_events = 2000
window_events = 1000
[annotations]
runbook_url = "https://wiki.example.com/rb/{kind}"
[[models]]
name = "churn"
[models.annotations]
dashboard_url = "https://grafana.example.com/d/churn?f={feature}"
"""))
    events = tmp_path / "events.jsonl"
    write_jsonl(str(events), stream(DEMO_MODELS, 8_000, [
        Fault("churn", "shift", 4_000, {"feature": "age", "sigmas": 0.5})], seed=1))
    out = tmp_path / "alerts.jsonl"
    replay(config, [events], alerts_out=out)
    written = [orjson.loads(line) for line in out.read_text().splitlines()]
    drift = [a for a in written if a["labels"]["kind"] == "data_drift"
             and a["labels"].get("feature") == "age"]
    assert drift, [a["labels"] for a in written]
    assert drift[0]["annotations"]["runbook_url"] == "https://wiki.example.com/rb/data_drift"
    assert drift[0]["annotations"]["dashboard_url"] == "https://grafana.example.com/d/churn?f=age"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_example_configs_annotations_block_is_valid_when_switched_on() -> None:
    text = (Path(__file__).resolve().parents[2] / "config.toml").read_text()
    switched = uncommented(text, "# [annotations]")
    config, problems = validate(tomllib.loads(switched), env={})
    assert config is not None, problems.errors
    assert set(config.annotations.default) == {"runbook_url", "dashboard_url"}
    assert set(config.annotations.kinds) == {"latency_regression"}
