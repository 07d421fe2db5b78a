"""``[[receivers]]`` and secrets: where alerts go, and the keys that open the doors.

A secret option ``X`` is given as exactly one of ``X_env`` (an environment
variable, set and non-empty), ``X_file`` (a readable file, contents stripped)
or ``X`` inline (allowed, with a warning).  Secret values never appear in a
problem message: rules that see them report without the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alerts.links import TEMPLATE_LABELS, placeholders
from alerts.receivers.jira import API_TYPES as JIRA_API_TYPES
from alerts.receivers.jira import OWN_FIELDS as JIRA_OWN_FIELDS
from alerts.receivers.jira_text import TEMPLATE_EXTRAS as JIRA_EXTRAS
from alerts.receivers.mail import address
from alerts.receivers.opsgenie import PRIORITIES as OPSGENIE_PRIORITIES
from alerts.receivers.opsgenie import RESPONDER_KEYS, RESPONDER_TYPES
from monitor.config.check import Bad, Problems, Table, boolean, duration, integer, string
from monitor.config.types import IntegrationConfig, ReceiverConfig

PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
# Keys people reach for that are spelled differently here: a better rule than "unknown key".
KIND_HINTS = {"teams": "unknown key (Microsoft Teams is [[receivers.msteams]])"}
JIRA_HINTS = {
    "password": "unknown key (JIRA Cloud: user with api_token; Data Center: bearer_token)",
    "issuetype": "unknown key (the issue type is issue_type)",
    "url": "unknown key (the JIRA address is api_url)",
}
OPSGENIE_HINTS = {"api_url": "unknown key (the Opsgenie API base URL is url)"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Context:
    """What validation may look at outside the TOML: the environment and the config's folder."""

    problems: Problems
    env: Mapping[str, str]
    base_dir: Path

    def path(self, value: str) -> Path:
        """``value`` as a path; relative paths are taken from the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def secret(self, t: Table, key: str, *, required: bool, warn_inline: bool = True) -> str | None:
        """Resolve secret ``key`` of table ``t`` from ``key_env``, ``key_file`` or ``key``."""
        given = [k for k in (f"{key}_env", f"{key}_file", key) if t.has(k)]
        raw = {k: t.raw(k) for k in given}
        if len(given) > 1:
            self.problems.error(
                t.path, f"give only one of {key}_env, {key}_file or {key} (got {', '.join(given)})"
            )
            return None
        if not given:
            if required:
                self.problems.error(t.at(key), f"required: give {key}_env, {key}_file or {key}")
            return None
        name, value = given[0], raw[given[0]]
        if name == key:
            if not isinstance(value, str) or not value.strip():
                self.problems.error(t.at(key), "must be a non-empty string")
                return None
            if warn_inline:
                self.problems.warn(t.at(key), f"inline secret; prefer {key}_env or {key}_file")
            return value
        if name.endswith("_env"):
            return self._from_env(t.at(name), value)
        return self._from_file(t.at(name), value)

    def _from_env(self, where: str, var: Any) -> str | None:
        if not isinstance(var, str) or not _ENV_NAME.fullmatch(var):
            self.problems.error(where, "must be an environment variable name", var)
            return None
        value = self.env.get(var)
        if value is None:
            self.problems.error(where, f"environment variable {var} is not set")
        elif not value.strip():
            self.problems.error(where, f"environment variable {var} is empty")
        else:
            return value
        return None

    def _from_file(self, where: str, name: Any) -> str | None:
        if not isinstance(name, str) or not name:
            self.problems.error(where, "must be a file path", name)
            return None
        path = self.path(name)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            self.problems.error(where, f"cannot read secret file {path}: {reason}")
            return None
        if not value:
            self.problems.error(where, f"secret file {path} is empty")
            return None
        return value


def http_url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise Bad("must be an http:// or https:// URL")
    return str(value)


def _check_secret_url(ctx: Context, t: Table, url: str | None) -> None:
    if url is not None:
        try:
            http_url(url)
        except Bad as bad:  # a secret: rule only, never the value
            ctx.problems.error(t.at("url"), bad.rule)


def _slack(t: Table, ctx: Context) -> IntegrationConfig:
    url = ctx.secret(t, "url", required=True)
    _check_secret_url(ctx, t, url)
    opts = {
        "url": url,
        "channel": t.take("channel", string()),
        "username": t.take("username", string()),
        "timeout": t.take("timeout", duration(gt=0)),
    }
    return IntegrationConfig("slack", _present(opts), ("url",))


def _webhook(t: Table, ctx: Context) -> IntegrationConfig:
    url = ctx.secret(t, "url", required=True)
    _check_secret_url(ctx, t, url)
    opts = {
        "url": url,
        "timeout": t.take("timeout", duration(gt=0)),
        "max_alerts": t.take("max_alerts", integer(ge=0)),
        "external_url": t.take("external_url", http_url),
    }
    return IntegrationConfig("webhook", _present(opts), ("url",))


def _pagerduty(t: Table, ctx: Context) -> IntegrationConfig:
    opts = {
        "routing_key": ctx.secret(t, "routing_key", required=True),
        "url": t.take("url", http_url),
        "severity": t.take("severity", string(choices=PAGERDUTY_SEVERITIES)),
        "timeout": t.take("timeout", duration(gt=0)),
    }
    return IntegrationConfig("pagerduty", _present(opts), ("routing_key",))


def responder(value: Any) -> dict[str, str]:
    """An Opsgenie responder: ``{type = "team", name = "ml-engineering"}``."""
    rule = (
        f"must be a table with type ({', '.join(RESPONDER_TYPES)}) "
        f"and one of {', '.join(RESPONDER_KEYS)}"
    )
    if not isinstance(value, dict) or value.get("type") not in RESPONDER_TYPES:
        raise Bad(rule)
    keys = [k for k in value if k != "type"]
    if len(keys) != 1 or keys[0] not in RESPONDER_KEYS:
        raise Bad(rule)
    ident = value[keys[0]]
    if not isinstance(ident, str) or not ident:
        raise Bad(rule)
    return {"type": value["type"], keys[0]: ident}


def email_address(value: Any) -> str:
    if address(value) is None:
        raise Bad('must be an email address like "dw@example.com" or "driftwatch <dw@example.com>"')
    return str(value)


def _opsgenie(t: Table, ctx: Context) -> IntegrationConfig:
    opts = {
        "api_key": ctx.secret(t, "api_key", required=True),
        "url": t.take("url", http_url),
        "priority": t.take("priority", string(choices=OPSGENIE_PRIORITIES)),
        "responders": t.take_list("responders", responder, "responder tables"),
        "timeout": t.take("timeout", duration(gt=0)),
    }
    t.finish(OPSGENIE_HINTS)
    return IntegrationConfig("opsgenie", _present(opts), ("api_key",))


def _msteams(t: Table, ctx: Context) -> IntegrationConfig:
    url = ctx.secret(t, "url", required=True)
    _check_secret_url(ctx, t, url)
    opts = {
        "url": url,
        "external_url": t.take("external_url", http_url),
        "timeout": t.take("timeout", duration(gt=0)),
    }
    return IntegrationConfig("msteams", _present(opts), ("url",))


def _email(t: Table, ctx: Context) -> IntegrationConfig:
    for key, what in (("host", "the SMTP server"), ("from", "the sender address"),
                      ("to", "the recipient addresses")):
        if not t.has(key):
            ctx.problems.error(t.at(key), f"required: {what}")
    has_user = t.has("username")
    has_password = any(t.has(k) for k in ("password", "password_env", "password_file"))
    if has_user and not has_password:
        ctx.problems.error(
            t.at("password"), "required with username: give password_env, password_file or password"
        )
    if has_password and not has_user:
        ctx.problems.error(t.at("username"), "required with a password")
    opts = {
        "host": t.take("host", string(what="a host name")),
        "port": t.take("port", integer(ge=1, le=65535)),
        "ssl": t.take("ssl", boolean),
        "starttls": t.take("starttls", boolean),
        "username": t.take("username", string()),
        "password": ctx.secret(t, "password", required=False),
        "from": t.take("from", email_address),
        "to": t.take_list("to", email_address, "email addresses", allow_one=True),
        "hello": t.take("hello", string(what="a host name")),
        "timeout": t.take("timeout", duration(gt=0)),
    }
    if opts["to"] == ():
        ctx.problems.error(t.at("to"), "must list at least one address")
    if opts["ssl"] and opts["starttls"]:
        ctx.problems.error(t.at("starttls"), "cannot be true with ssl = true (implicit TLS)")
    if (has_user or has_password) and not opts["ssl"] and opts["starttls"] is False:
        ctx.problems.warn(
            t.path, "username and password without ssl or starttls: they cross the network "
            "in clear text"
        )
    return IntegrationConfig("email", _present(opts), ("password",))


def _alertmanager(t: Table, ctx: Context) -> IntegrationConfig:
    if not t.has("url"):
        ctx.problems.error(
            t.at("url"), "required: Alertmanager's base URL, like http://alertmanager:9093"
        )
    opts = {
        "url": t.take("url", http_url),
        "bearer_token": ctx.secret(t, "bearer_token", required=False),
        "firing_ttl": t.take("firing_ttl", duration(gt=0)),
        "external_url": t.take("external_url", http_url),
        "timeout": t.take("timeout", duration(gt=0)),
    }
    return IntegrationConfig("alertmanager", _present(opts), ("bearer_token",))


def jira_template(value: Any) -> str:
    """A JIRA text template: ``{label}`` placeholders and the group's extras."""
    if not isinstance(value, str) or not value.strip():
        raise Bad("must be a non-empty template string")
    allowed = (*TEMPLATE_LABELS, *JIRA_EXTRAS)
    try:
        unknown = [n for n in placeholders(value) if n not in allowed]
    except ValueError as exc:
        raise Bad(str(exc)) from None
    if unknown:
        raise Bad(f"unknown placeholder {{{unknown[0]}}} (placeholders: {', '.join(allowed)})")
    return value


_JIRA_FIELD_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _jira_field_value(value: Any, where: str) -> None:
    """A field's JSON value: strings (templates), numbers, booleans, lists, tables."""
    if isinstance(value, str):
        if value:
            try:
                jira_template(value)
            except Bad as bad:
                raise Bad(f"{where}: {bad.rule}") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _jira_field_value(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _jira_field_value(v, f"{where}[{i}]")
    elif not isinstance(value, bool | int | float):
        raise Bad(f"{where}: must be a string, number, boolean, list or table "
                  f"(JSON), got {type(value).__name__}")


def jira_fields(value: Any) -> dict[str, Any]:
    """``fields``: other issue fields, custom ones included, by field id."""
    if not isinstance(value, dict) or not value:
        raise Bad('must be a table of JIRA field ids to values, like { customfield_10001 = '
                  '"{model}", components = [{ name = "ML" }] }')
    for k, v in value.items():
        if k in JIRA_OWN_FIELDS:
            raise Bad(f"{k}: driftwatch writes it itself; set it with the receiver's own key")
        if not _JIRA_FIELD_ID.match(k):
            raise Bad(f"{k!r} is not a JIRA field id (like customfield_10001 or components)")
        _jira_field_value(v, k)
    return value


def _jira(t: Table, ctx: Context) -> IntegrationConfig:
    for key, what in (("api_url", "the JIRA site, like https://example.atlassian.net"),
                      ("project", "the project key"), ("issue_type", "like \"Bug\" or \"Task\"")):
        if not t.has(key):
            ctx.problems.error(t.at(key), f"required: {what}")
    opts = {
        "api_url": t.take("api_url", http_url),
        "api_type": t.take("api_type", string(choices=JIRA_API_TYPES)),
        "project": t.take("project", string()),
        "issue_type": t.take("issue_type", string()),
        "summary": t.take("summary", jira_template),
        "description": t.take("description", jira_template),
        "labels": t.take_list("labels", jira_template, "label templates"),
        "priority": t.take("priority", jira_template),
        "fields": t.take("fields", jira_fields),
        "resolve_transition": t.take("resolve_transition", string()),
        "reopen_transition": t.take("reopen_transition", string()),
        "wont_fix_resolution": t.take("wont_fix_resolution", string()),
        "reopen_duration": t.take("reopen_duration", duration(gt=0)),
        "send_resolved": t.take("send_resolved", boolean),
        "user": t.take("user", string()),
        "api_token": ctx.secret(t, "api_token", required=False),
        "bearer_token": ctx.secret(t, "bearer_token", required=False),
        "timeout": t.take("timeout", duration(gt=0)),
    }
    has_token = opts["api_token"] is not None
    if opts["bearer_token"] is not None and (has_token or opts["user"] is not None):
        ctx.problems.error(t.at("bearer_token"), "give bearer_token or user with api_token, "
                           "not both")
    elif opts["user"] is not None and not has_token:
        ctx.problems.error(t.at("api_token"), "required with user: give api_token_env, "
                           "api_token_file or api_token")
    elif has_token and opts["user"] is None:
        ctx.problems.error(t.at("user"), "required with api_token (the account's email on Cloud)")
    elif opts["bearer_token"] is None and not has_token:
        ctx.problems.warn(t.path, "no credentials (user with api_token, or bearer_token): "
                          "JIRA will refuse anonymous requests")
    if opts["reopen_duration"] is not None and opts["reopen_transition"] is None:
        ctx.problems.warn(t.at("reopen_duration"), "has no effect without reopen_transition")
    elif opts["reopen_duration"] is not None and opts["reopen_duration"] < 60:
        ctx.problems.error(t.at("reopen_duration"), "must be at least 1m (JQL counts minutes)",
                           opts["reopen_duration"])
    t.finish(JIRA_HINTS)
    return IntegrationConfig("jira", _present(opts), ("api_token", "bearer_token"))


def _file(t: Table, ctx: Context) -> IntegrationConfig:
    if not t.has("path"):
        ctx.problems.error(t.at("path"), "required: the JSON-lines file alerts are appended to")
    path = t.take("path", string(what="a file path"))
    return IntegrationConfig("file", _present({"path": path and str(ctx.path(path))}))


def _present(opts: dict[str, Any]) -> dict[str, object]:
    return {k: v for k, v in opts.items() if v is not None}


_KINDS = {
    "alertmanager": _alertmanager,
    "email": _email,
    "file": _file,
    "jira": _jira,
    "msteams": _msteams,
    "opsgenie": _opsgenie,
    "pagerduty": _pagerduty,
    "slack": _slack,
    "webhook": _webhook,
}


def _receiver(t: Table, ctx: Context) -> ReceiverConfig | None:
    if not t.has("name"):
        ctx.problems.error(t.at("name"), "required: a receiver needs a name")
    name = t.take("name", string())
    integrations: list[IntegrationConfig] = []
    for kind in [k for k in t.data if k in _KINDS]:
        value = t.raw(kind)
        if not isinstance(value, list):
            ctx.problems.error(
                t.at(kind), f"must be an array of tables ([[receivers.{kind}]])", value
            )
            continue
        for j, item in enumerate(value):
            sub = Table.of(item, f"{t.at(kind)}[{j}]", ctx.problems)
            if sub is not None:
                integrations.append(_KINDS[kind](sub, ctx))
                sub.finish()
    t.finish(KIND_HINTS)
    if not integrations and name is not None:
        ctx.problems.warn(t.path, f'receiver "{name}" has no integrations: its alerts go nowhere')
    return ReceiverConfig(name, tuple(integrations)) if name is not None else None


def parse_receivers(value: Any, ctx: Context) -> tuple[ReceiverConfig, ...] | None:
    """The receivers of ``[[receivers]]``; None if the value is not an array of tables."""
    if not isinstance(value, list):
        ctx.problems.error("receivers", "must be an array of tables ([[receivers]])", value)
        return None
    out: list[ReceiverConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        t = Table.of(item, f"receivers[{i}]", ctx.problems)
        receiver = _receiver(t, ctx) if t is not None else None
        if receiver is None:
            continue
        if receiver.name in seen:
            ctx.problems.error(
                f"receivers[{i}].name",
                f"duplicate receiver name (also receivers[{seen[receiver.name]}])",
                receiver.name,
            )
            continue
        seen[receiver.name] = i
        out.append(receiver)
    return tuple(out)
