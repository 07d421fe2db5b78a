"""Shared test doubles: local HTTP and SMTP receivers that can fail on purpose, a clock,
alerts."""

from __future__ import annotations

import copy
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.attribution import attribute, to_alert
from alerts.config import RouteConfig
from alerts.dispatch import Dispatcher
from alerts.inhibit import Inhibitor
from alerts.model import Alert, Finding
from alerts.outbox import MemoryOutbox
from alerts.receivers.base import DeliveryResult, GroupInfo, Notifier
from alerts.routing import RouteTree

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()  # fixed: golden files


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (cut short when the server closes)
    echo: bool = False  # answer with the request path and body (to test redaction)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads: nothing leaks
    block_on_close = True


class FakeReceiver:
    """A real HTTP server on 127.0.0.1:0 that records requests and replies as scripted."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.default = Reply(200)
        self._lock = threading.Lock()
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake._lock:
                    fake.requests.append(Received("POST", self.path, dict(self.headers), body))
                    reply = fake.replies.popleft() if fake.replies else fake.default
                if reply.delay:
                    fake._release.wait(reply.delay)
                out = self.path.encode() + b" " + body if reply.echo else reply.body
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # the message as it arrived after DATA


class _SMTPController(Controller):
    """aiosmtpd's controller on a socket bound beforehand: 127.0.0.1, a free port."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class FakeSMTP:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records mail and replies as scripted.

    ``rcpt_replies`` maps a recipient to the reply its RCPT gets (e.g. ``"550 5.1.1 no
    such user"``); ``data_reply`` replaces the 250 after DATA; with ``credentials`` the
    server offers AUTH (PLAIN, LOGIN) without TLS and accepts only that pair.
    STARTTLS is never offered.
    """

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.mails: list[Mail] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.logins: list[str] = []  # user names that tried to log in
        self._lock = threading.Lock()
        fake = self

        class Handler:
            async def handle_RCPT(  # noqa: N802
                self, server: Any, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                reply = fake.rcpt_replies.get(address)
                if reply:
                    return reply
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                if fake.data_reply:
                    return fake.data_reply
                with fake._lock:
                    fake.mails.append(
                        Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
                    )
                return "250 Message accepted for delivery"

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            if not isinstance(auth_data, LoginPassword) or credentials is None:
                return AuthResult(success=False, handled=False)
            user, password = auth_data.login.decode(), auth_data.password.decode()
            with fake._lock:
                fake.logins.append(user)
            return AuthResult(success=(user, password) == credentials, handled=False)

        extra: dict[str, Any] = {}
        if credentials is not None:
            extra = {"authenticator": authenticator, "auth_require_tls": False}
        self._controller = _SMTPController(
            Handler(), server_hostname="smtp.test", ready_timeout=5.0, **extra
        )
        self._controller.start()
        self.port: int = self._controller.port

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)

    def close(self) -> None:
        self._controller.stop()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def finding(kind: str = "data_drift", **kw: Any) -> Finding:
    """A finding with realistic, fixed values; override anything by keyword."""
    base: dict[str, Any] = dict(
        kind=kind,
        model="churn",
        model_version="v3",
        detector="ks",
        statistic=0.21,
        p_value=1e-9,
        threshold=1e-5,
        reference_n=5000,
        current_n=2000,
        window=(T0 - 3600.0, T0),
        summary=f"{kind} in churn",
        description="",
        feature="age" if kind in ("data_drift", "data_quality", "schema_violation") else None,
    )
    base.update(kw)
    return Finding(**base)


def alert(kind: str = "data_drift", status: str = "firing", **kw: Any) -> Alert:
    """The alert the pipeline would raise for ``finding(kind, **kw)``."""
    (a,) = attribute([finding(kind, **kw)])
    return to_alert(
        a,
        "firing" if status == "firing" else "resolved",
        starts_at=T0,
        ends_at=None if status == "firing" else T0 + 1800.0,
    )


# The fixed alerts every receiver's golden payload is built for.
FIRING = alert(
    "data_drift",
    feature="age",
    summary="Input drift in 'age' of churn",
    description="'age' of churn moved away from its reference.",
    details={"ref_mean": 41.0, "cur_mean": 52.5},
)
RESOLVED = alert(
    "latency_regression",
    "resolved",
    model="eta",
    model_version="v8",
    detector="mannwhitney",
    statistic=3.1,
    p_value=2e-7,
    severity="critical",
    summary="eta serves slower than its reference",
    details={"new_version": "v8"},
)
GROUP = GroupInfo(
    "data-science",
    '{}/{team="data-science"}:{alertname="DataDrift", model="churn"}',
    {"alertname": "DataDrift", "model": "churn"},
)


def deliver_once(notifier: Notifier, alerts: list[Alert]) -> None:
    """Route ``alerts`` to ``notifier`` through a real Dispatcher (no group_wait) and make
    one delivery pass: what the daemon logs when that delivery fails is then in caplog."""
    d = Dispatcher(
        RouteTree(RouteConfig(receiver="r", group_wait=0.0)),
        {"r": [notifier]},
        Inhibitor(),
        MemoryOutbox(),
        clock=Clock(),
    )
    alerts = copy.deepcopy(alerts)  # submit sets ``receivers``: leave the shared alerts alone
    d.submit(alerts, [a for a in alerts if a.status == "firing"])
    d.deliver_due()


def assert_hidden(secrets: list[str], result: DeliveryResult, records: list[Any]) -> None:
    """No secret in the result's error, nor in any log record (message or extra fields)."""
    assert records, "expected the failed delivery to be logged"
    for secret in secrets:
        assert secret not in result.error
        for rec in records:
            assert secret not in rec.getMessage()
            assert secret not in repr(vars(rec))


def uncommented(text: str, first: str) -> str:
    """``text`` with the commented-out block that starts at line ``first`` switched on."""
    lines = text.splitlines()
    start = lines.index(first)
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("#"))
    block = [line[2:] if line.startswith("# ") else line[1:] for line in lines[start:end]]
    return "\n".join(lines[:start] + block + lines[end:])

