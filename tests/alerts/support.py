"""Shared test doubles: a local HTTP receiver that can fail on purpose, a clock, alerts."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from alerts.attribution import attribute, to_alert
from alerts.model import Alert, Finding

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
