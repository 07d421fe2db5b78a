"""LogHistogram vs keeping every value: state size and cost per value.

    python benchmarks/research/sketch_memory.py [--sizes 10000 1000000 10000000]

For each n (lognormal latencies in ms), in the same run:

- sketch: ``LogHistogram.add_many`` over the values (fed in 100k batches, as a
  window would), then ``quantile([0.5, 0.95, 0.99])``; state bytes are the
  bucket array (``nbytes``) and the sparse JSON ``to_state()``;
- exact: copy the same batches into one growing numpy array, then
  ``np.quantile`` of the same quantiles; state bytes are the array's ``nbytes``.

Prints microseconds per value for both, the ratios, and the worst relative
error of the sketch's quantiles against numpy's ``inverted_cdf`` ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

from benchmarks.research.lib.sketch import LogHistogram  # noqa: E402

QS = np.array([0.5, 0.95, 0.99])
BATCH = 100_000


def run(n: int, rng: np.random.Generator) -> dict[str, float]:
    x = rng.lognormal(4.0, 0.6, n)
    batches = [x[i:i + BATCH] for i in range(0, n, BATCH)]

    t = time.perf_counter()
    h = LogHistogram()
    for b in batches:
        h.add_many(b)
    est = h.quantile(QS)
    sketch_s = time.perf_counter() - t

    t = time.perf_counter()
    kept = np.concatenate(batches)  # one copy, like appending to a buffer
    exact = np.quantile(kept, QS, method="inverted_cdf")
    exact_s = time.perf_counter() - t

    return {
        "n": n,
        "sketch_bytes": h.nbytes,
        "sketch_json_bytes": len(json.dumps(h.to_state())),
        "exact_bytes": kept.nbytes,
        "sketch_us": sketch_s / n * 1e6,
        "exact_us": exact_s / n * 1e6,
        "max_rel_err": float(np.max(np.abs(est / exact - 1))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**6, 10**7])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    run(10_000, rng)  # warm-up
    print(f"{'n':>10} {'sketch B':>9} {'json B':>7} {'exact B':>11} {'mem ratio':>10} "
          f"{'sketch us/v':>11} {'exact us/v':>10} {'time ratio':>10} {'max rel err':>11}")
    for n in args.sizes:
        r = run(n, rng)
        print(f"{r['n']:>10,} {r['sketch_bytes']:>9,} {r['sketch_json_bytes']:>7,} "
              f"{r['exact_bytes']:>11,} {r['exact_bytes'] / r['sketch_bytes']:>9.0f}x "
              f"{r['sketch_us']:>11.4f} {r['exact_us']:>10.4f} "
              f"{r['sketch_us'] / r['exact_us']:>9.2f}x {r['max_rel_err']:>11.5f}")


if __name__ == "__main__":
    main()
