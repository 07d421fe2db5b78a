"""The CUSUM bank against River's ADWIN on mean shifts between the bank's own sizes.

    # ~6 min
    python benchmarks/research/shift_sweep.py --out benchmarks/research/RESULTS_shift_sweep.md

``RESULTS.md`` shifts a feature by 0.1, 0.25, 0.5 and 1 sd: exactly the shifts the
daemon's CUSUMs are tuned to (k = 0.05, 0.125, 0.25, 0.5 catch 2k).  A shift in
between meets two mistuned CUSUMs.  A CUSUM with reference value ``k`` takes about
``log(A) / (2 k (mu - k))`` events to catch a shift ``mu``, against
``log(A) / (mu^2 / 2)`` for the one tuned to it, so between neighbours ``a`` and
``r a`` the worst shift is ``a (1 + r)``, which costs ``(1 + r)^2 / (4 r)``:
12.5 % for r = 2 (0.125 -> 0.25 -> 0.5) and 22.5 % at 0.175 sd for the r = 2.5
between 0.05 and 0.125.  This script measures it, on the ``x0`` of
``detection_quality.py`` (same seeds and values as ``scan_power.py``), abrupt
shifts at event 20,000, the bank exactly as the daemon runs it.  Columns:

- the daemon's bank at the feature's key rate (``--rate``, 0.044 per million);
- the same bank at River's own spend on this stream: ADWIN at delta 3e-4 (the
  setting ``RESULTS.md`` calibrates on the whole model) is run on
  ``--adwin-streams`` stationary streams of 1,000,000 events here, and its false
  alarms per million events are what the bank then gets -- the two detectors at
  the same budget on the one stream;
- two denser grids at the key rate, shares in proportion to 1/k as the daemon's:
  one more k (0.08) in the 2.5 gap, and six k spaced by ~1.6;
- River ADWIN at delta 3e-4.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

from river_spend import interval  # noqa: E402
from scan_power import (  # noqa: E402
    AFTER,
    CHANGE,
    REFERENCE,
    adwin_first,
    adwin_rows,
    bank_first,
    feature,
    publish,
)

from detectors.cusum import normal_scores  # noqa: E402
from monitor.sequential import KS  # noqa: E402

SHIFTS = (0.1, 0.13, 0.16, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.75, 1.0)
GRIDS = [("daemon", KS), ("+ k 0.08", (0.05, 0.08, 0.125, 0.25, 0.5)),
         ("six k", (0.05, 0.08, 0.125, 0.2, 0.32, 0.5))]
SPEND_EVENTS = 1_000_000


def adwin_alarms(seed: int) -> int:
    """ADWIN 3e-4's false alarms on one stationary stream (z-scored on its reference)."""
    x = feature(10**7 + seed, REFERENCE + SPEND_EVENTS)
    return sum(1 for i in adwin_rows(x) if i >= REFERENCE)


def _delays(task: tuple[int, float, float, float]) -> list[float]:
    seed, size, rate, adwin_rate = task
    x = feature(seed, CHANGE + AFTER, size)
    z = normal_scores(np.sort(x[:REFERENCE]), x)[REFERENCE:]
    start = CHANGE - REFERENCE
    firsts = [bank_first(z, KS, rate, start), bank_first(z, KS, adwin_rate, start)]
    firsts += [bank_first(z, ks, rate, start, tuple(1 / k for k in ks)) for _, ks in GRIDS[1:]]
    out = [math.inf if f is None else f + REFERENCE - CHANGE for f in firsts]
    first = adwin_first(x)
    return [*out, math.inf if first is None else first - CHANGE]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=0.044,
                    help="the feature's key: false alarms per million events")
    ap.add_argument("--adwin-streams", type=int, default=1_500,
                    help="stationary streams of 1,000,000 events for ADWIN's spend")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    t0 = time.perf_counter()
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    with Pool(a.jobs) as pool:
        alarms = int(sum(pool.map(adwin_alarms, range(a.adwin_streams))))
        millions = a.adwin_streams * SPEND_EVENTS / 1e6
        adwin_rate = alarms / millions
        rows: list[tuple[float, np.ndarray]] = []
        for size in SHIFTS:
            got = np.asarray(pool.map(_delays, [(s, size, a.rate / 1e6, adwin_rate / 1e6)
                                                for s in seeds]))
            rows.append((size, np.median(got, axis=0)))
    cols = [f"daemon bank, {a.rate:g}/M", f"daemon bank, {adwin_rate:.3f}/M (ADWIN's)",
            *(f"{name} {ks}, {a.rate:g}/M" for name, ks in GRIDS[1:]), "River ADWIN 3e-4"]
    ratios = np.asarray([med[:-1] / med[-1] for _, med in rows])
    off = np.asarray([s / 2 not in KS for s, _ in rows])

    def cell(m: float, r: float | None) -> str:
        return f"{m:,.0f}" + (f" ({r:.2f})" if r is not None else "")

    table = [f"| {s:g}σ | " + " | ".join(cell(m, r) for m, r in
                                        zip(med, [*(med[:-1] / med[-1]), None], strict=True))
             + " |" for s, med in rows]
    lines = [
        "# Mean shifts between the bank's sizes: the CUSUM bank against ADWIN",
        "",
        f"Generated by `python benchmarks/research/shift_sweep.py --out benchmarks/"
        f"RESULTS_shift_sweep.md` (seeds {seeds.start}-{seeds.stop - 1} of `x0`, the "
        f"first 100 those of RESULTS.md; abrupt shift at event {CHANGE:,}, the first "
        f"{REFERENCE:,} the reference; {time.perf_counter() - t0:.0f} s).",
        "",
        f"River ADWIN at delta 3e-4 on this stream alone: {alarms} false alarms on "
        f"{a.adwin_streams:,} stationary streams of {SPEND_EVENTS:,} events, "
        f"**{interval(alarms, millions * 1e6)}** per million (90 % Poisson interval in "
        f"brackets); the daemon's feature key spends {a.rate:g}.",
        "",
        "Median delay in events, in brackets the ratio to ADWIN's (below 1: faster):",
        "",
        "| shift | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
        *table,
        "| worst ratio, all shifts | " + " | ".join(f"{w:.3f}" for w in ratios.max(axis=0))
        + " | |",
        "| worst ratio, shifts off the daemon's 2k | "
        + " | ".join(f"{w:.3f}" for w in ratios[off].max(axis=0)) + " | |",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
