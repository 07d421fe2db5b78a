"""Alertmanager-style label matchers: ``name="value"``, ``!=``, ``=~``, ``!~``.

Regexes are anchored at both ends, as in Alertmanager.  A label that is
absent matches as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_MATCHER = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*
        (?P<op>=~|!~|!=|=)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|[^"\s]*)\s*$""",
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


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


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

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
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"matcher {text!r} has an invalid regex: {exc}") from None
        return cls(m.group("name"), op, value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def parse_all(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(t) for t in texts)


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
