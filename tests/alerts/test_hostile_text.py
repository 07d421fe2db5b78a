"""Event-derived text is data, never markup, headers or mentions; credentials never leak.

Issue 27: Slack's top-level ``text`` and Teams TextBlocks carried raw event-derived
strings (``<!channel>``, ``[link](https://…)``); a model name with CRLF raised inside
the email builder and was retried forever; a webhook URL with ``user:pass@`` leaked the
password into the failure log and the outbox; ``repr(Config)`` printed secrets.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from alerts.config import RouteConfig
from alerts.dispatch import Dispatcher
from alerts.inhibit import Inhibitor
from alerts.model import Alert
from alerts.outbox import MemoryOutbox
from alerts.receivers.alertmanager import AlertmanagerNotifier
from alerts.receivers.base import GroupInfo
from alerts.receivers.mail import EmailNotifier
from alerts.receivers.msteams import MSTeamsNotifier, md
from alerts.receivers.slack import SlackNotifier
from alerts.receivers.webhook import WebhookNotifier
from alerts.routing import RouteTree
from monitor.config.load import load_config
from tests.alerts.support import GROUP, T0, Clock, FakeReceiver, FakeSMTP, Reply, alert

MENTIONS = "<!channel> <!here> <@U024BE7LH> <https://evil.example|click me>"
LINK = "[click here](https://evil.example/login)"


def hostile(text: str) -> Alert:
    a = alert("data_drift", feature="age", summary=f"drift in {text}",
              description=f"{text} moved")
    return dataclasses.replace(a, labels={**a.labels, "model": text, "segment": text},
                               annotations={**a.annotations, "attribution": f"owns {text}"})


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_slack_text_and_blocks_carry_no_mention_nor_link(server: FakeReceiver) -> None:
    a = hostile(MENTIONS)
    assert SlackNotifier({"url": server.url()}, "r").send([a], GROUP).ok
    payload = server.received()[0].json()
    assert "&lt;!channel&gt;" in payload["text"]  # the fallback the issue found raw
    mrkdwn = [payload["text"]] + [
        s for b in payload["blocks"] if b["type"] != "header" for s in strings(b)]
    for text in mrkdwn:
        for raw in ("<!channel>", "<!here>", "<@U024BE7LH>", "<https://evil.example|"):
            assert raw not in text, text


def test_teams_text_blocks_carry_no_markdown_link(server: FakeReceiver) -> None:
    a = hostile(LINK)
    assert MSTeamsNotifier({"url": server.url()}, "r").send([a], GROUP).ok
    card = server.received()[0].json()["attachments"][0]["content"]
    texts = [s for item in card["body"] for s in strings(item)]
    assert any(r"\[click here\](https://evil.example/login)" in t for t in texts)
    assert not any("[click here](" in t for t in texts), texts


@pytest.mark.parametrize(("text", "shown"), [
    ("[x](https://e)", r"\[x\](https://e)"),
    ("**bold** _it_ `code` ~s~", r"\*\*bold\*\* \_it\_ \`code\` \~s\~"),
    ("- item\n1. first\n# head", "\\- item\n1\\. first\n\\# head"),
    ("<https://e>", r"\<https://e\>"),
    ("churn (v3), p=0.01", "churn (v3), p=0.01"),  # nothing to escape: unchanged
])
def test_markdown_escapes(text: str, shown: str) -> None:
    assert md(text) == shown


def _email(port: int) -> EmailNotifier:
    return EmailNotifier({"host": "127.0.0.1", "port": port, "starttls": False,
                          "from": "alerts@driftwatch.example", "to": ["oncall@example.com"],
                          "timeout": 5}, "r", clock=Clock(T0))


def test_crlf_in_a_model_name_is_delivered_with_a_folded_subject(smtp: FakeSMTP) -> None:
    a = hostile("churn\r\nBcc: victim@example.com")
    group = GroupInfo("r", "k", {"alertname": "DataDrift", "model": a.labels["model"]})
    result = _email(smtp.port).send([a], group)
    assert result.ok, result
    mail = smtp.received()[0]
    head = mail.content.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: [FIRING:1] DataDrift churn Bcc: victim@example.com" in head
    assert not any(line.startswith(b"Bcc:") for line in head.split(b"\r\n"))
    assert mail.rcpt_tos == ["oncall@example.com"]


def test_a_message_that_cannot_be_built_is_not_retried_forever(
        smtp: FakeSMTP, monkeypatch: pytest.MonkeyPatch) -> None:
    import alerts.receivers.mail as mail

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("Header values may not contain linefeed or carriage return")

    monkeypatch.setattr(mail, "email_message", broken)
    result = _email(smtp.port).send([hostile("m")], GROUP)
    assert not result.ok and not result.retriable
    assert "cannot build the message" in result.error


PASSWORD = "pa55-w0rd-SECRET"


@pytest.mark.parametrize("port_given", [True, False])
def test_url_credentials_never_reach_the_log_nor_the_outbox(
        server: FakeReceiver, caplog: pytest.LogCaptureFixture, port_given: bool) -> None:
    """Without a port urllib read ``pa55-w0rd-SECRET@127.0.0.1`` as a port and put it in
    its error; that error went to the failure log and the outbox row."""
    base = server.url() if port_given else "http://127.0.0.1/hook"
    url = base.replace("http://", f"http://ops:{PASSWORD}@")
    notifier = WebhookNotifier({"url": url, "timeout": 2}, "r")
    outbox = MemoryOutbox()
    d = Dispatcher(RouteTree(RouteConfig(receiver="r", group_wait=0.0)), {"r": [notifier]},
                   Inhibitor(), outbox, clock=Clock())
    caplog.set_level(logging.INFO)
    a = alert("data_drift")
    if port_given:  # reachable: the credentials go as basic auth, as Go's client sends them
        server.script(Reply(500, body=b"no"))
    d.submit([a], [a])
    d.deliver_due()
    rows = [item.to_json() for item in outbox.due(float("inf"))]
    assert rows and all(row["last_error"] for row in rows)  # kept for a retry, with why
    assert PASSWORD not in repr(rows)
    for rec in caplog.records:
        assert PASSWORD not in rec.getMessage() and PASSWORD not in repr(vars(rec))
    assert any(r.getMessage() == "notification not delivered" for r in caplog.records)
    assert PASSWORD not in repr(notifier)
    if port_given:
        sent = server.received()[0]
        assert sent.path == "/hook"
        assert sent.headers["Authorization"] == "Basic " + base64.b64encode(
            f"ops:{PASSWORD}".encode()).decode()


def test_alertmanager_url_credentials_redacted_in_repr() -> None:
    n = AlertmanagerNotifier({"url": f"http://ops:{PASSWORD}@am.example:9093"}, "r")
    assert PASSWORD not in repr(n)


def test_repr_of_config_prints_no_secret(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("bearer-token-SECRET-0123456789\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[kafka]
security_protocol = "SASL_SSL"
sasl_mechanism = "PLAIN"
sasl_plain_username = "dw"
sasl_plain_password_env = "KAFKA_PW"

[store]
url_env = "DB_URL"

[http]
basic_auth_users = {{ ana = "$2b$04$0h7ULYD0dVsB7.cvXqNPZePTsKXJ2V8GzoZ0bkX9tq9hhJJCSMRiq" }}
bearer_tokens.grafana.token_file = "{token}"

[[receivers]]
name = "default"
[[receivers.slack]]
url_env = "SLACK_URL"
[[receivers.pagerduty]]
routing_key_env = "PD_KEY"
[[receivers.email]]
host = "smtp.example.com"
from = "dw@example.com"
to = ["oncall@example.com"]
username = "dw"
password_env = "SMTP_PW"
[[receivers.alertmanager]]
url = "https://am:am-pass-SECRET@am.example"
[[receivers.webhook]]
url_env = "HOOK_URL"
""")
    env = {"KAFKA_PW": "kafka-pass-SECRET", "DB_URL": "postgresql://dw:db-pass-SECRET@db/dw",
           "SLACK_URL": "https://hooks.slack.com/services/T0/B0/slack-SECRET-token",
           "PD_KEY": "pd-routing-key-SECRET", "SMTP_PW": "smtp-pass-SECRET",
           "HOOK_URL": "https://hook:hook-pass-SECRET@hooks.example/x"}
    config = load_config(cfg, env=env)
    text = repr(config) + str(config)
    for secret in [*env.values(), "slack-SECRET-token", "db-pass-SECRET", "am-pass-SECRET",
                   "hook-pass-SECRET", "bearer-token-SECRET", "$2b$04$"]:
        assert secret not in text, secret
    assert "smtp.example.com" in text and "grafana" in text  # the rest is still shown
