"""What the error-rate CUSUMs' design costs in delay, at equal false alarms per million.

    # ~10 min per variant, one core each
    python benchmarks/research/rate_cusum_variants.py mean one

An experiment for the next change to ``monitor/rate_streams.py``, not a
result of the daemon as it ships: each variant replaces
``rise_parameters`` (how an error rate's in-control rate and alternatives
follow from its baseline) and is measured the way ``error_stream_power.py``
measures driftwatch -- calibrated on 30,000,000 events of the 1 % error stream
alone to 0.3, 1 and 3 false alarms per million, then timed on the
``detection_quality.py`` error scenario (40 seeds).  Variants:

- ``bound``: as shipped until 2026-12 (the upper 90 % Jeffreys bound;
  alternatives that tolerate rises to half the floor and to twice it);
- ``mean``: as shipped, the posterior mean instead of the bound;
- ``one``: only the alternative that tolerates twice the floor (which gives
  up the sequential path for rises between the floor and twice it);
- ``mean-one``: both.

A single long calibration stream has a single reference, so it cannot show
what a reference that happened to see few errors costs::

    python benchmarks/research/rate_cusum_variants.py --luck 0.01 bound mean   # ~4 min per pair

runs each variant at the given ``alpha`` on many short independent stationary
error streams (each with its own reference, so the references' luck is
sampled) and counts false alarms: in all, per million events, how many
streams alarmed at all and the most any one stream raised.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

import detection_quality as dq  # noqa: E402
import error_stream_power as esp  # noqa: E402

import monitor.rate_streams as rs  # noqa: E402
from detectors.bernoulli import posterior_mean, rate_bound  # noqa: E402

VARIANTS = ("bound", "mean", "one", "mean-one")
BUDGETS = [0.3, 1.0, 3.0]
EVENTS = 30_000_000


def parameters(variant: str) -> Callable[[float, float, float],
                                         tuple[float, tuple[float, ...]]]:
    def rise(hits: float, n: float, floor: float) -> tuple[float, tuple[float, ...]]:
        mean = variant.startswith("mean")
        p0 = posterior_mean(hits, n) if mean else rate_bound(hits, n, upper=True)
        zeros = [p0 + 2 * floor] if variant.endswith("one") else [p0 + floor / 2,
                                                                   p0 + 2 * floor]
        return p0, rs._rise(p0, zeros)
    return rise


def measure(variant: str) -> list[str]:
    rs.rise_parameters = parameters(variant)
    esp.BUDGETS = BUDGETS
    esp._ERR = np.random.default_rng(30_000).random(EVENTS) < esp.P0
    _, chosen, tried = esp._calibrate("driftwatch")
    esp._ERR = None
    out = [f"- {variant}: settings tried {dq._tried(tried, int(max(BUDGETS) * EVENTS / 1e6))}"]
    for b in BUDGETS:
        if b not in chosen:
            out.append(f"  - {b:g} per million: none fits")
            continue
        _, _, o = esp._delays(("driftwatch", chosen[b]))
        out.append(f"  - {b:g} per million (alpha {chosen[b]:.3g}): median "
                   f"{dq.median_with_misses(o):,.0f}, p90 {np.percentile(o.delays, 90):,.0f}, "
                   f"missed {o.missed}, false alarms before the change {o.false_alarms}")
    return out


LUCK_STREAMS = 100  # independent stationary error streams ...
LUCK_EVENTS = 200_000  # ... of this many events each, the reference first


def luck(task: tuple[str, float]) -> list[str]:
    variant, alpha = task
    rs.rise_parameters = parameters(variant)
    per_stream = []
    for k in range(LUCK_STREAMS):
        err = np.random.default_rng(40_000 + k).random(LUCK_EVENTS) < esp.P0
        per_stream.append(len(esp.daemon(alpha)(err, None)))
    total = sum(per_stream)
    rate = total / (LUCK_STREAMS * LUCK_EVENTS) * 1e6
    return [f"- {variant} at alpha {alpha:g}: {total} false alarms in {LUCK_STREAMS} x "
            f"{LUCK_EVENTS:,} events ({rate:.2f} per million); "
            f"{sum(1 for n in per_stream if n)} streams alarmed, at most {max(per_stream)} "
            f"in one"]


def main() -> None:
    args = sys.argv[1:]
    alpha = float(args[1]) if args[:1] == ["--luck"] else None
    variants = (args[2:] if alpha is not None else args) or list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}: choose from {', '.join(VARIANTS)}")
    run: Callable[[Any], list[str]] = measure if alpha is None else luck
    tasks = variants if alpha is None else [(v, alpha) for v in variants]
    with mp.get_context("fork").Pool(min(len(variants), mp.cpu_count())) as pool:
        for lines in pool.map(run, tasks):
            print(*lines, sep="\n", flush=True)


if __name__ == "__main__":
    main()
