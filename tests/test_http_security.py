"""The HTTP server on loopback, as issue 27 probed it: strict parsing, bounded threads,
authentication with read and write separated, TLS reloaded on change, the audit log."""

from __future__ import annotations

import base64
import logging
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import orjson
import pytest
from prometheus_client import CollectorRegistry

from alerts.silences import Silencer
from monitor.config.types import HttpConfig
from monitor.http import MAX_BODY, HttpServer
from monitor.silencing import SilenceApi
from monitor.store import Store
from monitor.webauth import Authenticator, Caller

ANA_PASSWORD = "correct horse battery staple"
PROM_PASSWORD = "scrape-only-password"
GRAFANA_TOKEN = "grafana-token-0123456789abcdef"
SILENCE = {"matchers": ['alertname=~".+"'], "duration": "10000d", "createdBy": "mallory",
           "comment": "mute every page"}


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(url: str, method: str = "GET", body: Any = None, auth: str | None = None,
         context: ssl.SSLContext | None = None) -> tuple[int, bytes, Any]:
    data = orjson.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read(), e.headers


def raw(address: tuple[str, int], request: bytes, wait: float = 5.0) -> bytes:
    """Send ``request`` as is and read the reply until the server closes."""
    with socket.create_connection(address, timeout=wait) as conn:
        conn.sendall(request)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


class Recorder:
    """A write handler that remembers every body it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, method: str, tail: str, body: bytes, caller: Caller) -> tuple[int, Any]:
        self.bodies.append(body)
        return 200, {"stored": len(body)}


@pytest.fixture
def plain() -> Any:
    rec = Recorder()
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), handlers={"/api/silences": rec},
                        config=HttpConfig(workers=4, timeout=1)).start()
    try:
        yield server, rec
    finally:
        server.stop()


# -- strict parsing ------------------------------------------------------------------

def test_negative_content_length_does_not_bypass_the_body_cap(plain: Any) -> None:
    """Issue 27: ``Content-Length: -1`` read the body to EOF; a 3.1 MB comment was stored."""
    server, rec = plain
    reply = raw(server.address, b"POST /api/silences HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: -1\r\nConnection: close\r\n\r\n" + b"a" * 3_100_000)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert rec.bodies == []


@pytest.mark.parametrize("value", [b"abc", b"+5", b"1e3", b"0x10", b"5, 5"])
def test_malformed_content_length_is_a_400_without_traceback(plain: Any, value: bytes) -> None:
    """Issue 27: ``Content-Length: abc`` raised in the handler: a traceback, an empty reply."""
    server, rec = plain
    reply = raw(server.address, b"POST /api/silences HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: " + value + b"\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert b"Traceback" not in reply and rec.bodies == []


def test_oversize_bodies_are_refused_before_they_are_read(plain: Any) -> None:
    server, rec = plain
    declared = raw(server.address, b"POST /api/silences HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 3100000\r\nConnection: close\r\n\r\n")
    assert declared.startswith(b"HTTP/1.1 413 ")
    size = MAX_BODY + 1
    chunked = raw(server.address, b"POST /api/silences HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  + f"{size:x}\r\n".encode() + b"a" * size + b"\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 413 ")
    assert rec.bodies == []
    assert call(server.url + "/api/silences", "POST", {"ok": 1})[0] == 200  # still serving
    assert rec.bodies == [b'{"ok":1}']


def test_half_sent_requests_neither_pin_threads_nor_starve_the_probes(plain: Any) -> None:
    """Issue 27: 31 idle half-sent requests held 31 threads for 30+ s.  Now they hold no
    worker (4 here), /healthz answers at once, and each is closed after the 1 s timeout."""
    server, _ = plain
    before = threading.active_count()
    idle = []
    for i in range(31):
        conn = socket.create_connection(server.address, timeout=10)
        if i % 3:  # and a third that connect and send nothing at all
            conn.sendall(b"POST /api/silences HTTP/1.1\r\nHost: x\r\nContent-Le")
        idle.append(conn)
    time.sleep(0.3)
    try:
        started = time.monotonic()
        assert call(server.url + "/healthz")[0] == 200
        assert time.monotonic() - started < 0.5
        assert threading.active_count() <= before + 2  # no thread per connection
        started = time.monotonic()
        for conn in idle:
            assert conn.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < 5
    finally:
        for conn in idle:
            conn.close()


def test_unknown_paths_and_methods(plain: Any) -> None:
    server, rec = plain
    assert call(server.url + "/nope")[0] == 404
    assert call(server.url + "/metrics", "POST", {})[0] == 405
    assert call(server.url + "/api/silences", "PUT", {})[0] == 405
    assert rec.bodies == []


# -- authentication --------------------------------------------------------------------

@pytest.fixture
def secured(db_engine: Any) -> Any:
    store = Store(db_engine)
    silencer = Silencer(lambda: store.silences(), ttl=3600)
    cfg = HttpConfig(basic_auth_users={"ana": _hash(ANA_PASSWORD),
                                       "prometheus": _hash(PROM_PASSWORD)},
                     bearer_tokens={"grafana": GRAFANA_TOKEN},
                     read_only_users=("prometheus", "grafana"), workers=4, timeout=2)
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(),
                        api={"alerts": lambda: []},
                        handlers={"/api/silences": SilenceApi(store, silencer)},
                        config=cfg).start()
    try:
        yield server, store
    finally:
        server.stop()


def test_nobody_without_credentials_can_mute_every_page(secured: Any) -> None:
    """Issue 27: POST /api/silences with alertname=~".+" for 10000d returned 200 to anyone."""
    server, store = secured
    url = server.url + "/api/silences"
    status, _, headers = call(url, "POST", SILENCE)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert call(url, "POST", SILENCE, auth=_basic("ana", "wrong"))[0] == 401
    assert call(url, "POST", SILENCE, auth=_basic("eve", ANA_PASSWORD))[0] == 401
    assert call(url, "POST", SILENCE, auth="Bearer not-the-token-at-all")[0] == 401
    # read-only principals may read, never write
    assert call(url, "POST", SILENCE, auth=_basic("prometheus", PROM_PASSWORD))[0] == 403
    assert call(url, "POST", SILENCE, auth=f"Bearer {GRAFANA_TOKEN}")[0] == 403
    assert store.silences() == []
    status, body, _ = call(url, "POST", SILENCE, auth=_basic("ana", ANA_PASSWORD))
    assert status == 200 and len(store.silences()) == 1


def test_deleting_a_silence_is_a_write(secured: Any) -> None:
    """Issue 27: DELETE of another person's silence returned 200 to anyone."""
    server, store = secured
    url = server.url + "/api/silences"
    sid = orjson.loads(call(url, "POST", SILENCE, auth=_basic("ana", ANA_PASSWORD))[1])[
        "silenceID"]
    assert call(f"{url}/{sid}", "DELETE")[0] == 401
    assert call(f"{url}/{sid}", "DELETE", auth=f"Bearer {GRAFANA_TOKEN}")[0] == 403
    assert store.silences()[0].ends_at > time.time() + 86400  # still active
    assert call(f"{url}/{sid}", "DELETE", auth=_basic("ana", ANA_PASSWORD))[0] == 200


def test_probes_open_reads_authenticated(secured: Any) -> None:
    server, _ = secured
    assert call(server.url + "/healthz")[0] == 200
    assert call(server.url + "/readyz")[0] == 200
    for path in ("/metrics", "/api/alerts", "/api/silences"):
        assert call(server.url + path)[0] == 401, path
        assert call(server.url + path, auth=_basic("prometheus", PROM_PASSWORD))[0] == 200
        assert call(server.url + path, auth=f"Bearer {GRAFANA_TOKEN}")[0] == 200


def test_metrics_may_be_left_open_but_never_writes(db_engine: Any) -> None:
    store = Store(db_engine)
    cfg = HttpConfig(basic_auth_users={"ana": _hash(ANA_PASSWORD)},
                     unauthenticated=("healthz", "readyz", "metrics", "api"))
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(),
                        handlers={"/api/silences": SilenceApi(store, None)}, config=cfg).start()
    try:
        assert call(server.url + "/metrics")[0] == 200
        assert call(server.url + "/api/silences")[0] == 200
        assert call(server.url + "/api/silences", "POST", SILENCE)[0] == 401
        assert store.silences() == []
    finally:
        server.stop()


def test_audit_line_per_silence_change(secured: Any, caplog: pytest.LogCaptureFixture) -> None:
    server, _ = secured
    url = server.url + "/api/silences"
    caplog.set_level(logging.INFO, logger="driftwatch.audit")
    body = {**SILENCE, "matchers": ['model="churn"'], "createdBy": "ana on-call"}
    sid = orjson.loads(call(url, "POST", body, auth=_basic("ana", ANA_PASSWORD))[1])[
        "silenceID"]
    call(f"{url}/{sid}", "DELETE", auth=_basic("ana", ANA_PASSWORD))
    call(f"{url}/{sid}", "DELETE")  # refused: no audit line
    lines = [r for r in caplog.records if r.name == "driftwatch.audit"]
    assert [r.getMessage() for r in lines] == ["silence created", "silence expired"]
    for r, action in zip(lines, ("created", "expired"), strict=True):
        assert vars(r)["action"] == action and vars(r)["silence_id"] == sid
        assert vars(r)["user"] == "ana" and vars(r)["author"] == "ana on-call"
        assert vars(r)["remote"] == "127.0.0.1" and vars(r)["matchers"] == ['model="churn"']


def test_successful_basic_auth_is_cached_not_rehashed() -> None:
    slow = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=10)).decode()
    auth = Authenticator({"ana": slow}, {})
    assert auth.identify(_basic("ana", "pw")) == "ana"
    started = time.perf_counter()
    for _ in range(50):
        assert auth.identify(_basic("ana", "pw")) == "ana"
    assert time.perf_counter() - started < 0.5  # 50 checks at cost 10 would take 2-5 s
    assert auth.identify(_basic("ana", "PW")) is None
    assert auth.identify("Basic !!!not-base64") is None
    assert auth.identify("Digest abc") is None


# -- TLS ---------------------------------------------------------------------------------

def _make_cert(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


def _peer_cn(address: tuple[str, int]) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(address, timeout=5) as sock, \
            context.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                          input=der, capture_output=True, check=True).stdout.decode()
    return text.strip().rpartition("=")[2].strip()


def test_tls_serves_and_reloads_the_certificate_on_change(tmp_path: Path) -> None:
    cert, key = _make_cert(tmp_path, "first")
    new_cert, new_key = _make_cert(tmp_path, "second")
    cfg = HttpConfig(tls_cert_file=str(cert), tls_key_file=str(key), timeout=5, workers=2)
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), config=cfg).start()
    try:
        assert server.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        assert call(server.url + "/healthz", context=trusted)[0] == 200
        assert _peer_cn(server.address) == "first"
        # clients that connect and say nothing hold no worker (2 here) and no accept
        silent = [socket.create_connection(server.address) for _ in range(10)]
        try:
            time.sleep(0.3)
            started = time.monotonic()
            assert call(server.url + "/healthz", context=trusted)[0] == 200
            assert time.monotonic() - started < 1.0
        finally:
            for conn in silent:
                conn.close()
        # plain HTTP to the TLS port: refused, the server keeps going
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{server.address[1]}/healthz", timeout=3)
        # rotate: write the new pair over the old files
        os.replace(new_key, key)
        os.replace(new_cert, cert)
        deadline = time.monotonic() + 5
        while _peer_cn(server.address) != "second":
            assert time.monotonic() < deadline, "certificate not reloaded"
            time.sleep(0.2)
        # a broken pair (key of another certificate) keeps the last good one
        bad_cert, _ = _make_cert(tmp_path, "third")
        os.replace(bad_cert, cert)
        time.sleep(1.3)
        assert _peer_cn(server.address) == "second"
    finally:
        server.stop()


def test_repr_of_http_config_hides_hashes_and_tokens() -> None:
    cfg = HttpConfig(basic_auth_users={"ana": _hash(ANA_PASSWORD)},
                     bearer_tokens={"grafana": GRAFANA_TOKEN})
    text = repr(cfg)
    assert "ana" in text and "grafana" in text
    assert GRAFANA_TOKEN not in text and "$2b$" not in text


def test_the_daemon_serves_with_its_http_config(tmp_path: Path) -> None:
    """The daemon's own server (not only HttpServer alone) applies [http] auth."""
    from monitor.config.types import Config
    from monitor.daemon import Daemon

    config = Config(http=HttpConfig(port=0, basic_auth_users={"ana": _hash(ANA_PASSWORD)}))
    store = Store(f"sqlite:///{tmp_path / 'dw.db'}")
    d = Daemon(config, registry=CollectorRegistry(), store=store)
    server = d.start_http()
    try:
        url = server.url + "/api/silences"
        assert call(server.url + "/healthz")[0] == 200
        assert call(server.url + "/metrics")[0] == 401
        assert call(url, "POST", SILENCE)[0] == 401
        assert call(url, "POST", SILENCE, auth=_basic("ana", ANA_PASSWORD))[0] == 200
        assert len(store.silences()) == 1
    finally:
        server.stop()
        store.close()
