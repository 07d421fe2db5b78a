"""Detection power on the error stream alone, every detector at the same false-alarm rate there.

    # writes benchmarks/research/RESULTS_error_stream.md
    python benchmarks/research/error_stream_power.py
    python benchmarks/research/error_stream_power.py --quick  # 5 seeds, 3,000,000 events

The full run takes about twenty minutes on two cores, most of it the
whole-model calibration.

``detection_quality.py`` calibrates each detector for the whole model and then
compares delays per scenario: that measures detection power *and* how each
detector's budget happens to fall across the model's streams.  On the error
scenario (1 % -> 3 %) the two come apart.  This script separates them:

1. **Spend.**  Each detector at its whole-model calibrated setting (calibrated
   here again, as ``detection_quality.py`` does) -- what false-alarm rate does
   it spend on the error stream?  For driftwatch that is its error rate's
   nominal share (its CUSUMs' ARL0); for River it is counted on a long
   stationary error stream.
2. **Power.**  Every detector calibrated on the error stream alone, at several
   budgets per million events *of that stream*, then timed on the
   ``detection_quality.py`` error scenario (same seeds, same streams).  driftwatch
   runs as the daemon on a model whose events carry nothing but the error
   flag, so its one sequential alert is the error rate and ``alpha`` sets that
   stream's rate alone.  The CUSUM of this very change, with both rates
   known, is optimal for it in Lorden's worst-case sense (Moustakides): a
   reference for what knowing ``p0`` and ``p1`` would be worth, not a detector
   one could run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry
from river import drift

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

import detection_quality as dq  # noqa: E402

from detectors.bernoulli import BernoulliBank  # noqa: E402
from monitor.app import build  # noqa: E402
from monitor.batch import DecodedBatch, PredictionColumns  # noqa: E402
from monitor.config.types import Config, MonitorSettings  # noqa: E402

P0 = 0.01
P1 = 1 - (1 - P0) * (1 - 0.02)  # the scenario ORs 2 % extra errors into a 1 % stream
BUDGETS = [0.3, 1.0, 3.0, 10.0]  # false alarms per million events of the error stream
SCENARIO = next(sc for sc in dq.SCENARIOS if sc.kind == "error_rate")


def grid(start: float, stop: float, per_decade: int = 4) -> list[float]:
    """Geometric points from ``start`` to ``stop`` (either way), ``per_decade`` a decade."""
    k = int(round(abs(np.log10(stop / start)) * per_decade))
    return [float(start * (stop / start) ** (i / k)) for i in range(k + 1)]


# a detector at one setting: its alarms on an error stream (stopping once there are more
# than ``stop_after``)
Alarms = Callable[[np.ndarray, int | None], list[int]]


def river(make: Callable[[float], object], standardize: bool) -> Callable[[float], Alarms]:
    def at(p: float) -> Alarms:
        def alarms(err: np.ndarray, stop_after: int | None) -> list[int]:
            v = err.astype(float)
            return dq.river_alarms(make, p, dq.standardized(v) if standardize else v,
                                   stop_after)
        return alarms
    return at


def optimal(arl0: float) -> Alarms:
    """The CUSUM of this very change (``P0 -> P1``, ``P0`` known), Wald's threshold."""
    def alarms(err: np.ndarray, stop_after: int | None) -> list[int]:
        bank = BernoulliBank([P0], [[P1]], arl0)
        out: list[int] = []
        for lo in range(0, err.size, dq.RIVER_BLOCK):
            x = err[lo:lo + dq.RIVER_BLOCK, None].astype(float)
            out += [lo + a.row for a in bank.update(x)]
            if stop_after is not None and len(out) > stop_after:
                break
        return out
    return alarms


def error_columns(err: np.ndarray, lo: int, hi: int) -> PredictionColumns:
    n = hi - lo
    idx = np.arange(lo, hi)
    return PredictionColumns(
        model="m", ts=dq.T0 + idx * dq.INTERVAL_S, ids=idx.astype(str).astype(object),
        versions=np.full(n, "v1", dtype=object), prediction=np.full(n, 0.5),
        prediction_class=np.full(n, None, dtype=object), latency_ms=np.full(n, np.nan),
        error=err[lo:hi], numeric={}, categorical={})


def daemon(alpha: float) -> Alarms:
    """driftwatch's every firing alert on a model whose events report only errors."""
    def alarms(err: np.ndarray, stop_after: int | None) -> list[int]:
        batches = (DecodedBatch(predictions={"m": error_columns(
            err, lo, min(err.size, lo + dq.CHUNK))}, labels={})
            for lo in range(0, err.size, dq.CHUNK))
        return [i for i, _ in dq.firing(Config(defaults=MonitorSettings(alpha=alpha)),
                                        batches, stop_after)]
    return alarms


# name -> (a detector at a setting, settings from most to least sensitive)
DETECTORS: dict[str, tuple[Callable[[float], Alarms], list[float]]] = {
    "driftwatch": (daemon, grid(0.3, 1e-6)),
    "optimal CUSUM (p0 known)": (optimal, grid(1e4, 1e9)),
    "River ADWIN": (river(lambda p: drift.ADWIN(delta=p), True), grid(1e-1, 1e-14, 2)),
    "River ADWIN (0/1 as is)": (river(lambda p: drift.ADWIN(delta=p), False),
                                grid(1e-1, 1e-14, 2)),
    "River PageHinkley": (river(lambda p: drift.PageHinkley(threshold=p, mode="both"), True),
                          grid(12.5, 12_800, 6)),
    "River DDM": (river(lambda p: drift.binary.DDM(drift_threshold=p), False),
                  [2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0]),
    "River HDDM_A": (river(lambda p: drift.binary.HDDMA(drift_confidence=p), False),
                     grid(1e-1, 1e-14, 2)),
}

_ERR: np.ndarray | None = None  # the stationary error stream (set before workers fork)
_SEEDS = 40  # scenario seeds (set before workers fork)


def _calibrate(name: str) -> tuple[str, dict[float, float], list[tuple[float, int]]]:
    """For every budget, the most sensitive setting whose alarms on the stationary error
    stream fit it (budget -> setting), and the alarms each setting tried gave."""
    assert _ERR is not None
    at, settings = DETECTORS[name]
    limits = {b: int(b * _ERR.size / 1e6) for b in BUDGETS}
    chosen: dict[float, float] = {}
    tried = []
    for p in settings:
        n = len(at(p)(_ERR, max(limits.values())))
        tried.append((p, n))
        chosen.update({b: p for b, lim in limits.items() if n <= lim and b not in chosen})
        if len(chosen) == len(BUDGETS):
            break
    return name, chosen, tried


def _spend(task: tuple[str, float]) -> tuple[str, int]:
    """Alarms of one River detector's whole-model setting on the stationary error stream."""
    assert _ERR is not None
    name, p = task
    return name, len(DETECTORS[name][0](p)(_ERR, None))


def _delays(task: tuple[str, float]) -> tuple[str, float, dq.Outcome]:
    name, p = task
    out = dq.Outcome()
    for seed in range(_SEEDS):
        err = dq.scenario_stream(SCENARIO, seed).error
        dq.score(DETECTORS[name][0](p)(err, None), out)
    return name, p, out


def error_arl0(alpha: float, full: bool) -> float:
    """The ARL0 driftwatch gives each of its error-rate CUSUMs at ``alpha``: on the
    benchmark's whole model (``full``) or on a model that reports only errors."""
    s = dq.stationary(dq.REFERENCE, np.random.default_rng(0))
    app = build(Config(defaults=MonitorSettings(alpha=alpha)), registry=CollectorRegistry(),
                notify=False)
    cols = dq.columns(s, 0, s.n, 0) if full else error_columns(s.error, 0, s.n)
    app.pipeline.process(DecodedBatch(predictions={"m": cols}, labels={}))
    seq = app.pipeline.models["m"].seq
    assert seq is not None and seq.rate_bank is not None
    i = next(i for i, r in enumerate(seq.rates) if r.kind == "error_rate")
    return float(seq.rate_bank.arl0[i])


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if np.isfinite(x) else "missed"


def run(seeds: int, events: int, streams: int, whole_model_events: int,
        jobs: int) -> str:
    global _ERR, _SEEDS
    _SEEDS = seeds
    ctx = mp.get_context("fork")

    # 1. the whole-model settings, calibrated as detection_quality.py does
    dq._STATIONARY = dq.stationary_streams(streams, whole_model_events, 10_000)
    with ctx.Pool(jobs) as pool:
        whole = {name: dq.calibrate(name, pool)[0] for name in [*dq.RIVER, "driftwatch"]}
    dq._STATIONARY = []
    alpha = whole.pop("driftwatch")
    assert alpha is not None
    share = error_arl0(alpha, full=True)
    # the error-only alpha that gives the error CUSUMs the same ARL0
    equivalent = alpha * error_arl0(alpha, full=False) / share

    _ERR = np.random.default_rng(30_000).random(events) < P0
    river_whole = {f"River {n}": p for n, p in whole.items()
                   if p is not None and f"River {n}" in DETECTORS}
    with ctx.Pool(jobs) as pool:
        spent = dict(pool.map(_spend, list(river_whole.items())))
        calibrated = pool.map(_calibrate, list(DETECTORS))
    _ERR = None

    tasks = {("driftwatch", equivalent)} | set(river_whole.items())
    for name, chosen, _ in calibrated:
        tasks |= {(name, p) for p in chosen.values()}
    with ctx.Pool(jobs) as pool:
        delays = {(n, p): o for n, p, o in pool.map(_delays, sorted(tasks))}

    per_m = 1e6 / events
    lines = [
        "# Detection power on the error stream",
        "",
        f"Generated by `python benchmarks/research/error_stream_power.py {' '.join(sys.argv[1:])}` "
        f"({seeds} seeds of the `detection_quality.py` scenario \"{SCENARIO.name}\", the "
        f"same streams; change at event {dq.CHANGE_AT:,}; missed = no alarm within "
        f"{dq.AFTER:,} events; stationary error stream of {events:,} events at {P0:.0%}).",
        "",
        "## What the whole-model calibration spends on the error stream",
        "",
        f"Settings calibrated on {streams} × {whole_model_events:,} stationary events of "
        "the whole model, as in `RESULTS.md`. driftwatch's spend is nominal: its "
        "error-rate CUSUMs' share of alpha; River's is counted on the stationary error stream.",
        "",
        "| detector | whole-model setting | false alarms per million on the error stream "
        "| median delay | p90 delay | missed | false alarms before the change |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    o = delays[("driftwatch", equivalent)]
    # two CUSUMs, each with this ARL0: the stream's nominal false alarms per event
    lines.append(f"| driftwatch | alpha {alpha:g} (error-only alpha {equivalent:.3g}) | "
                 f"{2 / share * 1e6:.3f} (nominal) | {o.row()[0]} | {o.row()[1]} | "
                 f"{o.missed} | {o.false_alarms} |")
    for name, p in river_whole.items():
        o = delays[(name, p)]
        lines.append(f"| {name} | {p:g} | {spent[name] * per_m:.2f} | {o.row()[0]} | "
                     f"{o.row()[1]} | {o.missed} | {o.false_alarms} |")
    lines += [
        "",
        "## Every detector calibrated on the error stream alone",
        "",
        "The most sensitive setting whose false alarms on the stationary error stream fit "
        "the budget; median delay in events (a miss counts as never detected), the "
        "setting, and the false alarms before the change summed over the seeds "
        f"({seeds * dq.CHANGE_AT:,} events, where the budgets allow "
        + ", ".join(f"{b * seeds * dq.CHANGE_AT / 1e6:.2g}" for b in BUDGETS) + ").",
        "",
        "| budget per million | " + " | ".join(n for n, _, _ in calibrated) + " |",
        "|---:|" + "---:|" * len(calibrated),
    ]
    for b in BUDGETS:
        cells = []
        for name, chosen, _ in calibrated:
            if b not in chosen:
                cells.append("none fits")
                continue
            o = delays[(name, chosen[b])]
            cells.append(f"{_fmt(dq.median_with_misses(o))} ({chosen[b]:.3g}; "
                         f"{o.false_alarms})")
        lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
    lines += ["", "Settings tried (false alarms on the stationary error stream, most "
              "sensitive first; a count past the largest budget is where its run stopped):",
              ""]
    top = int(max(BUDGETS) * events / 1e6)
    for name, _, tried in calibrated:
        lines.append(f"- {name}: " + dq._tried(tried, top))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="5 seeds, 3,000,000 error events, 2 x 200,000 whole-model events")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--events", type=int, default=None,
                    help="stationary error stream (default 30,000,000)")
    ap.add_argument("--streams", type=int, default=None,
                    help="whole-model calibration streams (default 12, as in "
                         "detection_quality.py)")
    ap.add_argument("--whole-model-events", type=int, default=None,
                    help="events per whole-model calibration stream (default 1,000,000)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_error_stream.md")))
    args = ap.parse_args()
    text = run(args.seeds or (5 if args.quick else 40),
               args.events or (3_000_000 if args.quick else 30_000_000),
               args.streams or (2 if args.quick else 12),
               args.whole_model_events or (200_000 if args.quick else 1_000_000), args.jobs)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
