"""Alerts-out of this tree against another revision's, byte for byte, on the same streams.

    python benchmarks/alerts_identity.py --base REV [--chunks 1000,20000] [--quick]

A throughput change must not change detection.  This replays the same files
through ``driftwatch replay --alerts-out`` in both trees (``REV`` checked out
into a temporary git worktree, removed afterwards) and compares the output
files as bytes: every alert state change, its evidence floats to the last bit,
its timestamps and its order.  The streams: scenario cases of
tests/scenarios (labels on time, late and absent, faults of every team) and
:mod:`monitor.simulate` streams of two models with faults, each at the chunk
sizes given.  Exit status 1 when any file differs (the first differing line is
printed).  The streams are generated once, by this tree's generators.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# a child replays one file with one config in one tree, as `driftwatch replay` does; its
# cwd and sys.path are that tree
CHILD = """
import sys, pickle
sys.path.insert(0, {root!r})
try:  # what `driftwatch replay` does first, in a tree that has it
    from monitor.threads import one_blas_thread
    one_blas_thread()
except ImportError:
    pass
from monitor.replay import replay
config = pickle.loads(bytes.fromhex({config!r}))
replay(config, [{events!r}], alerts_out={out!r}, chunk_lines={chunk})
"""

SCENARIOS = [  # (kind or pair, layout, labels, gradual)
    ("data_drift", "3hosts", "ontime", False),
    ("output_drift", "2regions", "ontime", True),
    ("concept_drift", "none", "ontime", False),
    ("concept_drift", "2regions", "delayed", True),
    ("latency", "12hosts", "ontime", True),
    ("errors", "3hosts", "none", True),
    ("retype", "none", "ontime", False),
    ("nulls", "3hosts", "ontime", True),
    ("label_stop", "12hosts", "ontime", False),
    ("dead_feed", "12hosts", "ontime", False),
    ("drift+slow", "2regions", "ontime", False),
    ("rename+output", "none", "ontime", False),
]


def streams(workdir: Path, quick: bool) -> list[tuple[str, Path, object]]:
    """(name, events file, config) for every stream compared."""
    import pickle  # noqa: F401  (configs must pickle: they cross to the child)

    from monitor.config.types import Config, MonitorSettings
    from monitor.simulate import DEMO_MODELS, Fault, stream, write_jsonl
    from tests.scenarios.cases import PAIRS, pair, single
    from tests.scenarios.judge import config_for
    from tests.scenarios.streams import generate

    out: list[tuple[str, Path, object]] = []
    chosen = SCENARIOS[:4] if quick else SCENARIOS
    for kind, layout, labels, gradual in chosen:
        case = (pair if kind in PAIRS else single)(kind, layout, labels, gradual)
        assert case is not None, kind
        path = workdir / f"{case.name}.jsonl"
        write_jsonl(str(path), generate(case.spec()))
        out.append((case.name, path, config_for(case)))
    small = Config(defaults=MonitorSettings(reference_events=2_000, window_events=1_000))
    sims = {
        "sim-shift+latency": [Fault("churn", "shift", 4_000, {"feature": "age", "sigmas": 1.0}),
                              Fault("eta", "latency", 5_000, {"factor": 1.6})],
        "sim-errors+stuck": [Fault("eta", "errors", 3_000, {"rate": 0.05}),
                             Fault("churn", "stuck", 4_000, {"feature": "monthly_spend",
                                                             "value": 33.0, "host": "pod-1"})],
        "sim-silence+nulls": [Fault("churn", "silence", 4_000, {}, end=4_600),
                              Fault("eta", "nulls", 5_000, {"feature": "hour", "rate": 0.3})],
    }
    for name, faults in list(sims.items())[: 1 if quick else None]:
        path = workdir / f"{name}.jsonl"
        write_jsonl(str(path), stream(DEMO_MODELS, 9_000, faults, seed=4))
        out.append((name, path, small))
    return out


def replay_in(tree: Path, events: Path, config: object, out: Path, chunk: int) -> bytes:
    import pickle

    out.unlink(missing_ok=True)  # the sink appends
    code = CHILD.format(root=str(tree), config=pickle.dumps(config).hex(), events=str(events),
                        out=str(out), chunk=chunk)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tree)
    return out.read_bytes()


def first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False)):
        if x != y:
            return f"line {i + 1}:\n  this: {x[:400]!r}\n  base: {y[:400]!r}"
    return f"{len(la)} lines here, {len(lb)} in base"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--chunks", default="1000,20000", help="replay chunk sizes (lines)")
    ap.add_argument("--quick", action="store_true", help="4 scenario cases and 1 simulation")
    args = ap.parse_args()
    chunks = [int(c) for c in args.chunks.split(",")]
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = work / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base],
                       check=True, cwd=ROOT, capture_output=True)
        try:
            for name, events, config in streams(work, args.quick):
                for chunk in chunks:
                    mine = replay_in(ROOT, events, config, work / "mine.jsonl", chunk)
                    theirs = replay_in(base, events, config, work / "base.jsonl", chunk)
                    same = mine == theirs
                    differ += not same
                    print(f"{name:45s} chunk {chunk:>6}: {len(mine.splitlines()):>4} lines "
                          f"{'identical' if same else 'DIFFER'}", flush=True)
                    if not same:
                        print(first_difference(mine, theirs), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], check=True,
                           cwd=ROOT, capture_output=True)
    print(f"{differ} of the files differ" if differ else "alerts-out identical on every stream")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
