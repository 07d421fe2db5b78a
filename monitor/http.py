"""HTTP endpoints: /metrics (Prometheus), /healthz, /readyz, /api/alerts, /api/models,
and /api/silences (GET, POST, DELETE /api/silences/{id}).

Binds to the configured address (loopback by default).  ``/healthz`` is a
liveness check only: the process answers.  ``/readyz`` reports whether the
daemon is consuming (the ``ready`` callback), for load balancers and Kubernetes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# (method, path below the prefix, request body) -> (status, JSON-able reply)
Handler = Callable[[str, str, bytes], tuple[int, Any]]
MAX_BODY = 1 << 20


class HttpServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 ready: Callable[[], bool] = lambda: True,
                 api: dict[str, Callable[[], Any]] | None = None,
                 handlers: dict[str, Handler] | None = None) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: (200, "text/plain", b"ok\n"),
            "/readyz": lambda: (200, "text/plain", b"ready\n") if ready()
            else (503, "text/plain", b"not ready\n"),
        }
        for path, fn in (api or {}).items():
            routes[f"/api/{path}"] = (lambda f=fn: (200, "application/json",  # type: ignore[misc]
                                                    orjson.dumps(f())))

        writers = dict(handlers or {})

        class RequestHandler(BaseHTTPRequestHandler):
            def _reply(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handled(self, method: str) -> bool:
                path = self.path.split("?", 1)[0]
                for prefix, fn in writers.items():
                    if path == prefix or path.startswith(prefix + "/"):
                        size = int(self.headers.get("Content-Length") or 0)
                        if size > MAX_BODY:
                            self._reply(413, "application/json", b'{"error":"body too large"}')
                            return True
                        body = self.rfile.read(size) if size else b""
                        try:
                            status, reply = fn(method, path[len(prefix):].lstrip("/"), body)
                        except Exception:  # a handler bug must not kill the server
                            status, reply = 500, {"error": "internal error"}
                        self._reply(status, "application/json", orjson.dumps(reply))
                        return True
                return False

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                if self._handled("GET"):
                    return
                route = routes.get(self.path.split("?", 1)[0])
                self._reply(*(route() if route else (404, "text/plain", b"not found\n")))

            def do_POST(self) -> None:  # noqa: N802
                if not self._handled("POST"):
                    self._reply(404, "text/plain", b"not found\n")

            def do_DELETE(self) -> None:  # noqa: N802
                if not self._handled("DELETE"):
                    self._reply(404, "text/plain", b"not found\n")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # access logs would drown the canonical lines

        self._server = ThreadingHTTPServer((host, port), RequestHandler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="driftwatch-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
