"""``[kafka]``, ``[store]`` and ``[http]``: what driftwatch connects to and listens on.

Kafka security settings pass through to the client (``KafkaConfig.client_options``)
after their secrets are resolved; the store URL may itself be a secret
(``url_env`` / ``url_file``) since it can hold a password.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from monitor.config.check import Bad, Table, boolean, duration, integer, string
from monitor.config.receivers import Context
from monitor.config.types import HttpConfig, KafkaConfig, StoreConfig

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
    masked = re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url) if inline else ...
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
    listen = t.take("listen", lambda v: _host_port(v, min_port=0))
    if listen is None:
        return HttpConfig()
    host, port = listen
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        ctx.problems.warn(t.at("listen"), f"binds to {host}, reachable from other hosts")
    return HttpConfig(host=host, port=port)
