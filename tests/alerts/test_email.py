"""Email against a real SMTP server (aiosmtpd, in-process): the message, failures, secrets."""

from __future__ import annotations

import logging
import re
import socket
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from alerts.receivers.base import GroupInfo
from alerts.receivers.mail import EmailNotifier
from tests.alerts.support import (
    FIRING,
    GROUP,
    RESOLVED,
    T0,
    Clock,
    FakeSMTP,
    alert,
    assert_hidden,
    deliver_once,
)

USER, PASSWORD = "driftwatch", "smtp-Passw0rd-SECRET-42"
TO = ["ds-oncall@example.com", "Lead <lead@example.com>"]
MLE_GROUP = GroupInfo(
    "ml-engineering",
    '{}:{alertname="LatencyRegression", model="eta"}',
    {"alertname": "LatencyRegression", "model": "eta"},
)
WHY_DS = FIRING.annotations["attribution"]
WHY_MLE = RESOLVED.annotations["attribution"]


def make(port: int, **options: Any) -> EmailNotifier:
    opts = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from": "driftwatch <alerts@driftwatch.example>",
        "to": TO,
        "timeout": 5,
        **options,
    }
    return EmailNotifier(opts, "r", clock=Clock(T0 + 60))


def parse(raw: bytes) -> EmailMessage:
    """The message as a mail client reads it (SMTP's CRLF line ends made local)."""
    assert b"\r\n" in raw
    msg = message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    plain, rich = msg.iter_parts()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    return plain.get_content(), rich.get_content()


# -- the message, written out by hand -------------------------------------------------
FIRING_TEXT = f"""\
1 firing alert for data-science (alertname=DataDrift, model=churn)

[FIRING] DataDrift · churn (feature=age)
Input drift in 'age' of churn
'age' of churn moved away from its reference.

Why data-science: {WHY_DS}
Evidence: detector=ks, statistic=0.21, p_value=1e-09, threshold=1e-05, reference_n=5000, \
current_n=2000, ref_mean=41, cur_mean=52.5
Window: 2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z
Started: 2026-11-22T10:00:00Z
Labels: alertname=DataDrift, kind=data_drift, fault=model, team=data-science, model=churn, \
model_version=v3, severity=warning, feature=age
"""
FIRING_HTML = f"""\
<!DOCTYPE html>
<html><body>
<p>1 firing alert for data-science (alertname=DataDrift, model=churn)</p>
<h3 style="color:#b00020">[FIRING] DataDrift · churn (feature=age)</h3>
<p><b>Input drift in 'age' of churn</b></p>
<p>'age' of churn moved away from its reference.</p>
<p><b>Why data-science:</b> {WHY_DS}</p>
<table>
<tr><th align="left">Evidence</th><td>detector=ks, statistic=0.21, p_value=1e-09, \
threshold=1e-05, reference_n=5000, current_n=2000, ref_mean=41, cur_mean=52.5</td></tr>
<tr><th align="left">Window</th><td>2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z</td></tr>
<tr><th align="left">Started</th><td>2026-11-22T10:00:00Z</td></tr>
<tr><th align="left">Labels</th><td>alertname=DataDrift, kind=data_drift, fault=model, \
team=data-science, model=churn, model_version=v3, severity=warning, feature=age</td></tr>
</table>
</body></html>
"""
RESOLVED_TEXT = f"""\
1 resolved alert for ml-engineering (alertname=LatencyRegression, model=eta)

[RESOLVED] LatencyRegression · eta
eta serves slower than its reference

Why ml-engineering: {WHY_MLE}
Evidence: detector=mannwhitney, statistic=3.1, p_value=2e-07, threshold=1e-05, \
reference_n=5000, current_n=2000, new_version=v8
Window: 2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z
Started: 2026-11-22T10:00:00Z
Ended: 2026-11-22T10:30:00Z
Labels: alertname=LatencyRegression, kind=latency_regression, fault=infrastructure, \
team=ml-engineering, model=eta, model_version=v8, severity=critical
"""
RESOLVED_HTML = f"""\
<!DOCTYPE html>
<html><body>
<p>1 resolved alert for ml-engineering (alertname=LatencyRegression, model=eta)</p>
<h3 style="color:#1b7f3b">[RESOLVED] LatencyRegression · eta</h3>
<p><b>eta serves slower than its reference</b></p>
<p><b>Why ml-engineering:</b> {WHY_MLE}</p>
<table>
<tr><th align="left">Evidence</th><td>detector=mannwhitney, statistic=3.1, p_value=2e-07, \
threshold=1e-05, reference_n=5000, current_n=2000, new_version=v8</td></tr>
<tr><th align="left">Window</th><td>2026-11-22T09:00:00Z to 2026-11-22T10:00:00Z</td></tr>
<tr><th align="left">Started</th><td>2026-11-22T10:00:00Z</td></tr>
<tr><th align="left">Ended</th><td>2026-11-22T10:30:00Z</td></tr>
<tr><th align="left">Labels</th><td>alertname=LatencyRegression, kind=latency_regression, \
fault=infrastructure, team=ml-engineering, model=eta, model_version=v8, severity=critical\
</td></tr>
</table>
</body></html>
"""


def test_message_golden(smtp: FakeSMTP) -> None:
    n = make(smtp.port)
    r = n.send([FIRING], GROUP)
    assert (r.ok, r.status) == (True, 250)
    assert n.send([RESOLVED], MLE_GROUP).ok
    firing, resolved = smtp.received()

    assert firing.mail_from == "alerts@driftwatch.example"
    assert firing.rcpt_tos == ["ds-oncall@example.com", "lead@example.com"]
    msg = parse(firing.content)
    assert msg["Subject"] == "[FIRING:1] DataDrift churn"
    assert msg["From"] == "driftwatch <alerts@driftwatch.example>"
    assert msg["To"] == "ds-oncall@example.com, Lead <lead@example.com>"
    assert msg["Date"] == "Sun, 22 Nov 2026 10:01:00 +0000"
    assert re.fullmatch(r"<[^@<>\s]+@driftwatch\.example>", msg["Message-ID"].strip())
    assert msg["Auto-Submitted"] == "auto-generated"
    assert parts(msg) == (FIRING_TEXT, FIRING_HTML)

    msg = parse(resolved.content)
    assert msg["Subject"] == "[RESOLVED] LatencyRegression eta"
    assert parts(msg) == (RESOLVED_TEXT, RESOLVED_HTML)


def test_a_group_is_one_message_listing_every_alert(smtp: FakeSMTP) -> None:
    alerts = [alert("data_drift", feature=f) for f in ("age", "plan")]
    alerts.append(alert("data_drift", "resolved", feature="tenure"))
    assert make(smtp.port).send(alerts, GROUP).ok
    (mail,) = smtp.received()
    msg = parse(mail.content)
    assert msg["Subject"] == "[FIRING:2] DataDrift churn"
    text, rich = parts(msg)
    assert text.startswith("2 firing and 1 resolved alerts for data-science (")
    for feature in ("age", "plan", "tenure"):
        assert f"(feature={feature})" in text and f"(feature={feature})</h3>" in rich
    assert text.count("[FIRING] DataDrift") == 2 and text.count("[RESOLVED] DataDrift") == 1


def test_html_is_escaped_and_links_the_runbook(smtp: FakeSMTP) -> None:
    a = alert("data_drift", summary="<script>x</script> & co")
    a.annotations["runbook_url"] = "https://wiki/runbooks?a=1&b=2"
    assert make(smtp.port).send([a], GROUP).ok
    text, rich = parts(parse(smtp.received()[0].content))
    assert "<script>" not in rich and "&lt;script&gt;x&lt;/script&gt; &amp; co" in rich
    assert '<a href="https://wiki/runbooks?a=1&amp;b=2">Runbook</a>' in rich
    assert "Runbook: https://wiki/runbooks?a=1&b=2" in text


def test_login(smtp_auth: FakeSMTP) -> None:
    n = make(smtp_auth.port, username=USER, password=PASSWORD)
    assert n.send([FIRING], GROUP).ok
    assert smtp_auth.logins == [USER] and len(smtp_auth.received()) == 1


# -- failures ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "retriable"),
    [
        ("451 4.3.0 Mail server temporarily rejected message", True),
        ("452 4.3.1 Insufficient system storage", True),
        ("550 5.7.1 Message rejected as spam", False),
        ("554 5.6.0 Transaction failed", False),
    ],
)
def test_data_reply_classification(smtp: FakeSMTP, reply: str, retriable: bool) -> None:
    smtp.data_reply = reply
    r = make(smtp.port).send([FIRING], GROUP)
    code = int(reply[:3])
    assert (r.ok, r.retriable, r.status) == (False, retriable, code)
    assert f"SMTP {code} from 127.0.0.1:{smtp.port}" in r.error and reply[4:] in r.error
    assert smtp.received() == []


@pytest.mark.parametrize(
    ("reply", "retriable"),
    [("550 5.1.1 Mailbox unavailable", False), ("450 4.2.1 Mailbox busy", True)],
)
def test_every_recipient_refused(smtp: FakeSMTP, reply: str, retriable: bool) -> None:
    smtp.rcpt_replies = {"ds-oncall@example.com": reply, "lead@example.com": reply}
    r = make(smtp.port).send([FIRING], GROUP)
    assert (r.ok, r.retriable, r.status) == (False, retriable, int(reply[:3]))
    assert "delivered to 0 of 2" in r.error and "lead@example.com" in r.error


def test_one_recipient_refused_for_good(smtp: FakeSMTP) -> None:
    smtp.rcpt_replies = {"lead@example.com": "550 5.1.1 Mailbox unavailable"}
    r = make(smtp.port).send([FIRING], GROUP)
    assert (r.ok, r.retriable, r.status) == (False, False, 550)
    assert "lead@example.com (550)" in r.error and "delivered to 1 of 2" in r.error
    assert [m.rcpt_tos for m in smtp.received()] == [["ds-oncall@example.com"]]


def test_refused_connection_is_retriable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = make(port).send([FIRING], GROUP)
    assert (r.ok, r.retriable, r.status) == (False, True, None)
    assert f"cannot reach 127.0.0.1:{port}" in r.error and "ConnectionRefusedError" in r.error


def test_silent_server_is_a_retriable_timeout() -> None:
    with socket.socket() as s:  # accepts the connection (backlog), never greets
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        start = time.monotonic()
        r = make(s.getsockname()[1], timeout=0.3).send([FIRING], GROUP)
    assert time.monotonic() - start < 3.0
    assert (r.ok, r.retriable) == (False, True) and "timed out after 0.3s" in r.error


def test_wrong_password_is_not_retriable_and_never_shown(
    smtp_auth: FakeSMTP, caplog: pytest.LogCaptureFixture
) -> None:
    n = make(smtp_auth.port, username=USER, password="wrong-" + PASSWORD)
    r = n.send([FIRING], GROUP)
    assert (r.ok, r.retriable, r.status) == (False, False, 535)
    assert "login" in r.error and smtp_auth.received() == []
    with caplog.at_level(logging.DEBUG):
        deliver_once(n, [FIRING])
    assert_hidden(["wrong-" + PASSWORD, PASSWORD], r, caplog.records)
    assert PASSWORD not in repr(n)


def test_starttls_required_but_not_offered(smtp_auth: FakeSMTP) -> None:
    n = make(smtp_auth.port, starttls=True, username=USER, password=PASSWORD)
    r = n.send([FIRING], GROUP)
    assert (r.ok, r.retriable) == (False, False)
    assert "STARTTLS" in r.error and PASSWORD not in r.error
    assert smtp_auth.logins == []  # the password never crossed in clear text


@pytest.fixture
def smtp_auth() -> Any:
    fake = FakeSMTP(credentials=(USER, PASSWORD))
    try:
        yield fake
    finally:
        fake.close()


# -- options ----------------------------------------------------------------------------
def test_option_defaults() -> None:
    n = EmailNotifier({"host": "mx", "from": "dw@x.org", "to": "a@x.org"})
    assert (n.port, n.starttls, n.ssl, n.hello, n.timeout) == (587, True, False, "localhost", 10)
    n = EmailNotifier({"host": "mx", "from": "dw@x.org", "to": ["a@x.org"], "ssl": True})
    assert (n.port, n.starttls, n.ssl) == (465, False, True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ssl": True, "starttls": True}, "email.starttls cannot be used with ssl"),
        ({"port": 0}, "email.port must be an integer from 1 to 65535"),
        ({"to": []}, "email.to must be a non-empty list of email addresses"),
        ({"to": ["ops"]}, "email.to must be a non-empty list of email addresses"),
        ({"from": "a@b\r\nBcc: x@y"}, "email.from must be an email address"),
        ({"username": "u"}, "email.password and username must be given together"),
        ({"starttls": "yes"}, "email.starttls must be true or false"),
    ],
)
def test_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        EmailNotifier({"host": "mx", "from": "dw@x.org", "to": ["a@x.org"], **options}, "x")
