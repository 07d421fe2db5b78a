"""Would a two-window scan beat the CUSUM bank on small shifts, at one feature's budget?

    # ~5 min on 2 cores
    python benchmarks/research/scan_power.py --out benchmarks/research/RESULTS_scan.md

One numeric feature: the ``x0`` of ``detection_quality.py``, the same values for the
same seed (N(0, 1), the change at event 20,000, the first 5,000 the reference), so
the bank's and River's columns reproduce ``RESULTS.md``.  The feature's alert key
spends ``--rate`` false alarms per million events (0.044: the share of ``x0`` at the
calibrated alpha 7e-4, 8 keys; RESULTS_river_spend.md).  Four ways to spend it:

- bank: driftwatch's CUSUM bank as the daemon runs it (k = 0.05, 0.125, 0.25, 0.5,
  both directions, the rate shared in proportion to 1/k, on normal scores against
  the reference; thresholds for the reference's uncertain centre; re-centred on
  every quiet block of 2,000 scores);
- scan: :class:`benchmarks.research.lib.scan.MeanShiftScan` alone on the scores of every event
  (the reference's included, so it has the same history as River), the whole rate;
- scan + bank: the scan in place of the bank's k = 0.05 pair, at ``--scan-share`` of
  the rate, the other three pairs at the rest (shared among them as in the bank);
  the first of the two alarms;
- River ADWIN at delta 3e-4 on the feature z-scored on its reference, every event
  (``RESULTS.md``'s "ADWIN (0/1 as is)", which spends 0.042 per million on ``x0``).

The scan's thresholds are measured here: the quantile of its largest statistic over
``--streams`` stationary streams of 1,000,000 events, each with its own reference
(:func:`benchmarks.research.lib.scan.scan_statistics`, the numbers the detector's ``statistic``
takes, bit for bit, as ``tests/research/test_scan.py`` holds).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from river import drift

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

from benchmarks.research.lib.scan import MeanShiftScan, scan_statistics  # noqa: E402
from detectors.cusum import Alarm, CusumBank, normal_scores  # noqa: E402
from monitor.sequential import BASELINE_MAX, K_WEIGHTS, KS  # noqa: E402

REFERENCE = 5_000
CHANGE = 20_000
AFTER = 20_000
BLOCK = 2_000  # the daemon's window_events: a block of scores re-centres the bank
SCAN = MeanShiftScan()  # the defaults: the windows, clock and minimum reference
SCENARIOS = [(0.1, 0), (0.25, 0), (0.5, 0), (1.0, 0), (0.25, 5_000), (1.0, 5_000)]


def feature(seed: int, events: int, size: float = 0.0, ramp: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(events)
    if size:
        steps = np.arange(events - CHANGE, dtype=float) + 1
        x[CHANGE:] += size * (np.minimum(steps / ramp, 1.0) if ramp else 1.0)
    return x


def stationary_max(seed: int) -> float:
    x = feature(10**6 + seed, REFERENCE + 1_000_000)
    return float(scan_statistics(SCAN, normal_scores(np.sort(x[:REFERENCE]), x))[1].max())


def daemon_bank(ks: tuple[float, ...], rate: float,
                weights: tuple[float, ...] | None = None, direction: int = 0,
                scale: float = 1.0) -> CusumBank:
    """The daemon's bank for one two-sided feature whose key spends ``rate`` per event,
    shared over its CUSUMs by ``weights`` (None: the daemon's,
    :data:`monitor.sequential.K_WEIGHTS`), its centre known to the reference's
    ``1/sqrt(n)`` (``direction`` 1 and a ``scale``: the latency's, one-sided and
    stretched)."""
    w = weights if weights is not None else tuple(K_WEIGHTS[KS.index(k)] for k in ks)
    sides = 2 if direction == 0 else 1
    return CusumBank(1, ks, sides * len(ks) / rate, [direction], [1 / math.sqrt(REFERENCE)],
                     w, [scale])


def bank_alarms(z: np.ndarray, ks: tuple[float, ...], rate: float,
                weights: tuple[float, ...] | None = None, direction: int = 0,
                scale: float = 1.0, *, quiet: float = 0.5, lag: int = 0,
                freeze: int | None = None) -> Iterator[Alarm]:
    """The alarms, in order (``row`` an index into the scores ``z``), of
    :func:`daemon_bank`, re-centred on every quiet block (no alarm, every CUSUM under
    ``quiet`` of its threshold) as the daemon does.  Other admission rules, for
    ``bank_alternatives.py``: a quiet block joins the baseline only once ``lag`` more
    blocks have ended quiet after it, and none does that ends after row ``freeze``."""
    bank = daemon_bank(ks, rate, weights, direction, scale)
    total, count = 0.0, float(REFERENCE)
    pending: list[tuple[float, int]] = []  # quiet blocks waiting out the lag: sum, count
    for lo in range(0, z.size, BLOCK):
        part = z[lo:lo + BLOCK, None]
        hits = bank.update(part)
        yield from (replace(h, row=lo + h.row) for h in hits)
        if hits or np.any(bank.state[:, 0, :] > quiet * bank.h[0]):
            pending = []
            continue
        if freeze is not None and lo + part.shape[0] > freeze:
            continue
        pending.append((float(part.sum()), part.shape[0]))
        while len(pending) > lag and count < BASELINE_MAX * REFERENCE:
            block_sum, n = pending.pop(0)
            total += block_sum
            count += n
            bank.retune(0, total / count, 1 / math.sqrt(count))


def bank_first(z: np.ndarray, ks: tuple[float, ...], rate: float, start: int,
               weights: tuple[float, ...] | None = None, **admission: Any) -> int | None:
    """The row of :func:`bank_alarms`' first alarm at or after ``start``."""
    return next((h.row for h in bank_alarms(z, ks, rate, weights, **admission)
                 if h.row >= start), None)


def adwin_rows(x: np.ndarray) -> Iterator[int]:
    """The rows at which River's ADWIN at delta 3e-4 flags drift on ``x``, z-scored on
    its first REFERENCE values."""
    ref = x[:REFERENCE]
    d = drift.ADWIN(delta=3e-4)
    for i, value in enumerate(((x - ref.mean()) / ref.std()).tolist()):
        d.update(value)
        if d.drift_detected:
            yield i


def adwin_first(x: np.ndarray) -> int | None:
    return next((i for i in adwin_rows(x) if i >= CHANGE), None)


def _delays(task: tuple[int, float, int, float, float, float, float]) -> list[float]:
    seed, size, ramp, rate, whole, part, share = task
    x = feature(seed, CHANGE + AFTER, size, ramp)
    z = normal_scores(np.sort(x[:REFERENCE]), x)
    n, st = scan_statistics(SCAN, z)

    def scan(threshold: float) -> int | None:
        hit = np.flatnonzero((st > threshold) & (n - 1 >= CHANGE))
        return int(n[hit[0]] - 1) if hit.size else None

    def delay(first: int | None, offset: int = 0) -> float:
        return math.inf if first is None else first + offset - CHANGE

    start = CHANGE - REFERENCE
    rest = delay(bank_first(z[REFERENCE:], KS[1:], rate * (1 - share), start), REFERENCE)
    return [delay(bank_first(z[REFERENCE:], KS, rate, start), REFERENCE),
            delay(scan(whole)), min(delay(scan(part)), rest), delay(adwin_first(x))]


def shift_label(size: float, ramp: int) -> str:
    """A scenario's name in a table: "+0.25σ", "+1σ gradual (5k)"."""
    return f"+{size:g}σ" + (f" gradual ({ramp // 1000}k)" if ramp else "")


def delay_rows(rows: list[tuple[Any, ...]]) -> list[str]:
    """Table rows, one per scenario: (size, ramp, medians, missed) -> "| +0.1σ | ... |"."""
    out = []
    for size, ramp, med, missed in rows:
        out.append(f"| {shift_label(size, ramp)} | " + " | ".join(f"{m:,.0f} ({k})" for m, k in
                                              zip(med, missed, strict=True)) + " |")
    return out


def publish(lines: list[str], out: str | None) -> None:
    """Print the report and, given a path, write it there."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)


COLUMNS = ["bank", "scan alone", "scan + bank", "River ADWIN 3e-4"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=0.044,
                    help="the feature's false alarms per million events")
    ap.add_argument("--scan-share", type=float, default=0.5,
                    help="scan + bank: the scan's share of the rate")
    ap.add_argument("--streams", type=int, default=2_000,
                    help="stationary streams of 1,000,000 events for the scan's thresholds")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    t0 = time.perf_counter()
    with Pool(a.jobs) as pool:
        maxima = np.asarray(pool.map(stationary_max, range(a.streams)))
        # P(any alarm in 1,000,000 events) ~ the rate (rare events)
        whole = float(np.quantile(maxima, 1 - a.rate))
        part = float(np.quantile(maxima, 1 - a.rate * a.scan_share))
        rows: list[tuple[Any, ...]] = []
        for size, ramp in SCENARIOS:
            got = np.asarray(pool.map(_delays, [(s, size, ramp, a.rate / 1e6, whole, part,
                                                 a.scan_share) for s in range(a.seeds)]))
            rows.append((size, ramp, np.median(got, axis=0), np.isinf(got).sum(axis=0)))
    took = time.perf_counter() - t0
    lines = [
        "# A two-window scan against the CUSUM bank, at one feature's budget",
        "",
        "Generated by `python benchmarks/research/scan_power.py "
        "--out benchmarks/research/RESULTS_scan.md` "
        f"({a.seeds} seeds per scenario, the seeds and values of `x0` in RESULTS.md; change "
        f"at event {CHANGE:,}; missed = no alarm within {AFTER:,} events; {took:.0f} s). "
        f"The key spends {a.rate:g} false alarms per million events. The scan's "
        f"thresholds, measured on {a.streams:,} stationary streams of 1,000,000 events: "
        f"**{whole:.2f}** for the whole rate, **{part:.2f}** for {a.scan_share:g} of it "
        f"(stationary maxima: median {np.median(maxima):.2f}).",
        "",
        "Median delay in events (missed in brackets):",
        "",
        "| shift | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    publish([*lines, *delay_rows(rows)], a.out)


if __name__ == "__main__":
    main()
