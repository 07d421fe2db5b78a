"""The sequential watch's cost per event, this tree against another revision, in one run.

    python benchmarks/research/sequential_batch_speed.py --base REV [--events 200000]
        [--features 10] [--repeat 3] [--chunk 20000]

The stream is ``benchmarks/throughput.py``'s (two models, labels on).  It is replayed
once through this tree's pipeline while every call the pipeline makes to a model's
:class:`monitor.sequential.SequentialWatch` is recorded (the reference it is built
from, each batch of ``update``, each ``window_closed``).  Then both trees, in
alternating subprocesses, build the watches from the recorded references and make the
same calls, timed: ``update`` and ``window_closed`` (the rate CUSUMs' retunes) apart.
Each child also prints a digest of everything the watches returned and their final
state (alarms, thresholds, statistics): the two trees' digests must be equal.
Prints µs per prediction event of each part (CPU time of the child: the machine is
shared, and waiting for a core is not the watch's cost), the best of each tree, and
the ratios.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CHILD = """
import sys, time, pickle, hashlib
sys.path.insert(0, {root!r})
from monitor.threads import one_blas_thread
one_blas_thread()
import numpy as np
from monitor.sequential import SequentialWatch
with open({trace!r}, "rb") as fh:
    trace = pickle.load(fh)
t_build = t_update = t_closed = 0.0
watches = {{}}
digest = hashlib.sha256()
events = 0
for op, model, *args in trace:
    if op == "build":
        t = time.process_time()
        watches[model] = SequentialWatch.build(*args)
        t_build += time.process_time() - t
    elif op == "update":
        t = time.process_time()
        out = watches[model].update(args[0])
        t_update += time.process_time() - t
        events += args[0].n
        digest.update(repr(out).encode())
    else:
        t = time.process_time()
        watches[model].window_closed(*args)
        t_closed += time.process_time() - t
for model, w in sorted(watches.items()):
    digest.update(repr(w.to_state()).encode())
    if w.bank is not None:
        digest.update(w.bank.h.tobytes())
    if w.rate_bank is not None:
        digest.update(repr(w.rate_bank.cusums).encode())
print(t_build, t_update, t_closed, events, digest.hexdigest())
"""


def record(path: Path, events: int, features: int, chunk: int) -> None:
    """Replay the throughput stream through this tree, recording the watches' calls."""
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    import copy

    import throughput

    from monitor.config.types import Config
    from monitor.replay import replay
    from monitor.sequential import SequentialWatch
    from monitor.threads import one_blas_thread

    one_blas_thread()
    trace: list[tuple[object, ...]] = []
    names: dict[int, str] = {}
    build, update, closed = (SequentialWatch.build, SequentialWatch.update,
                             SequentialWatch.window_closed)

    def rec_build(reference, settings):  # type: ignore[no-untyped-def]
        w = build(reference, settings)
        if w is not None:
            names[id(w)] = reference.model
            trace.append(("build", reference.model, copy.deepcopy(reference), settings))
        return w

    def rec_update(self, cols):  # type: ignore[no-untyped-def]
        trace.append(("update", names[id(self)], copy.deepcopy(cols)))
        return update(self, cols)

    def rec_closed(self, tested, alerted):  # type: ignore[no-untyped-def]
        trace.append(("closed", names[id(self)], set(tested), set(alerted)))
        return closed(self, tested, alerted)

    SequentialWatch.build = staticmethod(rec_build)  # type: ignore[method-assign,assignment]
    SequentialWatch.update = rec_update  # type: ignore[method-assign]
    SequentialWatch.window_closed = rec_closed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "stream.jsonl"
        throughput.write(stream, throughput.events(events, features))
        replay(Config(), [stream], chunk_lines=chunk)
    with open(path, "wb") as fh:
        pickle.dump(trace, fh)


def one_run(root: Path, trace: Path) -> tuple[float, float, float, int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(root), trace=str(trace))],
                         check=True, capture_output=True, text=True, cwd=root)
    b, u, c, n, digest = out.stdout.split()
    return float(b), float(u), float(c), int(n), digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=20_000, help="replay chunk (lines)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import trees

    with tempfile.TemporaryDirectory() as tmp, trees(args.base) as roots:
        trace = Path(tmp) / "trace.pkl"
        record(trace, args.events, args.features, args.chunk)
        runs: dict[str, list[tuple[float, float, float, int, str]]] = {n: [] for n in roots}
        print("| tree | build (s) | update (µs/event) | window_closed (µs/event) | digest |")
        print("|---|---:|---:|---:|---|")
        for _ in range(args.repeat):
            for name, root in roots.items():
                b, u, c, n, digest = one_run(root, trace)
                runs[name].append((b, u, c, n, digest))
                print(f"| {name} | {b:.2f} | {u / n * 1e6:.2f} | {c / n * 1e6:.2f} | "
                      f"{digest[:12]} |", flush=True)
        best = {name: (min(r[1] / r[3] for r in rs) * 1e6, min(r[2] / r[3] for r in rs) * 1e6)
                for name, rs in runs.items()}
        this, base = best["this tree"], best[args.base]
        print(f"best: this tree update {this[0]:.2f} µs/event, window_closed {this[1]:.2f}; "
              f"{args.base} {base[0]:.2f}, {base[1]:.2f}; ratios {this[0] / base[0]:.3f}, "
              f"{this[1] / base[1]:.3f} (below 1: this tree is faster)")
        digests = {r[4] for rs in runs.values() for r in rs}
        print("digests equal" if len(digests) == 1 else f"DIGESTS DIFFER: {sorted(digests)}")
        if len(digests) != 1:
            sys.exit(1)


if __name__ == "__main__":
    main()
