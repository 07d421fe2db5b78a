"""Replay one case and judge the alerts it produced.

Two records per replay:

- the ``--alerts-out`` JSON lines: what was *notified* (a line whose
  ``muted_by`` is present and not null was muted: inhibited or silenced);
- the *verdict timeline*: every alert state change the pipeline handed to the
  dispatcher, muted or not, with ``muted_by`` (the alertname of the firing
  alert that inhibits it, ``"silenced"``, or None) as the product's own
  inhibitor and silencer decide it at that moment.  Observed by wrapping
  ``Dispatcher.submit`` for the duration of the replay (read-only: the changes
  go through unchanged).  When the alerts-out lines carry ``muted_by`` for
  muted alerts themselves, they are the timeline.

"Every fault found" is judged on the timeline (an alert is found muted or
not); "nothing to the wrong team" on the notified firing alerts; "no
contradictory verdicts" on the timeline's firing intervals.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from alerts.dispatch import Dispatcher
from monitor.config.types import Config, MonitorSettings
from monitor.replay import replay
from tests.scenarios.cases import (
    DS,
    ML,
    NO_MUTE_BY,
    REFERENCE_EVENTS,
    TTL,
    WINDOW_EVENTS,
    Case,
    Expect,
    owner,
)
from tests.scenarios.streams import generate, write_jsonl

CHUNKS = (97, 1_000, 20_000)  # the last one is the replay default: the verdict shown
GRACE_S = 1.0  # an alert may carry a start a hair before the fault's first event


def config_for(case: Case) -> Config:
    return Config(defaults=MonitorSettings(reference_events=REFERENCE_EVENTS,
                                           window_events=WINDOW_EVENTS,
                                           label_ttl_seconds=TTL[case.labels]))


def parse_ts(s: str | None) -> float:
    if s is None:
        return math.inf
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def observe_verdicts() -> Iterator[list[dict[str, Any]]]:
    """Every alert state change submitted to any Dispatcher, with ``muted_by``."""
    record: list[dict[str, Any]] = []
    original = Dispatcher.submit

    def submit(self: Dispatcher, changes: Any, firing: Any) -> Any:
        changes, firing = list(changes), list(firing)
        for a in changes:
            why = None
            if a.status == "firing":
                src = self.inhibitor.muted_by(a, firing)
                if src is not None:
                    why = " ".join(x for x in (src.labels.get("alertname", "?"),
                                               src.labels.get("feature", ""),
                                               src.labels.get("segment", "")) if x)
                elif self.silencer is not None and self.silencer.silenced_by(a.labels,
                                                                             self.clock()):
                    why = "silenced"
            record.append({**a.to_json(), "muted_by": why})
        return original(self, changes, firing)

    Dispatcher.submit = submit  # type: ignore[method-assign]
    try:
        yield record
    finally:
        Dispatcher.submit = original  # type: ignore[method-assign]


@dataclass
class Episode:
    """One firing episode of one alert (fingerprint), from the timeline."""

    labels: dict[str, str]
    start: float
    end: float
    muted_by: str | None
    notified: bool = False

    @property
    def kind(self) -> str:
        return self.labels.get("kind", "")

    @property
    def team(self) -> str:
        return self.labels.get("team", "")

    def describe(self, t0: float | None = None) -> str:
        bits = [self.labels.get("alertname", self.kind)]
        if "feature" in self.labels:
            bits.append(self.labels["feature"])
        if "segment" in self.labels:
            bits.append(f"segment {self.labels['segment']}")
        s = " ".join(bits) + f" -> {self.team}"
        if t0 is not None and math.isfinite(t0):
            s += f" at {self.start - t0:+.0f}s"
        if self.muted_by:
            s += f" (muted by {self.muted_by})"
        return s


def episodes(timeline: list[dict[str, Any]], notified_lines: list[dict[str, Any]]) -> list[Episode]:
    notified = {(x["fingerprint"], x["startsAt"]) for x in notified_lines
                if x["status"] == "firing" and not x.get("muted_by")}
    open_: dict[str, Episode] = {}
    out: list[Episode] = []
    names = {x["fingerprint"]: " ".join(v for v in (x["labels"].get("alertname", "?"),
                                                    x["labels"].get("feature", ""),
                                                    x["labels"].get("segment", "")) if v)
             for x in timeline}
    for x in timeline:
        fp = x["fingerprint"]
        if x["status"] == "firing":
            if fp in open_ and open_[fp].start == parse_ts(x["startsAt"]):
                continue  # an update of the same episode
            why = x.get("muted_by")
            if isinstance(why, dict):  # alerts-out's own: the source's fingerprint
                why = (names.get(why["inhibited_by"], why["inhibited_by"])
                       if "inhibited_by" in why else "silenced")
            ep = Episode(dict(x["labels"]), parse_ts(x["startsAt"]), math.inf, why,
                         notified=(fp, x["startsAt"]) in notified)
            open_[fp] = ep
            out.append(ep)
        elif fp in open_:
            open_.pop(fp).end = parse_ts(x.get("endsAt")) if x.get("endsAt") else math.inf
    return out


@dataclass
class Found:
    expect: Expect
    ok: bool
    delay_s: float | None = None
    why: str = ""


@dataclass
class Verdict:
    case: Case
    found: list[Found] = field(default_factory=list)
    wrong_team: list[str] = field(default_factory=list)
    null_alarms: list[str] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    chunk_identical: bool | None = None
    chunk_note: str = ""
    per_chunk: dict[int, list[str]] = field(default_factory=dict)
    chunk_failures: list[str] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0
    alerts: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (all(f.ok for f in self.found) and not self.wrong_team and not self.null_alarms
                and not self.contradictions and self.chunk_identical is not False
                and not self.chunk_failures)

    def reasons(self) -> list[str]:
        out = [f"{f.expect.describe()} not found: {f.why}" for f in self.found if not f.ok]
        out += [f"wrong team: {w}" for w in self.wrong_team]
        out += [f"null alarm: {w}" for w in self.null_alarms]
        out += [f"contradiction: {w}" for w in self.contradictions]
        if self.chunk_identical is False:
            out.append(f"chunk sizes differ: {self.chunk_note}")
        mine = set(out)
        for c, rs in self.per_chunk.items():
            out += [f"[chunk {c} only] {r}" for r in rs
                    if r not in mine and not r.startswith("chunk sizes")]
        return list(dict.fromkeys(out))


def _matches(ep: Episode, e: Expect, hosts_region: dict[str, str]) -> bool:
    if e.kind == "data_quality" and e.segment_host is not None:
        if ep.kind == "data_quality":  # model-wide test: no segment to name
            return e.feature is None or ep.labels.get("feature") == e.feature
        if ep.kind != "data_drift":
            return False
    elif ep.kind != e.kind:
        return False
    if e.feature is not None and ep.labels.get("feature") != e.feature:
        return False
    if e.segment_host is not None:
        seg = ep.labels.get("segment", "")
        ok = {f"host={e.segment_host}"}
        if e.segment_host in hosts_region:
            ok.add(f"region={hosts_region[e.segment_host]}")
        if seg not in ok:
            return False
    return True


def judge(case: Case, eps: list[Episode]) -> Verdict:
    v = Verdict(case)
    t_fault = case.first_fault_ts
    t0 = case.spec(0).ts_of(0)
    regions = {h: h.split("-")[0] for h in ("eu-0", "eu-1", "eu-2", "us-0", "us-1", "us-2")}
    v.alerts = [ep.describe(t_fault if math.isfinite(t_fault) else t0) for ep in eps]
    for e in case.expectations():
        cands = [ep for ep in eps if _matches(ep, e, regions) and ep.team == e.team
                 and e.start_ts - GRACE_S <= ep.start <= e.start_ts + e.budget_s]
        if cands:
            first = min(cands, key=lambda x: x.start)
            f = Found(e, True, first.start - e.start_ts)
            if e.team == DS and all(_bad_mute(ep.muted_by) and not ep.notified
                                    for ep in cands):
                f.ok, f.why = False, f"found but muted by {first.muted_by} ({first.describe()})"
            v.found.append(f)
            continue
        # why not: the same kind elsewhere, to another team, or too late
        near = [ep for ep in eps if ep.kind == e.kind and ep.start >= e.start_ts - GRACE_S]
        if near:
            why = "; ".join(ep.describe(e.start_ts) for ep in near[:3])
        else:
            why = f"no {e.kind} alert at all"
        v.found.append(Found(e, False, None, why))
    present = case.teams()
    for ep in eps:
        if not case.faults or ep.start < t_fault - GRACE_S:
            v.null_alarms.append(ep.describe(t_fault if case.faults else t0))
            continue
        if not ep.notified:
            continue
        owners = {o for f in case.faults
                  if (o := owner(f, ep.kind, ep.labels.get("feature"))) is not None}
        if owners:
            if ep.team not in owners:
                v.wrong_team.append(ep.describe(t_fault))
        elif ep.team not in present:
            v.wrong_team.append(ep.describe(t_fault) + " [explained by no fault]")
        else:
            v.extra.append(ep.describe(t_fault))
    v.contradictions = list(dict.fromkeys(contradictions(eps)))
    return v


def _bad_mute_names() -> set[str]:
    from alerts.model import KINDS
    return {KINDS[k][0] for k in NO_MUTE_BY} | set(NO_MUTE_BY)


def _bad_mute(muted_by: str | None) -> bool:
    return muted_by is not None and muted_by.split(" ")[0] in _bad_mute_names()


def contradictions(eps: list[Episode]) -> list[str]:
    """A (model, feature) with a firing data-science drift verdict and, at the same
    event time, a firing ML-engineering drift verdict confined to a segment."""
    out: list[str] = []
    drift = [ep for ep in eps if ep.kind == "data_drift" and ep.labels.get("feature")]
    for a in drift:
        if a.team != DS:
            continue
        for b in drift:
            if (b.team == ML and "segment" in b.labels
                    and b.labels.get("model") == a.labels.get("model")
                    and b.labels["feature"] == a.labels["feature"]
                    and max(a.start, b.start) < min(a.end, b.end)):
                out.append(f"{a.labels['feature']}: {a.describe()} while {b.describe()}")
    return out


def run_case(case: Case, workdir: Path, chunks: tuple[int, ...] = CHUNKS) -> Verdict:
    """Generate the stream, replay it at every chunk size, judge every replay and
    compare their alerts-out lines.  The verdict shown is the last chunk size's
    (the replay default, 20,000 lines); a failure seen only at some chunk sizes
    is tagged with them."""
    t = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    events_path = workdir / "events.jsonl"
    events = generate(case.spec())
    write_jsonl(str(events_path), events)
    cfg = config_for(case)
    outs: list[bytes] = []
    verdicts: list[Verdict] = []
    for chunk in chunks:
        out = workdir / f"alerts-{chunk}.jsonl"
        out.unlink(missing_ok=True)
        with observe_verdicts() as timeline:
            replay(cfg, [events_path], alerts_out=out, chunk_lines=chunk)
        outs.append(out.read_bytes())
        lines = [orjson.loads(x) for x in outs[-1].splitlines()]
        if any("muted_by" in x for x in lines):
            timeline = lines  # the product writes muted alerts itself
        verdicts.append(judge(case, episodes(timeline, lines)))
    v = verdicts[-1]
    v.per_chunk = {c: vv.reasons() for c, vv in zip(chunks, verdicts, strict=True)}
    v.events = len(events)
    if len(chunks) > 1:
        # the same state changes -- which alerts, when, whose, why -- up to the last
        # bits of floats (a CUSUM summed over another batch split) and the order of
        # lines written by different batches (taken in event-time order)
        norm = [sorted(rounded([orjson.loads(x) for x in o.splitlines()]), key=change_key)
                for o in outs]
        v.chunk_identical = all(n == norm[0] for n in norm[1:])
        if not v.chunk_identical:
            v.chunk_note = "; ".join(
                f"{c}: {len(o.splitlines())} lines" for c, o in zip(chunks, outs, strict=True))
            v.chunk_note += " -- " + _first_difference(chunks, outs)
    v.chunk_failures = [r for c, vv in zip(chunks, verdicts, strict=True)
                        for r in vv.reasons() if c != chunks[-1]]
    v.seconds = time.perf_counter() - t
    return v


def _first_difference(chunks: tuple[int, ...], outs: list[bytes]) -> str:
    def short(line: bytes | None) -> str:
        if line is None:
            return "nothing"
        x = orjson.loads(line)
        lab = x["labels"]
        return (f"{x['status']} {lab.get('alertname')} {lab.get('feature', '')} "
                f"{lab.get('segment', '')} at {x['startsAt']}").replace("  ", " ")
    base = outs[-1].splitlines()
    for c, o in zip(chunks, outs, strict=True):
        lines = o.splitlines()
        for i in range(max(len(lines), len(base))):
            a = lines[i] if i < len(lines) else None
            b = base[i] if i < len(base) else None
            if a != b:
                note = ""
                if a is not None and b is not None and short(a) == short(b):
                    xa, xb = orjson.loads(a), orjson.loads(b)
                    keys = [k for k in xa["evidence"] if xa["evidence"][k] != xb["evidence"].get(k)]
                    keys += [k for k in ("endsAt", "annotations") if xa[k] != xb[k]]
                    note = f" (differing: {', '.join(keys[:4])})"
                return (f"line {i + 1}: chunk {c} has {short(a)}, chunk {chunks[-1]} "
                        f"{short(b)}{note}")
    return ""


def rounded(x: Any) -> Any:
    """Floats to 9 significant digits, recursively: a CUSUM summed over another batch
    split differs in its last bits, nothing else may."""
    if isinstance(x, float):
        return float(f"{x:.9g}")
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return x


def change_key(a: dict[str, Any]) -> tuple[str, str, str]:
    """A state change's place in event time: a firing's start, a resolution's end."""
    when = a["startsAt"] if a["status"] == "firing" else (a["endsAt"] or a["startsAt"])
    return (when, a["fingerprint"], a["status"])
