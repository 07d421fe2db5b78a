"""Load and validate ``config.toml`` into the typed objects of :mod:`monitor.config.types`.

Validation runs in layers, collecting every problem in one pass: each table
refuses unknown keys and checks its own values, then cross-checks (receivers
named by routes, window sizes) quote the bad value.  A problem names the key
path, the rule and the value::

    defaults.window_events: must be an integer >= 50 (got 10)
    route.routes[0].receiver: undefined receiver "ds" used in route

``check-config`` runs the same code (:func:`check_config`).  Receivers and
secrets live in :mod:`monitor.config.receivers`, routes in
:mod:`monitor.config.routes`, ``[kafka]`` ``[store]`` ``[http]`` in
:mod:`monitor.config.endpoints`, the rules in :mod:`monitor.config.check`.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from alerts.links import AnnotationTemplates
from monitor.config.annotations import parse_annotations
from monitor.config.check import (
    Problems,
    Table,
    choice_list,
    duration,
    integer,
    number,
    parse_duration,
    string,
)
from monitor.config.endpoints import parse_http, parse_kafka, parse_store
from monitor.config.limits import parse_limits
from monitor.config.receivers import Context
from monitor.config.routes import parse_inhibit_rules, parse_receivers_and_route
from monitor.config.types import (
    FEATURE_TYPES,
    TASKS,
    Config,
    Contract,
    ModelConfig,
    MonitorSettings,
)
from monitor.evaluate import CATEGORICAL_DRIFT, JOINT_DRIFT, NUMERIC_DRIFT

__all__ = [
    "ConfigError",
    "check_config",
    "load_config",
    "parse_config",
    "parse_duration",
    "validate",
]

log = logging.getLogger(__name__)

SETTING_RULES = {  # every MonitorSettings field: [defaults] and per-model overrides
    "reference_events": integer(ge=100),
    "window_events": integer(ge=50),
    "window_seconds": duration(gt=0),
    "min_window_events": integer(ge=10),
    "alpha": number(gt=0, lt=0.5),
    "resolve_after_windows": integer(ge=1),
    "latency_min_ratio": number(ge=1),
    "error_rate_min_increase": number(ge=0, lt=1),
    "drift_min_effect": number(ge=0, lt=1),
    "traffic_gap_min_seconds": duration(gt=0),
    "max_features": integer(ge=1),
    "label_ttl_seconds": duration(gt=0),
    "label_deadline_factor": number(ge=1),
    "label_deadline_min_seconds": duration(gt=0),
    "numeric_drift": choice_list(NUMERIC_DRIFT),
    "categorical_drift": choice_list(CATEGORICAL_DRIFT),
    "joint_drift": string(choices=JOINT_DRIFT),
    "version_min_events": integer(ge=100),
    "version_accuracy_margin": number(gt=0, lt=1),
}


class ConfigError(Exception):
    """The config is invalid; ``problems`` lists every error found, one line each."""

    def __init__(self, problems: list[str], source: str | Path | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source is not None else ""
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} config problem(s){where}:{lines}")


def load_config(path: str | Path | None, *, env: Mapping[str, str] | None = None) -> Config:
    """The config in the TOML file ``path`` (None: the built-in ``Config()``).

    Raises FileNotFoundError if the file does not exist, ConfigError if it is
    invalid.  Warnings are logged (``config_warning``).
    """
    if path is None:
        return Config()
    data = _read_toml(Path(path))
    return parse_config(data, env=env, base_dir=Path(path).parent, source=path)


def parse_config(
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
    source: str | Path | None = None,
) -> Config:
    """Validate parsed TOML; relative paths are taken from ``base_dir`` (default: cwd)."""
    config, problems = validate(data, env=env, base_dir=base_dir)
    for w in problems.warnings:
        log.warning("config_warning", extra={"problem": w, "source": str(source or "")})
    if config is None:
        raise ConfigError(problems.errors, source)
    return config


def check_config(
    path: str | Path, *, env: Mapping[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the config file ``path``; never raises for a bad file."""
    try:
        data = _read_toml(Path(path))
    except FileNotFoundError:
        return [f"{path}: file not found"], []
    except ConfigError as exc:
        return exc.problems, []
    _, problems = validate(data, env=env, base_dir=Path(path).parent)
    return problems.errors, problems.warnings


def validate(
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
) -> tuple[Config | None, Problems]:
    """The config (None if there are errors) and every problem found."""
    problems = Problems()
    ctx = Context(
        problems, os.environ if env is None else env, Path(base_dir or Path.cwd()).absolute()
    )
    top = Table(dict(data), "", problems)
    parts: dict[str, Any] = {}
    for key, parse in (("kafka", parse_kafka), ("store", parse_store), ("http", parse_http),
                       ("limits", parse_limits)):
        t = Table.of(top.raw(key), key, problems) if top.has(key) else None
        if t is not None:
            parts[key] = parse(t, ctx)
            t.finish()
    defaults = MonitorSettings()
    if top.has("defaults") and (t := Table.of(top.raw("defaults"), "defaults", problems)):
        defaults = parts["defaults"] = _settings(t, defaults)
        t.finish()
    links: dict[tuple[str, str], dict[str, str]] = {}  # (model or "", kind or "") -> templates
    if top.has("annotations"):
        _links(links, "", *parse_annotations(top.raw("annotations"), "annotations", problems))
    if top.has("models"):
        parts["models"] = _models(top.raw("models"), defaults, problems, links)
    if links:
        parts["annotations"] = AnnotationTemplates(
            default=links.get(("", ""), {}),
            kinds={k: v for (m, k), v in links.items() if not m and k},
            models={m: v for (m, k), v in links.items() if m and not k},
            model_kinds={(m, k): v for (m, k), v in links.items() if m and k})
    parts.update(parse_receivers_and_route(top, ctx))
    if top.has("inhibit_rules"):
        parts["inhibit_rules"] = parse_inhibit_rules(top.raw("inhibit_rules"), problems)
    top.finish()
    if problems.errors:
        return None, problems
    return Config(**parts), problems


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"], path) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"], path) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
        if m:
            msg = (
                f"{path}:{m.group(1)}:{m.group(2)}: invalid TOML at line {m.group(1)}, "
                f"column {m.group(2)}: {msg[: m.start()]}"
            )
        else:
            msg = f"{path}: invalid TOML: {msg}"
        raise ConfigError([msg], path) from None


# -- [defaults] [[models]] -------------------------------------------------


def _settings(t: Table, base: MonitorSettings) -> MonitorSettings:
    """``base`` with the setting keys of ``t`` applied (and checked)."""
    given = {k: t.take(k, rule, ...) for k, rule in SETTING_RULES.items() if t.has(k)}
    given = {k: v for k, v in given.items() if v is not ...}
    merged = replace(base, **given)
    if merged.min_window_events > merged.window_events:
        if "min_window_events" in given:
            t.problems.error(
                t.at("min_window_events"),
                f"must be <= window_events ({merged.window_events})",
                merged.min_window_events,
            )
        elif "window_events" in given:
            t.problems.error(
                t.at("window_events"),
                f"must be >= min_window_events ({merged.min_window_events})",
                merged.window_events,
            )
    return merged


def _links(out: dict[tuple[str, str], dict[str, str]], model: str, default: dict[str, str],
           kinds: dict[str, dict[str, str]]) -> None:
    for kind, templates in [("", default), *kinds.items()]:
        if templates:
            out[(model, kind)] = templates


def _models(value: Any, defaults: MonitorSettings, problems: Problems,
            links: dict[tuple[str, str], dict[str, str]]) -> tuple[ModelConfig, ...]:
    if not isinstance(value, list):
        problems.error("models", "must be an array of tables ([[models]])", value)
        return ()
    out: list[ModelConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        if (t := Table.of(item, f"models[{i}]", problems)) is None:
            continue
        if not t.has("name"):
            problems.error(t.at("name"), "required: the model name used in events")
        name = t.take("name", string())
        if name in seen:
            problems.error(t.at("name"), f"duplicate model name (also models[{seen[name]}])", name)
        elif name is not None:
            seen[name] = i
        task = t.take("task", string(choices=TASKS))
        features: dict[str, str] = {}
        if t.has("features") and (ft := Table.of(t.raw("features"), t.at("features"), problems)):
            for fname in list(ft.data):
                if (kind := ft.take(fname, string(choices=FEATURE_TYPES))) is not None:
                    features[fname] = kind
        contract = Contract()
        if t.has("contract") and (ct := Table.of(t.raw("contract"), t.at("contract"), problems)):
            contract = Contract(
                accuracy_min=ct.take("accuracy_min", number(gt=0, le=1)),
                latency_p95_ms=ct.take("latency_p95_ms", number(gt=0)),
                error_rate_max=ct.take("error_rate_max", number(ge=0, lt=1)),
                approved_versions=ct.take_list("approved_versions", string(),
                                               "version names", (), allow_one=True),
                champion=ct.take("champion", string()),
                accuracy_margin=ct.take("accuracy_margin", number(gt=0, lt=1)),
                agreement_min=ct.take("agreement_min", number(gt=0, le=1)),
                memory_mb_max=ct.take("memory_mb_max", number(gt=0)),
                gpu_memory_mb_max=ct.take("gpu_memory_mb_max", number(gt=0)),
                framework=ct.take("framework", string()),
                parameter_count=ct.take("parameter_count", integer(ge=1)),
            )
            if (contract.champion is not None and contract.approved_versions
                    and contract.champion not in contract.approved_versions):
                problems.error(ct.at("champion"), "must be one of approved_versions "
                               f"({', '.join(contract.approved_versions)})", contract.champion)
            ct.finish()
        if t.has("annotations"):
            found = parse_annotations(t.raw("annotations"), t.at("annotations"), problems)
            if name is not None:
                _links(links, name, *found)
        settings = _settings(t, defaults)
        if len(features) > settings.max_features:
            problems.warn(
                t.at("features"),
                f"{len(features)} features declared but max_features "
                f"is {settings.max_features}: the rest are not tracked",
            )
        t.finish()
        if name is not None:
            out.append(ModelConfig(name, task, features, contract, settings))
    return tuple(out)
