"""Decoder throughput vs a naive per-event decoder, on simulated traffic.

The baseline is what one would write first: ``orjson.loads`` every line into a
dict, keep the dicts, then build numpy columns per model from them (no
validation at all).  The decoder validates every field as well, so matching or
beating the baseline is the bar.  Run: ``python benchmarks/decode_throughput.py``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
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
                cols[k] = np.array([e["features"].get(k) for e in evs], dtype=object)
            else:
                cols[k] = np.array([e["features"].get(k, math.nan) for e in evs], dtype=np.float64)
        cols["host"] = np.array([e.get("segment", {}).get("host") for e in evs], dtype=object)
        out[model] = cols
    return out


def best_of(fn: Callable[[], object], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    events = stream(DEMO_MODELS, args.events // len(DEMO_MODELS), ())
    n = len(events)
    messages = list(ndjson_chunks(events, 200))
    lines = [line for m in messages for line in m.split(b"\n")]

    check = Decoder().decode_lines(lines)
    decoded = sum(c.n for c in check.predictions.values())
    if decoded != n or check.invalid:
        raise SystemExit(f"decoder lost events: {decoded}/{n}, invalid={dict(check.invalid)}")

    runs = {
        "baseline (naive per-event)": lambda: naive_decode(messages),
        "Decoder.decode_messages (ndjson x200)": lambda: Decoder().decode_messages(messages, None),
        "Decoder.decode_lines": lambda: Decoder().decode_lines(lines),
    }
    results = {name: best_of(fn, args.repeat) for name, fn in runs.items()}
    base = results["baseline (naive per-event)"]
    print(f"{n} events, {len(messages)} messages, best of {args.repeat}")
    for name, secs in results.items():
        print(f"  {name:40s} {n / secs:>12,.0f} events/s   x{base / secs:.2f} vs baseline")


if __name__ == "__main__":
    main()
