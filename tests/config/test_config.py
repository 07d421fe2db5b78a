"""Loading config.toml into typed objects: the happy paths, secrets and the details."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from alerts.receivers import build_notifiers
from monitor.config.load import (
    SETTING_RULES,
    ConfigError,
    check_config,
    load_config,
    parse_config,
    parse_duration,
    validate,
)
from monitor.config.types import (
    DEFAULT_INHIBIT_RULES,
    DEFAULT_ROUTE,
    Config,
    HttpConfig,
    MonitorSettings,
    RouteConfig,
)

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = "https://hooks.example.com/services/T000/B000/SECRET-TOKEN-1"
ROUTE_TO_OPS: dict[str, Any] = {"route": {"receiver": "ops"}}


def problems(
    data: dict[str, Any], env: dict[str, str] | None = None, base_dir: Path | None = None
) -> tuple[list[str], list[str]]:
    config, found = validate(data, env=env or {}, base_dir=base_dir)
    assert (config is None) == bool(found.errors)
    return found.errors, found.warnings


def with_receiver(integrations: dict[str, Any]) -> dict[str, Any]:
    return {**ROUTE_TO_OPS, "receivers": [{"name": "ops", **integrations}]}


# -- the files -------------------------------------------------------------


def test_repo_config_loads_without_environment() -> None:
    path = ROOT / "config.toml"
    assert check_config(path, env={}) == ([], [])
    config = load_config(path, env={})

    assert config.route.receiver == "ml-engineering"
    assert [(r.receiver, r.matchers) for r in config.route.routes] == [
        ("data-science", ('team="data-science"',))
    ]
    files = {r.name: r.integrations[0].options["path"] for r in config.receivers}
    assert files == {
        "data-science": str(ROOT / "out" / "data-science.jsonl"),
        "ml-engineering": str(ROOT / "out" / "ml-engineering.jsonl"),
    }
    churn = config.model("churn")
    assert churn.task == "binary_classification"
    assert churn.features["age"] == "numeric"
    assert churn.contract.accuracy_min == 0.85
    assert config.inhibit_rules == DEFAULT_INHIBIT_RULES
    assert config.http == HttpConfig("127.0.0.1", 9108)
    assert config.defaults == MonitorSettings()  # the file spells out the defaults


def test_repo_config_documents_the_false_alarm_budget() -> None:
    text = (ROOT / "config.toml").read_text()
    assert "0.01 expected" in text
    kinds = ("slack", "pagerduty", "opsgenie", "msteams", "email", "alertmanager", "webhook")
    for kind in (f"receivers.{k}" for k in kinds):
        assert re.search(rf"^# \[\[{re.escape(kind)}\]\]", text, re.M), kind


def test_empty_file_is_the_default_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("# nothing here\n")
    assert load_config(path) == Config()
    assert check_config(path) == ([], [])


def test_no_file_is_the_default_config() -> None:
    assert load_config(None) == Config()
    assert parse_config({}) == Config()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.toml")
    errors, _ = check_config(tmp_path / "nope.toml")
    assert errors == [f"{tmp_path / 'nope.toml'}: file not found"]


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[http]\nlisten = "127.0.0.1:9108"\nlisten = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:3:")
    assert "line 3, column" in problem


def test_one_pass_reports_every_problem() -> None:
    data = {
        "kafka": {"session_timeout_ms": 1, "topics": {"foo": "x"}},
        "defaults": {"window_events": 10, "alpha": 2},
        "models": [{"name": "a", "features": {"age": "number"}}],
        "route": {"receiver": "ds"},
        "bogus": 1,
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.problems == [
        "kafka.session_timeout_ms: must be an integer >= 1000 (got 1)",
        "kafka.topics.foo: unknown key",
        "defaults.window_events: must be an integer >= 50 (got 10)",
        "defaults.alpha: must be a number > 0 and < 0.5 (got 2)",
        'models[0].features.age: must be one of numeric, categorical (got "number")',
        'route.receiver: undefined receiver "ds" used in route',
        "bogus: unknown key",
    ]
    message = str(info.value)
    assert message.startswith("7 config problem(s)")
    assert all(p in message for p in info.value.problems)


# -- [defaults] and per-model settings -------------------------------------


def test_every_setting_has_a_rule() -> None:
    assert set(SETTING_RULES) == {f.name for f in dataclasses.fields(MonitorSettings)}


def test_per_model_overrides_merge_onto_defaults() -> None:
    config = parse_config(
        {
            "defaults": {"window_events": 1000, "alpha": 1e-4, "window_seconds": "1h"},
            "models": [
                {"name": "churn", "window_events": 500, "min_window_events": 50},
                {"name": "eta", "task": "regression", "drift_min_effect": 0},
            ],
        }
    )
    defaults = MonitorSettings(window_events=1000, alpha=1e-4, window_seconds=3600.0)
    assert config.defaults == defaults
    assert config.model("churn").settings == dataclasses.replace(
        defaults, window_events=500, min_window_events=50
    )
    assert config.model("eta").settings == dataclasses.replace(defaults, drift_min_effect=0.0)
    assert config.model("unlisted").settings == defaults


def test_ints_accepted_where_floats_expected_but_bools_are_not_ints() -> None:
    config = parse_config({"defaults": {"latency_min_ratio": 2, "traffic_gap_min_seconds": 60}})
    assert config.defaults.latency_min_ratio == 2.0
    assert isinstance(config.defaults.latency_min_ratio, float)
    errors, _ = problems({"defaults": {"max_features": True}})
    assert errors == ["defaults.max_features: must be an integer >= 1 (got true)"]


def test_label_ttl_is_a_duration_per_model_and_reaches_the_join() -> None:
    from prometheus_client import CollectorRegistry

    from monitor.app import build

    config = parse_config({"defaults": {"label_ttl_seconds": "2h"},
                           "models": [{"name": "churn", "label_ttl_seconds": "30m"}]})
    join = build(config, registry=CollectorRegistry(), notify=False).pipeline.join
    assert (join.ttl("churn"), join.ttl("other")) == (1800.0, 7200.0)


def test_duplicate_models_and_receivers_are_refused() -> None:
    errors, _ = problems(
        {
            "models": [{"name": "m"}, {"name": "n"}, {"name": "m"}],
            "route": {"receiver": "r"},
            "receivers": [{"name": "r"}, {"name": "r"}],
        }
    )
    assert errors == [
        'models[2].name: duplicate model name (also models[0]) (got "m")',
        'receivers[1].name: duplicate receiver name (also receivers[0]) (got "r")',
    ]


# -- durations and listen --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("4h", 14400.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("2h0m5s", 7205.0),
        ("1s500ms", 1.5),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        (" 5m ", 300.0),
        (90, 90.0),
        (0.5, 0.5),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "m",
        "1h 30m",
        "30m1h",
        "1h1h",
        "5 minutes",
        "5min",
        "-5s",
        "1y",
        True,
        None,
        float("inf"),
        [5],
    ],
)
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="must be a duration like"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("listen", "host", "port", "warned"),
    [
        ("127.0.0.1:9108", "127.0.0.1", 9108, False),
        ("localhost:0", "localhost", 0, False),
        ("[::1]:9108", "::1", 9108, False),
        ("127.0.0.2:65535", "127.0.0.2", 65535, False),
        ("0.0.0.0:9108", "0.0.0.0", 9108, True),
        ("[::]:9108", "::", 9108, True),
        ("metrics.internal:80", "metrics.internal", 80, True),
    ],
)
def test_listen(listen: str, host: str, port: int, warned: bool) -> None:
    config, found = validate({"http": {"listen": listen}})
    assert config is not None and config.http == HttpConfig(host, port)
    assert len(found.warnings) == warned
    if warned:  # no auth configured: anyone who reaches it may write
        assert found.warnings[0].startswith(
            f"http.listen: binds to {host}, reachable from other hosts, without authentication")


# -- kafka and store -------------------------------------------------------


def test_kafka_settings_and_pass_through_security(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("---")
    (tmp_path / "ssl-password").write_text("key-pass-SECRET\n")
    config, found = validate(
        {
            "kafka": {
                "bootstrap_servers": "b1:9092, b2:9093",
                "topics": {"predictions": "preds", "labels": "labs"},
                "dead_letter_topic": "dead",
                "auto_offset_reset": "latest",
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_plain_username": "dw",
                "sasl_plain_password_env": "KAFKA_PW",
                "ssl_cafile": "ca.pem",
                "ssl_password_file": "ssl-password",
                "ssl_check_hostname": False,
            }
        },
        env={"KAFKA_PW": "sasl-pass-SECRET"},
        base_dir=tmp_path,
    )
    assert config is not None, found.errors
    assert found.warnings == []
    k = config.kafka
    assert k.bootstrap_servers == ("b1:9092", "b2:9093")
    assert (k.predictions_topic, k.labels_topic, k.dead_letter_topic) == ("preds", "labs", "dead")
    assert k.auto_offset_reset == "latest"
    assert k.client_options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "dw",
        "sasl_plain_password": "sasl-pass-SECRET",
        "ssl_cafile": str(tmp_path / "ca.pem"),
        "ssl_password": "key-pass-SECRET",
        "ssl_check_hostname": False,
    }


def test_kafka_one_bootstrap_string() -> None:
    config = parse_config({"kafka": {"bootstrap_servers": "kafka:9092"}})
    assert config.kafka.bootstrap_servers == ("kafka:9092",)


def test_store_url_from_env_is_never_quoted() -> None:
    env = {"DB_URL": "postgresql+psycopg://dw:db-pass-SECRET@db/driftwatch"}
    config, found = validate({"store": {"url_env": "DB_URL"}}, env=env)
    assert config is not None and config.store.url == env["DB_URL"]
    assert found.warnings == []
    errors, _ = problems({"store": {"url_env": "DB_URL"}}, env={"DB_URL": "db-pass-SECRET"})
    assert errors and "SECRET" not in "\n".join(errors)


# -- routes, receivers, inhibition -----------------------------------------


def test_route_takes_missing_root_settings_from_the_default_route() -> None:
    config = parse_config(
        {
            "route": {
                "receiver": "ops",
                "group_wait": 0,
                "routes": [
                    {
                        "matchers": ['team="data-science"'],
                        "receiver": "ds",
                        "continue": True,
                        "routes": [{"matchers": ['severity="critical"'], "group_by": ["model"]}],
                    },
                ],
            },
            "receivers": [{"name": "ops"}, {"name": "ds"}],
        }
    )
    assert config.route == RouteConfig(
        receiver="ops",
        group_by=DEFAULT_ROUTE.group_by,
        group_wait=0.0,
        group_interval=DEFAULT_ROUTE.group_interval,
        repeat_interval=DEFAULT_ROUTE.repeat_interval,
        routes=(
            RouteConfig(
                receiver="ds",
                matchers=('team="data-science"',),
                continue_=True,
                routes=(RouteConfig(matchers=('severity="critical"',), group_by=("model",)),),
            ),
        ),
    )


def test_receivers_need_a_route_and_a_route_needs_receivers() -> None:
    assert parse_config({}).receivers == Config().receivers
    errors, _ = problems({"receivers": [{"name": "ops"}]})
    assert errors == [
        'route.receiver: undefined receiver "default" used in route '
        "(no [route] table, so every alert goes to it)"
    ]
    errors, _ = problems(ROUTE_TO_OPS)
    assert errors == ['route.receiver: undefined receiver "ops" used in route']


def test_receiver_kinds_and_options(tmp_path: Path) -> None:
    config, found = validate(
        with_receiver(
            {
                "slack": [
                    {"url_env": "SLACK", "channel": "#ops", "username": "dw", "timeout": "5s"}
                ],
                "webhook": [{"url_env": "HOOK", "max_alerts": 10, "timeout": 2}],
                "pagerduty": [
                    {
                        "routing_key_env": "PD",
                        "severity": "critical",
                        "url": "http://127.0.0.1:9999/v2/enqueue",
                    }
                ],
                "file": [{"path": "out/alerts.jsonl"}, {"path": "/var/log/alerts.jsonl"}],
            }
        ),
        env={"SLACK": WEBHOOK, "HOOK": WEBHOOK, "PD": "pd-key-SECRET"},
        base_dir=tmp_path,
    )
    assert config is not None, found.errors
    got = [(i.kind, i.options, i.secret_keys) for i in config.receivers[0].integrations]
    assert got == [
        ("slack", {"url": WEBHOOK, "channel": "#ops", "username": "dw", "timeout": 5.0}, ("url",)),
        ("webhook", {"url": WEBHOOK, "timeout": 2.0, "max_alerts": 10}, ("url",)),
        (
            "pagerduty",
            {
                "routing_key": "pd-key-SECRET",
                "url": "http://127.0.0.1:9999/v2/enqueue",
                "severity": "critical",
            },
            ("routing_key",),
        ),
        ("file", {"path": str(tmp_path / "out" / "alerts.jsonl")}, ()),
        ("file", {"path": "/var/log/alerts.jsonl"}, ()),
    ]


def test_on_call_receiver_kinds_load_and_build(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text("smtp-pw-SECRET\n")
    path = tmp_path / "config.toml"
    path.write_text(
        """
[route]
receiver = "ops"

[[receivers]]
name = "ops"
[[receivers.opsgenie]]
api_key_env = "OPSGENIE_KEY"
url = "https://api.eu.opsgenie.com"
priority = "P2"
responders = [{ type = "team", name = "ml-engineering" }, { type = "user", username = "a@x.org" }]
timeout = "5s"
[[receivers.msteams]]
url_env = "TEAMS_WORKFLOW_URL"
external_url = "http://driftwatch.internal:9108"
[[receivers.email]]
host = "smtp.example.com"
port = 465
ssl = true
username = "driftwatch"
password_file = "smtp-password"
from = "driftwatch <driftwatch@example.com>"
to = "ml-oncall@example.com"
[[receivers.alertmanager]]
url = "http://alertmanager:9093"
bearer_token_env = "AM_TOKEN"
firing_ttl = "8h"
"""
    )
    env = {"OPSGENIE_KEY": "og-key-SECRET", "TEAMS_WORKFLOW_URL": WEBHOOK, "AM_TOKEN": "am-SECRET"}
    assert check_config(path, env=env) == ([], [])
    config = load_config(path, env=env)
    got = [(i.kind, i.options, i.secret_keys) for i in config.receivers[0].integrations]
    assert got == [
        (
            "opsgenie",
            {
                "api_key": "og-key-SECRET",
                "url": "https://api.eu.opsgenie.com",
                "priority": "P2",
                "responders": (
                    {"type": "team", "name": "ml-engineering"},
                    {"type": "user", "username": "a@x.org"},
                ),
                "timeout": 5.0,
            },
            ("api_key",),
        ),
        ("msteams", {"url": WEBHOOK, "external_url": "http://driftwatch.internal:9108"}, ("url",)),
        (
            "email",
            {
                "host": "smtp.example.com",
                "port": 465,
                "ssl": True,
                "username": "driftwatch",
                "password": "smtp-pw-SECRET",
                "from": "driftwatch <driftwatch@example.com>",
                "to": ("ml-oncall@example.com",),
            },
            ("password",),
        ),
        (
            "alertmanager",
            {"url": "http://alertmanager:9093", "bearer_token": "am-SECRET", "firing_ttl": 28800.0},
            ("bearer_token",),
        ),
    ]
    built = build_notifiers(config.receivers)["ops"]
    assert [n.name for n in built] == ["opsgenie", "msteams", "email", "alertmanager"]
    for n, secret in zip(built, ("og-key-SECRET", "SECRET-TOKEN-1", "smtp-pw-SECRET", "am-SECRET"),
                         strict=True):
        assert secret not in repr(n)


def test_inhibit_rules() -> None:
    assert parse_config({}).inhibit_rules == DEFAULT_INHIBIT_RULES
    assert parse_config({"inhibit_rules": []}).inhibit_rules == ()
    rules = parse_config(
        {
            "inhibit_rules": [
                {
                    "source_matchers": ['kind="traffic_drop"'],
                    "target_matchers": ['fault=~".+"'],
                    "equal": ["model", "model_version"],
                }
            ]
        }
    ).inhibit_rules
    assert [(r.source_matchers, r.target_matchers, r.equal) for r in rules] == [
        (('kind="traffic_drop"',), ('fault=~".+"',), ("model", "model_version"))
    ]


# -- secrets ---------------------------------------------------------------


def assert_secret_hidden(secret: str, messages: list[str]) -> None:
    assert messages, "expected at least one message"
    for message in messages:
        assert secret not in message


def test_secret_from_env() -> None:
    config, found = validate(
        with_receiver({"slack": [{"url_env": "DS_SLACK_WEBHOOK"}]}),
        env={"DS_SLACK_WEBHOOK": WEBHOOK},
    )
    assert config is not None and found.warnings == []
    (integration,) = config.receivers[0].integrations
    assert integration.options == {"url": WEBHOOK}
    assert integration.secret_keys == ("url",)


def test_secret_from_file_is_stripped_and_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pd").write_text("  pd-key-SECRET \n")
    config_file = tmp_path / "driftwatch.toml"
    config_file.write_text(
        '[route]\nreceiver = "ops"\n[[receivers]]\nname = "ops"\n'
        '[[receivers.pagerduty]]\nrouting_key_file = "secrets/pd"\n'
    )
    config = load_config(config_file, env={})
    assert config.receivers[0].integrations[0].options == {"routing_key": "pd-key-SECRET"}


def test_inline_secret_is_allowed_with_a_warning() -> None:
    config, found = validate(with_receiver({"webhook": [{"url": WEBHOOK}]}))
    assert config is not None
    assert config.receivers[0].integrations[0].options["url"] == WEBHOOK
    assert found.warnings == [
        "receivers[0].webhook[0].url: inline secret; prefer url_env or url_file"
    ]
    assert_secret_hidden(WEBHOOK, found.warnings)


def test_secret_env_var_not_set() -> None:
    errors, _ = problems(
        with_receiver({"slack": [{"url_env": "DS_SLACK_WEBHOOK"}]}), env={"OTHER": WEBHOOK}
    )
    assert errors == [
        "receivers[0].slack[0].url_env: environment variable DS_SLACK_WEBHOOK is not set"
    ]


def test_secret_file_unreadable_or_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    errors, _ = problems(
        with_receiver({"webhook": [{"url_file": "missing"}], "slack": [{"url_file": "empty"}]}),
        base_dir=tmp_path,
    )
    assert errors == [
        f"receivers[0].webhook[0].url_file: cannot read secret file {tmp_path / 'missing'}: "
        "No such file or directory",
        f"receivers[0].slack[0].url_file: secret file {tmp_path / 'empty'} is empty",
    ]


def test_secret_none_of_the_three() -> None:
    errors, _ = problems(with_receiver({"pagerduty": [{"severity": "critical"}]}))
    assert errors == [
        "receivers[0].pagerduty[0].routing_key: required: "
        "give routing_key_env, routing_key_file or routing_key"
    ]


def test_secret_two_of_the_three(tmp_path: Path) -> None:
    (tmp_path / "hook").write_text(WEBHOOK)
    errors, warnings = problems(
        with_receiver({"webhook": [{"url": WEBHOOK, "url_file": "hook"}]}), base_dir=tmp_path
    )
    assert errors == [
        "receivers[0].webhook[0]: give only one of url_env, url_file or url (got url_file, url)"
    ]
    assert_secret_hidden(WEBHOOK, errors + warnings)


@pytest.mark.parametrize("source", ["env", "file", "inline"])
def test_secret_value_never_in_a_message(tmp_path: Path, source: str) -> None:
    secret = "not-a-url-SECRET-value-42"
    (tmp_path / "secret").write_text(secret)
    given = {"env": {"url_env": "S"}, "file": {"url_file": "secret"}, "inline": {"url": secret}}
    for kind in ("slack", "webhook"):
        errors, warnings = problems(
            with_receiver({kind: [given[source]]}), env={"S": secret}, base_dir=tmp_path
        )
        assert errors == [f"receivers[0].{kind}[0].url: must be an http:// or https:// URL"]
        assert_secret_hidden(secret, errors + warnings)
    errors, warnings = problems(with_receiver({"webhook": [{"url": 12345678}]}))
    assert errors == ["receivers[0].webhook[0].url: must be a non-empty string"]
    assert_secret_hidden("12345678", errors)


def test_matcher_errors_name_the_path_and_quote_the_matcher_once() -> None:
    errors, _ = problems(
        {
            "route": {
                "receiver": "ops",
                "routes": [{"matchers": ['team="x"', "team=data science"]}],
            },
            "receivers": [{"name": "ops"}],
            "inhibit_rules": [{"source_matchers": ['model=~"("'], "target_matchers": ['a="b"']}],
        }
    )
    assert errors == [
        "route.routes[0].matchers[1]: matcher 'team=data science' is not of the form "
        'name="value" (operators =, !=, =~, !~)',
        "inhibit_rules[0].source_matchers[0]: matcher 'model=~\"(\"' has an invalid regex: "
        "missing ): ( (RE2 syntax: no backreferences or lookaround)",
    ]


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    errors, warnings = check_config(tmp_path)
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path}: cannot read")
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_time_intervals_reach_the_routes() -> None:
    from alerts.routing import RouteTree
    from alerts.timeintervals import Spec

    config = parse_config({
        "time_intervals": [{"name": "nights", "time_intervals": [
            {"times": [{"start_time": "00:00", "end_time": "07:00"}],
             "weekdays": ["monday:friday"], "location": "Europe/Berlin"},
            {"weekdays": ["saturday", "sunday"]}]}],
        "receivers": [{"name": "default"}],
        "route": {"receiver": "default", "mute_time_intervals": ["nights"]},
    })
    (nights,) = config.time_intervals
    assert nights.specs[0] == Spec(times=((0, 420),), weekdays=((0, 4),),
                                   location="Europe/Berlin")
    assert nights.specs[1].weekdays == ((5, 5), (6, 6))
    assert RouteTree(config.route, config.time_intervals).root.mute == (nights,)


def test_http_security_keys(tmp_path: Path) -> None:
    import subprocess

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=dw",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    (tmp_path / "grafana.token").write_text("grafana-token-0123456789\n")
    hashed = "$2b$04$0h7ULYD0dVsB7.cvXqNPZePTsKXJ2V8GzoZ0bkX9tq9hhJJCSMRiq"
    config, found = validate({"http": {
        "listen": "0.0.0.0:9443", "tls_cert_file": "tls.crt", "tls_key_file": "tls.key",
        "basic_auth_users": {"ana": hashed, "prometheus": hashed},
        "bearer_tokens": {"grafana": {"token_file": "grafana.token"}},
        "read_only_users": ["prometheus", "grafana"],
        "unauthenticated": ["healthz", "readyz", "metrics"], "workers": 4, "timeout": "30s",
    }}, base_dir=tmp_path)
    assert config is not None and found.errors == [] and found.warnings == []
    http = config.http
    assert (http.host, http.port, http.workers, http.timeout) == ("0.0.0.0", 9443, 4, 30.0)
    assert http.tls_cert_file == str(cert) and http.tls_key_file == str(key)
    assert http.basic_auth_users == {"ana": hashed, "prometheus": hashed}
    assert http.bearer_tokens == {"grafana": "grafana-token-0123456789"}
    assert http.read_only_users == ("prometheus", "grafana") and http.auth_enabled
    assert http.unauthenticated == ("healthz", "readyz", "metrics")
    assert validate({})[0].http.auth_enabled is False  # type: ignore[union-attr]
