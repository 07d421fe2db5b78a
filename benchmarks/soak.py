"""Soak: a long generated stream through replay, resident memory sampled as it goes.

    python benchmarks/soak.py [--events 10000000] [--every 1000000]

The stream is stationary traffic from a fixed set of models (numeric and
categorical features, two versions, four hosts, latency, some errors) with a
label for every other prediction, arriving a few minutes after it, and event
time moving 100 ms per event (10 events/s: the default one-day label TTL is
864,000 events, so from about the first million on the label join holds a
steady day of predictions; 10M events are 11.6 days, windows close thousands
of times).  Everything a long-running daemon holds
must stay bounded, so resident memory after the first million events and
after the last must be within 10 % of each other (``--tolerance``).  Lines are
generated chunk by chunk (never a file), fed to
:func:`monitor.replay.replay_chunks`.  Prints RSS at every ``--every`` events,
the ratio last / first sample, and exits 1 when it exceeds ``1 + tolerance``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config.types import Config  # noqa: E402
from monitor.replay import ReplayResult, replay_chunks  # noqa: E402

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP_S = 0.1
LABEL_DELAY_S = 180.0
HOSTS = ("pod-0", "pod-1", "pod-2", "pod-3")
PLANS = ("basic", "pro", "enterprise")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource

    return pages * resource.getpagesize() / 2**20


def lines(total: int, models: int, chunk: int, seed: int = 1,
          step_s: float = STEP_S) -> Iterator[list[bytes]]:
    """``total`` prediction events (and a label for every other one, its delay later)
    as chunks of JSON lines, in event-time order."""
    rng = np.random.default_rng(seed)
    names = [f"model-{k}" for k in range(models)]
    pending: list[tuple[float, bytes]] = []  # labels not yet due, oldest first
    dumps = orjson.dumps
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        idx = np.arange(start, start + n)
        ts = T0 + idx * step_s
        model = idx % models
        age = rng.normal(40, 10, n).round(1).tolist()
        spend = rng.lognormal(3.5, 0.5, n).round(2).tolist()
        plan = rng.integers(0, 3, n).tolist()
        host = rng.integers(0, 4, n).tolist()
        lat = rng.lognormal(np.log(30), 0.3, n).round(2).tolist()
        pred = rng.random(n).round(4).tolist()
        err = (rng.random(n) < 0.002).tolist()
        out: list[bytes] = []
        due = ts[0]
        while pending and pending[0][0] <= due:
            out.append(pending.pop(0)[1])
        labelled: list[tuple[float, bytes]] = []
        for i in range(n):
            j = int(idx[i])
            ev: dict[str, object] = {
                "type": "prediction", "id": str(j), "model": names[model[i]],
                "model_version": "v2" if j % 10 == 0 else "v1", "ts": float(ts[i]),
                "features": {"age": age[i], "spend": spend[i], "plan": PLANS[plan[i]]},
                "segment": {"host": HOSTS[host[i]]}, "latency_ms": lat[i],
            }
            if err[i]:
                ev["status"] = "error"
            else:
                ev["prediction"] = pred[i]
            out.append(dumps(ev))
            if j % 2 == 0:
                at = float(ts[i]) + LABEL_DELAY_S
                labelled.append((at, dumps({"type": "label", "id": str(j),
                                            "model": names[model[i]], "ts": at,
                                            "label": int(pred[i] > 0.7)})))
        pending.extend(labelled)
        yield out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--every", type=int, default=1_000_000, help="sample RSS this often")
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--step", type=float, default=STEP_S,
                    help="event-time seconds between events (the join holds one label TTL "
                         "of them: 1.0 reaches its steady state at 86,400 events)")
    args = ap.parse_args()
    samples: list[tuple[int, float, float]] = []
    began = time.monotonic()
    print(f"start: rss {rss_mb():.1f} MB", flush=True)

    def on_chunk(result: ReplayResult) -> None:
        predictions = result.events  # labels included; sampled on the predictions fed
        fed = fed_box[0]
        if fed // args.every > len(samples):
            samples.append((fed, rss_mb(), time.monotonic() - began))
            print(f"{fed:>11,} predictions ({predictions:,} events): rss {samples[-1][1]:.1f} MB"
                  f" at {samples[-1][2]:.0f}s", flush=True)

    fed_box = [0]

    def counted() -> Iterator[list[bytes]]:
        for chunk in lines(args.events, args.models, args.chunk, step_s=args.step):
            fed_box[0] += sum(1 for raw in chunk if raw.startswith(b'{"type":"prediction"'))
            yield chunk

    result = replay_chunks(Config(), counted(), on_chunk=on_chunk)
    print(f"replayed {result.events:,} events ({result.invalid} invalid), "
          f"{len(result.alerts)} alert state changes, {time.monotonic() - began:.0f}s")
    if len(samples) < 2:
        print("fewer than two samples: no ratio")
        return 0
    first, last = samples[0], samples[-1]
    ratio = last[1] / first[1]
    print(f"rss at {last[0]:,}: {last[1]:.1f} MB; at {first[0]:,}: {first[1]:.1f} MB; "
          f"ratio {ratio:.3f} (limit {1 + args.tolerance:.2f})")
    return 0 if ratio <= 1 + args.tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())
