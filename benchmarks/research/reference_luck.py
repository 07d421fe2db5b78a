"""How much a stationary stream's false alarms rest on the luck of its reference.

    python benchmarks/research/reference_luck.py misclassification   # ~10 s on two cores
    python benchmarks/research/reference_luck.py chi2                # ~15 s

Every window test compares windows with one reference, and every CUSUM's
in-control rate starts from it, so a stream's false alarms are correlated
through that one draw: the rate averaged over references can keep the budget
while the odd reference pages far more often.  Each mode draws many
independent references and reports the false-alarm rate over them, against
the nominal one.

- ``misclassification``: the performance watch's Bernoulli CUSUM on "this
  labelled prediction was wrong", alone (``detectors.bernoulli.BernoulliBank``
  with ``monitor.performance_watch``'s parameters and baseline growth: a
  2,500-pair reference at a 10 % error rate, 1,000-pair windows joining the
  baseline when no alarm fell in them), 40 streams of 3,000,000 pairs.
- ``chi2``: ``detectors.categorical.chi2_test``'s statistic (vectorised here,
  checked against the function on the first window) and effect floor on
  the ``detection_quality.py`` categorical feature (shares 0.4/0.3/0.2/0.1), a
  5,000-value reference against 200,000 stationary 2,000-value windows, 200
  references; the level is alpha 1e-3 shared by 16 tests.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

from detectors.categorical import chi2_test  # noqa: E402
from monitor.performance_watch import error_bank, grow_error_baseline  # noqa: E402

WRONG, REF_PAIRS, WINDOW_PAIRS, SPAN = 0.10, 2_500, 1_000, 2_000
CAT_P = np.array([0.4, 0.3, 0.2, 0.1])
CAT_REF, CAT_WINDOW, FLOOR = 5_000, 2_000, 0.05


def misclassification_alarms(task: tuple[int, float, int]) -> int:
    seed, alpha, pairs = task
    rng = np.random.default_rng(seed)
    ref = rng.random(REF_PAIRS) < WRONG
    base, alarms = [float(ref.sum()), float(REF_PAIRS)], 0
    bank = error_bank(base, SPAN, alpha)
    assert bank is not None
    for _ in range(pairs // WINDOW_PAIRS):
        x = (rng.random(WINDOW_PAIRS) < WRONG).astype(float)
        found = bank.update(x[:, None])
        alarms += len(found)
        if not found:
            base = grow_error_baseline(bank, base, x, REF_PAIRS)
    return alarms


def misclassification(alpha: float, streams: int, pairs: int) -> str:
    with mp.get_context("fork").Pool() as pool:
        counts = pool.map(misclassification_alarms, [(s, alpha, pairs) for s in range(streams)])
    total = streams * pairs
    return (f"misclassification CUSUM at alpha {alpha:g}: {sum(counts)} alarms on {streams} x "
            f"{pairs:,} pairs = {sum(counts) / total * 1e6:.2f} per million (nominal "
            f"{alpha / SPAN * 1e6:.2f}); streams alarming {sum(1 for c in counts if c)}, "
            f"most on one stream {max(counts)}")


def chi2(alpha: float, references: int, windows: int) -> str:
    rng = np.random.default_rng(5)
    level = alpha / 16
    crit = stats.chi2.isf(level, CAT_P.size - 1)
    rates = np.empty(references)
    for r in range(references):
        rc = rng.multinomial(CAT_REF, CAT_P).astype(float)
        cc = rng.multinomial(CAT_WINDOW, CAT_P, size=windows).astype(float)
        tot = rc + cc
        er, ec = tot * CAT_REF / (CAT_REF + CAT_WINDOW), tot * CAT_WINDOW / (CAT_REF + CAT_WINDOW)
        stat = ((rc - er) ** 2 / er + (cc - ec) ** 2 / ec).sum(axis=1)
        tv = 0.5 * np.abs(rc / CAT_REF - cc / CAT_WINDOW).sum(axis=1)
        rates[r] = np.mean((stat > crit) & (tv >= FLOOR))
        if r == 0:  # the vectorised statistic is chi2_test's (no category is rare here)
            values = np.repeat(np.array(["a", "b", "c", "d"], dtype=object), rc.astype(int))
            window = np.repeat(np.array(["a", "b", "c", "d"], dtype=object), cc[0].astype(int))
            assert math.isclose(chi2_test(values, window).statistic, stat[0], rel_tol=1e-9)
    return (f"chi2 windows at {level:.3g} a test: {rates.mean() / level:.2f}x nominal on average "
            f"over {references} references, {np.quantile(rates, 0.9) / level:.2f}x at the 90th "
            f"percentile, {rates.max() / level:.2f}x at the worst")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["misclassification", "chi2"])
    ap.add_argument("--alpha", type=float, default=1e-3)
    args = ap.parse_args()
    if args.mode == "misclassification":
        print(misclassification(args.alpha, 40, 3_000_000))
    else:
        print(chi2(args.alpha, 200, 200_000))


if __name__ == "__main__":
    main()
