"""Other ways to spend a feature key's budget on small mean shifts, against the daemon's bank.

    python benchmarks/research/bank_alternatives.py \
        --out benchmarks/research/RESULTS_bank_alternatives.md
    # ~2 min on 2 cores; --first-seed 300 for a holdout

Four feature rows of ``RESULTS.md`` trail River's ADWIN by 1-5 % (+0.1 and +0.25 sd
abrupt, +0.25 and +1 sd over a 5,000-event ramp).  ``gap_budget.py`` shows what
budget buys; this measures what the detector itself could change, at the same
budget (the ``x0`` of ``detection_quality.py``, the key's rate 0.044 per million):

Admission (the daemon's bank, its centre estimated from the reference and from the
blocks it admits; a block that holds post-change scores drags the centre towards
the shift):

- daemon: a block joins the baseline when it ends with no alarm and every CUSUM under
  half its threshold;
- lag 1, lag 2: only once one (two) more blocks have ended quiet after it;
- quiet 0.25: every CUSUM under a quarter of its threshold;
- freeze at change: the daemon's rule, no block admitted after the change (an oracle:
  the most any admission rule could win).

Statistic (centre known, the raw N(0, 1) values, so admission plays no part):

- CUSUM bank: the daemon's four k, both sides, shares in proportion to 1/k;
- SR bank: Shiryaev-Roberts in place of each CUSUM, the same shifts (2k) and shares;
  ``log A = log ARL0 - 0.583 * 2k`` (the overshoot constant), measured below;
- adaptive pair: one two-sided CUSUM whose drift is estimated along the excursion
  (Lorden-Pollak: increment ``d (x - d/2)``, ``d`` the shrunk mean of the excursion so
  far, clipped to ``[DMIN, DMAX]``), the whole key's rate; its threshold from a
  straight-line fit of log ARL0 against h on simulated stationary streams.

Ratios are to ADWIN's median delay on the same seeds (``gap_budget.py``'s interval).
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

from gap_budget import known_first, ratio_table  # noqa: E402
from scan_power import (  # noqa: E402
    AFTER,
    CHANGE,
    REFERENCE,
    SCENARIOS,
    adwin_first,
    bank_first,
    daemon_bank,
    feature,
    publish,
)

from detectors.cusum import CusumBank, normal_scores  # noqa: E402
from monitor.sequential import K_WEIGHTS, KS  # noqa: E402

RHO = 0.583  # the overshoot constant of a normal random walk (Siegmund)
SR_SHIFT = 2 * np.asarray(KS)  # the shift each SR is tuned to: a CUSUM's k is half of it
A0, D0, DMIN, DMAX = 200.0, 0.15, 0.1, 1.0  # the adaptive drift's prior weight, prior, clip
ADMISSION = {"daemon": {}, "lag 1": {"lag": 1}, "lag 2": {"lag": 2},
             "quiet 0.25": {"quiet": 0.25}, "freeze at change": {"freeze": CHANGE - REFERENCE}}
STATISTIC = ["CUSUM bank", "SR bank", "adaptive pair"]


def sr_step(log_r: np.ndarray, x: np.ndarray, mu: np.ndarray,
            log_a: np.ndarray) -> np.ndarray:
    """One event of Shiryaev-Roberts statistics ``log R`` tuned to shifts ``mu``, in
    place (the arrays broadcast to ``log_r``'s shape): ``R = (1 + R) LR``; returns where
    they crossed ``log A`` (and restarted at R = 0)."""
    log_r[...] = np.logaddexp(0.0, log_r) + mu * (x - mu / 2)
    hit = log_r >= log_a
    log_r[hit] = -np.inf
    return hit


def sr_first(x: np.ndarray, log_a: np.ndarray) -> np.ndarray:
    """Per row of ``x`` (seeds x events, centre 0 known): the first event at or after the
    change at which any SR of the bank crosses its ``log A``; -1 if none.  The events
    before ``REFERENCE`` are skipped, as :func:`gap_budget.known_first` does; an SR that
    alarms restarts from zero."""
    seeds = x.shape[0]
    mu = SR_SHIFT[None, :, None]
    sign = np.array([1.0, -1.0])[None, None, :]
    log_r = np.full((seeds, SR_SHIFT.size, 2), -np.inf)  # log R, R = 0
    first = np.full(seeds, -1)
    for t in range(REFERENCE, x.shape[1]):
        hit = sr_step(log_r, sign * x[:, t, None, None], mu, log_a[None, :, None])
        if t >= CHANGE:
            first[hit.any(axis=(1, 2)) & (first < 0)] = t
    return first


def adaptive_step(x: np.ndarray, w: np.ndarray, s: np.ndarray, m: np.ndarray,
                  h: float) -> np.ndarray:
    """One event of one-sided adaptive CUSUMs, in place (``x``, ``w``, ``s``, ``m``
    alike-shaped: the event, the statistic, the excursion's sum and length); returns
    where they alarmed (and restarted)."""
    d = np.clip((s + A0 * D0) / (m + A0), DMIN, DMAX)  # from the excursion before x
    w += d * (x - d / 2)
    s += x
    m += 1
    reset = w <= 0
    hit = w >= h
    reset |= hit
    w[reset], s[reset], m[reset] = 0.0, 0.0, 0.0
    return hit


def adaptive_log_arl(h: float, streams: int, alarms: int, seed: int) -> float:
    """log ARL0 of a one-sided adaptive CUSUM at ``h``, measured on ``streams``
    stationary N(0, 1) streams run until ``alarms`` alarms (renewal: each restart is
    the start state, so events / alarms estimates the ARL0)."""
    rng = np.random.default_rng(seed)
    w, s, m = (np.zeros(streams) for _ in range(3))
    got, events = 0, 0
    while got < alarms:  # each stream runs ~0.1 ARL0 or more: the first steps weigh little
        for x in rng.standard_normal((1_000, streams)):
            got += int(adaptive_step(x, w, s, m, h).sum())
        events += 1_000 * streams
    return math.log(events / got)


def adaptive_first(x: np.ndarray, h: float) -> np.ndarray:
    """:func:`sr_first` for the two-sided adaptive pair at threshold ``h``."""
    seeds = x.shape[0]
    w, s, m = (np.zeros((seeds, 2)) for _ in range(3))
    sign = np.array([1.0, -1.0])
    first = np.full(seeds, -1)
    for t in range(REFERENCE, x.shape[1]):
        hit = adaptive_step(sign * x[:, t, None], w, s, m, h).any(axis=1)
        if t >= CHANGE:
            first[hit & (first < 0)] = t
    return first


def measured(log_arl: float, seed: int, streams: int = 400,
             alarms: int = 2_000) -> np.ndarray:
    """Measured ARL0 / nominal of one-sided CUSUMs (a :class:`CusumBank` with its centre
    known, as the centre-known bank's) and SRs, one per k of the bank, each set for
    ``exp(log_arl)``: rows CUSUM, SR.  Few streams, each run for several ARL0s: a run
    much shorter than its ARL0 undercounts, since no detector alarms in its first few
    steps."""
    rng = np.random.default_rng(seed)
    bank = CusumBank(streams, KS, math.exp(log_arl), [1] * streams)  # even shares
    log_a = log_arl - RHO * SR_SHIFT
    log_r = np.full((streams, len(KS)), -np.inf)
    got, events = np.zeros((2, len(KS))), 0
    while got.min() < alarms:
        z = rng.standard_normal((1_000, streams))
        for alarm in bank.update(z):
            got[0, KS.index(alarm.k)] += 1
        for x in z:
            got[1] += sr_step(log_r, x[:, None], SR_SHIFT[None, :], log_a).sum(axis=0)
        events += z.size
    return events / got / math.exp(log_arl)


def _admission(task: tuple[int, float, int, float]) -> list[float]:
    """One seed: the daemon's bank under each admission rule, then ADWIN."""
    seed, size, ramp, rate = task
    x = feature(seed, CHANGE + AFTER, size, ramp)
    z = normal_scores(np.sort(x[:REFERENCE]), x)[REFERENCE:]
    start = CHANGE - REFERENCE
    out = [bank_first(z, KS, rate, start, **rule) for rule in ADMISSION.values()]
    firsts = [None if f is None else f + REFERENCE for f in out] + [adwin_first(x)]
    return [math.inf if f is None else f - CHANGE for f in firsts]


def _statistic(task: tuple[list[int], float, int, float, float]) -> np.ndarray:
    """A chunk of seeds at once: the centre-known CUSUM bank's, the SR bank's and the
    adaptive pair's delays."""
    seeds, size, ramp, rate, h = task
    x = np.stack([feature(s, CHANGE + AFTER, size, ramp) for s in seeds])
    log_a = np.log(daemon_bank(KS, rate).cusum_arl0(0)) - RHO * SR_SHIFT
    cusum = [known_first(row, KS, K_WEIGHTS, rate) for row in x]
    out = np.stack([[-1 if f is None else f for f in cusum], sr_first(x, log_a),
                    adaptive_first(x, h)], axis=1).astype(float)
    out[out < 0] = math.inf
    return out - CHANGE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=0.044,
                    help="the feature's key: false alarms per million events")
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--streams", type=int, default=4_000,
                    help="parallel stationary streams for the adaptive pair's ARL0s")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rate = a.rate / 1e6
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    fit_h = (6.0, 8.0, 10.0)
    with Pool(a.jobs) as pool:
        log_arls = pool.starmap(adaptive_log_arl, [(h, a.streams, 400, 7 + i)
                                                   for i, h in enumerate(fit_h)])
        check = {10**e: measured(e * math.log(10), 11 + e) for e in (4, 5)}
        slope, icpt = np.polyfit(fit_h, log_arls, 1)
        h_star = (math.log(2 / rate) - icpt) / slope  # each side: half the key's rate
        admission, statistic = {}, {}
        for row in SCENARIOS:
            admission[row] = np.asarray(pool.map(_admission, [(s, *row, rate) for s in seeds]))
            chunks = [c.tolist() for c in np.array_split(seeds, a.jobs)]
            parts = pool.map(_statistic, [(c, *row, rate, h_star) for c in chunks])
            # ADWIN's delays, computed once, close both tables
            statistic[row] = np.column_stack([np.concatenate(parts), admission[row][:, -1]])
    took = time.perf_counter() - t0
    lines = [
        "# Other ways to spend a feature key's budget on small mean shifts",
        "",
        f"Generated by `python benchmarks/research/bank_alternatives.py --out benchmarks/"
        f"RESULTS_bank_alternatives.md` (seeds {seeds[0]}-{seeds[-1]} of `x0`; seeds 0-99 are "
        f"those of RESULTS.md; change at event {CHANGE:,}, the first "
        f"{REFERENCE:,} the reference; the key's rate {a.rate:g} per million; missed = no "
        f"alarm within {AFTER:,} events, counted as never; {took:.0f} s).",
        "",
        "Median delay in events; in brackets the ratio to ADWIN's median (below 1: "
        "faster) and its 90 % interval, the seeds resampled in pairs.",
        "",
        "## Admission: which blocks re-centre the daemon's bank",
        "",
        *ratio_table(list(ADMISSION), admission),
        "",
        "## Statistic: centre known, the same budget",
        "",
        *ratio_table(STATISTIC, statistic),
        "",
        "## Calibration",
        "",
        "Measured ARL0 / nominal on 400 stationary streams (≥ 2,000 alarms per k): the "
        "one-sided CUSUM of a `CusumBank` with its centre known (Siegmund's threshold, as "
        "the centre-known bank's), the SR at `log A = log ARL0 - 0.583 * 2k`:",
        "",
        "| nominal ARL0 | " + " | ".join(f"{n} k = {k:g}" for n in ("CUSUM", "SR")
                                        for k in KS) + " |",
        "|---|" + "---:|" * 2 * len(KS),
        *(f"| {arl:,} | " + " | ".join(f"{r:.3f}" for r in got.ravel()) + " |"
          for arl, got in check.items()),
        "",
        f"Adaptive pair (A0 {A0:g}, prior drift {D0:g}, drift clipped to [{DMIN:g}, "
        f"{DMAX:g}]): measured log ARL0 "
        + ", ".join(f"{v:.2f} at h = {h:g}" for h, v in zip(fit_h, log_arls, strict=True))
        + f"; the line log ARL0 = {icpt:.2f} + {slope:.3f} h gives **h = {h_star:.2f}** for "
        f"each side's ARL0 {2 / rate:.3g} (half the key's rate).",
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
