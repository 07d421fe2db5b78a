"""Matcher parse and match tables (Alertmanager's matcher semantics)."""

from __future__ import annotations

import time

import pytest

from alerts.matchers import Matcher, match_all, parse_all


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('team="data-science"', "team", "=", "data-science"),
        ('model!="churn"', "model", "!=", "churn"),
        ('model=~"churn.*"', "model", "=~", "churn.*"),
        ('kind!~"latency_.*|error_rate"', "kind", "!~", "latency_.*|error_rate"),
        ("severity=critical", "severity", "=", "critical"),  # unquoted value
        ('  team =  "x"  ', "team", "=", "x"),  # surrounding blanks
        ('feature=""', "feature", "=", ""),  # empty value
        (r'summary="say \"hi\"\n"', "summary", "=", 'say "hi"\n'),  # escapes
        ('_private="1"', "_private", "=", "1"),
    ],
)
def test_parse_valid(text: str, name: str, op: str, value: str) -> None:
    m = Matcher.parse(text)
    assert (m.name, m.op, m.value) == (name, op, value)
    assert Matcher.parse(str(m)) == m  # str() round-trips


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("team", "is not of the form"),
        ('="x"', "is not of the form"),
        ('1team="x"', "is not of the form"),
        ('team=="x"', "is not of the form"),
        ('team="x" model="y"', "is not of the form"),
        ('team="unterminated', "is not of the form"),
        ('model=~"("', "invalid regex"),
        (r'team="bad \q escape"', "bad escape"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        Matcher.parse(text)
    assert repr(text) in str(exc.value)  # the error quotes what was given


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('team="data-science"', {"team": "data-science"}, True),
        ('team="data-science"', {"team": "data-science-2"}, False),
        ('team!="data-science"', {"team": "ml-engineering"}, True),
        ('team!="data-science"', {}, True),
        # regexes are anchored at both ends
        ('model=~"churn"', {"model": "churn"}, True),
        ('model=~"churn"', {"model": "churn-eu"}, False),
        ('model=~"churn"', {"model": "old-churn"}, False),
        ('model=~"churn.*"', {"model": "churn-eu"}, True),
        ('model=~"a|b"', {"model": "a"}, True),
        ('model=~"a|b"', {"model": "ab"}, False),
        ('model!~"churn.*"', {"model": "fraud"}, True),
        ('model!~"churn.*"', {"model": "churn-eu"}, False),
        # a missing label matches as ""
        ('feature=""', {}, True),
        ('feature=""', {"feature": "age"}, False),
        ('feature!=""', {}, False),
        ('feature=~".*"', {}, True),
        ('feature=~".+"', {}, False),
        ('feature!~".+"', {}, True),
    ],
)
def test_match(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


def test_match_all_needs_every_matcher() -> None:
    ms = parse_all(['team="data-science"', 'model=~"churn|fraud"'])
    assert match_all(ms, {"team": "data-science", "model": "fraud"})
    assert not match_all(ms, {"team": "data-science", "model": "eta"})
    assert match_all((), {"anything": "x"})


@pytest.mark.parametrize("pattern", ["(.|.|.|.)*X", "(.|.|.|.|.)*X", "(a|aa)*c", "(x+x+)+y"])
def test_pathological_regex_costs_milliseconds(pattern: str) -> None:
    """Issue 27: with backtracking ``re``, ``team=~"(.|.|.|.)*X"`` took 0.74 s to match an
    11-character label (11 s with five branches), under the dispatcher's lock; each extra
    character multiplies that by 4 (5).  RE2 is linear in the label: milliseconds for the
    issue's label, and for a 5,000-character one."""
    m = Matcher.parse(f'team=~"{pattern}"')
    started = time.perf_counter()
    assert not m.matches({"team": "a" * 11})
    assert time.perf_counter() - started < 0.05
    started = time.perf_counter()
    for _ in range(20):
        assert not m.matches({"team": "a" * 5_000})
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (r'model=~"(churn)\\1"', "invalid escape"),  # a backreference
        ('model=~"(?=churn).*"', "invalid perl operator"),  # lookahead
        ('model=~"(?<!a)b"', "invalid"),  # lookbehind
    ],
)
def test_patterns_re2_cannot_run_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as exc:
        Matcher.parse(text)
    assert repr(text) in str(exc.value) and "invalid regex" in str(exc.value)


def test_regex_is_anchored_at_end_of_text_not_before_a_newline() -> None:
    # Python's `$` also matches before a final "\n"; Go/RE2's does not, nor does fullmatch.
    assert not Matcher.parse('model=~"churn"').matches({"model": "churn\n"})
    assert Matcher.parse('model=~"(?s)churn.*"').matches({"model": "churn\nx"})
