"""Where the CUSUM bank's delay goes against ADWIN on small mean shifts, and what budget buys.

    # ~1 min
    python benchmarks/research/gap_budget.py --out benchmarks/research/RESULTS_gap_budget.md

Four feature rows of ``RESULTS.md`` trail River's ADWIN by 1-5 %: +0.1 and +0.25 sd
abrupt, +0.25 and +1 sd over a 5,000-event ramp.  The bank pays for three things
ADWIN does not, or not in the same way:

- its feature key's rate (0.044 false alarms per million, the share of ``x0`` at the
  calibrated alpha) against ADWIN's own spend on the stream (0.056,
  ``RESULTS_shift_sweep.md``);
- that rate split over four reference values (shares in proportion to ``1/k``),
  where ADWIN's one test covers every scale;
- a centre known only to ``1/sqrt(n)`` of its baseline, paid for in threshold
  (``detectors.cusum``), where ADWIN pays in the variance of a two-sample mean.

Columns, on the ``x0`` of ``detection_quality.py`` (seeds 0-99 are those of
``RESULTS.md``; the same values as ``scan_power.py``):

- the daemon's bank at the key's rate and at ``--multiples`` of it: what moving
  budget to the feature keys from the rest of the model (the performance family's
  labelled pairs, the windows) could buy at most;
- the bank with its centre known (the raw N(0, 1) values, no baseline, sigma 0): the
  cost of the split alone;
- one two-sided CUSUM pair tuned to the shift (``k`` = half of it), centre known, the
  whole key's rate: the oracle the split and the centre are measured against
  (abrupt shifts only: no single ``k`` is tuned to a ramp);
- River ADWIN at delta 3e-4 (``RESULTS.md``'s "ADWIN (0/1 as is)").
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

from detection_quality import paired  # noqa: E402
from scan_power import (  # noqa: E402
    AFTER,
    CHANGE,
    REFERENCE,
    SCENARIOS,
    adwin_first,
    bank_first,
    feature,
    publish,
    shift_label,
)

from detectors.cusum import CusumBank, normal_scores  # noqa: E402
from monitor.sequential import K_WEIGHTS, KS  # noqa: E402

ROWS = [s for s in SCENARIOS if s in ((0.1, 0), (0.25, 0), (0.25, 5_000), (1.0, 5_000))]


def known_first(x: np.ndarray, ks: tuple[float, ...], weights: tuple[float, ...],
                rate: float) -> int | None:
    """The first alarm at or after the change of a two-sided bank on ``x`` itself (its
    centre, 0, known: sigma 0, never re-centred), the reference's events skipped."""
    bank = CusumBank(1, ks, 2 * len(ks) / rate, [0], [0.0], weights)
    rows = (h.row + REFERENCE for h in bank.update(x[REFERENCE:, None]))
    return next((r for r in rows if r >= CHANGE), None)


def ratio_cell(d: np.ndarray, adwin: np.ndarray) -> str:
    """Median delay, its ratio to ADWIN's and that ratio's paired 90 % interval, and the
    misses if any ("—": no such detector for the scenario, all nan)."""
    if np.isnan(d).all():
        return "—"
    _, lo, hi = paired(d.tolist(), adwin.tolist())
    missed = int(np.isinf(d).sum())
    return (f"{np.median(d):,.0f} ({np.median(d) / np.median(adwin):.3f}, {lo:.2f}–{hi:.2f})"
            + (f" [{missed} missed]" if missed else ""))


def ratio_table(cols: list[str], got: dict[tuple[float, int], np.ndarray]) -> list[str]:
    """A table of delays per scenario (seeds x columns, ADWIN's last) against ADWIN's:
    one :func:`ratio_cell` per column of ``cols``, then ADWIN's median."""
    out = ["| shift | " + " | ".join(cols) + " | River ADWIN 3e-4 |",
           "|---|" + "---:|" * (len(cols) + 1)]
    for (size, ramp), d in got.items():
        out.append(f"| {shift_label(size, ramp)} | "
                   + " | ".join(ratio_cell(d[:, i], d[:, -1]) for i in range(len(cols)))
                   + f" | {np.median(d[:, -1]):,.0f} |")
    return out


def _delays(task: tuple[int, float, int, tuple[float, ...]]) -> list[float]:
    seed, size, ramp, rates = task
    x = feature(seed, CHANGE + AFTER, size, ramp)
    z = normal_scores(np.sort(x[:REFERENCE]), x)[REFERENCE:]
    def delay(first: int | None) -> float:
        return math.inf if first is None else first - CHANGE

    start = CHANGE - REFERENCE
    out = [delay(None if f is None else f + REFERENCE)
           for f in (bank_first(z, KS, r, start) for r in rates)]
    out.append(delay(known_first(x, KS, K_WEIGHTS, rates[0])))
    # no single k is tuned to a ramp: no oracle there
    out.append(math.nan if ramp else delay(known_first(x, (size / 2,), (1.0,), rates[0])))
    return [*out, delay(adwin_first(x))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=0.044,
                    help="the feature's key: false alarms per million events")
    ap.add_argument("--multiples", type=float, nargs="+", default=[1.5, 2.0, 2.5, 3.0],
                    help="the bank again at these multiples of --rate")
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rates = tuple(a.rate * m / 1e6 for m in (1.0, *a.multiples))
    with Pool(a.jobs) as pool:
        got = {row: np.asarray(pool.map(_delays, [(s, *row, rates) for s in range(a.seeds)]))
               for row in ROWS}
    cols = [f"daemon bank, {a.rate:g}/M", *(f"bank, ×{m:g}" for m in a.multiples),
            "bank, centre known", "one tuned pair, centre known"]
    lines = [
        "# The bank's gap to ADWIN on small mean shifts: budget, split and centre",
        "",
        f"Generated by `python benchmarks/research/gap_budget.py --out benchmarks/"
        f"RESULTS_gap_budget.md` (seeds 0-{a.seeds - 1} of `x0`, the first 100 those of "
        f"RESULTS.md; change at event {CHANGE:,}, the first {REFERENCE:,} the reference; "
        f"missed = no alarm within {AFTER:,} events, counted as never; "
        f"{time.perf_counter() - t0:.0f} s).",
        "",
        "Median delay in events; in brackets the ratio to ADWIN's median (below 1: "
        "faster) and its 90 % interval, the seeds resampled in pairs:",
        "",
        *ratio_table(cols, got),
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
