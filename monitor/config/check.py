"""Building blocks of config validation: problems, tables, value rules, durations.

A rule is a function ``value -> converted value`` that raises :class:`Bad`
with the rule's text (``must be an integer >= 50``).  A :class:`Table` reads
one TOML table key by key, turns each ``Bad`` into a problem naming the key
path, the rule and the value, and refuses the keys nobody asked for.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from alerts.matchers import Matcher
from alerts.redact import strip_credentials

Rule = Callable[[Any], Any]
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DURATION_HINT = 'a duration like "250ms", "30s", "5m", "1h30m" or a number of seconds'


class Bad(ValueError):
    """A value broke a rule; ``show_value=False`` keeps a secret out of the message."""

    def __init__(self, rule: str, *, show_value: bool = True) -> None:
        super().__init__(rule)
        self.rule = rule
        self.show_value = show_value


class Problems:
    """Errors and warnings collected in one pass."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: str, rule: str, value: Any = ..., *, show_value: bool = True) -> None:
        got = f" (got {show(value)})" if value is not ... and show_value else ""
        self.errors.append(f"{path}: {rule}{got}")

    def warn(self, path: str, text: str) -> None:
        self.warnings.append(f"{path}: {text}")


def show(value: Any) -> str:
    """A value as TOML would spell it, shortened: ``"number"``, ``10``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # a URL's user:password@ is never shown
        text = json.dumps(strip_credentials(value), ensure_ascii=False)
    elif isinstance(value, dict):
        return "a table"
    elif isinstance(value, list):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def key_path(parent: str, key: str) -> str:
    name = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return f"{parent}.{name}" if parent else name


class Table:
    """One TOML table being read; every ``take`` consumes a key."""

    def __init__(self, data: dict[str, Any], path: str, problems: Problems) -> None:
        self.data = dict(data)
        self.path = path
        self.problems = problems

    @classmethod
    def of(cls, value: Any, path: str, problems: Problems) -> Table | None:
        """The table at ``path``, or None (reported) if the value is not a table."""
        if isinstance(value, dict):
            return cls(value, path, problems)
        problems.error(path, "must be a table", value)
        return None

    def at(self, key: str) -> str:
        return key_path(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def take(self, key: str, rule: Rule, default: Any = None) -> Any:
        """The checked value of ``key``; ``default`` if absent or invalid (reported)."""
        if key not in self.data:
            return default
        value = self.data.pop(key)
        try:
            return rule(value)
        except Bad as bad:
            self.problems.error(self.at(key), bad.rule, value, show_value=bad.show_value)
            return default

    def take_list(
        self,
        key: str,
        item: Rule,
        what: str,
        default: Any = None,
        *,
        allow_one: bool = False,
        distinct: bool = True,
    ) -> Any:
        """A list checked item by item (``key[i]`` in messages); a tuple, or ``default``."""
        if key not in self.data:
            return default
        value = self.data.pop(key)
        if allow_one and not isinstance(value, list):
            value = [value]
        if not isinstance(value, list):
            self.problems.error(self.at(key), f"must be a list of {what}", value)
            return default
        out, ok = [], True
        for i, v in enumerate(value):
            try:
                out.append(item(v))
            except Bad as bad:
                self.problems.error(f"{self.at(key)}[{i}]", bad.rule, v, show_value=bad.show_value)
                ok = False
        dupes = [v for i, v in enumerate(out) if v in out[:i]]
        if distinct and dupes:
            self.problems.error(self.at(key), f"must not repeat {show(dupes[0])}", value)
            ok = False
        return tuple(out) if ok else default

    def raw(self, key: str) -> Any:
        return self.data.pop(key, None)

    def finish(self, hints: dict[str, str] | None = None) -> None:
        """Refuse every key not taken; ``hints`` gives a better rule for known ones."""
        for key in self.data:
            rule = (hints or {}).get(key, "unknown key")
            self.problems.error(self.at(key), rule)
        self.data.clear()


# -- rules -----------------------------------------------------------------


def _bounds(gt: float | None, ge: float | None, lt: float | None, le: float | None) -> str:
    pairs = ((">", gt), (">=", ge), ("<", lt), ("<=", le))
    kept = [f"{op} {_num(b)}" for op, b in pairs if b is not None]
    return (" " + " and ".join(kept)) if kept else ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _in_bounds(x: float, gt: Any, ge: Any, lt: Any, le: Any) -> bool:
    return not (
        (gt is not None and not x > gt)
        or (ge is not None and not x >= ge)
        or (lt is not None and not x < lt)
        or (le is not None and not x <= le)
    )


def integer(*, ge: int | None = None, le: int | None = None) -> Rule:
    rule = "must be an integer" + _bounds(None, ge, None, le)

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not _in_bounds(v, None, ge, None, le):
            raise Bad(rule)
        return v

    return check


def number(
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Rule:
    rule = "must be a number" + _bounds(gt, ge, lt, le)

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise Bad(rule)
        if not _in_bounds(v, gt, ge, lt, le):
            raise Bad(rule)
        return float(v)

    return check


def string(
    *,
    choices: Iterable[str] | None = None,
    pattern: re.Pattern[str] | None = None,
    what: str = "a non-empty string",
) -> Rule:
    options = tuple(choices) if choices is not None else None
    rule = f"must be one of {', '.join(options)}" if options else f"must be {what}"

    def check(v: Any) -> str:
        ok = isinstance(v, str) and v != ""
        if ok and options is not None:
            ok = v in options
        if ok and pattern is not None:
            ok = pattern.fullmatch(v) is not None
        if not ok:
            raise Bad(rule)
        return v

    return check


def choice_list(choices: Iterable[str]) -> Rule:
    """A non-empty list of distinct names out of ``choices``."""
    options = tuple(choices)
    rule = f"must be a non-empty list of distinct names out of {', '.join(options)}"

    def check(v: Any) -> tuple[str, ...]:
        if (not isinstance(v, list) or not v or any(x not in options for x in v)
                or len(set(v)) != len(v)):
            raise Bad(rule)
        return tuple(v)

    return check


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Bad("must be true or false")
    return v


def parse_duration(value: Any) -> float:
    """Seconds from ``"250ms"``, ``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``, ``"1h30m"`` or a number.

    Units go from largest to smallest, each at most once (as in Prometheus).
    Raises :class:`Bad` (a ValueError) otherwise.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise Bad(f"must be {DURATION_HINT}")
        return float(value)
    if not isinstance(value, str):
        raise Bad(f"must be {DURATION_HINT}")
    text, total, pos, last = value.strip(), 0.0, 0, math.inf
    for m in _DURATION_PART.finditer(text):
        unit = _UNIT_SECONDS[m.group(2)]
        if m.start() != pos or unit >= last:
            break
        total, pos, last = total + float(m.group(1)) * unit, m.end(), unit
    if pos == 0 or pos != len(text):
        raise Bad(f"must be {DURATION_HINT}")
    return total


def duration(*, gt: float | None = None, ge: float | None = None) -> Rule:
    rule = "must be a duration" + _bounds(gt, ge, None, None)

    def check(v: Any) -> float:
        seconds = parse_duration(v)
        if not _in_bounds(seconds, gt, ge, None, None):
            raise Bad(rule)
        return seconds

    return check


def label_name(v: Any) -> str:
    if not isinstance(v, str) or not LABEL_NAME.fullmatch(v):
        raise Bad("must be a label name (letters, digits and _, not starting with a digit)")
    return v


def matcher(text: Any) -> str:
    """A matcher string, parsed by :meth:`Matcher.parse` (whose message quotes it)."""
    if not isinstance(text, str):
        raise Bad("must be a matcher string like 'team=\"data-science\"'")
    try:
        Matcher.parse(text)
    except ValueError as exc:
        raise Bad(str(exc), show_value=False) from None
    return text
