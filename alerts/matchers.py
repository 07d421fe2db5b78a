"""Alertmanager-style label matchers: ``name="value"``, ``!=``, ``=~``, ``!~``.

Regexes are anchored at both ends, as in Alertmanager, and run on RE2
(``google-re2``), as Alertmanager's Go regexps do: matching is linear in the
label's length whatever the pattern, so a silence or a route cannot stall the
alert path with catastrophic backtracking (``(.|.|.|.)*X``).  Patterns RE2
does not accept (backreferences, lookaround) are refused when parsed.  A label
that is absent matches as the empty string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

_MATCHER = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*
        (?P<op>=~|!~|!=|=)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|[^"\s]*)\s*$""",
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the ValueError says it; no stray line on stderr


@functools.lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> Any:
    """``pattern`` anchored at both ends, compiled by RE2; ValueError says why it cannot be."""
    try:
        re2.compile(pattern, _RE2_OPTIONS)  # alone first: an error quotes what was written
        return re2.compile(f"^(?:{pattern})$", _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise ValueError(f"{text} (RE2 syntax: no backreferences or lookaround)") from None


def _unquote(text: str, source: str) -> str:
    if not text.startswith('"'):
        return text
    out: list[str] = []
    body = iter(text[1:-1])
    for ch in body:
        if ch == "\\":
            esc = next(body, "")
            if esc not in _ESCAPES:
                raise ValueError(f"bad escape \\{esc} in matcher {source!r}")
            out.append(_ESCAPES[esc])
        else:
            out.append(ch)
    return "".join(out)


# The same (pattern, label value) pairs come back on every alert: remembering the answer
# makes a match ~0.3 us instead of RE2's ~10 us per call from Python (benchmarks/
# matcher_speed.py).  Bounded in entries and in the length of what is kept.
_CACHED_CHARS = 256


@functools.lru_cache(maxsize=65_536)
def _hit(pattern: str, value: str) -> bool:
    return compile_regex(pattern).search(value) is not None


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str
    _regex: Any = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", compile_regex(self.value))

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``name="value"``; ValueError names the text and the rule broken."""
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(
                f"matcher {text!r} is not of the form name=\"value\" "
                "(operators =, !=, =~, !~)"
            )
        value = _unquote(m.group("value"), text)
        op = m.group("op")
        try:
            return cls(m.group("name"), op, value)
        except ValueError as exc:
            raise ValueError(f"matcher {text!r} has an invalid regex: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = (_hit(self.value, actual) if len(actual) <= _CACHED_CHARS
               else self._regex.search(actual) is not None)
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def parse_all(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(t) for t in texts)


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
