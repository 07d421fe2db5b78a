"""``[kafka]``, ``[store]`` and ``[http]``: what driftwatch connects to and listens on.

Kafka security settings pass through to the client (``KafkaConfig.client_options``)
after their secrets are resolved; the store URL may itself be a secret
(``url_env`` / ``url_file``) since it can hold a password.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from alerts.redact import strip_credentials
from monitor.config.check import Bad, Table, boolean, duration, integer, string
from monitor.config.receivers import Context
from monitor.config.types import HttpConfig, KafkaConfig, StoreConfig
from monitor.webauth import OPEN_CHOICES, is_bcrypt_hash

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")


def _host_port(text: Any, *, min_port: int = 1) -> tuple[str, int]:
    m = _HOST_PORT.fullmatch(text) if isinstance(text, str) else None
    if m is None or not min_port <= int(m.group("port")) <= 65535:
        raise Bad(f'must be "host:port" with a port from {min_port} to 65535')
    return m.group("host").strip("[]"), int(m.group("port"))


def _server(text: Any) -> str:
    _host_port(text)
    return str(text)


def parse_kafka(t: Table, ctx: Context) -> KafkaConfig:
    if isinstance(servers := t.data.get("bootstrap_servers"), str) and "," in servers:
        t.data["bootstrap_servers"] = [s.strip() for s in servers.split(",")]
    d = KafkaConfig()
    out: dict[str, Any] = {
        "bootstrap_servers": t.take_list(
            "bootstrap_servers", _server, '"host:port" strings', d.bootstrap_servers, allow_one=True
        ),
        "group_id": t.take("group_id", string(), d.group_id),
        "client_id": t.take("client_id", string(), d.client_id),
        "auto_offset_reset": t.take(
            "auto_offset_reset", string(choices=("earliest", "latest")), d.auto_offset_reset
        ),
        "session_timeout_ms": t.take("session_timeout_ms", integer(ge=1000), d.session_timeout_ms),
        "max_poll_records": t.take("max_poll_records", integer(ge=1), d.max_poll_records),
    }
    if out["bootstrap_servers"] == ():
        ctx.problems.error(t.at("bootstrap_servers"), "must list at least one server", [])
    topic = string(pattern=_TOPIC, what="a Kafka topic name (letters, digits, '.', '_', '-')")
    topics = [d.predictions_topic, d.labels_topic]
    if t.has("topics") and (tt := Table.of(t.raw("topics"), t.at("topics"), ctx.problems)):
        topics = [tt.take("predictions", topic, topics[0]), tt.take("labels", topic, topics[1])]
        if topics[0] == topics[1]:
            ctx.problems.error(tt.at("labels"), "must differ from topics.predictions", topics[1])
        tt.finish()
    dead = t.take("dead_letter_topic", topic)
    if dead is not None and dead in topics:
        ctx.problems.error(t.at("dead_letter_topic"), "must differ from the input topics", dead)
    return KafkaConfig(
        predictions_topic=topics[0],
        labels_topic=topics[1],
        dead_letter_topic=dead,
        client_options=_kafka_security(t, ctx),
        **out,
    )


def _kafka_security(t: Table, ctx: Context) -> dict[str, str | int | bool]:
    def existing_file(v: Any) -> str:
        if not isinstance(v, str) or not v or not ctx.path(v).is_file():
            raise Bad("must be the path of an existing file")
        return str(ctx.path(v))

    given = {k.removesuffix("_env").removesuffix("_file") for k in t.data}
    opts: dict[str, Any] = {
        "security_protocol": t.take("security_protocol", string(choices=SECURITY_PROTOCOLS)),
        "sasl_mechanism": t.take("sasl_mechanism", string(choices=SASL_MECHANISMS)),
        "sasl_plain_username": t.take("sasl_plain_username", string()),
        "sasl_plain_password": ctx.secret(t, "sasl_plain_password", required=False),
        **{k: t.take(k, existing_file) for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")},
        "ssl_password": ctx.secret(t, "ssl_password", required=False),
        "ssl_check_hostname": t.take("ssl_check_hostname", boolean),
    }
    opts = {k: v for k, v in opts.items() if v is not None}
    if "security_protocol" in given and "security_protocol" not in opts:
        return opts  # an invalid protocol was reported: cross-checks would only add noise
    protocol = opts.get("security_protocol", "PLAINTEXT")
    mechanism = opts.get("sasl_mechanism")
    if protocol.startswith("SASL_") and "sasl_mechanism" not in given:
        ctx.problems.error(t.at("sasl_mechanism"), f"required when security_protocol is {protocol}")
    if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        for key in ("sasl_plain_username", "sasl_plain_password"):
            if key not in given:
                ctx.problems.error(t.at(key), f"required when sasl_mechanism is {mechanism}")
    for key in opts:
        if key.startswith("sasl_") and not protocol.startswith("SASL_"):
            ctx.problems.warn(t.at(key), f"ignored: security_protocol is {protocol}, not SASL_*")
        if key.startswith("ssl_") and protocol not in ("SSL", "SASL_SSL"):
            ctx.problems.warn(t.at(key), f"ignored: security_protocol is {protocol}, not *SSL")
    return opts


def parse_store(t: Table, ctx: Context) -> StoreConfig:
    inline = t.has("url")
    every = t.take("checkpoint_interval", duration(gt=0), StoreConfig.checkpoint_interval)
    url = ctx.secret(t, "url", required=False, warn_inline=False)
    if url is None:
        return StoreConfig(checkpoint_interval=every)
    masked = strip_credentials(url) if inline else ...
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except NoSuchModuleError:
        ctx.problems.error(t.at("url"), f'unknown database dialect "{parsed.drivername}"', masked)
    except (ArgumentError, ValueError):
        ctx.problems.error(
            t.at("url"),
            'must be a SQLAlchemy URL like "sqlite:///driftwatch.db" '
            'or "postgresql+psycopg://user@host/db"',
            masked,
        )
    else:
        if inline and parsed.password:
            ctx.problems.warn(t.at("url"), "inline password; prefer url_env or url_file")
    return StoreConfig(url=url, checkpoint_interval=every)


def parse_http(t: Table, ctx: Context) -> HttpConfig:
    """``[http]``: listen address, TLS, who may read and who may write (docs/security.md)."""
    d = HttpConfig()
    listen = t.take("listen", lambda v: _host_port(v, min_port=0))
    host, port = listen if listen is not None else (d.host, d.port)
    cert, key = _tls_files(t, ctx)
    users = _basic_auth_users(t)
    tokens = _bearer_tokens(t, ctx)
    principals = set(users) | set(tokens)
    clash = sorted(set(users) & set(tokens))
    if clash:
        ctx.problems.error(t.at("bearer_tokens"), "token names must differ from "
                           "basic_auth_users names", clash[0])
    read_only = t.take_list("read_only_users", string(what="a user or token name"),
                            "user or token names", ())
    for i, name in enumerate(read_only or ()):
        if name not in principals:
            ctx.problems.error(f"{t.at('read_only_users')}[{i}]",
                               "names no user of basic_auth_users nor token of bearer_tokens",
                               name)
    if t.has("unauthenticated") and not principals:
        ctx.problems.warn(t.at("unauthenticated"), "ignored: with no basic_auth_users nor "
                          "bearer_tokens every path is open")
    unauthenticated = t.take_list(
        "unauthenticated",
        string(choices=OPEN_CHOICES,
               what="one of " + ", ".join(OPEN_CHOICES) + " (writes always need auth)"),
        "names", d.unauthenticated)
    out = HttpConfig(
        host=host, port=port, tls_cert_file=cert, tls_key_file=key,
        basic_auth_users=users, bearer_tokens=tokens, read_only_users=read_only or (),
        unauthenticated=unauthenticated,
        workers=t.take("workers", integer(ge=1, le=256), d.workers),
        timeout=t.take("timeout", duration(ge=1), d.timeout),
    )
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        if not out.auth_enabled:
            ctx.problems.warn(t.at("listen"), f"binds to {host}, reachable from other hosts, "
                              "without authentication: anyone who reaches it can create and "
                              "expire silences (set basic_auth_users or bearer_tokens)")
        elif cert is None:
            ctx.problems.warn(t.at("listen"), f"binds to {host}, reachable from other hosts, "
                              "without TLS: credentials cross the network in clear text "
                              "(set tls_cert_file and tls_key_file)")
    return out


def _tls_files(t: Table, ctx: Context) -> tuple[str | None, str | None]:
    def existing_file(v: Any) -> str:
        if not isinstance(v, str) or not v or not ctx.path(v).is_file():
            raise Bad("must be the path of an existing file")
        return str(ctx.path(v))

    given = [k for k in ("tls_cert_file", "tls_key_file") if t.has(k)]
    cert = t.take("tls_cert_file", existing_file)
    key = t.take("tls_key_file", existing_file)
    if len(given) == 1:
        other = "tls_key_file" if given == ["tls_cert_file"] else "tls_cert_file"
        ctx.problems.error(t.at(other), f"required with {given[0]}")
        return None, None
    if cert is None or key is None:
        return None, None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        ctx.problems.error(t.at("tls_key_file"), "must be the PEM private key of the PEM "
                           f"certificate in tls_cert_file ({reason})")
        return None, None
    return cert, key


def _basic_auth_users(t: Table) -> dict[str, str]:
    if not t.has("basic_auth_users"):
        return {}
    users_t = Table.of(t.raw("basic_auth_users"), t.at("basic_auth_users"), t.problems)
    if users_t is None:
        return {}
    out: dict[str, str] = {}
    for name in list(users_t.data):
        if ":" in name or not name.strip():
            users_t.problems.error(users_t.at(name), "a user name must be non-empty and "
                                   "hold no ':'")
            users_t.raw(name)
            continue
        hashed = users_t.take(name, _bcrypt_hash)
        if hashed is not None:
            out[name] = hashed
    users_t.finish()
    return out


def _bcrypt_hash(v: Any) -> str:
    if not isinstance(v, str) or not is_bcrypt_hash(v):  # never echo it: it may be a password
        raise Bad("must be a bcrypt hash ($2b$..., 60 characters; make one with "
                  "`htpasswd -nbBC 12 '' PASSWORD | tr -d ':\\n'`), never the password",
                  show_value=False)
    return v


def _bearer_tokens(t: Table, ctx: Context) -> dict[str, str]:
    if not t.has("bearer_tokens"):
        return {}
    tokens_t = Table.of(t.raw("bearer_tokens"), t.at("bearer_tokens"), t.problems)
    if tokens_t is None:
        return {}
    out: dict[str, str] = {}
    for name in list(tokens_t.data):
        one = Table.of(tokens_t.raw(name), tokens_t.at(name), t.problems)
        if one is None:
            continue
        token = ctx.secret(one, "token", required=True)
        one.finish()
        if token is not None:
            if len(token) < 16:
                ctx.problems.error(one.at("token"), "must be at least 16 characters "
                                   "(e.g. `openssl rand -hex 32`)")
            else:
                out[name] = token
    tokens_t.finish()
    return out
