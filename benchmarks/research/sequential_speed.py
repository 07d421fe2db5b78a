"""Per-event cost of the streaming detectors: ``update_many`` vs an element-wise
``update`` loop vs River's implementation of the same method, same stream, same run.

The stream is N(0, 1) with a 1 sigma mean shift every 100 000 events, so alarms (and
the post-alarm resets) are part of what is timed.  Run:
``python benchmarks/research/sequential_speed.py [--events 1000000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

from benchmarks.research.lib.sequential import ADWIN, PageHinkley, SequentialDetector  # noqa: E402


def make_stream(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n) + (np.arange(n) // 100_000) % 2


def best_of(repeat: int, fn: Callable[[], list[int]]) -> tuple[float, list[int]]:
    best, out = float("inf"), []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_many(make: Callable[[], SequentialDetector], xs: np.ndarray) -> list[int]:
    return make().update_many(xs).tolist()


def run_loop(make: Callable[[], SequentialDetector], values: list[float]) -> list[int]:
    update = make().update
    return [i for i, x in enumerate(values) if update(x)]


def run_river(make: Callable[[], object], values: list[float]) -> list[int]:
    det = make()
    out = []
    for i, x in enumerate(values):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    xs = make_stream(args.events)
    values = xs.tolist()
    try:
        from river import drift
    except ImportError:  # pragma: no cover - River is a test/benchmark-only dependency
        drift = None

    cases = [
        ("ADWIN(delta=0.002)", lambda: ADWIN(0.002),
         (lambda: drift.ADWIN(delta=0.002)) if drift else None),
        ("PageHinkley(alpha=1)", lambda: PageHinkley(alpha=1.0),
         (lambda: drift.PageHinkley(alpha=1.0)) if drift else None),
        ("PageHinkley(alpha=0.9999)", lambda: PageHinkley(alpha=1 - 1e-4),
         (lambda: drift.PageHinkley()) if drift else None),
    ]
    n = len(values)
    print(f"{n} events, best of {args.repeat}; microseconds per event")
    print(f"{'detector':28s} {'update_many':>11s} {'loop':>8s} {'river':>8s} "
          f"{'loop/many':>9s} {'river/many':>10s} {'alarms':>7s}")
    for label, ours, theirs in cases:
        t_many, a_many = best_of(args.repeat, lambda ours=ours: run_many(ours, xs))
        t_loop, a_loop = best_of(args.repeat, lambda ours=ours: run_loop(ours, values))
        if a_many != a_loop:
            raise SystemExit(f"{label}: update_many and update disagree")
        us_many, us_loop = t_many / n * 1e6, t_loop / n * 1e6
        if theirs is not None:
            t_river, a_river = best_of(args.repeat, lambda theirs=theirs: run_river(theirs, values))
            us_river, river_ratio = f"{t_river / n * 1e6:8.3f}", f"{t_river / t_many:10.2f}"
            same = "= river" if a_river == a_many else f"(river: {len(a_river)})"
        else:
            us_river, river_ratio, same = f"{'n/a':>8s}", f"{'n/a':>10s}", ""
        print(f"{label:28s} {us_many:11.3f} {us_loop:8.3f} {us_river} "
              f"{t_loop / t_many:9.2f} {river_ratio} {len(a_many):7d} {same}")

if __name__ == "__main__":
    main()
