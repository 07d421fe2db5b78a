"""Per-model sequential watch: CUSUMs that alarm between window closes.

Windows give well-calibrated two-sample tests but wait for a window to fill;
this watch scores every event against the reference as it arrives, so a
large shift is caught within tens of events.  Normal CUSUMs watch each
numeric feature and a numeric prediction (both directions) and the serving
latency (upward only: faster is not a regression); Bernoulli CUSUMs watch the
error rate, the share of very slow requests and the shares of categories and
of predicted classes (:mod:`monitor.rate_streams`).

Outputs are watched as closely as inputs: a release that scores differently on
the same inputs raises ``prediction_drift`` within tens of events instead of at
the next window close (``benchmarks/research/prediction_watch.py``).  A
prediction alarm checks its own rows of every input (:meth:`SequentialWatch._inputs`):
an input broken there -- gone (renamed, retyped), nulls, a stuck default, values
out of range -- comes with the alarm as its own finding, ahead of it, and
attribution makes the moved predictions that break's symptom (ML engineering),
so they never reach data science before the broken feed behind them is known;
inputs that drifted there are named as what the outputs moved with.

Normal CUSUMs run with the reference values :data:`KS`, tuned to shifts of
0.1, 0.25, 0.5 and 1 standard deviation; the smallest sets the sequential
effect floor at 0.05 sd (a smaller shift drains every CUSUM).  That floor is
below the window tests' ``drift_min_effect`` (a KS distance: 0.1 sd is ~0.04).
The latency's CUSUMs are :data:`KS` stretched (:func:`floor_scale`) so that the
smallest is tuned to ``latency_min_ratio``, the smallest slow-down worth an
alert: it drifts down under a slow-down of less than about half the floor (in
scores), so a steady 4 % slow-down against a 10 % floor is tolerated, as the
window tests and the slow-tail streams tolerate it, and the share of the budget the
0.05 sd CUSUM held goes to the slow-down that is worth a page (``RESULTS.md``:
+10 % took 356 events, 331 tuned to it; ``benchmarks/research/shift_sweep.py`` measures
what a shift between two tuned sizes costs).

Baselines: scores against a reference of ``n`` values are centred only up to
``1/sqrt(n)``, and a rate is known only up to its reference's counts; a CUSUM
tuned to a small change pays for that error exponentially in false alarms.  So
each stream keeps a baseline and its CUSUMs are retuned as it grows; thresholds
keep the budget on average over what the baseline leaves uncertain
(:func:`detectors.cusum.cusum_threshold`,
:func:`detectors.bernoulli.expected_thresholds`; a rate's also at its mean):

- a numeric stream's is the reference plus every block of ``window_events``
  scores (counted by the watch from its first row) in which none of the
  stream's CUSUMs alarmed nor ended past half its threshold, up to
  ``BASELINE_MAX`` references; its CUSUMs are re-centred on the baseline's
  mean score, standard error ``1/sqrt(n)``.  Decided from the scores alone, so
  alerts do not depend on how the stream is batched;
- a rate's is the reference plus every window that tested the rate's alert
  key clean with no alarm on the stream (:meth:`SequentialWatch.window_closed`),
  for as long as the stream runs: a baseline frozen at a stretch that happened
  to see few errors would page for good, one that keeps learning dilutes it.
  Past ``BASELINE_MAX`` references its CUSUMs are retuned at every 10 % of
  growth (:func:`retune_due`).  A slow creep it absorbs is still judged by the
  window tests, against the fixed reference.

Budget: a model's windows spend ``alpha`` per ``window_events`` events; the
watch spends the same rate, so the model's expected false alarms stay below
``2 * alpha / window_events`` per event (0.01 per million with the defaults).
The watch's rate is split evenly over the alert keys it can raise (each
feature's drift, the latency, the error rate, the predictions' drift), then
over each key's CUSUMs (:func:`budget`): a page is per alert, so each alert gets the same share,
however many CUSUMs watching it takes.  Inside a numeric stream the share is
uneven, in proportion to ``1/k`` (:data:`K_WEIGHTS`).  A share ``s`` raises a
CUSUM's threshold by ``ln(1/s) / (2k)``, which at the shift it is tuned to
(``2k``) costs about ``ln(1/s) / (2k^2)`` events: 200 ``ln(1/s)`` for
``k = 0.05``, 2 ``ln(1/s)`` for ``k = 0.5``.  So the small ``k`` (which also
pay the most for an uncertain centre) get most of the rate, and the ``k = 0.5``
that catches a 1 sd shift in ~30 events gives up a few of them
(``benchmarks/research/RESULTS_bank_shares.md``: +0.1 sd 2,868 -> 2,626 events median,
+1 sd 31 -> 34, against an even split).  A variance change, which the large k
catch, pays too: x2 takes 718 events instead of 541 (``RESULTS.md``).

State: a state saved before score baselines existed (no ``zbase``) loads: its
numeric CUSUMs keep the reference values and the centres they were built with
(known, as then) until a quiet block re-centres them; one saved before the
uneven shares keeps its even split until its reference is rebuilt, and one saved
before the latency's CUSUMs were sized for its floor keeps the feature sizes.  One
saved before the prediction stream keeps its streams (and their budget shares)
without it until its reference is rebuilt; its prediction alarms -- class streams,
none -- check inputs from the categorical tails it did not keep, so from empty ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NotRequired, TypedDict

import numpy as np

from alerts.model import Finding, rfc3339
from detectors.bernoulli import BernoulliBank, RateAlarm
from detectors.categorical import chi2_test
from detectors.cusum import Alarm, CusumBank, normal_scores, right_ends
from detectors.numeric import ks_test
from monitor.batch import PredictionColumns
from monitor.codec import f64_from_text, f64_to_text
from monitor.config.types import MonitorSettings
from monitor.evaluate import (
    PreparedReference,
    confined_text,
    dominant_version,
    prepare,
    quality_results,
)
from monitor.localize import CONFINED, PEER_SHARE, UNDECIDED, localise, margin
from monitor.rate_streams import RateStream, indicator, rate_streams
from monitor.schema import MIN_PRESENCE, MISMATCH_MIN_COUNT, MISMATCH_MIN_SHARE

# reference values, tuned to shifts of 0.1, 0.25, 0.5 and 1 standard deviation: the
# sequential effect floor is KS[0] (a shift of less than 0.05 sd drains every CUSUM)
KS = (0.05, 0.125, 0.25, 0.5)
# each k's share of its stream's budget, in proportion to 1/k: 0.59, 0.24, 0.12, 0.06
K_WEIGHTS = tuple(1 / k for k in KS)
LATENCY = "__latency__"
PREDICTION = "__prediction__"  # the model's numeric output
MIN_REFERENCE = 100  # a feature with fewer reference values is not watched
RECENT = 500  # at most this many rows before an alarm describe the shift
TAIL = 2_000  # raw values kept per stream, for the data-quality check at an alarm
MIN_RUN = 50  # an alarm's rows are never fewer than this
MAX_NEW_FIELDS = 100  # fields the reference never had, remembered to name a rename
# an alarm whose segments were undecided is judged again on this many rows after it
SETTLE_ROWS = (100, 200, 400, 800, 1_600)
# an input that a prediction alarm finds absent from the last this many events (and that
# the reference carried in at least schema.MIN_PRESENCE of its events: by chance at most
# 0.1 ** 10 per alarm) is missing -- renamed, retyped, gone; fewer, it is a null flood
MISSING_RUN = 10
# a field gone this many rows before a prediction alarm's excursion, with the outputs
# shown steady through them, does not explain the outputs' move (_outputs_held)
HELD_MIN_ROWS = 300


def excursion(a: Alarm | RateAlarm) -> int:
    """How many rows before (and at) an alarm belong to it: its CUSUM's own excursion,
    where the change began -- at least MIN_RUN, at most TAIL."""
    return max(MIN_RUN, min(a.run_length, TAIL))


def described(a: Alarm | RateAlarm) -> int:
    """The rows that describe the shift: the excursion, at most RECENT (the last RECENT
    rows would mostly predate a change caught in 24 rows)."""
    return min(RECENT, excursion(a))


def batch_rows(a: Alarm | RateAlarm) -> slice:
    """The alarm's rows that are in the current batch."""
    return slice(max(0, a.row - excursion(a) + 1), a.row + 1)
BASELINE_MAX = 10  # a stream's baseline grows up to this many references
RETUNE_GROWTH = 1.1  # past BASELINE_MAX references, a rate's CUSUMs are retuned this seldom


def retune_due(n: float, tuned_n: float, reference_n: float) -> bool:
    """Should CUSUMs tuned on a baseline of ``tuned_n`` observations be retuned now that
    it holds ``n``?  Every time up to BASELINE_MAX references; past that, once it has
    grown by RETUNE_GROWTH (so the cost of retuning stays logarithmic in its length)."""
    return n > tuned_n and (n <= BASELINE_MAX * reference_n or n >= RETUNE_GROWTH * tuned_n)


def retune_grown(bank: BernoulliBank, stream: int, counts: list[float],
                 parameters: Callable[[float, float], tuple[float, Sequence[float]]],
                 reference_n: float) -> None:
    """A rate's baseline grew to ``counts`` (hits, n): retune its CUSUMs to it when due
    (:func:`retune_due`; ``parameters`` turns counts into the in-control rate and the
    alternatives)."""
    tuned = bank.counts[stream]
    if retune_due(counts[1], tuned[1] if tuned else 0.0, reference_n):
        p0, p1 = parameters(counts[0], counts[1])
        bank.retune(stream, p0, p1, counts)


def floor_scale(reference_sorted: np.ndarray, ratio: float) -> float:
    """How far to stretch :data:`KS` for the latency: a slow-down by less than
    ``latency_min_ratio`` is not worth an alert, so the smallest CUSUM is tuned to
    that slow-down -- the mean normal score of the reference's own values made
    ``ratio`` times slower is the shift it makes, ``2 k`` -- unless it is smaller
    than the bank's floor (then 1: the bank as for a feature).  At most
    ``KS[-1] / KS[0]``: a latency so steady that the floor is a shift of more than
    1 sd gets the bank's largest CUSUM as its smallest (scores are bounded, so
    CUSUMs stretched further would never move)."""
    if reference_sorted.size == 0:
        return 1.0
    shift = float(np.mean(normal_scores(reference_sorted, ratio * reference_sorted)))
    if not np.isfinite(shift):
        return 1.0
    return min(KS[-1] / KS[0], max(1.0, shift / (2 * KS[0])))


def stream_key(stream: str) -> tuple[str, str | None]:
    """The alert key a numeric stream's alarms raise."""
    if stream == LATENCY:
        return ("latency_regression", None)
    return ("prediction_drift", None) if stream == PREDICTION else ("data_drift", stream)


def alert_keys(streams: list[str], directions: list[int],
               rates: list[RateStream]) -> dict[tuple[str, str | None], int]:
    """The alert keys the watch can raise -- (kind, feature): a feature's drift, latency,
    errors, the predictions' drift -- and how many one-sided CUSUMs watch each."""
    count: dict[tuple[str, str | None], int] = {}
    for s, d in zip(streams, directions, strict=True):
        key = stream_key(s)
        count[key] = count.get(key, 0) + len(KS) * (1 if d else 2)
    for r in rates:
        count[(r.kind, r.feature)] = count.get((r.kind, r.feature), 0) + len(r.p1)
    return count


def budget(streams: list[str], directions: list[int], rates: list[RateStream],
           per_model_arl: float) -> tuple[list[float], list[float]]:
    """Each CUSUM's ARL0 (per numeric stream, per rate stream): the model's sequential
    budget, one false alarm per ``per_model_arl`` events, split evenly over the alert
    keys the watch can raise (:func:`alert_keys`), then evenly over the CUSUMs of each
    key.  So every alert gets the same share, however many CUSUMs it takes to watch
    it: a categorical feature with many values does not thin out the error rate's.
    (A numeric stream's ARL0 is its CUSUMs' mean share: the bank spreads it over the
    k by :data:`K_WEIGHTS`.)"""
    count = alert_keys(streams, directions, rates)

    def arl0(key: tuple[str, str | None]) -> float:
        return per_model_arl * len(count) * count[key]
    return ([arl0(stream_key(s)) for s in streams],
            [arl0((r.kind, r.feature)) for r in rates])


@dataclass(frozen=True)
class SeqAlarm:
    """One alarm, in plain data (it is kept in state until its window closes)."""

    kind: str
    feature: str | None
    ts: float
    statistic: float
    threshold: float
    k: float
    direction: int
    ref_mean: float
    recent_mean: float
    # a data-quality break seen in the alarm's own rows: [detector, p_value, effect, details,
    # reference_n, current_n] (the last two absent in an alarm saved before them)
    quality: list[Any] | None = None
    # rate alarms: what the 0/1 stream counts (``k`` is then the alternative rate p1)
    what: str | None = None
    # the drift is confined to this segment ("host=pod-2"): [segment, details]
    confined: list[Any] | None = None
    # the model version serving the alarm's rows, and whether the reference knew it
    version: str | None = None
    new_version: bool = False
    # prediction alarms: the inputs broken in the alarm's own rows, each
    # [feature, kind (data_quality | schema_violation), detector, p_value, effect, details,
    # reference_n, current_n (absent in an alarm saved before them)],
    # and the inputs that drifted in them (names)
    broken: list[list[Any]] | None = None
    drifting: list[str] | None = None
    # the segments could not yet tell a broken replica from a changed world (too few
    # rows): the alarm waits for its window, whose rows decide (monitor.localize)
    undecided: bool = False
    # the evidence: the stream's baseline when it alarmed (its reference plus the quiet
    # blocks / clean windows absorbed since), the events of the excursion that raised
    # it (its CUSUM's run length), the event time of the excursion's first row (None:
    # unknown, a state saved before), and the rows ``recent_mean`` is taken over
    # (0 in an alarm saved before these: its positional state has 14 or 17 fields)
    baseline_n: int = 0
    run_length: int = 0
    since: float | None = None
    recent_n: int = 0

    def to_state(self) -> list[Any]:
        return [self.kind, self.feature, self.ts, self.statistic, self.threshold, self.k,
                self.direction, self.ref_mean, self.recent_mean, self.quality, self.what,
                self.confined, self.version, self.new_version, self.broken,
                self.drifting, self.undecided, self.baseline_n, self.run_length,
                self.since, self.recent_n]


@dataclass
class _Waiting:
    """An alarm held until its segments decide, with the rows that came after it."""

    alarm: SeqAlarm
    values: list[Any]
    segments: dict[str, list[Any]]
    judged: int = 0  # rows after it at the last count judged


def last_rows(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
    """The last ``n`` values of ``old`` then ``new``, in an array of their own: a slice of
    the two's concatenation would keep all of it alive (a batch's worth more per tail)."""
    new = new[max(0, new.shape[0] - n):]
    return np.concatenate([old[max(0, old.shape[0] - (n - new.shape[0])):], new])


class SequentialWatch:
    def __init__(self, streams: list[str], reference: PredictionColumns,
                 settings: MonitorSettings, bank: CusumBank | None = None,
                 rate_bank: BernoulliBank | None = None) -> None:
        self.streams = streams
        self._ref_raw = [np.asarray(self._raw(reference, s), dtype=float) for s in streams]
        # the reference's sorted finite values: the window tests' copy (monitor.evaluate.
        # prepare), one for both
        self._sorted = [self._sorted_of(prepare(reference), s) for s in streams]
        self._right = [right_ends(v) for v in self._sorted]  # normal_scores' second search
        self._ref_mean = [float(v.mean()) for v in self._sorted]
        # each stream's score baseline, [sum of scores, count]: the reference counts as
        # that many scores of mean 0 (their in-control mean is 0 up to 1/sqrt(n)), plus
        # every quiet block of scores since (:meth:`_close_block`) -- a sharper estimate
        # of where the stream's scores are centred
        self.zbase = [[0.0, float(v.size)] for v in self._sorted]
        self._zpending = [[0.0, 0.0] for _ in streams]
        self._zalarmed = [False for _ in streams]
        self._block = settings.window_events  # rows per score block
        self._zrows = 0  # rows of the current block so far
        # alarms whose segments are undecided, by alert key, with the rows after them
        self._waiting: dict[tuple[str, str | None], _Waiting] = {}
        self._tail = [np.empty(0) for _ in streams]
        # the inputs a prediction alarm checks in its own rows: the numeric streams'
        # tails above, and these raw categorical values (at most TAIL each)
        self._ref_cat_raw = {f: np.asarray(v, dtype=object)
                             for f, v in sorted(reference.categorical.items())}
        self._ctail = {f: np.empty(0, dtype=object) for f in self._ref_cat_raw}
        # per input, which of its last rows (at most TAIL, aligned on the latest) arrived
        # wrong-typed and were dropped (PredictionColumns.mismatched): only inputs with any
        self._mtail: dict[str, np.ndarray] = {}
        self._presence = _presence(reference)
        # fields the reference never had: when each first came (a rename's new name)
        self._new_first: dict[str, float] = {}
        self._ref_n = reference.n
        self.floor = settings.drift_min_effect
        self._ref_versions = set(np.asarray(reference.versions, dtype=str).tolist())
        self.rates: list[RateStream] = rate_streams(reference, settings)
        self._ref_cat = {r.feature: reference.categorical[r.feature] for r in self.rates
                         if r.source == "category" and r.feature is not None}
        self._rtail = [np.empty(0) for _ in self.rates]
        # each rate's baseline: the reference's counts, plus every window that tested
        # clean on the rate's alert key with no alarm on the stream (a sharper p0)
        self.baseline = [[float(r.hits), float(r.n)] for r in self.rates]
        self._pending = [[0.0, 0.0] for _ in self.rates]
        self._alarmed = [False for _ in self.rates]
        self._baseline_max = BASELINE_MAX * settings.reference_events
        self._reference_n = settings.reference_events
        self.alpha = settings.alpha
        directions = [1 if s == LATENCY else 0 for s in streams]  # predictions: both ways
        arl0, rate_arl0 = budget(streams, directions, self.rates,
                                 settings.window_events / settings.alpha)
        scale = [floor_scale(v, settings.latency_min_ratio) if s == LATENCY else 1.0
                 for s, v in zip(streams, self._sorted, strict=True)]
        self.bank = bank or (CusumBank(len(streams), KS, arl0, directions,
                                       [1 / np.sqrt(b[1]) for b in self.zbase], K_WEIGHTS,
                                       scale)
                             if streams else None)
        self.rate_bank = rate_bank or (
            BernoulliBank([r.p0 for r in self.rates], [r.p1 for r in self.rates], rate_arl0,
                          self.baseline)
            if self.rates else None)
        # the event time each CUSUM's current excursion began (NaN: at zero, or unknown),
        # so an alarm's window starts where its excursion did, across batches
        self._since = np.full(self.bank.state.shape, np.nan) if self.bank is not None \
            else np.empty(0)
        self._rsince = np.full(self.rate_bank.state.shape, np.nan) \
            if self.rate_bank is not None else np.empty(0)

    @classmethod
    def build(cls, reference: PredictionColumns,
              settings: MonitorSettings) -> SequentialWatch | None:
        streams = [f for f, v in sorted(reference.numeric.items())
                   if np.isfinite(v).sum() >= MIN_REFERENCE]
        if np.isfinite(reference.latency_ms).sum() >= MIN_REFERENCE:
            streams.append(LATENCY)
        if np.isfinite(reference.prediction).sum() >= MIN_REFERENCE:
            streams.append(PREDICTION)
        watch = cls(streams, reference, settings)
        return watch if watch.bank is not None or watch.rate_bank is not None else None

    @staticmethod
    def _sorted_of(prep: PreparedReference, stream: str) -> np.ndarray:
        if stream == LATENCY:
            return prep.latency.values
        if stream == PREDICTION:
            return prep.prediction.values
        f = prep.numeric.get(stream)
        return f.sample.values if f is not None and f.sample is not None else np.empty(0)

    @staticmethod
    def _raw(cols: PredictionColumns, stream: str) -> np.ndarray:
        if stream == LATENCY:
            return cols.latency_ms
        if stream == PREDICTION:
            return cols.prediction
        v = cols.numeric.get(stream)
        return v if v is not None else np.full(cols.n, np.nan)

    def _versioned(self, alarm: SeqAlarm, a: Alarm | RateAlarm,
                   cols: PredictionColumns) -> SeqAlarm:
        """The version serving the alarm's own rows (not the batch's), and if it is new:
        the rows of its CUSUM's run, unpadded (MIN_RUN rows before a fast alarm would
        mostly predate the change, and a deploy is when outputs move)."""
        run = max(1, min(a.run_length, TAIL))
        version = dominant_version(cols.versions[max(0, a.row - run + 1): a.row + 1])
        return replace(alarm, version=version, new_version=version not in self._ref_versions)

    def update(self, cols: PredictionColumns) -> list[SeqAlarm]:
        """Feed a batch; returns the alarms it decided, in event-time order.

        With segments in the stream every feature alarm waits for the rows after it to
        say whether it is confined to one segment (:meth:`_settle`), at fixed row counts;
        while one waits, later alarms of its key up to the row that decides it add
        nothing.  All of it counted in rows, so the batches' sizes change nothing."""
        alarms: list[SeqAlarm] = []
        for f, v in [*cols.numeric.items(), *cols.categorical.items()]:
            if self._presence.get(f, 0.0) == 0.0 and f not in self._new_first:
                seen = _present(np.asarray(v))
                if seen.any() and len(self._new_first) < MAX_NEW_FIELDS:
                    self._new_first[f] = float(cols.ts[int(np.flatnonzero(seen)[0])])
        # rows after the alarms already waiting, and the batch row each is decided at
        decided_at: dict[tuple[str, str | None], int] = {}
        for key in list(self._waiting):
            w = self._waiting[key]
            before = len(w.values)
            raw = (cols.categorical.get(str(key[1])) if key[1] in self._ref_cat
                   else self._raw(cols, _waiting_stream(key)))
            self._feed_waiting(key, np.asarray(raw) if raw is not None
                               else np.full(cols.n, np.nan), cols, 0)
            done = self._settle(key)
            if done is not None:
                alarms.append(done[0])
                decided_at[key] = done[1] - before - 1
        raised: list[tuple[int, SeqAlarm, np.ndarray]] = []
        if self.bank is not None:
            raws = [self._raw(cols, s) for s in self.streams]
            z = np.column_stack([normal_scores(ref, np.asarray(raw, dtype=float), right)
                                 for ref, right, raw in zip(self._sorted, self._right, raws,
                                                            strict=True)])
            for za, base_n, since in self._scores(z, cols.ts):
                alarm = replace(self._describe(za, cols, raws[za.stream]),
                                baseline_n=base_n, since=since)
                raised.append((za.row, self._versioned(alarm, za, cols),
                               np.asarray(raws[za.stream])))
        if self.rate_bank is not None:
            x = np.column_stack(self._indicators(cols))
            started = self._rsince.copy()
            rate_alarms = self.rate_bank.update(x)
            self._rsince = _run_starts(started, self.rate_bank.run, cols.ts)
            for a in rate_alarms:
                i = next(i for i, c in enumerate(self.rate_bank.cusums)
                         if c[0] == a.stream and c[1] == a.p1)
                alarm = replace(self._describe_rate(a, cols, x[:, a.stream]),
                                since=_run_start(a.row, a.run_length, cols.ts, started[i]))
                alarm = self._versioned(alarm, a, cols)
                self._alarmed[a.stream] = True
                values = (np.asarray(cols.categorical[alarm.feature], dtype=object)
                          if alarm.feature in cols.categorical else x[:, a.stream])
                raised.append((a.row, alarm, values))
            seen = np.isfinite(x)
            for i, p in enumerate(self._pending):
                p[0] += float(np.sum(x[:, i], where=seen[:, i]))
                p[1] += float(np.sum(seen[:, i]))
            self._rtail = [last_rows(t, x[:, i], RECENT) for i, t in enumerate(self._rtail)]
        raised.sort(key=lambda r: r[0])
        for row, alarm, values in raised:
            key = (alarm.kind, alarm.feature)
            if key in self._waiting or row <= decided_at.get(key, -1):
                continue
            if not alarm.undecided:
                alarms.append(alarm)
                continue
            self._hold(alarm, values, cols, row)
            done = self._settle(key)
            if done is not None:
                alarms.append(done[0])
                decided_at[key] = row + done[1]
        if self.bank is not None:  # after every alarm is described: they read the tails
            self._tail = [last_rows(t, np.asarray(r, dtype=float), TAIL)
                          for t, r in zip(self._tail, raws, strict=True)]
        self._ctail = {f: last_rows(t, self._cat(cols, f), TAIL) for f, t in self._ctail.items()}
        mtail = {f: last_rows(self._mtail.get(f, np.zeros(0, dtype=bool)), self._flags(cols, f),
                          TAIL)
                 for f in sorted(set(self._mtail) | set(cols.mismatched))}
        self._mtail = {f: t for f, t in mtail.items() if t.any()}
        alarms.sort(key=lambda a: a.ts)
        return alarms

    def _indicators(self, cols: PredictionColumns) -> list[np.ndarray]:
        """Each rate stream's 0/1 column for a batch; streams that count the same thing (a
        category's rise and fall) share one."""
        made: dict[tuple[object, ...], np.ndarray] = {}
        out = []
        for r in self.rates:
            key = (r.source, r.feature, r.value, r.cutoff, r.known)
            if key not in made:
                made[key] = indicator(r, cols)
            out.append(made[key])
        return out

    def _outputs_held(self, a: Alarm | RateAlarm, cols: PredictionColumns, gone: int,
                      m: int) -> int:
        """How many rows the outputs are shown to have held steady through, after a
        field went missing ``gone`` rows ago and before the ``m`` rows of the
        prediction alarm's excursion (0: not shown).  A break that broke the model's
        inputs moves its outputs from its first row; outputs that stayed close to the
        reference over the break's first rows (half of those before the excursion,
        :data:`HELD_MIN_ROWS` at least: distance plus its
        95 % margin below max(floor, a third of the move's own distance), as the peers
        of a confined segment must be) moved later for another reason: the break does
        not explain them.  The rows at once are indistinguishable: the break explains."""
        if PREDICTION not in self.streams or gone - m < HELD_MIN_ROWS:
            return 0
        p = self.streams.index(PREDICTION)
        upto = np.concatenate([self._tail[p], np.asarray(self._raw(cols, PREDICTION),
                                                         dtype=float)[: a.row + 1]])[-TAIL:]
        # the break's first rows: a break that moved the outputs moved them there (the
        # excursion of a ramped move starts late in it, so not all rows up to it)
        held = upto[-min(gone, upto.size):-m]
        held, moved = held[: max(HELD_MIN_ROWS, held.size // 2)], upto[-m:]
        held, moved = held[np.isfinite(held)], moved[np.isfinite(moved)]
        ref = self._ref_raw[p][np.isfinite(self._ref_raw[p])]
        if held.size < HELD_MIN_ROWS or not moved.size or not ref.size:
            return 0
        to_ref = ks_test(ref, held, min_effect=self.floor)
        move = ks_test(ref, moved, min_effect=self.floor)
        if to_ref.insufficient:
            return 0
        bound = to_ref.effect + margin(to_ref.reference_n, to_ref.current_n)
        return int(held.size) if bound < max(self.floor, PEER_SHARE * move.effect) else 0

    @staticmethod
    def _flags(cols: PredictionColumns, feature: str) -> np.ndarray:
        """Which rows of the batch carried ``feature`` wrong-typed (dropped)."""
        v = cols.mismatched.get(feature)
        return np.asarray(v, dtype=bool) if v is not None else np.zeros(cols.n, dtype=bool)

    @staticmethod
    def _cat(cols: PredictionColumns, feature: str) -> np.ndarray:
        v = cols.categorical.get(feature)
        return np.asarray(v, dtype=object) if v is not None else np.full(cols.n, None,
                                                                         dtype=object)

    def _inputs(self, a: Alarm | RateAlarm, cols: PredictionColumns) -> tuple[
            list[list[Any]], list[str]]:
        """A prediction alarm: which inputs broke, and which drifted, in its own rows
        (its CUSUM's excursion, across batches; a field gone: in the events since it
        was last seen, :data:`MISSING_RUN` at least)?  Predictions that move because a feed
        broke -- a field gone (renamed, retyped), a flood of nulls, a stuck default,
        values out of range -- are that break's symptom, not a changed model; the break
        is found here, in the same rows, not a window later.  Each input is tested at
        ``alpha`` over the number of inputs (a Bonferroni share): the rows are few and
        the test is run only when a prediction alarm fires."""
        m = excursion(a)
        rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # up to the alarm, at most TAIL
        for i, s in enumerate(self.streams):
            if s not in (LATENCY, PREDICTION):
                raw = np.asarray(self._raw(cols, s), dtype=float)[: a.row + 1]
                rows[s] = (self._ref_raw[i], np.concatenate([self._tail[i], raw])[-TAIL:])
        for f, ref in self._ref_cat_raw.items():
            cur = np.concatenate([self._ctail[f], self._cat(cols, f)[: a.row + 1]])[-TAIL:]
            rows[f] = (ref, cur)
        if not rows:
            return [], []
        alpha = self.alpha / len(rows)
        at = float(cols.ts[a.row])
        new = sorted(f for f, t in self._new_first.items() if t <= at)
        broken: list[list[Any]] = []
        drifting: list[str] = []
        for f, (ref, upto) in sorted(rows.items()):
            present = _present(upto)
            gone = int(upto.size - 1 - np.flatnonzero(present)[-1]) if present.any() \
                else int(upto.size)  # the trailing run of events without it
            if self._presence.get(f, 0.0) >= MIN_PRESENCE and gone >= MISSING_RUN:
                # of those events, the ones that carried it wrong-typed (the decoder
                # dropped the values): counted on the same rows, whatever the batches
                flags = np.concatenate([self._mtail.get(f, np.zeros(0, dtype=bool)),
                                        self._flags(cols, f)[: a.row + 1]])[-gone:]
                retyped = int(flags.sum())
                if retyped >= max(MISMATCH_MIN_COUNT, MISMATCH_MIN_SHARE * gone):
                    details = {"problem": "type_change", "count": retyped, "rows": gone}
                else:
                    details = {"problem": "missing_field", "ref_presence": self._presence[f],
                               "rows": gone, "new_fields": new}
                held = self._outputs_held(a, cols, gone, m)
                if held:
                    details["outputs_held_rows"] = held
                broken.append([f, "schema_violation", "schema", None, float(gone), details,
                               self._ref_n, gone])
                continue
            cur = upto[-m:]
            quality = [r for r in quality_results(ref, cur) if r.significant(alpha)]
            if quality:
                r = min(quality, key=lambda r: r.p_value)
                broken.append([f, "data_quality", r.detector, float(r.p_value),
                               float(r.effect), dict(r.details), r.reference_n, r.current_n])
                continue
            test = chi2_test if ref.dtype == object else ks_test
            if test(ref[_present(ref)], cur[_present(cur)],
                    min_effect=self.floor).significant(alpha):
                drifting.append(f)
        return broken, drifting

    def _scores(self, z: np.ndarray, ts: np.ndarray) -> list[tuple[Alarm, int, float | None]]:
        """Feed a batch of scores to the normal CUSUMs block by block (``_block`` rows
        each, counted from the watch's first row, whatever the batches), closing each
        block: alarm rows are the batch's.  Each alarm comes with its stream's baseline
        size as it alarmed (a block closed later in the batch does not count) and the
        event time its excursion began."""
        assert self.bank is not None
        out: list[tuple[Alarm, int, float | None]] = []
        start = 0
        while start < z.shape[0]:
            if self._zrows >= self._block:  # (a state saved under a longer window_events)
                self._close_block()
            stop = min(z.shape[0], start + self._block - self._zrows)
            part = z[start:stop]
            before = self._since.copy()
            alarms = self.bank.update(part)
            self._since = _run_starts(before, self.bank.run, ts[start:stop])
            for a in alarms:
                d = 0 if a.direction > 0 else 1
                j = int(np.argmin(np.abs(self.bank.k[a.stream] - a.k)))
                since = _run_start(a.row, a.run_length, ts[start:stop],
                                   before[d, a.stream, j])
                out.append((replace(a, row=a.row + start), int(self.zbase[a.stream][1]),
                            since))
                self._zalarmed[a.stream] = True
            seen = np.isfinite(part)
            for i, p in enumerate(self._zpending):
                p[0] += float(np.sum(part[:, i], where=seen[:, i]))
                p[1] += float(np.sum(seen[:, i]))
            self._zrows += stop - start
            if self._zrows == self._block:
                self._close_block()
            start = stop
        return out

    def _close_block(self) -> None:
        """A block of scores joins a numeric stream's baseline when none of the stream's
        CUSUMs alarmed in it nor ends it past half its threshold (no evidence building
        up), and the stream's CUSUMs are re-centred on the sharper estimate.  Decided
        from the scores alone, so where batches (or windows) fall changes nothing."""
        assert self.bank is not None
        for i in range(len(self.streams)):
            total, n = self._zpending[i]
            base = self.zbase[i]
            quiet = bool(np.all(self.bank.state[:, i, :] <= 0.5 * self.bank.h[i]))
            if not self._zalarmed[i] and quiet and n > 0 and base[1] < self._baseline_max:
                base[0] += total
                base[1] += n
                self.bank.retune(i, base[0] / base[1], 1 / np.sqrt(base[1]))
            self._zpending[i] = [0.0, 0.0]
            self._zalarmed[i] = False
        self._zrows = 0

    def window_closed(self, tested: set[tuple[str, str | None]],
                      alerted: set[tuple[str, str | None]]) -> None:
        """A window closed: the rows fed since the last close join each rate's baseline
        when the window tested the rate's (kind, feature) clean and no CUSUM of the
        stream alarmed, and the stream's CUSUMs are retuned to the sharper estimate."""
        if self.rate_bank is None:
            return
        for i, r in enumerate(self.rates):
            key = (r.kind, r.feature)
            hits, n = self._pending[i]
            base = self.baseline[i]
            if key in tested and key not in alerted and not self._alarmed[i] and n > 0:
                base[0] += hits
                base[1] += n
                retune_grown(self.rate_bank, i, base, r.parameters, self._reference_n)
            self._pending[i] = [0.0, 0.0]
            self._alarmed[i] = False

    def _describe_rate(self, a: RateAlarm, cols: PredictionColumns,
                       x: np.ndarray) -> SeqAlarm:
        r = self.rates[a.stream]
        recent = np.concatenate([self._rtail[a.stream], x[: a.row + 1]])[-described(a):]
        recent_n = int(recent.size)
        recent = recent[np.isfinite(recent)]
        base_n = int(self.baseline[a.stream][1])
        undecided = r.feature in self._ref_cat and self._segmented(
            cols, cols.categorical.get(r.feature))
        broken, drifting = (self._inputs(a, cols) if r.kind == "prediction_drift"
                            else (None, None))
        return SeqAlarm(
            broken=broken or None, drifting=drifting or None,
            kind=r.kind, feature=r.feature, ts=float(cols.ts[a.row]), statistic=a.statistic,
            threshold=a.threshold, k=a.p1, direction=a.direction,
            ref_mean=self.baseline[a.stream][0] / self.baseline[a.stream][1],
            recent_mean=float(recent.mean()) if recent.size else float("nan"), what=r.what,
            undecided=undecided, baseline_n=base_n, run_length=int(a.run_length),
            recent_n=recent_n)

    def _upto(self, a: Alarm, raw: np.ndarray) -> np.ndarray:
        """The stream's raw values up to the alarm row, across batches (at most TAIL)."""
        return np.concatenate([self._tail[a.stream],
                               np.asarray(raw[: a.row + 1], dtype=float)])[-TAIL:]

    def _quality(self, a: Alarm, rows: np.ndarray) -> list[Any] | None:
        """Is the alarm a broken feed (nulls, a stuck default, out-of-range values)?
        Checked on the rows of the CUSUM's own excursion, where the change began.  Those
        rows are the stream's most extreme by construction; out of range means far out
        (:data:`monitor.evaluate.OUT_OF_RANGE_MARGIN`), as in the windows: a distribution
        that merely widened (its variance doubled) or moved is drift, not a broken feed."""
        rows = rows[-excursion(a):]
        broken = [r for r in quality_results(self._ref_raw[a.stream], rows)
                  if r.significant(self.alpha)]
        if not broken:
            return None
        r = min(broken, key=lambda r: r.p_value)
        return [r.detector, float(r.p_value), float(r.effect), dict(r.details),
                r.reference_n, r.current_n]

    @staticmethod
    def _segmented(cols: PredictionColumns, values: np.ndarray | None) -> bool:
        """Does this drift alarm have segments to be localised over (then it waits for
        the rows after it: :meth:`_settle`)?"""
        return values is not None and any(
            bool(np.not_equal(v, np.asarray(None, dtype=object)).any())
            for v in cols.segments.values())

    def _describe(self, a: Alarm, cols: PredictionColumns, raw: np.ndarray) -> SeqAlarm:
        stream = self.streams[a.stream]
        rows = self._upto(a, raw)
        recent = rows[-described(a):]
        recent_n = int(recent.size)
        recent = recent[np.isfinite(recent)]
        kind, feature = stream_key(stream)
        broken, drifting = self._inputs(a, cols) if stream == PREDICTION else (None, None)
        quality = None if stream in (LATENCY, PREDICTION) else self._quality(a, rows)
        undecided = stream != LATENCY and quality is None and self._segmented(cols, raw)
        return SeqAlarm(
            kind=kind, feature=feature,
            ts=float(cols.ts[a.row]), statistic=a.statistic, threshold=a.threshold,
            k=a.k, direction=a.direction, ref_mean=self._ref_mean[a.stream],
            recent_mean=float(recent.mean()) if recent.size else float("nan"),
            quality=quality, undecided=undecided,
            broken=broken or None, drifting=drifting or None,
            run_length=int(a.run_length), recent_n=recent_n,
        )

    def _hold(self, alarm: SeqAlarm, values: np.ndarray, cols: PredictionColumns,
              row: int) -> None:
        """An alarm waits for its segments to decide, with the rows after it."""
        key = (alarm.kind, alarm.feature)
        self._waiting[key] = _Waiting(alarm, [], {k: [] for k in cols.segments})
        self._feed_waiting(key, values[row + 1:], cols, row + 1)

    def _feed_waiting(self, key: tuple[str, str | None], values: np.ndarray,
                      cols: PredictionColumns, start: int) -> None:
        w = self._waiting[key]
        room = SETTLE_ROWS[-1] - len(w.values)
        if room <= 0:
            return
        stop = min(cols.n, start + room)
        w.values.extend(np.asarray(values[: stop - start]).tolist())
        for k in w.segments:
            col = cols.segments.get(k)
            w.segments[k].extend(col[start:stop].tolist() if col is not None
                                 else [None] * (stop - start))

    def _settle(self, key: tuple[str, str | None]) -> tuple[SeqAlarm, int] | None:
        """A waiting alarm judged at :data:`SETTLE_ROWS` rows after it (fixed counts, so
        how the stream is batched changes nothing): the first count that shows the drift
        confined or global decides; at the last, the alarm goes out undecided, with its
        default class (a model fault).  Returns it and the count that decided, or None
        while it waits.  Each count is judged once."""
        w = self._waiting[key]
        ref = self._localise_ref(w.alarm)
        for n in SETTLE_ROWS:
            if n <= w.judged:
                continue
            if n > len(w.values):
                return None
            w.judged = n
            vals = np.asarray(w.values[:n], dtype=object if ref.dtype == object else float)
            loc = localise(ref, vals, {k: np.asarray(v[:n], dtype=object)
                                       for k, v in w.segments.items()}, floor=self.floor)
            decided: SeqAlarm | None = None
            if loc.verdict == CONFINED:
                decided = replace(w.alarm, undecided=False, confined=[loc.segment, loc.details])
            elif loc.verdict != UNDECIDED or n == SETTLE_ROWS[-1]:
                decided = replace(w.alarm, undecided=False)
            if decided is not None:
                del self._waiting[key]
                return decided, n
        return None

    def _localise_ref(self, a: SeqAlarm) -> np.ndarray:
        if a.feature in self._ref_cat:
            return self._ref_cat[a.feature]
        return self._ref_raw[self.streams.index(_waiting_stream((a.kind, a.feature)))]

    def to_state(self) -> dict[str, Any]:
        return {"streams": self.streams,
                "bank": self.bank.to_state() if self.bank is not None else None,
                "tail": [f64_to_text(t) for t in self._tail],
                "rate_bank": self.rate_bank.to_state() if self.rate_bank is not None else None,
                "rate_tail": [f64_to_text(t) for t in self._rtail],
                "baseline": self.baseline, "pending": self._pending, "alarmed": self._alarmed,
                "zbase": self.zbase, "zpending": self._zpending, "zalarmed": self._zalarmed,
                "zrows": self._zrows,
                "waiting": [[w.alarm.to_state(), w.values, w.segments, w.judged]
                            for w in self._waiting.values()],
                "ctail": {f: t.tolist() for f, t in self._ctail.items()},
                "new_first": self._new_first,
                "mtail": {f: [int(t.size), np.flatnonzero(t).tolist()]
                          for f, t in self._mtail.items()},
                "since": [_nan_to_none(self._since), _nan_to_none(self._rsince)]}

    @classmethod
    def from_state(cls, s: dict[str, Any], reference: PredictionColumns,
                   settings: MonitorSettings) -> SequentialWatch:
        watch = cls(list(s["streams"]), reference, settings,
                    CusumBank.from_state(s["bank"]) if s["bank"] is not None else None,
                    BernoulliBank.from_state(s["rate_bank"])
                    if s["rate_bank"] is not None else None)
        watch._tail = [f64_from_text(t) for t in s["tail"]]
        watch._rtail = [f64_from_text(t) for t in s["rate_tail"]]
        watch.baseline = [list(b) for b in s["baseline"]]
        watch._pending = [list(p) for p in s["pending"]]
        watch._alarmed = list(s["alarmed"])
        if "zbase" in s:  # a state from before score baselines keeps the reference's
            watch.zbase = [list(b) for b in s["zbase"]]
            watch._zpending = [list(p) for p in s["zpending"]]
            watch._zalarmed = list(s["zalarmed"])
            watch._zrows = int(s["zrows"])
        for alarm, values, segments, judged in s.get("waiting", []):
            a = SeqAlarm(*alarm)
            watch._waiting[(a.kind, a.feature)] = _Waiting(a, list(values), dict(segments),
                                                           int(judged))
        watch._new_first = {str(f): float(t) for f, t in s.get("new_first", {}).items()}
        for f, t in s.get("ctail", {}).items():  # a state from before has none: empty
            if f in watch._ctail:
                watch._ctail[f] = np.asarray(t, dtype=object)
        if "since" in s:  # before: the excursions running then start unknown (NaN)
            watch._since = _none_to_nan(s["since"][0], watch._since.shape)
            watch._rsince = _none_to_nan(s["since"][1], watch._rsince.shape)
        for f, (size, rows) in s.get("mtail", {}).items():  # before: none wrong-typed
            flags = np.zeros(int(size), dtype=bool)
            flags[np.asarray(rows, dtype=np.int64)] = True
            watch._mtail[f] = flags
        return watch


def _run_starts(before: np.ndarray, run: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each CUSUM's excursion start time after a batch of rows at ``ts``: the row where
    its run began when it began in this batch, the time it had before when the run goes
    on from an earlier batch (its run is longer than the batch: no restart in it), NaN
    when at zero."""
    out = before.copy()
    n = ts.size
    fresh = (run > 0) & (run <= n)
    out[fresh] = ts[n - run[fresh]]
    out[run == 0] = np.nan
    return out


def _run_start(row: int, run_length: int, ts: np.ndarray, before: float) -> float | None:
    """The event time of an alarm's first excursion row (None: before a state that did
    not keep it)."""
    if 0 < run_length <= row + 1:
        return float(ts[row - run_length + 1])
    return float(before) if np.isfinite(before) else None


def _nan_to_none(a: np.ndarray) -> list[Any]:
    return [None if not np.isfinite(x) else float(x) for x in a.ravel().tolist()]


def _none_to_nan(v: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    out = np.asarray([np.nan if x is None else float(x) for x in v], dtype=float)
    return out.reshape(shape) if out.size == int(np.prod(shape)) else np.full(shape, np.nan)


def _waiting_stream(key: tuple[str, str | None]) -> str:
    """The numeric stream behind a waiting alarm's key: a feature, or the predictions."""
    return PREDICTION if key[0] == "prediction_drift" else str(key[1])


def _present(v: np.ndarray) -> np.ndarray:
    """Where a raw column holds a value (not NaN, not None)."""
    if v.dtype.kind == "f":
        return ~np.isnan(v)
    if v.dtype == object:
        return np.not_equal(v, np.asarray(None, dtype=object))
    return np.ones(v.shape, dtype=bool)


def _presence(cols: PredictionColumns) -> dict[str, float]:
    """Each input's share of the reference's events that carry it."""
    n = max(cols.n, 1)
    return {f: float(_present(np.asarray(v)).sum()) / n
            for f, v in [*cols.numeric.items(), *cols.categorical.items()]}


class _FindingFields(TypedDict):
    model: str
    model_version: str
    threshold: float
    reference_n: int
    current_n: int
    window: tuple[float, float]
    severity: str
    feature: str | None
    p_value: float | None
    summary: str
    segment: NotRequired[str | None]


def _change(details: dict[str, Any]) -> str:
    """``rate 0 → 0.3`` from the ``ref_x`` / ``cur_x`` pairs of a test's details."""
    return ", ".join(f"{k[4:].replace('_', ' ')} {v:.3g} → {details['cur_' + k[4:]]:.3g}"
                     for k, v in details.items()
                     if k.startswith("ref_") and isinstance(v, int | float)
                     and isinstance(details.get("cur_" + k[4:]), int | float))


def _break_findings(model: str, alarm: SeqAlarm, common: _FindingFields) -> list[Finding]:
    """The input breaks a prediction alarm found in its own rows, as the findings the
    window tests would raise for them (same keys, so the window's continue them)."""
    out = []
    for feature, kind, detector, p, effect, d, *ns in alarm.broken or []:
        if kind == "schema_violation":
            if d.get("problem") == "type_change":  # dropped by the decoder: retyped
                text = (f"{d['count']} of the last {effect:.0f} events of {model}, where its "
                        f"predictions moved, carried '{feature}' as another type than the "
                        "feature's; those values were dropped, and none of the "
                        f"{effect:.0f} carried it as the feature's type.")
            else:
                rename = (f" New in these events: {', '.join(repr(x) for x in d['new_fields'])}"
                          " (a rename?)." if d["new_fields"] else "")
                text = (f"'{feature}' is missing from the last {effect:.0f} events of "
                        f"{model}, where its predictions moved; the reference had it in "
                        f"{d['ref_presence']:.0%} of events.{rename}")
            summary, threshold = f"Schema break in '{feature}' of {model}", 0.0
        else:
            text = (f"'{feature}' of {model} broke in the events where its predictions "
                    f"moved: {_change(d) or d} ({detector}, p={p:.2g}).")
            summary, threshold = (f"Data-quality break in '{feature}' of {model}",
                                  common["threshold"])
        out.append(Finding(
            kind=kind, model=model, model_version=common["model_version"], detector=detector,
            statistic=effect, p_value=p, threshold=threshold,
            reference_n=int(ns[0]) if ns else 0, current_n=int(ns[1]) if ns else 0,
            window=common["window"], summary=summary, description=text, feature=feature,
            details=d))
    return out


def _events(n: int) -> str:
    """``2,000 events: `` before a baseline's description (nothing when unknown)."""
    return f"{n:,} events: " if n else ""


def _over(n: int) -> str:
    return f"over the last {n:,} events" if n else "over the latest events"


def _excursion_text(alarm: SeqAlarm) -> str:
    """`` over the last 240 events (since ...)``: the excursion that raised the alarm."""
    if not alarm.run_length:
        return ""  # an alarm saved before run lengths were kept
    since = f", since {rfc3339(alarm.since)}" if alarm.since is not None else ""
    return f" over the last {alarm.run_length:,} events{since}"


def _inputs_text(alarm: SeqAlarm) -> tuple[str, dict[str, Any]]:
    """What a prediction alarm found in its inputs' rows, in words and details."""
    if alarm.broken:
        held = [b for b in alarm.broken if b[5].get("outputs_held_rows")]
        now = [b for b in alarm.broken if not b[5].get("outputs_held_rows")]
        text, details = "", {}
        if now:
            names = ", ".join(f"'{b[0]}'" for b in now)
            text = (f" In the same events input {names} broke: the predictions moved with "
                    "a broken feed.")
            details["broken_inputs"] = [b[0] for b in now]
        for b in held:
            text += (f" Input '{b[0]}' has been missing for the last {b[5]['rows']:,} events, "
                     f"and the predictions held close to the reference through "
                     f"{b[5]['outputs_held_rows']:,} of them before this move: that break "
                     "does not explain it.")
        if held:
            details["breaks_before"] = [b[0] for b in held]
        if alarm.drifting:
            details["drifting_inputs"] = list(alarm.drifting)
        return text, details
    if alarm.drifting:
        names = ", ".join(f"'{f}'" for f in alarm.drifting)
        return (f" In the same events input {names} drifted too.",
                {"drifting_inputs": list(alarm.drifting)})
    return "", {}


def alarm_findings(model: str, version: str, alarm: SeqAlarm, alpha: float,
                   window_events: int) -> list[Finding]:
    """The alert-side view of an alarm: the same keys as the window tests' findings,
    plus the data-quality break when the alarm's rows show one (attribution then
    sends the drift to ML engineering: a broken feed, not a changed world).  A
    prediction alarm brings the breaks of its inputs found in its rows, first, and
    names the inputs that drifted with it (a field that vanished from its rows because
    its values came wrong-typed is told as retyped, counted on those rows)."""
    predicted = alarm.kind == "prediction_drift"
    what = ("Predictions" if predicted else "latency" if alarm.feature is None
            else f"'{alarm.feature}'")
    way = "up" if alarm.direction > 0 else "down"
    if alarm.kind == "error_rate":
        summary = f"{model} fails more often than its reference"
    elif alarm.kind == "latency_regression":
        summary = f"{model} serves slower than its reference"
    elif predicted:
        summary = f"Prediction drift in the predictions of {model}"
    else:
        summary = f"Input drift in {what} of {model}"
    version = alarm.version or version
    # the evidence: threshold is the CUSUM's bound h, p_value the per-event false-alarm
    # rate the bank's bounds were sized for, reference_n the stream's baseline and
    # current_n the events of the excursion that raised it, which the window spans
    since = alarm.ts if alarm.since is None else min(alarm.since, alarm.ts)
    common: _FindingFields = {
        "model": model, "model_version": version, "threshold": alarm.threshold,
        "reference_n": alarm.baseline_n, "current_n": alarm.run_length,
        "window": (since, alarm.ts),
        "severity": "warning", "feature": alarm.feature,
        "p_value": alpha / window_events, "summary": summary}
    new = {"new_version": version} if alarm.new_version else {}
    where, local = "", {}
    if alarm.confined is not None and alarm.quality is None and not alarm.broken:
        segment, local = alarm.confined
        where = " " + confined_text(local)
        common["segment"] = segment
    context, inputs = _inputs_text(alarm)
    breaks = _break_findings(model, alarm, common)
    if alarm.what is not None:  # a rate
        moved = "rose" if alarm.direction > 0 else "fell"
        return breaks + [Finding(
            kind=alarm.kind, detector="bernoulli_cusum", statistic=alarm.statistic,
            description=(
                f"{alarm.what} of {model} {moved}: {alarm.ref_mean:.2%} in the baseline "
                f"({_events(alarm.baseline_n)}the reference and the clean windows since), "
                f"{alarm.recent_mean:.2%} {_over(alarm.recent_n)} (sequential Bernoulli "
                f"CUSUM sized for a {'rise' if alarm.direction > 0 else 'fall'} to "
                f"{alarm.k:.2%} crossed its threshold{_excursion_text(alarm)}: "
                f"{alarm.statistic:.3g} > {alarm.threshold:.3g}).{where}{context}"),
            details={"p1": alarm.k, "direction": way, "ref_rate": alarm.ref_mean,
                     "cur_rate": alarm.recent_mean, "stream": alarm.what, **local, **new,
                     **inputs},
            **common)]
    unit = " ms" if alarm.kind == "latency_regression" else ""
    description = (
        f"{what} of {model} moved {way}: mean {alarm.ref_mean:.3g}{unit} in the reference, "
        f"{alarm.recent_mean:.3g}{unit} {_over(alarm.recent_n)} (sequential CUSUM sized for "
        f"a {2 * alarm.k:g} standard-deviation shift, centred on a baseline of "
        f"{_events(alarm.baseline_n)}the reference and the quiet stretches since, crossed "
        f"its threshold{_excursion_text(alarm)}: {alarm.statistic:.3g} > "
        f"{alarm.threshold:.3g}).{where}{context}"
    )
    findings = breaks + [Finding(
        kind=alarm.kind, detector="cusum", statistic=alarm.statistic,
        description=description,
        details={"k": alarm.k, "direction": way, "ref_mean": alarm.ref_mean,
                 "recent_mean": alarm.recent_mean, **local, **new, **inputs}, **common)]
    if alarm.quality is not None:
        detector, p, effect, details, *ns = alarm.quality
        findings.append(Finding(
            kind="data_quality", detector=detector, statistic=effect,
            description=(f"{what} of {model} broke as it drifted ({detector}, "
                         f"p={p:.2g}): {details}"),
            details=details, **{**common, "p_value": p,
                                # the quality test's own counts: the reference and the
                                # excursion's rows it checked
                                "reference_n": int(ns[0]) if ns else 0,
                                "current_n": int(ns[1]) if ns else 0,
                                "summary": f"Data-quality break in {what} of {model}"}))
    return findings
