"""The label join alone, this tree against another revision, side by side in one run.

    python benchmarks/research/join_speed.py [--base fae88db] [--events 200000] [--repeat 3]

The stream is `benchmarks/throughput.py`'s (two models, a label 10-60 s of event
time after every prediction), decoded once per child with that tree's decoder
into replay-sized batches (20,000 lines).  Each child times only what
``Pipeline._labels`` asks of the join per batch: ``add_predictions`` and
``add_labels`` per model, ``Joined.merge``, ``due`` at a deadline of 5 minutes and
``expire`` at the watermark (TTL 24 h: every id of the run stays remembered).
Then, on that final join: the checkpoint (``to_state`` + ``orjson.dumps``, best of
the rounds), its size, and ``from_state`` of it.  Memory: a fresh child's RSS
growth when one model's join takes 100,000 pending predictions (ids like the
stream's, made per batch so that only the join keeps them), and the bytes
``tracemalloc`` traces for the same (numpy's buffers included).  Rounds
alternate the trees; best of each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import throughput  # noqa: E402  (benchmarks/throughput.py: the stream and git worktrees)

CHILD = r"""
import sys, time, gc
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
import numpy as np, orjson
import throughput
sys.path.insert(0, {root!r})  # throughput puts this tree first: the child's tree goes first
from monitor.events import Decoder
from monitor.join import Joined, LabelJoin

lines = [orjson.dumps(e) for e in throughput.events({events}, 10)]
dec = Decoder()
batches = [dec.decode_lines(lines[i:i + 20_000]) for i in range(0, len(lines), 20_000)]
n = len(lines)
del lines

def run():
    j = LabelJoin()
    wm = -np.inf
    joined = due = 0
    for b in batches:
        for model in b.predictions.keys() | b.labels.keys():
            parts = []
            c = b.predictions.get(model)
            if c is not None and c.n:
                parts.append(j.add_predictions(model, c))
                wm = max(wm, float(np.nanmax(c.ts)))
            lab = b.labels.get(model)
            if lab is not None and lab.n:
                parts.append(j.add_labels(model, lab))
                wm = max(wm, float(np.nanmax(lab.ts)))
            joined += Joined.merge(model, parts).n
        for model in j.models:
            due += j.due(model, wm - 300.0)[0].shape[0]
        j.expire(wm)
    return j, joined, due

best_run = best_save = best_load = float("inf")
for _ in range({repeat}):
    gc.collect()
    t = time.perf_counter()
    j, joined, due = run()
    best_run = min(best_run, time.perf_counter() - t)
    t = time.perf_counter()
    blob = orjson.dumps(j.to_state())
    best_save = min(best_save, time.perf_counter() - t)
    t = time.perf_counter()
    LabelJoin.from_state(orjson.loads(blob))
    best_load = min(best_load, time.perf_counter() - t)
print(best_run / n * 1e6, best_save, best_load, len(blob), joined, due,
      sum(j.counts(m)["pending"] for m in j.models))
"""

MEM_CHILD = r"""
import sys, gc, tracemalloc
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
import numpy as np
import throughput
sys.path.insert(0, {root!r})  # throughput puts this tree first: the child's tree goes first
from monitor.batch import PredictionColumns
from monitor.join import LabelJoin

def rss():
    return throughput.rss_mb(__import__("os").getpid())[0]

def batch(i, k):
    ids = np.empty(k, dtype=object)
    ids[:] = [f"churn-{{x}}" for x in range(i, i + k)]  # made here: the join keeps them
    return PredictionColumns("m", 1.7e9 + np.arange(i, i + k) / 20.0, ids,
                             np.full(k, "v1", dtype=object), np.full(k, 0.5),
                             np.full(k, None, dtype=object), np.full(k, np.nan),
                             np.zeros(k, dtype=bool))

j = LabelJoin()
j.add_predictions("m", batch(0, 10))
gc.collect()
before = rss()
tracemalloc.start()
for i in range(10, 100_010, 10_000):
    j.add_predictions("m", batch(i, 10_000))
gc.collect()
traced = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
print(rss() - before, traced / 1e6, j.counts("m")["pending"])
"""


def child(code: str, root: Path, **kw: object) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code.format(root=str(root),
                                                            bench=str(HERE.parent), **kw)],
                         check=True, capture_output=True, text=True, cwd=root)
    return [float(x) for x in out.stdout.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="fae88db")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{args.events:,} events (predictions + labels), best of {args.repeat} "
          "(speed) per tree, trees alternated")
    print("| tree | us / event | checkpoint: state+orjson (s) | bytes | from_state (s) | "
          "joined | due | 100,000 pending: RSS growth (MB) | traced (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with throughput.trees(args.base) as roots:
        res: dict[str, list[list[float]]] = {name: [] for name in roots}
        mem: dict[str, list[list[float]]] = {name: [] for name in roots}
        for _ in range(2):
            for name, root in roots.items():
                res[name].append(child(CHILD, root, events=args.events, repeat=args.repeat))
                mem[name].append(child(MEM_CHILD, root))
        for name, rs in res.items():
            us = min(r[0] for r in rs)
            save = min(r[1] for r in rs)
            load = min(r[2] for r in rs)
            r = rs[0]
            print(f"| {name} | {us:.2f} | {save:.4f} | {int(r[3]):,} | {load:.4f} | "
                  f"{int(r[4]):,} | {int(r[5]):,} | {min(x[0] for x in mem[name]):.1f} | "
                  f"{min(x[1] for x in mem[name]):.1f} |", flush=True)


if __name__ == "__main__":
    main()
