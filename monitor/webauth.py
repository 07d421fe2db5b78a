"""Who may call the HTTP endpoints, and the TLS certificate they are served with.

Modelled on Prometheus' ``web.config.file`` (exporter-toolkit): basic auth
against bcrypt hashes (never plaintext), bearer tokens read from files, one
code path for every endpoint, and a certificate re-read when its files change.

Access: with no user and no token configured everything is open (the default
listen address is loopback).  Once any is configured, every request needs
valid credentials except GETs of the paths named in ``[http] unauthenticated``
(by default the probes ``healthz`` and ``readyz``; ``metrics`` and ``api``
may be added).  Writes (creating or expiring a silence) always need
credentials of a principal that is not in ``read_only_users``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bcrypt
from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger("driftwatch.http")

# The names ``[http] unauthenticated`` may list: GETs anyone may make once auth is on.
OPEN_CHOICES = ("healthz", "readyz", "metrics", "api")
DEFAULT_OPEN = ("healthz", "readyz")
_CACHE_SIZE = 1024


def is_bcrypt_hash(value: str) -> bool:
    """A ``$2a$``/``$2b$``/``$2y$`` hash as ``htpasswd -B`` or ``bcrypt.hashpw`` writes it."""
    return (len(value) == 60 and value[:4] in ("$2a$", "$2b$", "$2y$")
            and value[4:6].isdigit() and value[6] == "$")


@functools.cache
def _dummy_hash(rounds: int) -> bytes:
    """Checked when a user name is unknown, so a wrong name costs what a wrong password does."""
    return bcrypt.hashpw(b"driftwatch-no-such-user", bcrypt.gensalt(rounds=rounds))


@dataclass(frozen=True)
class Caller:
    """Who made a request: the authenticated principal ("" if anonymous) and the peer."""

    user: str
    remote: str


class Authenticator:
    """Checks ``Authorization`` headers against bcrypt hashes and bearer tokens.

    A successful basic-auth check is cached (by a SHA-256 of user, password and
    hash, never the password itself) so that a Prometheus scraping every few
    seconds does not pay bcrypt's deliberate slowness each time.
    """

    def __init__(self, users: Mapping[str, str], tokens: Mapping[str, str],
                 read_only: tuple[str, ...] = (), unauthenticated: tuple[str, ...] = DEFAULT_OPEN
                 ) -> None:
        self._users = {u: h.encode() for u, h in users.items()}
        # the dummy for unknown names costs what the configured hashes cost
        self._rounds = max((int(h[4:6]) for h in users.values()), default=12)
        self._tokens = {name: hashlib.sha256(t.encode()).digest() for name, t in tokens.items()}
        self.read_only = frozenset(read_only)
        self.unauthenticated = frozenset(unauthenticated)
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users or self._tokens)

    def identify(self, header: str | None) -> str | None:
        """The principal the header proves, or None (absent, malformed or wrong)."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return self._basic(value.strip())
        if scheme == "bearer":
            return self._bearer(value.strip())
        return None

    def _basic(self, value: str) -> str | None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), password.encode(),
                                         hashed or b""))).digest()
        with self._lock:
            if hashed is not None and key in self._ok:
                self._ok.move_to_end(key)
                return user
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or _dummy_hash(self._rounds))
        except ValueError:  # a password bcrypt refuses (NUL bytes, > 72 bytes in bcrypt 5)
            ok = False
        if not ok or hashed is None:
            return None
        with self._lock:
            self._ok[key] = None
            while len(self._ok) > _CACHE_SIZE:
                self._ok.popitem(last=False)
        return user

    def _bearer(self, value: str) -> str | None:
        digest = hashlib.sha256(value.encode()).digest()
        found = None
        for name, want in self._tokens.items():  # compare all: timing says nothing
            if hmac.compare_digest(digest, want):
                found = name
        return found


class ReloadingTLSAdapter(BuiltinSSLAdapter):  # type: ignore[misc]
    """cheroot's TLS adapter, re-reading the certificate and key when their files change.

    The handshake is not done in ``wrap`` (cheroot calls it on its one
    accepting thread, where a client that connects and says nothing would stall
    every other connection until the timeout) but on the first read, in a
    bounded worker.  A reload that fails (a half-written pair during rotation)
    keeps serving the previous certificate and is logged once per change.
    """

    def __init__(self, certificate: str, private_key: str, check_every: float = 1.0) -> None:
        super().__init__(certificate, private_key)
        self._check_every = check_every
        self._stamp = self._files_stamp()
        self._checked = time.monotonic()
        self.reloads = 0

    def _files_stamp(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for path in (self.certificate, self.private_key):
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return
        self._checked = now
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certificate, self.private_key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS certificate not reloaded; serving the previous one",
                        extra={"cert_file": self.certificate, "key_file": self.private_key,
                               "error": str(exc)})
            return
        self.context = context
        self.reloads += 1
        log.info("TLS certificate reloaded", extra={"cert_file": self.certificate})

    def wrap(self, sock: Any) -> tuple[Any, dict[str, str]]:
        self.maybe_reload()
        wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False,
                                           server_side=True)
        return wrapped, {"HTTPS": "on", "wsgi.url_scheme": "https"}
