"""The sequential watch on a model's outputs: how soon a miscalibrated release is
alerted, and what the prediction stream spends of the false-alarm budget.

    python benchmarks/research/prediction_watch.py            # ~3 minutes
    python benchmarks/research/prediction_watch.py --quick    # fewer seeds, shorter runs

Conclusion (full run, 20 seeds per shift, 155 s on a shared two-core machine): a
release that shifts churn's logit by +1 on the same inputs (v4; mean score 0.24 ->
~0.43) is alerted as ``prediction_drift`` by the prediction stream's CUSUM a median
of 20 events after the deploy (0.41 s at 50 events/s), where the window test of the
same runs sees it when the window holding the change closes, a median of 1,095
events (21.9 s) after it.  +0.5 takes 80 events (1.6 s) against 1,238 (24.8 s), and
+0.25 takes 323 (6.5 s) against 1,472 (29.4 s); no run missed.  So +1 is now caught
well ahead of the ~2.4 s of a River ADWIN on the score (the brief's figure, not
re-measured here).  On stationary churn traffic the prediction stream raised no alarm
in 4 x 200,000 events at the default ``alpha`` (nominal 0.0005); with ``alpha``
raised 10,000-fold to 0.1 so that its share is countable, it raised 5 alarms against
a nominal 5 (every other stream: 19 against a nominal 35), so it spends its share of
the model's budget and no more.  Its share is one alert key's: churn's other seven
keys each keep 7/8 of what they had.

What is measured
----------------
Delays: the ``churn`` model of :mod:`monitor.simulate` at 50 events/s (0.02 s apart),
alone, through the whole pipeline (decoder, windows, sequential watch, attribution,
alert book, dispatcher) in chunks of 250 events (5 s), as a live daemon would meet
them, with the default settings (reference 5,000, windows of 2,000 events).  A fault
``outputs`` (``shift`` added to the logit) and a new version ``v4`` start together at
a random event between 7,000 and 9,000 (so the change falls anywhere in a window).
"cusum" is the first firing ``prediction_drift`` alert (its detector is ``cusum``);
"window" is the first window evaluation of the same run with a ``prediction_drift``
finding (KS on the scores), taken at the window's close -- the delay the model had
before the prediction stream, since windows do not depend on the watch.  Delays
are in events after the first faulty one (and seconds at 50 events/s).

False alarms: the sequential watch alone (:class:`monitor.sequential.SequentialWatch`)
on stationary churn traffic, 200,000 events after its reference, several seeds; every
alarm of the prediction stream counts (not just the first of an alert), against the
nominal count, events x the sum of 1/ARL0 over the stream's CUSUMs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

from monitor.app import build  # noqa: E402
from monitor.config.types import Config, MonitorSettings  # noqa: E402
from monitor.evaluate import Evaluation  # noqa: E402
from monitor.events import Decoder  # noqa: E402
from monitor.pipeline import ModelState, Pipeline  # noqa: E402
from monitor.sequential import PREDICTION, SequentialWatch  # noqa: E402
from monitor.simulate import Fault, ModelSpec, model_events, ndjson_chunks  # noqa: E402

INTERVAL_S = 0.02  # 50 events/s
T0 = 1_767_225_600.0
CHURN = ModelSpec("churn", "churn", version="v3")
CHUNK = 250


def delays(shift: float, seed: int) -> tuple[float, float]:
    """(cusum, window) delays in events of one run with the fault at a random event."""
    rng = np.random.default_rng(10_000 + seed)
    start = int(rng.integers(7_000, 9_000))
    n = start + 4_000
    events = model_events(CHURN, n, [Fault("churn", "version", start, {"version": "v4"}),
                                     Fault("churn", "outputs", start, {"shift": shift})],
                          seed=seed, start_ts=T0, interval_s=INTERVAL_S)
    windows: list[float] = []

    def record(st: ModelState, ev: Evaluation) -> None:  # the window tests' own verdicts
        if not windows and any(f.kind == "prediction_drift" for f in ev.findings):
            windows.append(ev.window[1])
        recorded(st, ev)

    recorded = Pipeline._record
    app = build(Config(), registry=CollectorRegistry(), notify=False)
    app.pipeline._record = record  # type: ignore[method-assign]
    cusum = np.inf
    for chunk in ndjson_chunks(events, CHUNK):
        for a in app.pipeline.process_lines(chunk.split(b"\n")):
            if (a.status == "firing" and a.labels["kind"] == "prediction_drift"
                    and a.evidence["detector"] == "cusum" and cusum == np.inf):
                cusum = round((a.starts_at - T0) / INTERVAL_S) - start
    window = round((windows[0] - T0) / INTERVAL_S) - start if windows else np.inf
    return float(cusum), float(window)


def false_alarms(seed: int, n: int, alpha: float) -> tuple[int, float, int]:
    """(prediction alarms, nominal count, alarms of every other stream) of the watch on
    ``n`` stationary events after a 5,000-event reference."""
    settings = replace(MonitorSettings(), alpha=alpha)
    decoder = Decoder()
    ref_n = settings.reference_events

    def cols(lo: int, hi: int):  # noqa: ANN202
        evs = model_events(CHURN, hi - lo, [], seed=seed * 1_000 + lo, start_ts=T0 + lo * 0.02,
                           interval_s=INTERVAL_S)
        return decoder.decode_lines(b"\n".join(ndjson_chunks(evs, len(evs)))
                                    .split(b"\n")).predictions["churn"]

    watch = SequentialWatch.build(cols(0, ref_n), settings)
    assert watch is not None and watch.bank is not None
    i = watch.streams.index(PREDICTION)
    rate = 2 * float(np.sum(1 / watch.bank.cusum_arl0(i)))  # both directions
    pred = other = 0
    step = 20_000
    for lo in range(ref_n, ref_n + n, step):
        for a in watch.update(cols(lo, lo + step)):
            if a.kind == "prediction_drift":
                pred += 1
            else:
                other += 1
    return pred, rate * n, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds = 5 if args.quick else 20
    t = time.time()
    print("median delay after a miscalibrated release (v4, logit + shift), 50 events/s")
    print(f"{'shift':>6} {'cusum events':>13} {'(s)':>6} {'window events':>14} {'(s)':>6}"
          f" {'cusum misses':>13}")
    for shift in (1.0, 0.5, 0.25):
        runs = [delays(shift, s) for s in range(seeds)]
        c = statistics.median(r[0] for r in runs)
        w = statistics.median(r[1] for r in runs)
        misses = sum(1 for r in runs if not np.isfinite(r[0]))
        print(f"{shift:>6} {c:>13.0f} {c * INTERVAL_S:>6.2f} {w:>14.0f} "
              f"{w * INTERVAL_S:>6.1f} {misses:>13}")
    n = 50_000 if args.quick else 200_000
    fa_seeds = 2 if args.quick else 4
    for alpha in (MonitorSettings().alpha, 1e4 * MonitorSettings().alpha):
        got = [false_alarms(s, n, alpha) for s in range(fa_seeds)]
        print(f"stationary, alpha {alpha:g}: {fa_seeds} x {n:,} events, prediction alarms "
              f"{sum(g[0] for g in got)} (nominal {sum(g[1] for g in got):.3g}; per seed "
              f"{[g[0] for g in got]}), every other stream's alarms {sum(g[2] for g in got)}")
    print(f"({time.time() - t:.0f} s)")


if __name__ == "__main__":
    main()
