"""The scenario matrix (tests/scenarios/cases.py) against the whole pipeline.

The CI subset is a covering design: every fault kind, every segment layout,
every label mode, every overlapping pair, abrupt and gradual, and null
streams; each case replayed at three chunk sizes.  The rest of the matrix is
``scenarios_long`` (deselected by default; ``python -m pytest -m
scenarios_long tests/scenarios`` or ``python benchmarks/scenarios.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios.cases import Case, full_matrix, null, pair, single
from tests.scenarios.judge import run_case


def _ci() -> list[Case]:
    spec = [
        ("data_drift", "3hosts", "ontime", False),
        ("data_drift", "12hosts", "none", True),
        ("output_drift", "2regions", "ontime", True),
        ("concept_drift", "none", "ontime", False),
        ("concept_drift", "2regions", "delayed", True),
        ("latency", "none", "none", False),
        ("latency", "12hosts", "ontime", True),
        ("errors", "3hosts", "none", True),
        ("dead_feed", "12hosts", "ontime", False),
        ("rename", "2regions", "none", False),
        ("retype", "none", "ontime", False),
        ("nulls", "3hosts", "ontime", True),
        ("stuck", "12hosts", "none", False),
        ("host_drift", "3hosts", "none", False),
        ("host_drift", "2regions", "ontime", True),
        ("label_stop", "12hosts", "ontime", False),
    ]
    pairs = [
        ("drift+slow", "2regions", "ontime", False),
        ("hostbreak+drift", "3hosts", "none", False),
        ("hostnulls+drift", "12hosts", "ontime", True),
        ("errors+output", "none", "none", True),
        ("replica+drift", "12hosts", "none", False),
        ("concept+slow", "3hosts", "ontime", True),
        ("rename+output", "none", "ontime", False),
    ]
    out = [single(*s) for s in spec] + [pair(*p) for p in pairs]
    out += [null("none", "none"), null("3hosts", "ontime"), null("12hosts", "none"),
            null("2regions", "ontime")]
    assert all(c is not None for c in out)
    return out  # type: ignore[return-value]


CI = _ci()
LONG = [c for c in full_matrix() if c.name not in {x.name for x in CI}]


def _check(case: Case, tmp_path: Path) -> None:
    v = run_case(case, tmp_path)
    detail = "\n  ".join(v.reasons() + ["alerts: " + "; ".join(v.alerts)])
    assert v.passed, f"{case.name}:\n  {detail}"


def test_ci_subset_covers_the_matrix() -> None:
    from tests.scenarios.cases import PAIRS
    from tests.scenarios.streams import FAULT_KINDS, LABEL_MODES, LAYOUTS
    kinds = {f.kind for c in CI for f in c.faults}
    assert kinds == set(FAULT_KINDS)
    assert {c.layout for c in CI} == set(LAYOUTS)
    assert {c.labels for c in CI} == set(LABEL_MODES)
    assert {c.mode for c in CI} == {"null", "abrupt", "gradual"}
    assert sum(len(c.faults) == 2 for c in CI) == len(PAIRS)
    assert len({c.name for c in full_matrix()}) == len(full_matrix())


# CI cases the product does not pass yet (issue 24 stays open): listed by name, judged
# by benchmarks/scenarios.py --ci (RESULTS_scenarios.md gives each one's reason); a case
# fixed leaves this set and joins the suite
OPEN: set[str] = set()


@pytest.mark.parametrize("case", [c for c in CI if c.name not in OPEN], ids=lambda c: c.name)
def test_scenario(case: Case, tmp_path: Path) -> None:
    _check(case, tmp_path)


def test_open_cases_are_ci_cases() -> None:
    assert {c.name for c in CI} >= OPEN


@pytest.mark.scenarios_long
@pytest.mark.parametrize("case", LONG, ids=lambda c: c.name)
def test_scenario_long(case: Case, tmp_path: Path) -> None:
    _check(case, tmp_path)
