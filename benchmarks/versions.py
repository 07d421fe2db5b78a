"""Champion/challenger verdicts: anytime-valid confidence sequences against a peeked z-test.

    python benchmarks/versions.py            # writes benchmarks/RESULTS_versions.md
    python benchmarks/versions.py --quick    # fewer rollouts, for a look

What a team does by hand during a rollout is a fixed-horizon test -- a z-test of
"challenger worse" at level alpha -- looked at after every batch until it says
so.  driftwatch reads its confidence sequences (:mod:`detectors.versions`) after
every batch too.  Both run here side by side on the same simulated rollouts, on
the detector classes directly (numpy, no pipeline), with driftwatch's settings:
each metric gets ``alpha / SLOTS`` of the challenger's budget, "worse" means
worse by more than half the margin, and the margins are the defaults
(latency_min_ratio 1.10, error_rate_min_increase 0.005, version_accuracy_margin
0.01).

1. **False verdicts per 1,000 A/A rollouts**: champion and challenger identical
   (log-normal latency, 1 % errors, 90 % accuracy), checked every batch of 500
   events for 50,000 events; a rollout counts once if any of its three metrics
   is called worse.  At driftwatch's default alpha (1e-5) and at 0.05, where the
   peeked test's inflation is visible.  The z-test is run two ways: against the
   same bar (worse by half the margin) and as the plain "significantly worse"
   (worse than 0) a team would usually run.
2. **Events to a verdict** (champion + challenger events since the challenger
   started), median over rollouts, for a 10 % latency regression, a 1-point
   error-rate rise (1 % -> 2 %) and a 2-point accuracy drop (90 % -> 88 %), at
   10 % and 50 % challenger traffic.
3. **Cost**: the pipeline on a two-version stream with the version watch and
   without it, side by side in the same run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.versions import (  # noqa: E402
    HIGHER,
    LOWER,
    WORSE,
    Comparison,
    fixed_horizon_worse,
)
from monitor.versions import SLOTS  # noqa: E402

BATCH = 500
LAT_SD = 0.5  # log-latency standard deviation (a p95/p50 ratio of about 2.3)
BASE_ERR, BASE_ACC = 0.01, 0.90
MARGINS = {"latency": math.log(1.10), "errors": 0.005, "accuracy": 0.01}


def _metric(name: str, alpha: float) -> Comparison:
    if name == "latency":
        return Comparison(MARGINS[name], alpha, HIGHER)
    if name == "errors":
        return Comparison(MARGINS[name], alpha, HIGHER, bernoulli=True)
    return Comparison(MARGINS[name], alpha, LOWER, bernoulli=True)


def _draw(rng: np.random.Generator, name: str, n: int, effect: float) -> np.ndarray:
    if name == "latency":
        return rng.normal(effect, LAT_SD, n)
    if name == "errors":
        return (rng.random(n) < BASE_ERR + effect).astype(float)
    return (rng.random(n) < BASE_ACC - effect).astype(float)


def aa(rng: np.random.Generator, runs: int, alpha: float, share: float,
       horizon: int, edge: bool = False) -> dict[str, int]:
    """Rollouts (of runs) with a false 'worse' verdict, per method.  With ``edge`` the
    challenger is worse by exactly half the margin on every metric: the null hypothesis
    at its boundary, where a 'worse' verdict is still false and hardest to avoid."""
    a = alpha / SLOTS
    counts = {"cs": 0, "cs_zero": 0, "z_half": 0, "z_zero": 0}
    for _ in range(runs):
        hit = dict.fromkeys(counts, False)
        comps = {m: _metric(m, a) for m in MARGINS}
        for _ in range(horizon // BATCH):
            nb = int(rng.binomial(BATCH, share))
            for m, c in comps.items():
                shift = MARGINS[m] / 2 if edge else 0.0
                c.update(_draw(rng, m, BATCH - nb, 0.0), _draw(rng, m, nb, shift))
                lo, hi = c.interval
                hit["cs"] |= c.verdict == WORSE
                hit["cs_zero"] |= (lo > 0) if c.worse == HIGHER else (hi < 0)
                hit["z_half"] |= fixed_horizon_worse(c, a)
                hit["z_zero"] |= fixed_horizon_worse(c, a, floor=0.0)
        for k, v in hit.items():
            counts[k] += v
    return counts


def delay(rng: np.random.Generator, runs: int, metric: str, effect: float, share: float,
          alpha: float, horizon: int) -> tuple[float, float, int, int]:
    """Median events to 'worse' (CS, peeked z-test at the same bar), and misses."""
    a = alpha / SLOTS
    cs_t, z_t = [], []
    for _ in range(runs):
        c = _metric(metric, a)
        t_cs = t_z = math.inf
        n = 0
        while n < horizon and not (math.isfinite(t_cs) and math.isfinite(t_z)):
            nb = int(rng.binomial(BATCH, share))
            c.update(_draw(rng, metric, BATCH - nb, 0.0), _draw(rng, metric, nb, effect))
            n += BATCH
            if not math.isfinite(t_cs) and c.verdict == WORSE:
                t_cs = n
            if not math.isfinite(t_z) and fixed_horizon_worse(c, a):
                t_z = n
        cs_t.append(t_cs)
        z_t.append(t_z)
    return (float(np.median(cs_t)), float(np.median(z_t)),
            int(np.sum(~np.isfinite(cs_t))), int(np.sum(~np.isfinite(z_t))))


def pipeline_cost(events: int = 40_000, repeat: int = 3) -> list[str]:
    """The version watch's share of the pipeline's time: the same two-version stream
    (50 % split, labels for every prediction) with the watch and with it switched off,
    alternated ``repeat`` times; best of each."""
    import orjson
    from prometheus_client import CollectorRegistry

    from monitor.app import build
    from monitor.config.types import Config

    rng = np.random.default_rng(5)
    lines: list[bytes] = []
    for i in range(events):
        v = "v2" if i >= 5_000 and rng.random() < 0.5 else "v1"
        p = float(rng.random())
        lines.append(orjson.dumps({
            "type": "prediction", "id": f"i{i}", "model": "m", "model_version": v,
            "ts": 1.78e9 + i, "prediction": p, "latency_ms": float(rng.lognormal(3, 0.5)),
            "features": {"x": float(rng.normal()), "c": "ab"[i % 2]}}))
        lines.append(orjson.dumps({"type": "label", "id": f"i{i}", "model": "m",
                                   "ts": 1.78e9 + i + 3, "label": int(rng.random() < p)}))
    best = {True: math.inf, False: math.inf}
    for _ in range(repeat):
        for on in (True, False):
            app = build(Config(), registry=CollectorRegistry())
            if not on:
                app.pipeline.versions.predictions = lambda *a, **k: []  # type: ignore
                app.pipeline.versions.labels = lambda *a, **k: []  # type: ignore
            t = time.perf_counter()
            for i in range(0, len(lines), 5_000):
                app.pipeline.process_lines(lines[i:i + 5_000])
            best[on] = min(best[on], time.perf_counter() - t)
    us = {k: 1e6 * v / events for k, v in best.items()}
    return ["", f"## Cost in the pipeline ({events:,} predictions + labels, 50 % split, "
            f"best of {repeat})", "",
            "| version watch | µs per prediction (with its label) |", "|---|---:|",
            f"| on | {us[True]:.1f} |", f"| off | {us[False]:.1f} |",
            f"| ratio on / off | {us[True] / us[False]:.2f} |"]


def _n(x: float) -> str:
    return "missed" if not math.isfinite(x) else f"{x:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_versions.md")))
    args = ap.parse_args()
    runs_aa, runs_delay = (200, 40) if args.quick else (1000, 200)
    rng = np.random.default_rng(20261207)
    t0 = time.time()
    lines = ["# Champion/challenger verdicts: confidence sequences vs a peeked z-test", "",
             f"Generated by `python benchmarks/versions.py{' --quick' if args.quick else ''}` "
             f"(batches of {BATCH} events, each metric at alpha / {SLOTS}, margins: latency "
             "x1.10, errors +0.005, accuracy -0.01; \"worse\" = worse by more than half the "
             "margin).", "",
             f"## False verdicts per 1,000 A/A rollouts ({runs_aa} rollouts of 50,000 events, "
             "latency + errors + accuracy, read after every batch)", "",
             "| alpha per challenger | traffic to challenger | driftwatch (CS, half margin) "
             "| CS lower bound past 0 | peeked z-test, half margin | peeked z-test, past 0 "
             "| budget |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for alpha in (0.05, 1e-5):
        for share in (0.1, 0.5):
            c = aa(rng, runs_aa, alpha, share, 50_000)
            per = {k: 1000 * v / runs_aa for k, v in c.items()}
            lines.append(f"| {alpha:g} | {share:.0%} | {per['cs']:.1f} | {per['cs_zero']:.1f} "
                         f"| {per['z_half']:.1f} | {per['z_zero']:.1f} "
                         f"| {1000 * alpha * 3 / SLOTS:.3g} |")
            print(lines[-1], f"({time.time() - t0:.0f}s)", flush=True)
    lines += ["", f"At the edge of the null ({runs_aa // 2} rollouts, alpha 0.05): the "
              "challenger worse by exactly half the margin on every metric, where a "
              "'worse' verdict is still false:", "",
              "| traffic to challenger | driftwatch (CS) | peeked z-test, half margin "
              "| budget |", "|---:|---:|---:|---:|"]
    for share in (0.1, 0.5):
        c = aa(rng, runs_aa // 2, 0.05, share, 50_000, edge=True)
        per = {k: 2000 * v / runs_aa for k, v in c.items()}
        lines.append(f"| {share:.0%} | {per['cs']:.1f} | {per['z_half']:.1f} "
                     f"| {1000 * 0.05 * 3 / SLOTS:.3g} |")
        print(lines[-1], f"({time.time() - t0:.0f}s)", flush=True)
    lines += ["", "The budget column is what the three metrics' shares of alpha allow "
              "(3 / SLOTS of it): driftwatch must stay under it; \"CS lower bound past 0\" "
              "is the stricter event that the sequence's interval excludes the true "
              "difference (0) on the worse side at some check, which its guarantee bounds "
              "too.", "",
              f"## Events to a verdict ({runs_delay} rollouts each, median of champion + "
              "challenger events since the challenger started; alpha 1e-5 per challenger, "
              "the default)", "",
              "| change | traffic to challenger | driftwatch (CS) | peeked z-test "
              "(same bar, its false verdicts above) | missed (CS / z) |",
              "|---|---:|---:|---:|---:|"]
    cases = (("10 % latency regression", "latency", math.log(1.10), 400_000),
             ("error rate 1 % -> 2 %", "errors", 0.01, 800_000),
             ("accuracy 90 % -> 88 %", "accuracy", 0.02, 800_000))
    for title, metric, effect, horizon in cases:
        for share in (0.1, 0.5):
            cs, z, mcs, mz = delay(rng, runs_delay, metric, effect, share, 1e-5, horizon)
            lines.append(f"| {title} | {share:.0%} | {_n(cs)} | {_n(z)} | {mcs} / {mz} |")
            print(lines[-1], f"({time.time() - t0:.0f}s)", flush=True)
    lines += pipeline_cost(20_000 if args.quick else 40_000)
    print("\n".join(lines[-3:]), flush=True)
    lines += ["", "A miss is no verdict within the horizon (400,000 events for latency, "
              "800,000 otherwise).  The peeked z-test is faster because it is not valid: "
              "read after every batch its false verdicts exceed its level (first table).",
              "", f"Run time: {time.time() - t0:.0f} s.", ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
