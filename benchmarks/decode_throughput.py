"""Decoder throughput vs a naive per-event decoder, on simulated traffic.

The baseline is what one would write first: ``orjson.loads`` every line into a
dict, keep the dicts, then build numpy columns per model from them (no
validation at all).  The decoder validates every field as well, so matching or
beating the baseline is the bar.  Each decode also runs through the per-event
path alone (``Decoder.fast = False``: orjson and ``Decoder._event`` for every
event, the decoder before msgspec took the common shape), alternating with the
default one in the same rounds, best of each.  ``--stream throughput`` decodes
the stream of ``benchmarks/throughput.py`` (10 features, labels) instead of the
demo models.  ``--base REV`` instead times this tree's decoder against REV's (a
temporary worktree), each in a child process, the trees alternating round by
round.  Run: ``python benchmarks/decode_throughput.py``.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.events import Decoder  # noqa: E402
from monitor.simulate import DEMO_MODELS, ndjson_chunks, stream  # noqa: E402


def naive_decode(messages: list[bytes]) -> dict[str, dict[str, np.ndarray]]:
    events: list[dict] = []
    for msg in messages:
        for line in msg.split(b"\n"):
            if line:
                events.append(orjson.loads(line))
    by_model: dict[str, list[dict]] = {}
    for e in events:
        by_model.setdefault(e["model"], []).append(e)
    out: dict[str, dict[str, np.ndarray]] = {}
    for model, evs in by_model.items():
        cols = {
            "ts": np.array([e["ts"] for e in evs], dtype=np.float64),
            "ids": np.array([e["id"] for e in evs], dtype=object),
            "versions": np.array([e.get("model_version", "unknown") for e in evs], dtype=object),
            "prediction": np.array([e.get("prediction", math.nan) for e in evs], dtype=np.float64),
            "latency_ms": np.array([e.get("latency_ms", math.nan) for e in evs], dtype=np.float64),
            "error": np.array([e.get("status") == "error" for e in evs], dtype=bool),
        }
        names: dict[str, bool] = {}
        for e in evs:
            for k, v in e.get("features", {}).items():
                names.setdefault(k, isinstance(v, str))
        for k, is_cat in names.items():
            if is_cat:
                cols[k] = np.array([e.get("features", {}).get(k) for e in evs], dtype=object)
            else:
                cols[k] = np.array([e.get("features", {}).get(k, math.nan) for e in evs],
                                   dtype=np.float64)
        cols["host"] = np.array([e.get("segment", {}).get("host") for e in evs], dtype=object)
        out[model] = cols
    return out


def best_of(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best time of each run, the runs alternating round by round."""
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeat):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from monitor.events import Decoder
data = open(sys.argv[2], "rb").read()
lines = data.split(b"\\n")
messages = [b"\\n".join(lines[i:i + 200]) for i in range(0, len(lines), 200)]
runs = {"decode_lines": lambda: Decoder().decode_lines(lines),
        "decode_messages (ndjson x200)": lambda: Decoder().decode_messages(messages, None),
        "decode_messages (one per message)": lambda: Decoder().decode_messages(lines, None)}
for name, fn in runs.items():
    best = float("inf")
    for _ in range(int(sys.argv[3])):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    print(name, len(lines) / best, flush=True)
"""


def against_base(base: str, lines: list[bytes], rounds: int, repeat: int) -> None:
    from benchmarks.throughput import trees
    with tempfile.TemporaryDirectory() as tmp, trees(base) as roots:
        path = Path(tmp) / "stream.jsonl"
        path.write_bytes(b"\n".join(lines))
        best: dict[tuple[str, str], float] = {}
        for _ in range(rounds):
            for tree, root in roots.items():
                out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(path),
                                      str(repeat)], check=True, capture_output=True,
                                     text=True, cwd=root).stdout
                for row in out.splitlines():
                    name, rate = row.rsplit(" ", 1)
                    best[tree, name] = max(best.get((tree, name), 0.0), float(rate))
        print(f"{len(lines)} events, best of {rounds} rounds x {repeat}, trees alternating")
        print(f"| decode | {base} (events/s) | this tree (events/s) | ratio |")
        print("|---|---:|---:|---:|")
        for name in dict.fromkeys(n for _, n in best):
            old, new = best[base, name], best["this tree", name]
            print(f"| {name} | {old:,.0f} | {new:,.0f} | {new / old:.2f} |")


def decoder(fast: bool) -> Decoder:
    d = Decoder()
    d.fast = fast
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stream", choices=("demo", "throughput"), default="demo")
    ap.add_argument("--base", help="a revision to time this tree's decoder against")
    ap.add_argument("--rounds", type=int, default=3, help="with --base: rounds")
    args = ap.parse_args()

    if args.stream == "demo":
        events = stream(DEMO_MODELS, args.events // len(DEMO_MODELS), ())
    else:
        from benchmarks.throughput import events as throughput_events
        events = throughput_events(args.events, 10)
    n = len(events)
    messages = list(ndjson_chunks(events, 200))
    lines = [line for m in messages for line in m.split(b"\n")]
    singles = [orjson.dumps(e) for e in events]
    if args.base:
        against_base(args.base, singles, args.rounds, args.repeat)
        return

    for fast in (False, True):
        check = decoder(fast).decode_lines(lines)
        decoded = (sum(c.n for c in check.predictions.values())
                   + sum(c.n for c in check.labels.values()))
        if decoded != n or check.invalid:
            raise SystemExit(f"decoder lost events: {decoded}/{n}, "
                             f"invalid={dict(check.invalid)}")

    runs: dict[str, Callable[[], object]] = {"baseline (naive per-event)":
                                             lambda: naive_decode(messages)}
    for fast in (False, True):
        tag = "" if fast else " per-event"
        runs[f"decode_messages (ndjson x200){tag}"] = partial(
            lambda f: decoder(f).decode_messages(messages, None), fast)
        runs[f"decode_messages (one per message){tag}"] = partial(
            lambda f: decoder(f).decode_messages(singles, None), fast)
        runs[f"decode_lines{tag}"] = partial(lambda f: decoder(f).decode_lines(lines), fast)
    results = best_of(runs, args.repeat)
    base = results["baseline (naive per-event)"]
    print(f"{n} events ({args.stream} stream), {len(messages)} messages, best of "
          f"{args.repeat} alternating")
    for name, secs in results.items():
        old = results.get(f"{name} per-event")
        vs_old = f"   x{old / secs:.2f} vs per-event" if old else ""
        print(f"  {name:46s} {n / secs:>12,.0f} events/s   x{base / secs:.2f} vs baseline"
              f"{vs_old}")


if __name__ == "__main__":
    main()
