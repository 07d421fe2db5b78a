"""Matcher cost: RE2 (what alerts/matchers.py runs) against Python's backtracking ``re``
(what it ran before issue 27), side by side in one run.

Typical patterns (route and silence matchers as people write them) show what the
linear-time guarantee costs on the everyday path; pathological ones show what it
buys.  The baseline is the old code's call, ``re.fullmatch(pattern, value)``.
"RE2 new value" is a label value seen for the first time (RE2 from Python, ~10 us);
"RE2 seen value" one met before (the matcher's bounded cache), the usual case on
the alert path, where the same models and teams come back.
Run: ``python benchmarks/matcher_speed.py [--label-chars 11]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.matchers import Matcher, compile_regex  # noqa: E402

TYPICAL = [
    ("churn.*", "churn-eu-v3"),
    ("latency_.*|error_rate", "error_rate"),
    ("data_quality|schema_violation", "data_drift"),
    ("(?i)ml-eng.*", "ML-engineering"),
    (".+", "x"),
]
PATHOLOGICAL = ["(.|.|.|.)*X", "(.|.|.|.|.)*X", "(a|aa)*c"]


def per_call(fn: object, budget: float = 0.3) -> float:
    """Seconds per call, timed over at least ``budget`` seconds (at least one call)."""
    calls, started = 0, time.perf_counter()
    while True:
        fn()  # type: ignore[operator]
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return elapsed / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--label-chars", type=int, default=11,
                    help="length of the label the pathological patterns see (the old code "
                         "takes 4-5x longer per extra character on (.|.|.|.)*X)")
    args = ap.parse_args()
    print(f"{'pattern':30} {'label':>15} {'re s/call':>10} {'RE2 new value':>14} "
          f"{'ratio':>8} {'RE2 seen value':>15} {'ratio':>8}")
    for pattern, value in TYPICAL + [(p, "a" * args.label_chars) for p in PATHOLOGICAL]:
        new = Matcher("team", "=~", pattern)
        regex = compile_regex(pattern)
        labels = {"team": value}
        t_old = per_call(lambda p=pattern, v=value: re.fullmatch(p, v))
        t_first = per_call(lambda r=regex, v=value: r.search(v))  # what a cache miss costs
        t_seen = per_call(lambda m=new, lab=labels: m.matches(lab))
        shown = value if len(value) <= 15 else f"{value[:5]}…({len(value)})"
        print(f"{pattern:30} {shown:>15} {t_old:10.2e} {t_first:14.2e} {t_first / t_old:8.3g} "
              f"{t_seen:15.2e} {t_seen / t_old:8.3g}")


if __name__ == "__main__":
    main()
