"""Throughput: `driftwatch run` against a bare Kafka consumer, replay against orjson, RSS.

    python benchmarks/throughput.py live   [--base REV] [--features 10,50,100] [--events N]
    python benchmarks/throughput.py replay [--base REV] [--features 10] [--events N]
    python benchmarks/throughput.py memory [--base REV] [--models 5,20] [--features 20]
                                           [--reference 5000] [--breakdown]

The stream (both modes): two models, ``k`` features each (``k - 1`` numeric and
one categorical), a host segment, latency, 0.2 % errors, a probability output,
and a label for every prediction 10-60 s of event time after it; events in
event-time order, 20 per second per model.  ``--events`` counts predictions and
labels together.  Defaults everywhere (reference 5,000, windows of 2,000, every
default detector on).

live: a real broker (tansu, as the integration tests start it) on a free
loopback port; the events are produced once, one event per message, keyed by
model (predictions and labels on their topics, 3 partitions each).  Then, in
turn, in one run: a bare kafka-python consumer of both topics (same group
options as the daemon, values touched, nothing decoded) and `driftwatch run` of
this tree (and of ``--base``, checked out into a temporary git worktree), each
in a fresh consumer group.  Rate = events after the first poll / time from the
first poll to the last event: start-up and group join are excluded.  The
daemon's count is its ``driftwatch_events_total`` (scraped every 0.5 s, every 20 ms
once 90 % are in: a scrape costs the daemon CPU); RSS is
its VmRSS at the end and VmHWM (peak).

replay: ``replay()`` over the file in a child process (after what `driftwatch
replay` does first: :func:`monitor.threads.one_blas_thread`, when the tree has
it, and after a replay of the file's first 2,000 lines: start-up excluded)
against an orjson-only pass over the same file (read, split lines, ``orjson.loads``
each) in the same child.

memory: RSS of a child that replays ``M`` models of ``k`` features, each past
its reference and two windows (labels on), then holds its state: the steady
cost of a model is the slope between two ``M`` (extrapolated, said so).  With
``--breakdown``: where a model's bytes are, component by component (a deep size
walk of the pipeline's state, numpy-aware), at the first ``M``.

Machines here are shared: run under ``nice``, repeat, and read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_767_225_600.0  # 2026-01-01
RATE = 20.0  # events per second of event time, per model
MODELS = ("churn", "eta")


# -- the stream ---------------------------------------------------------------------------

def events(n_total: int, features: int, models: tuple[str, ...] = MODELS,
           seed: int = 0) -> list[dict[str, object]]:
    """``n_total`` events (predictions and their labels), in event-time order."""
    rng = np.random.default_rng(seed)
    per_model = n_total // (2 * len(models))
    out: list[tuple[float, int, dict[str, object]]] = []
    for mi, model in enumerate(models):
        ts = T0 + np.arange(per_model) / RATE + mi * 1e-3
        x = rng.normal(0.0, 1.0, (per_model, features - 1)).round(3).tolist()
        plan = rng.choice(np.array(["basic", "pro", "enterprise"]), per_model).tolist()
        host = rng.choice(np.array(["pod-0", "pod-1", "pod-2", "pod-3"]), per_model).tolist()
        score = 1.0 / (1.0 + np.exp(-(np.asarray(x)[:, 0] + np.asarray(x)[:, 1])))
        label = (rng.random(per_model) < score).astype(float).tolist()
        latency = rng.lognormal(np.log(30.0), 0.3, per_model).round(2).tolist()
        error = (rng.random(per_model) < 0.002).tolist()
        label_ts = (ts + rng.uniform(10.0, 60.0, per_model)).round(3).tolist()
        ts_l, score_l = ts.round(3).tolist(), score.round(4).tolist()
        names = [f"x{j}" for j in range(features - 1)]
        for i in range(per_model):
            feats: dict[str, object] = dict(zip(names, x[i], strict=True))
            feats["plan"] = plan[i]
            ev: dict[str, object] = {
                "type": "prediction", "id": f"{model}-{i}", "model": model,
                "model_version": "v1", "ts": ts_l[i], "features": feats,
                "latency_ms": latency[i], "segment": {"host": host[i]}}
            if error[i]:
                ev["status"] = "error"
            else:
                ev["prediction"] = score_l[i]
            out.append((ts_l[i], 0, ev))
            out.append((label_ts[i], 1, {"type": "label", "id": f"{model}-{i}", "model": model,
                                         "ts": label_ts[i], "label": label[i]}))
    out.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in out]


def write(path: Path, evs: list[dict[str, object]]) -> None:
    with open(path, "wb") as fh:
        for e in evs:
            fh.write(orjson.dumps(e) + b"\n")


@contextlib.contextmanager
def trees(base: str | None) -> Iterator[dict[str, Path]]:
    """{"this tree": ROOT, base: a temporary worktree of it}."""
    out = {"this tree": ROOT}
    if base is None:
        yield out
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), base], check=True,
                       cwd=ROOT, capture_output=True)
        try:
            out[base] = path
            yield out
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], check=True,
                           cwd=ROOT, capture_output=True)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    get = {k: float(re.search(rf"{k}:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]
           for k in ("VmRSS", "VmHWM")}
    return get["VmRSS"], get["VmHWM"]


# -- live ---------------------------------------------------------------------------------

def produce(bootstrap: str, evs: list[dict[str, object]], topics: tuple[str, str]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                             batch_size=256 * 1024, max_request_size=8 * 1024 * 1024)
    for e in evs:
        topic = topics[0] if e["type"] == "prediction" else topics[1]
        producer.send(topic, key=str(e["model"]).encode(), value=orjson.dumps(e))
    producer.flush()
    producer.close()


def bare_consumer(bootstrap: str, topics: tuple[str, str], n: int) -> float:
    """events/s of a kafka-python consumer that only reads the values."""
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=f"bare-{uuid.uuid4().hex}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=10_000, heartbeat_interval_ms=3_333,
                             max_poll_records=5_000,
                             partition_assignment_strategy=(RangePartitionAssignor,))
    consumer.subscribe(list(topics))
    got, first, t_first, size = 0, 0, 0.0, 0
    deadline = time.monotonic() + 600
    try:
        while got < n and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=500, max_records=5_000)
            for records in polled.values():
                for r in records:
                    size += len(r.value)
                got += len(records)
            if got and not first:
                first, t_first = got, time.perf_counter()
        t_last = time.perf_counter()
    finally:
        consumer.close()
    if got < n:
        raise SystemExit(f"bare consumer read {got} of {n} events")
    return (n - first) / (t_last - t_first)


CONFIG = """
[kafka]
bootstrap_servers = ["{bootstrap}"]
topics = {{ predictions = "{p}", labels = "{l}" }}
group_id = "{group}"
[store]
url = "sqlite:///{db}"
[http]
listen = "127.0.0.1:{port}"
"""


def events_counted(port: int) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0.0
    return sum(float(m.group(1)) for m in re.finditer(
        rb'^driftwatch_events_total\{[^}]*\} ([0-9.e+]+)$', body, re.M))


def daemon(tree: Path, bootstrap: str, topics: tuple[str, str], n: int,
           work: Path, py_spy: Path | None = None) -> tuple[float, float, float]:
    """(events/s, RSS MB, peak RSS MB) of `driftwatch run` of ``tree``; with ``py_spy``
    a sampling profile of it (raw folded stacks) is written there."""
    from monitor.broker import free_port

    port = free_port()
    cfg = work / f"dw-{uuid.uuid4().hex[:8]}.toml"
    cfg.write_text(CONFIG.format(bootstrap=bootstrap, p=topics[0], l=topics[1],
                                 group=f"dw-{uuid.uuid4().hex}", db=work / f"{cfg.stem}.db",
                                 port=port))
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--log-level", "WARNING",
                             "run", "--config", str(cfg)], cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spy = None
    if py_spy is not None:
        spy = subprocess.Popen(["py-spy", "record", "-r", "100", "-f", "raw", "-o", str(py_spy),
                                "-p", str(proc.pid)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        first, t_first, got = 0.0, 0.0, 0.0
        deadline = time.monotonic() + 1800
        while got < n and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"driftwatch run of {tree} exited with {proc.returncode}")
            got = events_counted(port)
            if got and not first:
                first, t_first = got, time.perf_counter()
            # a scrape costs the daemon CPU (its /metrics is rendered under the GIL): every
            # 20 ms only near the end, where the time of the last event is read, else 0.5 s
            time.sleep(0.02 if got >= 0.9 * n else 0.5)
        t_last = time.perf_counter()
        if got < n:
            raise SystemExit(f"driftwatch run of {tree} counted {got:.0f} of {n} events")
        rss, peak = rss_mb(proc.pid)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return (n - first) / (t_last - t_first), rss, peak


def live(args: argparse.Namespace) -> None:
    from monitor.broker import EmbeddedBroker

    print(f"live, {args.events:,} events (predictions + labels), one per message, "
          f"{args.repeat} round(s), best of each")
    print("| features | tree | bare consumer (events/s) | driftwatch run (events/s) | ratio "
          "| RSS end / peak (MB) |")
    print("|---:|---|---:|---:|---:|---:|")
    with trees(args.base) as roots, tempfile.TemporaryDirectory() as tmp, \
            EmbeddedBroker() as broker:
        for k in args.features:
            tag = f"{k}-{uuid.uuid4().hex[:6]}"
            topics = (f"predictions-{tag}", f"labels-{tag}")
            broker.create_topics(list(topics), partitions=3)
            produce(broker.bootstrap, events(args.events, k), topics)
            bare: list[float] = []
            runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in roots}
            for _ in range(args.repeat):  # interleaved: machine noise falls on all alike
                bare.append(bare_consumer(broker.bootstrap, topics, args.events))
                for name, root in roots.items():
                    spy = (Path(args.py_spy) / f"live-{k}-{name.replace(' ', '_')}.raw"
                           if args.py_spy else None)
                    runs[name].append(daemon(root, broker.bootstrap, topics, args.events,
                                             Path(tmp), spy))
            b = max(bare)
            for name, rs in runs.items():
                rate, rss, peak = max(rs)
                print(f"| {k} | {name} | {b:,.0f} | {rate:,.0f} | {rate / b:.2f} | "
                      f"{rss:.0f} / {peak:.0f} |", flush=True)


# -- replay -------------------------------------------------------------------------------

REPLAY_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
try:
    from monitor.threads import one_blas_thread
    one_blas_thread()
except ImportError:
    pass
import orjson
from monitor.config.types import Config
from monitor.replay import replay
path = {path!r}
# start-up excluded, as in live mode: a replay of the file's first lines imports what
# replay imports lazily (scipy's tests, the alert book, the store) before the clock
with open(path, "rb") as fh:
    head = fh.read(1 << 20).split(b"\\n")[:-1][:2000]
warm = path + ".head"
with open(warm, "wb") as fh:
    fh.write(b"\\n".join(head) + b"\\n")
replay(Config(), [warm])
t = time.perf_counter()
with open(path, "rb") as fh:
    n = sum(1 for line in fh.read().split(b"\\n") if line and orjson.loads(line) is not None)
t_orjson = time.perf_counter() - t
t = time.perf_counter()
r = replay(Config(), [path])
t_replay = time.perf_counter() - t
assert r.events == n, (r.events, n)
print(n / t_replay, n / t_orjson, len(r.alerts))
"""


def replay_rates(root: Path, path: Path) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, "-c", REPLAY_CHILD.format(root=str(root),
                                                                    path=str(path))],
                         check=True, capture_output=True, text=True, cwd=root)
    rep, orj, alerts = out.stdout.split()
    return float(rep), float(orj), int(alerts)


def replay_mode(args: argparse.Namespace) -> None:
    print(f"replay, {args.events:,} events (predictions + labels), {args.repeat} round(s), "
          "best of each")
    print("| features | tree | replay (events/s) | orjson only (events/s) | ratio | alerts |")
    print("|---:|---|---:|---:|---:|---:|")
    with trees(args.base) as roots, tempfile.TemporaryDirectory() as tmp:
        for k in args.features:
            path = Path(tmp) / f"stream-{k}.jsonl"
            write(path, events(args.events, k))
            runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in roots}
            for _ in range(args.repeat):
                for name, root in roots.items():
                    runs[name].append(replay_rates(root, path))
            for name, rs in runs.items():
                rep = max(r[0] for r in rs)
                orj = max(r[1] for r in rs)
                print(f"| {k} | {name} | {rep:,.0f} | {orj:,.0f} | {rep / orj:.3f} | "
                      f"{rs[0][2]} |", flush=True)


# -- memory -------------------------------------------------------------------------------

MEMORY_CHILD = """
import sys, re
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
try:
    from monitor.threads import one_blas_thread
    one_blas_thread()
except ImportError:
    pass
import gc
from pathlib import Path
from monitor.config.types import Config, MonitorSettings
from monitor.replay import replay
import throughput
config = Config(defaults=MonitorSettings(reference_events={reference}))
r = replay(config, [{path!r}], keep_pipeline={breakdown})
gc.collect()
print(*throughput.rss_mb(__import__("os").getpid()), r.events)
if {breakdown}:
    for name, size in throughput.breakdown(r):
        print(name, size)
"""


def deep_size(obj: object, seen: set[int]) -> int:
    """Bytes reachable from ``obj`` not in ``seen`` (and marked seen): numpy arrays with
    their data, their base and, for object arrays, their elements; modules, classes and
    functions are not followed."""
    import gc
    import types
    skip = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType,
            types.MethodType, types.CodeType, types.FrameType)
    total, stack = 0, [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)  # an array that owns its data: with it
        if isinstance(o, np.ndarray):
            if o.base is not None:
                stack.append(o.base)
            if o.dtype == object:
                stack.extend(o.ravel().tolist())
        else:
            stack.extend(gc.get_referents(o))
    return total


def breakdown(r: Any) -> list[tuple[str, int]]:
    """Bytes per component of a replay's pipeline (``keep_pipeline``), summed over its
    models; shared objects are charged to the first component that reaches them, in
    the order below (the config first, to nobody)."""
    p = r.pipeline
    seen: set[int] = set()
    deep_size(p.config, seen)
    rows: dict[str, int] = {}

    def add(name: str, *objs: object) -> None:
        rows[name] = rows.get(name, 0) + sum(deep_size(o, seen) for o in objs)

    for st in p.models.values():
        ref = st.windows.reference.compact()
        if ref is not None:
            add("reference: numeric features (float64)", ref.numeric)
            add("reference: ts, prediction, latency, error", ref.ts, ref.prediction,
                ref.latency_ms, ref.error)
            add("reference: ids", ref.ids)
            add("reference: versions, predicted class", ref.versions, ref.prediction_class)
            add("reference: categorical features, segments", ref.categorical, ref.segments)
        add("current window", st.windows.current)
        seq = st.seq
        if seq is not None:
            add("sequential: sorted reference per stream", seq._sorted)
            add("sequential: tails (raw values for alarms)", seq._tail, seq._rtail,
                seq._ctail, seq._mtail)
            add("sequential: rate streams", seq.rates)
            add("sequential: CUSUM banks, the rest", seq)
        add("model state, the rest", st)
    add("performance watch (+ label deadline)", *p.perf.values())
    add("label join (monitor/join.py)", p.join)
    add("version watch", p.versions)
    add("decoder (types, caps)", p.decoder)
    add("alert book", p.book)
    add("metrics registry", r.registry)
    add("pipeline, the rest", p)
    return list(rows.items())


def memory(args: argparse.Namespace) -> None:
    # past the reference (5,000) and two windows (2,000 each) per model, labels on
    per_model = 2 * (args.reference + 2 * 2_000 + 500)
    print(f"memory: {args.features[0]} features, reference {args.reference:,}, "
          f"{per_model // 2:,} predictions and as many labels per model, RSS after the "
          "replay (MB)")
    if args.breakdown:
        memory_breakdown(args, per_model)
        return
    print("| models | tree | RSS | peak RSS | MB per model (slope) |")
    print("|---:|---|---:|---:|---:|")
    with trees(args.base) as roots, tempfile.TemporaryDirectory() as tmp:
        res: dict[str, list[tuple[int, float, float]]] = {name: [] for name in roots}
        for m in args.models:
            names = tuple(f"model-{i}" for i in range(m))
            path = Path(tmp) / f"models-{m}.jsonl"
            write(path, events(per_model * m, args.features[0], models=names))
            for name, root in roots.items():
                code = MEMORY_CHILD.format(root=str(root), bench=str(ROOT / "benchmarks"),
                                           path=str(path), reference=args.reference,
                                           breakdown=False)
                out = subprocess.run([sys.executable, "-c", code], check=True,
                                     capture_output=True, text=True, cwd=root)
                rss_text, peak_text, _ = out.stdout.split()
                res[name].append((m, float(rss_text), float(peak_text)))
        for name, rows in res.items():
            for i, (m, rss, peak) in enumerate(rows):
                slope = "" if i == 0 else \
                    f"{(rss - rows[0][1]) / (m - rows[0][0]):.2f}"
                print(f"| {m} | {name} | {rss:.0f} | {peak:.0f} | {slope} |", flush=True)


def memory_breakdown(args: argparse.Namespace, per_model: int) -> None:
    """KB per model by component (:func:`breakdown`), at the first ``--models`` count."""
    m = args.models[0]
    with trees(args.base) as roots, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"models-{m}.jsonl"
        write(path, events(per_model * m, args.features[0],
                           models=tuple(f"model-{i}" for i in range(m))))
        cols: dict[str, dict[str, int]] = {}
        for name, root in roots.items():
            code = MEMORY_CHILD.format(root=str(root), bench=str(ROOT / "benchmarks"),
                                       path=str(path), reference=args.reference,
                                       breakdown=True)
            out = subprocess.run([sys.executable, "-c", code], check=True,
                                 capture_output=True, text=True, cwd=root).stdout.splitlines()
            cols[name] = {}
            for line in out[1:]:
                comp, size = line.rsplit(" ", 1)
                cols[name][comp] = int(size)
            print(f"{name}: RSS {float(out[0].split()[0]):.0f} MB at {m} models", flush=True)
    names = list(cols)
    print(f"| component (KB per model, {m} models) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    comps = sorted(cols[names[0]], key=lambda c: -cols[names[0]][c])
    for comp in comps:
        print(f"| {comp} | " + " | ".join(f"{cols[n].get(comp, 0) / m / 1e3:,.0f}"
                                          for n in names) + " |")
    print("| total accounted | " + " | ".join(f"{sum(cols[n].values()) / m / 1e3:,.0f}"
                                             for n in names) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("live", "replay", "memory"))
    ap.add_argument("--base", help="git revision to measure beside this tree")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--features", default="10", help="comma-separated feature counts")
    ap.add_argument("--models", default="5,20", help="memory: comma-separated model counts")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--py-spy", metavar="DIR",
                    help="live: write a py-spy profile of each daemon run into DIR")
    ap.add_argument("--reference", type=int, default=5_000,
                    help="memory: reference_events of every model")
    ap.add_argument("--breakdown", action="store_true",
                    help="memory: KB per model by component at the first --models count")
    args = ap.parse_args()
    args.features = [int(x) for x in args.features.split(",")]
    args.models = [int(x) for x in args.models.split(",")]
    {"live": live, "replay": replay_mode, "memory": memory}[args.mode](args)


if __name__ == "__main__":
    main()
