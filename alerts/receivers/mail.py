"""Email over SMTP: one message per notification, plain text and HTML.

Subject as Alertmanager's: ``[FIRING:2] DataDrift churn`` (the number of
firing alerts, then the group label values sorted by label name) or
``[RESOLVED] DataDrift churn``.  The body (``multipart/alternative``: a
text/plain part, then a text/html part) lists each alert of the group with
its summary, description, attribution, evidence, window, times, labels and
runbook link.  Built with the standard library (``smtplib``, ``email``).

Transport: ``ssl = true`` is implicit TLS (port 465 by default); otherwise a
plain connection (port 587 by default) upgraded with STARTTLS when
``starttls`` (the default) -- a server that does not offer it is an error,
never a silent fall-back to clear text.  Certificates are verified.  With
``username`` the client logs in (after TLS) with ``password``.

Failures: connection refused, timeouts, a dropped connection and SMTP 4xx
replies are retriable; SMTP 5xx replies (550 mailbox unavailable, 535
authentication failed, 554 ...), a missing STARTTLS or AUTH and an
unverifiable certificate are not.  ``DeliveryResult.status`` holds the SMTP
reply code.  Neither the password nor the message body appear in an error.

Options: ``host`` (required), ``port``, ``ssl`` (default false),
``starttls`` (default: not ``ssl``), ``username``, ``password`` (a secret),
``from`` (required), ``to`` (required, a list), ``hello`` (the EHLO name,
default ``localhost``), ``timeout`` (default 10 s).
"""

from __future__ import annotations

import html
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

from alerts.links import links
from alerts.model import Alert
from alerts.receivers.base import (
    DeliveryResult,
    GroupInfo,
    OptionError,
    common_labels,
    optional_str,
    required_str,
    seconds,
)
from alerts.receivers.http import Scrubber
from alerts.receivers.text import (
    alert_lines,
    detail_rows,
    title,
    where,
    why,
)

SUBJECT_CHARS = 200
_ADDRESS = re.compile(r"[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def address(value: object) -> str | None:
    """The bare address of ``"driftwatch <dw@example.com>"`` or ``dw@example.com``; None if
    the value is not one address (or could inject a header)."""
    if not isinstance(value, str) or _CONTROL.search(value):
        return None
    _, addr = parseaddr(value)
    return addr if _ADDRESS.fullmatch(addr) else None


def header_text(text: str) -> str:
    """``text`` safe in a header: control characters (CR, LF, TAB, ...) become spaces and
    runs of blanks one space, so an event-derived value cannot add a header or break the
    message (the email package refuses CR/LF and would raise, retried forever)."""
    return " ".join(_CONTROL.sub(" ", text).split())


def subject(alerts: list[Alert], group: GroupInfo) -> str:
    """``[FIRING:2] DataDrift churn`` / ``[RESOLVED] DataDrift churn``."""
    firing = sum(1 for a in alerts if a.status == "firing")
    head = f"[FIRING:{firing}]" if firing else "[RESOLVED]"
    labels = group.group_labels or {
        k: v for k, v in common_labels(alerts).items() if k in ("alertname", "model")
    }
    values = " ".join(v for _, v in sorted(labels.items()))
    text = header_text(f"{head} {values}")
    return text if len(text) <= SUBJECT_CHARS else text[: SUBJECT_CHARS - 1] + "…"


def _intro(alerts: list[Alert], group: GroupInfo) -> str:
    firing = sum(1 for a in alerts if a.status == "firing")
    resolved = len(alerts) - firing
    counts = [f"{n} {word}" for n, word in ((firing, "firing"), (resolved, "resolved")) if n]
    noun = "alert" if len(alerts) == 1 else "alerts"
    text = f"{' and '.join(counts)} {noun} for {group.receiver}"
    if group.group_labels:
        text += " (" + ", ".join(f"{k}={v}" for k, v in group.group_labels.items()) + ")"
    return text


def text_body(alerts: list[Alert], group: GroupInfo) -> str:
    parts = [_intro(alerts, group)]
    parts += ["\n".join(alert_lines(a)) for a in alerts]
    return "\n\n".join(parts) + "\n"


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _html_alert(a: Alert) -> str:
    esc = _esc
    ann = a.annotations
    color = "#b00020" if a.status == "firing" else "#1b7f3b"
    head = title(a) + (f" ({where(a)})" if where(a) else "")
    out = [f'<h3 style="color:{color}">{esc(head)}</h3>']
    out.append(f"<p><b>{esc(ann.get('summary', ''))}</b></p>")
    if ann.get("description"):
        out.append(f"<p>{esc(ann['description'])}</p>")
    team, _, reason = why(a).partition(": ")
    out.append(f"<p><b>{esc(team)}:</b> {esc(reason)}</p>")
    rows = detail_rows(a)
    out.append("<table>")
    out += [f'<tr><th align="left">{k}</th><td>{esc(v)}</td></tr>' for k, v in rows]
    out.append("</table>")
    anchors = [f'<a href="{html.escape(url, quote=True)}">{name}</a>'
               for name, url in links(a)]
    if anchors:
        out.append(f"<p>{' · '.join(anchors)}</p>")
    return "\n".join(out)


def html_body(alerts: list[Alert], group: GroupInfo) -> str:
    parts = ["<!DOCTYPE html>", "<html><body>", f"<p>{_esc(_intro(alerts, group))}</p>"]
    parts += [_html_alert(a) for a in alerts]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def email_message(
    alerts: list[Alert], group: GroupInfo, *, sender: str, to: list[str], now: float
) -> EmailMessage:
    """The message for one notification (``now`` is its Date)."""
    msg = EmailMessage()
    msg["Subject"] = subject(alerts, group)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = datetime.fromtimestamp(now, UTC)
    domain = (address(sender) or "driftwatch@localhost").rpartition("@")[2]
    msg["Message-ID"] = make_msgid("driftwatch", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg.set_content(text_body(alerts, group))
    msg.add_alternative(html_body(alerts, group), subtype="html")
    return msg


def _code(err: smtplib.SMTPResponseException) -> tuple[int, str]:
    reply = err.smtp_error
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return err.smtp_code, " ".join(text.split())


def _reply(code: int, text: str, what: str, where: str, scrub: Scrubber) -> DeliveryResult:
    error = f"SMTP {code} from {where} ({what}): {scrub(text)}"[:400]
    retriable = not 500 <= code < 600
    return DeliveryResult(ok=False, retriable=retriable, status=code, error=error)


def _option_bool(opts: Mapping[str, object], name: str, default: bool, receiver: str) -> bool:
    value = opts.get(name, default)
    if not isinstance(value, bool):
        raise OptionError(receiver, "email", name, "must be true or false")
    return value


class EmailNotifier:
    name = "email"

    def __init__(
        self,
        options: Mapping[str, object],
        receiver: str = "",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = required_str(options, "host", receiver, self.name)
        self.ssl = _option_bool(options, "ssl", False, receiver)
        self.starttls = _option_bool(options, "starttls", not self.ssl, receiver)
        if self.ssl and self.starttls:
            raise OptionError(
                receiver, self.name, "starttls", "cannot be used with ssl (implicit TLS)"
            )
        port = options.get("port", 465 if self.ssl else 587)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise OptionError(receiver, self.name, "port", "must be an integer from 1 to 65535")
        self.port = port
        self.username = optional_str(options, "username")
        self.password = optional_str(options, "password")
        if (self.username is None) != (self.password is None):
            raise OptionError(
                receiver, self.name, "password", "and username must be given together"
            )
        self.sender = required_str(options, "from", receiver, self.name)
        envelope_from = address(self.sender)
        if envelope_from is None:
            raise OptionError(receiver, self.name, "from", "must be an email address")
        self.envelope_from = envelope_from
        to = options.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list | tuple) or not to or any(address(t) is None for t in to):
            raise OptionError(
                receiver, self.name, "to", "must be a non-empty list of email addresses"
            )
        self.to = [str(t) for t in to]
        self.recipients = [address(t) or "" for t in self.to]
        self.hello = optional_str(options, "hello", "localhost") or "localhost"
        self.timeout = seconds(options, "timeout", 10.0, receiver, self.name)
        self.clock = clock
        self._where = f"{self.host}:{self.port}"
        self._scrub = Scrubber(f"smtp://{self._where}", [self.password or ""])

    def send(self, alerts: list[Alert], group: GroupInfo) -> DeliveryResult:
        try:
            msg = email_message(alerts, group, sender=self.sender, to=self.to,
                                now=self.clock())
        except (ValueError, TypeError) as err:  # the same alerts would fail the same way
            return DeliveryResult(ok=False, retriable=False,
                                  error=f"cannot build the message: {type(err).__name__}: "
                                        f"{self._scrub(str(err))[:200]}")
        try:
            refused = self._deliver(msg)
        except smtplib.SMTPRecipientsRefused as err:
            return self._refused(err.recipients, delivered=0)
        except smtplib.SMTPNotSupportedError as err:
            return DeliveryResult(
                ok=False,
                retriable=False,
                error=f"{self._where}: {self._scrub(str(err))} (check starttls / ssl / username)",
            )
        except smtplib.SMTPAuthenticationError as err:
            return _reply(*_code(err), "login", self._where, self._scrub)
        except smtplib.SMTPSenderRefused as err:
            return _reply(*_code(err), "sender refused", self._where, self._scrub)
        except smtplib.SMTPConnectError as err:
            return _reply(*_code(err), "greeting", self._where, self._scrub)
        except smtplib.SMTPResponseException as err:
            return _reply(*_code(err), "reply", self._where, self._scrub)
        except ssl.SSLCertVerificationError as err:
            reason = self._scrub(str(err.verify_message or err))
            return DeliveryResult(
                ok=False, retriable=False, error=f"TLS certificate of {self._where}: {reason}"
            )
        except TimeoutError:
            return self._timed_out()
        except (OSError, smtplib.SMTPException) as err:  # refused, reset, DNS, disconnected
            if isinstance(err.__context__, TimeoutError):  # smtplib wraps a read timeout
                return self._timed_out()
            reason = f"{type(err).__name__}: {self._scrub(str(err))}"
            return DeliveryResult(
                ok=False, retriable=True, error=f"cannot reach {self._where}: {reason}"
            )
        if refused:
            return self._refused(refused, delivered=len(self.recipients) - len(refused))
        return DeliveryResult.success(250)

    def _timed_out(self) -> DeliveryResult:
        return DeliveryResult(
            ok=False, retriable=True, error=f"timed out after {self.timeout:g}s: {self._where}"
        )

    def _deliver(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.ssl:
            smtp = smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.hello,
                timeout=self.timeout,
                context=context,
            )
        else:
            smtp = smtplib.SMTP(
                self.host, self.port, local_hostname=self.hello, timeout=self.timeout
            )
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username is not None and self.password is not None:
                smtp.login(self.username, self.password)
            return smtp.send_message(
                msg, from_addr=self.envelope_from, to_addrs=self.recipients
            )
        finally:  # the mail is in (or refused) by now: QUIT's answer changes nothing
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _refused(
        self, refused: Mapping[str, tuple[int, bytes | str]], delivered: int
    ) -> DeliveryResult:
        codes = {rcpt: code for rcpt, (code, _) in refused.items()}
        worst = max(codes.values(), default=0)
        retriable = any(not 500 <= c < 600 for c in codes.values())
        listed = ", ".join(f"{rcpt} ({code})" for rcpt, code in codes.items())
        error = (
            f"SMTP {self._where} refused recipient(s) {listed}; "
            f"delivered to {delivered} of {len(self.recipients)}"
        )
        status = min((c for c in codes.values() if not 500 <= c < 600), default=worst)
        return DeliveryResult(ok=False, retriable=retriable, status=status, error=error[:400])

    def __repr__(self) -> str:
        return f"EmailNotifier(host={self.host!r}, port={self.port}, to={self.to!r})"
