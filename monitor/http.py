"""HTTP endpoints: /metrics (Prometheus), /healthz, /readyz, /api/alerts, /api/models,
and /api/silences (GET, POST, DELETE /api/silences/{id}).

Served by cheroot (CherryPy's WSGI server, maintained on its own): a fixed pool
of ``[http] workers`` threads, a per-read ``timeout`` for every connection
(idle keep-alives wait in a selector and hold no thread), header and body size
limits, and TLS when ``tls_cert_file``/``tls_key_file`` are set (re-read on
change, see :mod:`monitor.webauth`).  The request is refused before its body
is read: unknown path, wrong method, missing or wrong credentials, a
``Content-Length`` that is not a plain decimal number (400) or above 1 MiB
(413).  A handler bug answers 500 and is logged; the client never sees a
traceback.

Binds to the configured address (loopback by default).  ``/healthz`` is a
liveness check only: the process answers.  ``/readyz`` reports whether the
daemon is consuming (the ``ready`` callback), for load balancers and Kubernetes.
"""

from __future__ import annotations

import logging
import math
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from cheroot import wsgi
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from monitor.config.types import HttpConfig
from monitor.webauth import Authenticator, Caller, ReloadingTLSAdapter

log = logging.getLogger("driftwatch.http")

# (method, path below the prefix, request body, caller) -> (status, JSON-able reply)
Handler = Callable[[str, str, bytes, Caller], tuple[int, Any]]
MAX_BODY = 1 << 20
MAX_HEADERS = 64 << 10
_DECIMAL = re.compile(r"[0-9]{1,12}")
_READS = ("GET", "HEAD")
Reply = tuple[int, str, bytes, list[tuple[str, str]]]


def _json(status: int, value: Any) -> Reply:
    return status, "application/json", orjson.dumps(value), []


def _text(status: int, text: str) -> Reply:
    return status, "text/plain; charset=utf-8", text.encode(), []


class _GatedServer(wsgi.Server):  # type: ignore[misc]
    """cheroot's WSGI server, giving a connection to a worker only once its request head
    has arrived.

    cheroot hands every accepted connection to a worker thread, which then blocks
    reading it: 31 clients that connect and send half a request line would hold
    every worker until the timeout and starve the probes.  Here a connection with
    nothing to read waits in cheroot's selector (no thread), and one holding an
    incomplete request head waits in a small parking lot that one thread polls:
    it goes to a worker when the head is complete and is closed when it has been
    silent for ``timeout`` seconds.  (Over TLS the bytes are encrypted: a connection
    waits in the selector until something arrives, then goes to a worker, where the
    timeout bounds it.)
    """

    poll_interval = 0.05
    max_parked = 512

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parked: dict[Any, tuple[float, int]] = {}  # conn -> (last progress, bytes seen)
        self._parked_lock = threading.Lock()
        self._gate_stop = threading.Event()
        self._gate: threading.Thread | None = None

    def _head(self, conn: Any) -> int:
        """-1: complete (or not ours to judge); 0: nothing yet; n > 0: n bytes of a head."""
        if conn.rfile.has_data():
            return -1
        tls = isinstance(conn.socket, ssl.SSLSocket)
        if tls and conn.socket.pending():
            return -1
        try:
            poller = select.poll()  # a socket with a timeout would wait in recv: ask first
            poller.register(conn.socket.fileno(), select.POLLIN)
            if not poller.poll(0):
                return 0
            if tls:
                return -1  # bytes came; encrypted, so only a worker can tell a whole head
            # the raw socket's bytes, left in place for the worker
            data = conn.socket.recv(MAX_HEADERS + 1, socket.MSG_PEEK)
        except OSError:
            return -1  # let cheroot meet the error and close
        if not data or len(data) > MAX_HEADERS or b"\r\n\r\n" in data or b"\n\n" in data:
            return -1
        return len(data)

    def process_conn(self, conn: Any) -> None:
        state = self._head(conn)
        if state < 0:
            super().process_conn(conn)
        elif state == 0:
            self._connections.put(conn)  # type: ignore[attr-defined]  # selector: no thread
        else:
            with self._parked_lock:
                if len(self._parked) >= self.max_parked:
                    oldest = min(self._parked, key=lambda c: self._parked[c][0])
                    del self._parked[oldest]
                    oldest.close()
                self._parked[conn] = (time.monotonic(), state)
                if self._gate is None:
                    self._gate = threading.Thread(target=self._watch_parked,
                                                  name="driftwatch-http-gate", daemon=True)
                    self._gate.start()

    def _watch_parked(self) -> None:
        while not self._gate_stop.wait(self.poll_interval):
            now = time.monotonic()
            with self._parked_lock:
                parked = list(self._parked.items())
            for conn, (since, seen) in parked:
                state = self._head(conn)
                with self._parked_lock:
                    if conn not in self._parked:
                        continue
                    if state < 0:
                        del self._parked[conn]
                    elif state > seen:
                        self._parked[conn] = (now, state)  # progress: the clock restarts
                        continue
                    elif now - since >= self.timeout:
                        del self._parked[conn]
                        conn.close()
                        continue
                    else:
                        continue
                super().process_conn(conn)

    def stop(self) -> None:
        self._gate_stop.set()
        with self._parked_lock:
            for conn in self._parked:
                conn.close()
            self._parked.clear()
        super().stop()


class HttpServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 ready: Callable[[], bool] = lambda: True,
                 api: dict[str, Callable[[], Any]] | None = None,
                 handlers: dict[str, Handler] | None = None,
                 *, config: HttpConfig | None = None) -> None:
        cfg = config or HttpConfig()
        self._registry = registry
        self._ready = ready
        self._api = dict(api or {})
        self._writers = dict(handlers or {})
        self.auth = Authenticator(cfg.basic_auth_users, cfg.bearer_tokens,
                                  cfg.read_only_users, cfg.unauthenticated)
        self._server = _GatedServer(
            (host, port), self._app, numthreads=cfg.workers, max=cfg.workers,
            request_queue_size=128, timeout=max(1, math.ceil(cfg.timeout)), shutdown_timeout=2,
            server_name="driftwatch",
        )
        self._server.max_request_body_size = MAX_BODY
        self._server.max_request_header_size = MAX_HEADERS
        self.tls: ReloadingTLSAdapter | None = None
        if cfg.tls_cert_file and cfg.tls_key_file:
            self.tls = self._server.ssl_adapter = ReloadingTLSAdapter(
                cfg.tls_cert_file, cfg.tls_key_file)
        self._server.prepare()  # binds now: the address (port 0 -> a free one) is known
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.bind_addr[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{port}"

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.serve,
                                        name="driftwatch-http", daemon=True)
        self._thread.start()
        log.info("http listening", extra={
            "url": self.url, "tls": self.tls is not None, "auth": self.auth.enabled,
            "unauthenticated": sorted(self.auth.unauthenticated) if self.auth.enabled
            else "all"})
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- the WSGI application -----------------------------------------------------
    def _app(self, environ: dict[str, Any],
             start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            status, ctype, body, headers = self._respond(environ)
        except Exception:  # a handler bug must not kill the worker nor show a traceback
            log.exception("http handler failed",
                          extra={"method": environ.get("REQUEST_METHOD"),
                                 "path": environ.get("PATH_INFO")})
            status, ctype, body, headers = _json(500, {"error": "internal error"})
        if environ.get("REQUEST_METHOD") == "HEAD":
            body = b""
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", ctype), ("Content-Length", str(len(body))),
                        *headers])
        return [body]

    def _respond(self, environ: dict[str, Any]) -> Reply:
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        caller = Caller("", str(environ.get("REMOTE_ADDR", "")))
        route = self._route(method, path, environ)
        if isinstance(route[0], int):
            return route  # type: ignore[return-value]  # 404 / 405
        kind, target = route[0], route[1]
        if self.auth.enabled:
            user = self.auth.identify(environ.get("HTTP_AUTHORIZATION"))
            if user is None and (kind == "write" or kind not in self.auth.unauthenticated):
                status, ctype, body, _ = _json(401, {"error": "authentication required"})
                return status, ctype, body, [("WWW-Authenticate",
                                              'Basic realm="driftwatch", charset="UTF-8"')]
            if kind == "write" and user in self.auth.read_only:
                return _json(403, {"error": f"user {user!r} may only read"})
            caller = Caller(user or "", caller.remote)
        return target(caller)  # type: ignore[operator,no-any-return]

    def _route(self, method: str, path: str, environ: dict[str, Any]
               ) -> Reply | tuple[str, Callable[[Caller], Reply]]:
        """(access kind, what answers) or a 404/405 reply; nothing is read yet."""
        for prefix, fn in self._writers.items():
            if path == prefix or path.startswith(prefix + "/"):
                if method not in ("GET", "HEAD", "POST", "DELETE"):
                    return _json(405, {"error": f"{method} is not supported"})
                tail = path[len(prefix):].lstrip("/")

                def call(caller: Caller, fn: Handler = fn, tail: str = tail) -> Reply:
                    body = self._body(environ) if method not in _READS else b""
                    if not isinstance(body, bytes):
                        return body
                    return _json(*fn(method, tail, body, caller))

                return ("api" if method in _READS else "write"), call
        fixed: dict[str, tuple[str, Callable[[], Reply]]] = {
            "/metrics": ("metrics", lambda: (200, CONTENT_TYPE_LATEST,
                                             generate_latest(self._registry), [])),
            "/healthz": ("healthz", lambda: _text(200, "ok\n")),
            "/readyz": ("readyz", lambda: _text(200, "ready\n") if self._ready()
                        else _text(503, "not ready\n")),
        }
        for name, fn_ in self._api.items():
            fixed[f"/api/{name}"] = ("api", lambda f=fn_: _json(200, f()))  # type: ignore[misc]
        if path not in fixed:
            return _text(404, "not found\n")
        if method not in _READS:
            return _json(405, {"error": f"{method} {path} is not supported"})
        kind, answer = fixed[path]
        return kind, lambda _caller: answer()

    @staticmethod
    def _body(environ: dict[str, Any]) -> bytes | Reply:
        """The request body, read only once its declared size is known to be sane."""
        stream = environ["wsgi.input"]
        if "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
            try:
                data = stream.read(MAX_BODY + 1)
            except OSError:  # cheroot's chunked reader refuses past max_request_body_size
                data = b"x" * (MAX_BODY + 1)
            return data if len(data) <= MAX_BODY else _json(413, {"error": "body too large"})
        declared = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not _DECIMAL.fullmatch(declared):
            return _json(400, {"error": "Content-Length must be a decimal number of bytes"})
        size = int(declared)
        if size > MAX_BODY:
            return _json(413, {"error": f"body too large (limit {MAX_BODY} bytes)"})
        data = stream.read(size) if size else b""
        if len(data) != size:
            return _json(400, {"error": "body shorter than its Content-Length"})
        return data
