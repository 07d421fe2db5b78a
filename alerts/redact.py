"""Keeping secrets out of text that may be logged, stored or printed.

``user:password@`` in a URL, a secret option's value, a URL's path and query
(where Slack, Teams and many webhooks keep their signature): helpers that
every ``repr`` and error message goes through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

REDACTED = "<redacted>"
# scheme://user:password@ or scheme://token@ anywhere in a text
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#@\s]+)@")


def strip_credentials(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` as ``scheme://user:<redacted>@`` (a
    lone ``scheme://token@`` as ``scheme://<redacted>@``)."""

    def hide(m: re.Match[str]) -> str:
        user, colon, _ = m["info"].partition(":")
        return f"{m['scheme']}{user}:{REDACTED}@" if colon else f"{m['scheme']}{REDACTED}@"

    return _USERINFO.sub(hide, text)


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be secret: the user info, the user, the password."""
    try:
        parts = urlsplit(url)
        found = [parts.username, parts.password]
    except ValueError:
        return []
    info = parts.netloc.rpartition("@")[0]
    return [s for s in (info, *found) if s]


def safe_url(url: str) -> str:
    """``scheme://host[:port]/…``: no credentials, no path or query (they may sign)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}/…"


def redacted_options(options: Mapping[str, Any], secret_keys: Iterable[str]) -> dict[str, Any]:
    """``options`` fit to print: secret values replaced, credentials cut out of URLs."""
    secret = set(secret_keys)
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in secret and value is not None:
            out[key] = REDACTED
        elif isinstance(value, str):
            out[key] = strip_credentials(value)
        else:
            out[key] = value
    return out
