"""The one HTTP path every HTTP notifier uses: POST JSON, classify the outcome.

* 2xx -> ok;
* 429 (and 503 with a Retry-After) -> retriable, honouring ``Retry-After``
  given as seconds or as an HTTP-date;
* 408 (request timeout), 425 (too early), other 5xx, timeouts, connection
  errors -> retriable;
* 3xx (redirects are not followed: a POST must not turn into a GET) and other
  4xx -> not retriable, with the status and a short excerpt of the response.

Secrets never leave this module in a message: URLs are reported as
``scheme://host/…`` and every known secret (the URL, its path and query, each
long path segment and query value -- a Workflows ``sig`` --, the values passed
in ``secrets``) is scrubbed from response excerpts and errors.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson

from alerts.receivers.base import DeliveryResult
from alerts.redact import REDACTED, safe_url, strip_credentials, url_secrets

USER_AGENT = "driftwatch/0.1"
EXCERPT_CHARS = 200
RETRIABLE_4XX = frozenset({408, 425, 429})  # the client errors that a later try can cure


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/services/T/B/x`` -> ``https://hooks.slack.com/…``."""
    return safe_url(url)


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``https://user:pw@host/x`` -> (``https://host/x``, a basic ``Authorization`` header),
    as Go's HTTP client (and so Alertmanager) treats credentials in a URL: urllib would
    take ``pw@host`` for a port and put the password in its error."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return url, {}
    if user is None and password is None:
        return url, {}
    netloc = parts.netloc.rpartition("@")[2]
    pair = f"{unquote(user or '')}:{unquote(password or '')}".encode()
    header = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return urlunsplit(parts._replace(netloc=netloc)), header


class Scrubber:
    """Replaces every secret it knows with ``<redacted>``."""

    def __init__(self, url: str, secrets: Iterable[str] = ()) -> None:
        parts = urlsplit(url)
        needles = {url, parts.path, parts.query, f"{parts.path}?{parts.query}"}
        needles.update(seg for seg in parts.path.split("/") if len(seg) >= 8)
        values = [pair.partition("=")[2] for pair in parts.query.split("&")]
        needles.update(v for value in values for v in (value, unquote(value)) if len(v) >= 8)
        needles.update(s for s in secrets if s)
        needles.update(s for raw in url_secrets(url) for s in (raw, unquote(raw)))
        self._needles = sorted((n for n in needles if len(n) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for n in self._needles:
            text = text.replace(n, REDACTED)
        return strip_credentials(text)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def _excerpt(body: bytes, scrub: Scrubber) -> str:
    text = " ".join(body[: EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    text = scrub(text)
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def classify(
    status: int,
    body: bytes,
    retry_after: str | None,
    where: str,
    scrub: Scrubber,
    now: Callable[[], float] = time.time,
) -> DeliveryResult:
    if 200 <= status < 300:
        return DeliveryResult.success(status)
    error = f"HTTP {status} from {where}"
    excerpt = _excerpt(body, scrub)
    if excerpt:
        error += f": {excerpt}"
    if status in RETRIABLE_4XX or status >= 500:
        return DeliveryResult(
            ok=False,
            retriable=True,
            status=status,
            retry_after=parse_retry_after(retry_after, now),
            error=error,
        )
    return DeliveryResult(ok=False, retriable=False, status=status, error=error)


def post_json(
    url: str,
    payload: Any,
    *,
    timeout: float,
    secrets: Iterable[str] = (),
    headers: dict[str, str] | None = None,
    now: Callable[[], float] = time.time,
) -> DeliveryResult:
    """POST ``payload`` as JSON to ``url``; never raises for delivery problems."""
    return request_json(
        "POST", url, payload, timeout=timeout, secrets=secrets, headers=headers, now=now
    )[0]


def request_json(
    method: str,
    url: str,
    payload: Any = None,
    *,
    timeout: float,
    secrets: Iterable[str] = (),
    headers: dict[str, str] | None = None,
    now: Callable[[], float] = time.time,
    max_body: int = 64 * 1024,
) -> tuple[DeliveryResult, bytes]:
    """``method`` ``url`` with ``payload`` as JSON (None: no body); the outcome and the
    response body (at most ``max_body`` bytes; empty on a failure to connect).  Never
    raises for delivery problems."""
    scrub = Scrubber(url, secrets)
    where = redact_url(url)
    body = None if payload is None else (
        payload if isinstance(payload, bytes) else orjson.dumps(payload))
    target, auth = split_credentials(url)
    all_headers = {"User-Agent": USER_AGENT, **auth, **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(target, data=body, method=method, headers=all_headers)
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            data = resp.read(max_body)
            retry_after = resp.headers.get("Retry-After")
            return classify(resp.status, data, retry_after, where, scrub, now), data
    except urllib.error.HTTPError as err:
        with err:
            try:
                data = err.read(max_body)
            except (OSError, http.client.HTTPException):
                data = b""
            retry_after = err.headers.get("Retry-After") if err.headers else None
            return classify(err.code, data, retry_after, where, scrub, now), data
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            return _timed_out(where, timeout), b""
        return DeliveryResult(
            ok=False, retriable=True, error=f"cannot reach {where}: {scrub(str(err.reason))}"
        ), b""
    except TimeoutError:
        return _timed_out(where, timeout), b""
    except (OSError, http.client.HTTPException) as err:
        reason = f"{type(err).__name__}: {scrub(str(err))}"
        return DeliveryResult(
            ok=False, retriable=True, error=f"cannot reach {where}: {reason}"), b""
    except ValueError as err:  # malformed URL: a configuration problem, retrying cannot help
        return DeliveryResult(
            ok=False, retriable=False, error=f"invalid URL {where}: {scrub(str(err))}"
        ), b""


def _timed_out(where: str, timeout: float) -> DeliveryResult:
    return DeliveryResult(ok=False, retriable=True, error=f"timed out after {timeout:g}s: {where}")
