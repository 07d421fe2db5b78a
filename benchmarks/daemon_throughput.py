"""The daemon's consume loop, per partition, against one pipeline fed the same polls.

Since several daemons can split the partitions, the daemon keeps one pipeline per
partition and hands each pipeline its partition's share of a poll.  The baseline
is what the daemon did before: every poll's messages, merged, into one pipeline.
Same simulated traffic (12 models keyed over the partitions, 5,000 events a
poll), same process, interleaved rounds; the ratio is what matters (machines here
are noisy).  Run: ``python benchmarks/daemon_throughput.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.app import build  # noqa: E402
from monitor.config.types import Config, MonitorSettings  # noqa: E402
from monitor.daemon import Daemon  # noqa: E402
from monitor.simulate import ModelSpec, ndjson_chunks, stream  # noqa: E402
from monitor.sources.kafka import KafkaSource  # noqa: E402

TP = namedtuple("TP", "topic partition")
Record = namedtuple("Record", "value offset")
MODELS = tuple(ModelSpec(f"model-{i}", "churn" if i % 2 else "eta") for i in range(12))


class Replayer:
    """A consumer handing out prepared polls (what a broker would return)."""

    def __init__(self, **options: Any) -> None:
        self.polls: list[dict[TP, list[Record]]] = []
        self.listener: Any = None
        self.assigned: list[TP] = []

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(64))

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[Record]]:
        return self.polls.pop(0) if self.polls else {}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def seek(self, tp: TP, offset: int) -> None: ...

    def pause(self, *tps: TP) -> None: ...

    def resume(self, *tps: TP) -> None: ...

    def commit(self, offsets: dict | None = None) -> None: ...

    def close(self) -> None: ...


def polls(partitions: int, n_per_model: int, per_poll: int) -> list[dict[TP, list[Record]]]:
    """The stream as polls: 100 events a message, each model on partition i % P."""
    events = stream(MODELS, n_per_model, seed=3)
    part = {m.name: i % partitions for i, m in enumerate(MODELS)}
    out: list[dict[TP, list[Record]]] = []
    offsets = [0] * partitions
    for i in range(0, len(events), per_poll):
        batch: dict[TP, list[Record]] = {}
        chunk = events[i:i + per_poll]
        for m in MODELS:
            evs = [e for e in chunk if e["model"] == m.name]
            p = part[m.name]
            for value in ndjson_chunks(evs, 100):
                batch.setdefault(TP("predictions", p), []).append(Record(value, offsets[p]))
                offsets[p] += 1
        out.append(batch)
    return out


def config() -> Config:
    return Config(defaults=MonitorSettings(reference_events=2_000, window_events=1_000))


def run_daemon(prepared: list[dict[TP, list[Record]]], partitions: int) -> float:
    d = Daemon(config(), registry=CollectorRegistry())
    made: list[Replayer] = []

    def factory(**options: Any) -> Replayer:
        made.append(Replayer(**options))
        return made[-1]

    d.source = KafkaSource(d.config.kafka, factory, listener=d)
    made[0].assigned = [TP("predictions", p) for p in range(partitions)]
    d.on_assigned(made[0].assigned)
    made[0].polls = list(prepared)
    t = time.perf_counter()
    while made[0].polls:
        d.step(timeout_ms=0)
    dt = time.perf_counter() - t
    d.app.dispatcher.stop(0)
    return events(prepared) / dt


def run_baseline(prepared: list[dict[TP, list[Record]]]) -> float:
    app = build(config(), registry=CollectorRegistry(), notify=False)
    t = time.perf_counter()
    for poll in prepared:
        values = [r.value for records in poll.values() for r in records]
        app.pipeline.process_messages(values, "prediction")
    return events(prepared) / (time.perf_counter() - t)


def events(prepared: list[dict[TP, list[Record]]]) -> int:
    return sum(r.value.count(b"\n") + 1 for poll in prepared for records in poll.values()
               for r in records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-per-model", type=int, default=6_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print("| partitions | baseline: one pipeline (events/s) | per partition (events/s) | ratio |")
    print("|---:|---:|---:|---:|")
    for partitions in (1, 4, 12):
        prepared = polls(partitions, args.events_per_model, 5_000)
        base, mine = [], []
        for _ in range(args.rounds):  # interleaved: drift in machine speed hits both
            base.append(run_baseline(prepared))
            mine.append(run_daemon(prepared, partitions))
        b, m = statistics.median(base), statistics.median(mine)
        print(f"| {partitions} | {b:,.0f} | {m:,.0f} | {m / b:.2f} |")


if __name__ == "__main__":
    main()
