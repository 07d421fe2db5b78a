"""The pipeline's cost per event, this tree against another revision, in one run.

    python benchmarks/pipeline_speed.py --base REV [--events 200000] [--repeat 3]

Both trees process the same stationary stream of benchmarks/detection_quality.py
(five numeric features, a categorical one, latency, errors and a label for every
prediction) through ``driftwatch_alerts``, at the default alpha, in alternating
subprocesses so that machine noise falls on both alike.  ``REV`` is checked out
into a temporary git worktree, removed afterwards.  Prints µs/event of each run,
the best of each tree, and their ratio (this tree / base: below 1 is faster).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {root!r} + "/benchmarks")
import numpy as np
import detection_quality as dq
from monitor.config.types import Config
s = dq.stationary({events}, np.random.default_rng(1))
t = time.perf_counter()
dq.driftwatch_alerts(s, Config())
print((time.perf_counter() - t) / s.n * 1e6)
"""


def one_run(root: Path, events: int) -> float:
    # the measured tree's own detection_quality.py builds the stream and feeds it
    code = CHILD.format(root=str(root), events=events)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=root)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base],
                       check=True, cwd=ROOT, capture_output=True)
        try:
            runs: dict[str, list[float]] = {"this tree": [], args.base: []}
            for _ in range(args.repeat):
                runs["this tree"].append(one_run(ROOT, args.events))
                runs[args.base].append(one_run(base, args.events))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], check=True,
                           cwd=ROOT, capture_output=True)
    for name, us in runs.items():
        print(f"{name}: " + ", ".join(f"{u:.2f}" for u in us) + f" µs/event (best {min(us):.2f})")
    print(f"ratio (this tree / {args.base}, best of each): "
          f"{min(runs['this tree']) / min(runs[args.base]):.2f}")


if __name__ == "__main__":
    main()
