"""Per-window cost of ``evaluate_window``: this tree against another revision, on the
same windows, in the same run.

The windows are those of ``benchmarks/throughput.py``'s stream (two models, ``k``
features: ``k - 1`` numeric and one categorical, a host segment, latency, errors,
probabilities; reference 5,000, windows of 2,000), replayed once through this tree's
pipeline, which keeps every (model config, reference, window) it hands to
``evaluate_window``.  Each tree then evaluates every window in a child process of its
own import (``--base`` checked out into a temporary git worktree; one BLAS thread)
inside one child process, which times the two trees alternately, window by window,
``--rounds`` times; a tree's figure is the sum over windows of each window's best
time (``--repeat`` children, the best child).  The first pass over the windows (the
first window of each reference pays for preparing it in this tree) is printed beside
it.  Every child prints a digest of every ``Evaluation`` (keys, findings, test results, floats
by ``repr``): equal digests mean bit-identical results.

Run: ``python benchmarks/research/window_speed.py --base fae88db [--events 100000]
[--features 10] [--rounds 5] [--repeat 3]``.

Conclusion (2026-12-07, a 2-core host shared with other jobs, load average 5-10;
10 features, the 20 windows of a 100,000-event stream): this tree takes 41.5 ms per
window against 162.1 for fae88db (x3.91, ``--repeat 3 --rounds 5``; x4.05 and x3.42
in shorter runs), every Evaluation bit-identical.  Idle, fae88db measured ~40 ms per
window (cProfile: KS 44 %, quality tests 18 %, PCA 14 %, latency 10 %, chi-square
7 %).  What made the difference: each reference prepared once (its finite values
sorted per numeric column, predictions and latencies, which the CUSUM watch reads
too; null and category counts; the PCA fit with its held-out errors sorted; its
versions and field presence), each window's numeric column sorted once for the KS,
stuck, dominance and out-of-range tests, and scipy's arithmetic without its
argument handling: the KS distance from the two sorted samples and the p-value from
the function ``kstwo.sf`` evaluates, Fisher's test and the hypergeometric CDF from
Boost's ufunc, the Mann-Whitney U from counted ranks, the chi-square from the
margins (each proved equal by a hypothesis test in tests/detectors/test_prepared.py).
The first window of a reference pays ~16 ms to prepare it.  What is left: the
KS p-value's Pelz-Good series (~80 µs a test) and the window's own sorting and
moments.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE.parent), str(ROOT)]  # benchmarks/, repo

# One child loads both trees' evaluate_window (the first tree's modules are dropped from
# sys.modules before the second is imported; its functions keep their own globals) and
# times them alternately, window by window, so a burst of load hits both alike.
CHILD = """
import hashlib, pickle, sys, time
roots = {roots!r}
funcs = {{}}
for name, root in roots.items():
    for mod in [m for m in sys.modules if m.split(".")[0] in ("monitor", "detectors", "alerts")]:
        del sys.modules[mod]
    sys.path.insert(0, root)
    from monitor.threads import one_blas_thread
    one_blas_thread()
    from monitor.evaluate import evaluate_window
    funcs[name] = evaluate_window
    sys.path.remove(root)
pairs = pickle.load(open({pairs!r}, "rb"))
digests, first = {{}}, {{}}
for name, f in funcs.items():
    t0 = time.perf_counter()
    evs = [f(m, r, w) for m, r, w in pairs]
    first[name] = (time.perf_counter() - t0) / len(pairs) * 1e3
    digests[name] = hashlib.sha256(repr([(e.evaluated, e.findings, e.results)
                                         for e in evs]).encode()).hexdigest()[:16]
best = {{name: [float("inf")] * len(pairs) for name in funcs}}
for _ in range({rounds}):
    for i, (m, r, w) in enumerate(pairs):
        for name, f in funcs.items():
            t0 = time.perf_counter()
            f(m, r, w)
            best[name][i] = min(best[name][i], time.perf_counter() - t0)
for name in funcs:
    print(name, first[name], sum(best[name]) / len(pairs) * 1e3, digests[name])
"""


def windows(path: Path, events: int, features: int) -> int:
    """Replay the throughput stream through this tree; pickle what evaluate_window got."""
    import throughput  # benchmarks/throughput.py

    import monitor.pipeline as pipeline
    from monitor.config.types import Config
    from monitor.replay import replay
    from monitor.threads import one_blas_thread

    one_blas_thread()
    pairs = []
    evaluate = pipeline.evaluate_window

    def keep(model, ref, window, task=None):  # type: ignore[no-untyped-def]
        pairs.append((model, ref, window))
        return evaluate(model, ref, window, task)

    pipeline.evaluate_window = keep  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "stream.jsonl"
        throughput.write(stream, throughput.events(events, features))
        replay(Config(), [stream])
    pipeline.evaluate_window = evaluate
    with open(path, "wb") as fh:
        pickle.dump(pairs, fh)
    return len(pairs)


def child(roots: dict[str, Path], pairs: Path, rounds: int
          ) -> dict[str, tuple[float, float, str]]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(
        roots={k: str(v) for k, v in roots.items()}, pairs=str(pairs), rounds=rounds)],
        check=True, capture_output=True, text=True, cwd=ROOT)
    res = {}
    for line in out.stdout.splitlines():
        *name, first, best, digest = line.split()
        res[" ".join(name)] = (float(first), float(best), digest)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="fae88db", help="git revision to measure beside this tree")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from throughput import trees

    with trees(args.base) as roots, tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "windows.pkl"
        n = windows(pairs, args.events, args.features)
        print(f"{n} windows, {args.features} features; {args.repeat} children, each timing "
              f"both trees alternately window by window, best of {args.rounds} per window")
        runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in roots}
        for i in range(args.repeat):  # which tree is imported first alternates too
            order = dict(list(roots.items())[::1 if i % 2 == 0 else -1])
            for name, res in child(order, pairs, args.rounds).items():
                runs[name].append(res)
        print("| tree | ms per window (best) | first pass (median) | digest |")
        print("|---|---:|---:|---|")
        best = {name: min(r[1] for r in rs) for name, rs in runs.items()}
        for name, rs in runs.items():
            digests = sorted({r[2] for r in rs})
            print(f"| {name} | {best[name]:.2f} | {statistics.median(r[0] for r in rs):.2f} | "
                  f"{', '.join(digests)} |")
        this, base = best["this tree"], best.get(args.base)
        if base is not None:
            same = {r[2] for rs in runs.values() for r in rs}
            print(f"ratio {base / this:.2f} x faster; results "
                  f"{'bit-identical' if len(same) == 1 else 'DIFFER'}")


if __name__ == "__main__":
    main()
