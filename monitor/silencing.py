"""Silences for people: the HTTP API and the ``driftwatch silence`` commands.

Both write to the store, so every daemon sharing the database honours a new
silence within the silencer's cache time (a few seconds), and the instance
that took an HTTP request at once.  Request bodies follow Alertmanager's v2
silence shape where it matters: ``matchers`` (here as ``name="value"``
strings), ``startsAt``/``endsAt`` (RFC 3339) or a ``duration`` (``"2h"``),
``createdBy``, ``comment``.

Every change (create, expire) writes one audit line on the ``driftwatch.audit``
logger: the action, the silence id and matchers, the author it names
(``createdBy``), the authenticated user (empty when ``[http]`` has no auth) and
the remote address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from alerts.silences import Silence, Silencer, new_silence
from monitor.config.check import parse_duration
from monitor.store import Store
from monitor.webauth import Caller

audit = logging.getLogger("driftwatch.audit")
LOCAL = Caller("", "")  # a call from inside the process (tests)


def _epoch(text: Any, field: str) -> float:
    if not isinstance(text, str):
        raise ValueError(f"{field} must be an RFC 3339 time, got {text!r}")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"{field} must be an RFC 3339 time, got {text!r}") from None


def silence_from_request(body: dict[str, Any], now: float) -> Silence:
    """A validated silence from an API body; ValueError names the field and the value."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    matchers = body.get("matchers")
    if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
        raise ValueError(f'matchers must be a list of strings like \'model="churn"\', '
                         f"got {matchers!r}")
    starts = _epoch(body["startsAt"], "startsAt") if "startsAt" in body else now
    if "endsAt" in body:
        ends = _epoch(body["endsAt"], "endsAt")
    elif "duration" in body:
        ends = starts + parse_duration(body["duration"])
    else:
        raise ValueError("give endsAt (RFC 3339) or duration (e.g. \"2h\")")
    return new_silence(matchers, ends_at=ends, created_by=str(body.get("createdBy", "")),
                       comment=str(body.get("comment", "")), now=now, starts_at=starts)


class SilenceApi:
    """``/api/silences``: GET lists, POST creates, DELETE /{id} expires."""

    def __init__(self, store: Store, silencer: Silencer | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.silencer, self.clock = store, silencer, clock

    def __call__(self, method: str, tail: str, body: bytes,
                 caller: Caller = LOCAL) -> tuple[int, Any]:
        now = self.clock()
        if method == "GET" and not tail:
            return 200, [s.to_json(now) for s in self.store.silences()]
        if method == "POST" and not tail:
            try:
                silence = silence_from_request(orjson.loads(body or b"null"), now)
            except (ValueError, orjson.JSONDecodeError) as exc:
                return 400, {"error": str(exc)}
            self.store.put_silence(silence)
            self._refresh()
            _audit("silence created", silence, caller)
            return 200, {"silenceID": silence.id}
        if method == "DELETE" and tail:
            found = next((s for s in self.store.silences() if s.id == tail), None)
            if found is None or not self.store.expire_silence(tail, now):
                return 404, {"error": f"no active silence {tail!r}"}
            self._refresh()
            _audit("silence expired", found, caller)
            return 200, {"expired": tail}
        return 405, {"error": f"{method} /api/silences/{tail} is not supported"}

    def _refresh(self) -> None:
        if self.silencer is not None:
            self.silencer.refresh()


def _audit(event: str, silence: Silence, caller: Caller) -> None:
    audit.info(event, extra={
        "action": event.split()[-1], "silence_id": silence.id,
        "matchers": list(silence.matchers), "author": silence.created_by,
        "user": caller.user, "remote": caller.remote, "comment": silence.comment,
        "starts_at": silence.starts_at, "ends_at": silence.ends_at})


def format_silences(silences: Sequence[Silence], now: float) -> list[str]:
    """One line per silence, for ``driftwatch silence list``."""
    out = []
    for s in silences:
        j = s.to_json(now)
        out.append(f"{s.id}  {s.state(now):8} until {j['endsAt']}  {' '.join(s.matchers)}  "
                   f"by {s.created_by}: {s.comment}")
    return out
