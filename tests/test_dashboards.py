"""The Grafana dashboards: committed JSON is what the code generates, and every panel
follows the rules grafana/dashboard-linter checks (datasource variable, rate
intervals) plus ours (every Model panel filters on $model; the recording rules the
fleet reads exist in deploy/prometheus/rules.yml, and every one is read)."""

import re
from pathlib import Path

import pytest
import yaml

from monitor import dashboards
from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
GENERATED = dashboards.generate()


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p["targets"]] + \
        [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if "expr" in a]


def test_committed_dashboards_are_what_the_code_generates() -> None:
    assert dashboards.stale(GRAFANA) == [], "run: driftwatch dashboards --out deploy/grafana"


def test_cli_writes_the_files_and_check_finds_a_stale_one(tmp_path: Path, capsys) -> None:
    assert main(["dashboards", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(dashboards.files())
    assert main(["dashboards", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "driftwatch-model.json").write_text("{}")
    assert main(["dashboards", "--out", str(tmp_path), "--check"]) == 1
    assert "driftwatch-model.json" in capsys.readouterr().err


def test_three_dashboards_with_their_variables() -> None:
    names = {d["title"]: [v["name"] for v in d["templating"]["list"]]
             for d in GENERATED.values()}
    assert names == {"driftwatch / Fleet": ["datasource", "job"],
                     "driftwatch / Model": ["datasource", "job", "model", "version"],
                     "driftwatch / Daemon": ["datasource", "job"]}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_every_panel_and_query_uses_the_datasource_variable(name: str) -> None:
    d = GENERATED[name]
    assert panels(d)
    for p in panels(d):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
    for v in d["templating"]["list"][1:]:
        assert v["datasource"]["uid"] == "${datasource}"
    for a in d.get("annotations", {}).get("list", []):
        assert a["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_rate_queries_use_rate_interval_and_every_query_selects_the_job(name: str) -> None:
    for expr in exprs(GENERATED[name]):
        windows = re.findall(r"\[([^\]]+)\]", expr)
        if re.search(r"\b(rate|irate|increase|deriv|delta)\(", expr):
            assert windows and all(w == "$__rate_interval" for w in windows), expr
        for selector in re.findall(r"\b([a-z_:]+)\{([^}]*)\}", expr):
            assert 'job=~"$job"' in selector[1], expr


def test_every_model_panel_filters_on_model() -> None:
    d = GENERATED[dashboards.FILES["model"]]
    for expr in exprs(d):
        selectors = re.findall(r"\b[a-z_:]+\{([^}]*)\}", expr)
        assert selectors and all('model="$model"' in s for s in selectors), expr


def test_recording_rules_read_by_the_dashboards_are_the_ones_defined() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert recorded == set(dashboards.RECORDING_RULES)
    read = {m for d in GENERATED.values() for e in exprs(d)
            for m in re.findall(r"\b[a-z_]+:[a-z_]+:[a-z0-9_]+\b", e)}
    assert read == recorded
