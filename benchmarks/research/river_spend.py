"""Where each calibrated detector spends its false-alarm budget, stream by stream.

    python benchmarks/research/river_spend.py             # ~8 min on two cores, prints a table
    python benchmarks/research/river_spend.py --out benchmarks/research/RESULTS_river_spend.md

``detection_quality.py`` calibrates every detector on the whole model: at most
one false alarm per million events over every stream it watches.  How a River
detector shares that budget among the streams is not a choice anyone made: it
follows from how its threshold meets each stream's scale.  The summary's
"best River" per row is then often the detector that happens to spend most on
the stream that row changes.  This script measures that: each River detector,
at the setting ``detection_quality.py`` calibrated (read from its
``RESULTS.md``), on each stream it watches, alone, over independent stationary
streams of the same model -- false alarms per million events, with a 90 %
Poisson interval.  ``x0`` stands for each of the five numeric features (they
are identically distributed), so a whole-model figure counts it five times.

Beside them, driftwatch's *nominal* rate per alert key at its calibrated
alpha: its sequential watch spends ``alpha / window_events`` per event,
split evenly over the alert keys it can raise (each feature's drift, the
latency, the error rate; ``monitor.sequential.budget``); its window tests,
performance windows and performance CUSUM spend the same again each, for the
whole model.  A key's nominal rate is what its CUSUMs may spend; the measured
stationary counts are in ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # research/, benchmarks/, repo

import detection_quality as dq  # noqa: E402

from monitor.config.types import MonitorSettings  # noqa: E402
from monitor.sequential import SequentialWatch, alert_keys, stream_key  # noqa: E402

RESULTS = HERE.parent / "RESULTS.md"  # detection_quality.py's headline results
STREAMS = ["x0", "latency", "error", "wrong", "cat"]


def calibrated(results: Path) -> tuple[dict[str, float], float]:
    """The River settings and driftwatch's alpha that ``results`` records as calibrated
    (a detector no setting of which fit the budget is left out: nothing to measure)."""
    text = results.read_text()
    river = {m[1]: float(m[2]) for m in re.finditer(r"^- River (.+?): \*\*([^*]+)\*\*", text,
                                                    re.M)}
    unfit = set(re.findall(r"^- River (.+?): none fits", text, re.M))
    missing = [name for name in dq.RIVER if name not in river and name not in unfit]
    alpha = re.search(r"^- alpha: \*\*([^*]+)\*\*", text, re.M)
    if missing or alpha is None:
        raise SystemExit(f"{results}: no calibrated setting for {missing or ['alpha']}")
    return river, float(alpha[1])


_SETTINGS: dict[str, float] = {}


def _stream(task: tuple[int, int]) -> dict[tuple[str, str], int]:
    """Alarms of every River detector on every stream it watches, one stationary model."""
    seed, events = task
    s = dq.stationary(events, np.random.default_rng(seed))
    out: dict[tuple[str, str], int] = {}
    for name, (make, _, kinds) in dq.RIVER.items():
        for which in STREAMS:
            if which in kinds and name in _SETTINGS:
                v = dq.river_values(s, which, dq.as_is(name, which))
                out[(name, which)] = len(dq.river_alarms(make, _SETTINGS[name], v))
    return out


def interval(count: int, events: float) -> str:
    """``count`` false alarms in ``events``, per million, with a 90 % Poisson interval."""
    lo = stats.chi2.ppf(0.05, 2 * count) / 2 if count else 0.0
    hi = stats.chi2.ppf(0.95, 2 * count + 2) / 2
    per = 1e6 / events
    return f"{count * per:.3f} ({lo * per:.3f}–{hi * per:.3f})"


def driftwatch_keys(alpha: float) -> tuple[list[tuple[str, str | None]], float]:
    """The alert keys driftwatch's watch raises on this model, and each one's nominal
    false alarms per million events at ``alpha``."""
    settings = MonitorSettings(alpha=alpha)
    s = dq.stationary(settings.reference_events, np.random.default_rng(0))
    watch = SequentialWatch.build(dq.columns(s, 0, s.n, 0), settings)
    assert watch is not None and watch.bank is not None
    count = alert_keys(watch.streams, watch.bank.directions.tolist(), watch.rates)
    # every key gets the same share: its CUSUMs' ARL0 is the key's, times their number
    first = stream_key(watch.streams[0])
    return sorted(count, key=str), 1e6 * count[first] / watch.bank.arl0[0]


def run(streams: int, events: int, jobs: int) -> str:
    global _SETTINGS
    river, alpha = calibrated(RESULTS)
    _SETTINGS = river
    t = time.perf_counter()
    with mp.get_context("fork").Pool(jobs) as pool:
        counts = pool.map(_stream, [(30_000 + k, events) for k in range(streams)])
    total = streams * events
    lines = [
        "# Where each calibrated detector spends its false-alarm budget",
        "",
        "Generated by `python benchmarks/research/river_spend.py "
        f"{' '.join(sys.argv[1:])}`: each River "
        f"detector at the setting `{RESULTS.name}` calibrated, on each stream it watches, "
        f"alone, over {streams} independent stationary streams of {events:,} events "
        f"({total:,} events per stream; {time.perf_counter() - t:.0f} s). False alarms per "
        "million events, 90 % Poisson interval in brackets; `x0` stands for each of the five "
        "numeric features.",
        "",
        "| detector (setting) | " + " | ".join(STREAMS) + " |",
        "|---|" + "---:|" * len(STREAMS),
    ]
    for name in river:
        cells = []
        for which in STREAMS:
            if (name, which) in counts[0]:
                cells.append(interval(sum(c[(name, which)] for c in counts), total))
            else:
                cells.append("—")
        lines.append(f"| River {name} ({river[name]:g}) | " + " | ".join(cells) + " |")
    keys, nominal = driftwatch_keys(alpha)
    lines += [
        "",
        f"driftwatch at its calibrated alpha ({alpha:g}): the sequential watch raises "
        f"{len(keys)} alert keys on this model "
        f"({', '.join(k if f is None else f'{k}/{f}' for k, f in keys)}), each with a "
        f"nominal {nominal:.3f} false alarms per million events; the window tests, the "
        f"performance windows and the performance CUSUM add "
        f"{1e6 * alpha / MonitorSettings(alpha=alpha).window_events:.2f} "
        "each for the whole model.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=24)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    text = run(a.streams, a.events, a.jobs)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
