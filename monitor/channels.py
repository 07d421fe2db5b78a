"""A local HTTP endpoint that stands in for a team's on-call channel.

`driftwatch demo` points each team's webhook receiver at one of these and
prints what arrives; the end-to-end tests use them to see real deliveries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class LocalChannel:
    def __init__(self, name: str, on_payload: Callable[[str, Any], None] | None = None) -> None:
        self.name = name
        self.payloads: list[Any] = []
        self._lock = threading.Lock()
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = orjson.loads(body)
                except orjson.JSONDecodeError:
                    payload = {"raw": body.decode("utf-8", "replace")}
                with channel._lock:
                    channel.payloads.append(payload)
                if on_payload is not None:
                    on_payload(channel.name, payload)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"channel-{name}")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert received, flattened out of Alertmanager v4 payloads."""
        with self._lock:
            return [a for p in self.payloads for a in p.get("alerts", [])]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
