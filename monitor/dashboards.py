"""Grafana dashboards as code: Fleet, Model and Daemon, generated with Grafana's
``grafana-foundation-sdk`` into JSON (``driftwatch dashboards --out deploy/grafana``).

Every panel reads the ``$datasource`` variable, every rate uses
``$__rate_interval``, every Model panel filters on ``$model``; the heavy fleet
queries read the recording rules of ``deploy/prometheus/rules.yml``
(:data:`RECORDING_RULES` names them, a test keeps both in step).  The panels
answer "is it the model or the infrastructure, and since when": alert state by
fault, drift scores on one scale (1 = alarm), and the model's contract drawn
beside the live values it binds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ScaleDistributionConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    ScaleDistribution,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job=~"$job"'
MODEL = f'{JOB}, model="$model"'
VERSION = f'{MODEL}, model_version=~"$version"'
TAGS = ["driftwatch"]
# the recording rules the dashboards read (deploy/prometheus/rules.yml defines them)
RECORDING_RULES = (
    "job_model:driftwatch_predictions:rate5m",
    "job_model:driftwatch_prediction_errors:ratio_rate5m",
    "job_model:driftwatch_drift_score:max",
    "job_team_fault:driftwatch_alerts_firing:sum",
)
FILES = {"fleet": "driftwatch-fleet.json", "model": "driftwatch-model.json",
         "daemon": "driftwatch-daemon.json"}


def q(expr: str, legend: str = "", instant: bool = False, table: bool = False) -> Dataquery:
    """A Prometheus query on ``$datasource`` (``table``: instant, as a table)."""
    query = Dataquery().expr(expr).ref_id("A").datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if instant or table:
        query = query.instant()
    if table:
        query = query.format(PromQueryFormat.TABLE)
    return query


def _queries(panel: Any, queries: tuple[Dataquery, ...]) -> Any:
    for i, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + i)))
    return panel


def _steps(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=v, color=c) for v, c in steps])


def graph(title: str, description: str, unit: str, *queries: Dataquery, width: int = 12,
          height: int = 8, line_at: float | None = None, log: bool = False,
          minimum: float | None = 0.0) -> timeseries.Panel:
    """A time series; ``line_at`` draws a dashed threshold line there (the alarm)."""
    panel = (timeseries.Panel().title(title).description(description).unit(unit)
             .datasource(DATASOURCE).span(width).height(height)
             .legend(VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                     .placement(LegendPlacement.BOTTOM).show_legend(True)
                     .calcs(["lastNotNull", "max"])))
    if minimum is not None:
        panel = panel.min(minimum)
    if line_at is not None:
        panel = (panel.thresholds(_steps((None, "green"), (line_at, "red")))
                 .thresholds_style(GraphThresholdsStyleConfig()
                                   .mode(GraphThresholdsStyleMode.DASHED)))
    if log:
        panel = panel.scale_distribution(
            ScaleDistributionConfig().type(ScaleDistribution.LOG).log(10))
    return _queries(panel, queries)


def bars(title: str, description: str, unit: str, *queries: Dataquery, width: int = 12,
         height: int = 8, red_at: float | None = None,
         maximum: float | None = None) -> bargauge.Panel:
    panel = (bargauge.Panel().title(title).description(description).unit(unit)
             .datasource(DATASOURCE).span(width).height(height).min(0))
    if maximum is not None:
        panel = panel.max(maximum)
    if red_at is not None:
        panel = panel.thresholds(_steps((None, "green"), (red_at, "red")))
    return _queries(panel, queries)


def single(title: str, description: str, unit: str, *queries: Dataquery, width: int = 6,
           height: int = 4, red_at: float | None = None) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).unit(unit)
             .datasource(DATASOURCE).span(width).height(height))
    if red_at is not None:
        panel = panel.thresholds(_steps((None, "green"), (red_at, "red")))
    return _queries(panel, queries)


def _starts(by: str, selector: str) -> str:
    """Alert starts in each step: a counter's increase, or its series appearing (a
    counter series is born at its first start, which ``increase`` cannot see)."""
    series = "driftwatch_alert_starts_total{" + selector + "}"
    return (f"sum by ({by}) ((increase({series}[$__rate_interval]) > 0) "
            f"or ({series} unless {series} offset $__rate_interval))")


def _datasource() -> DatasourceVariable:
    return DatasourceVariable("datasource").label("Data source").type("prometheus")


def _query_var(name: str, label: str, query: str, multi: bool = False) -> QueryVariable:
    var = (QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
           .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC))
    if multi:
        var = var.multi(True).include_all(True).all_value(".*").current(
            VariableOption(text="All", value="$__all", selected=True))
    return var


def _base(uid: str, title: str, description: str) -> Dashboard:
    return (Dashboard(title).uid(uid).description(description).tags(TAGS)
            .time("now-6h", "now").refresh("30s").editable()
            .with_variable(_datasource())
            .with_variable(_query_var("job", "Job", "label_values(driftwatch_build_info, job)",
                                      multi=True)))


def fleet() -> Dashboard:
    return (
        _base("driftwatch-fleet", "driftwatch / Fleet",
              "Every monitored model at a glance: which are in trouble, and whose trouble "
              "it is (data science: model faults; ML engineering: infrastructure).")
        .annotation(
            AnnotationQuery().name("Alert starts").datasource(DATASOURCE).enable(True)
            .icon_color("red")
            .expr(_starts("model, kind, team", JOB)))
        .with_row(Row("Models"))
        .with_panel(bars(
            "Worst drift score by model",
            "The largest drift score of each model's features and outputs; 1 is the alarm.",
            "none", q("max by (model) (job_model:driftwatch_drift_score:max{" + JOB + "})",
                      "{{model}}", instant=True), red_at=1.0, width=8))
        .with_panel(bars(
            "Firing alerts by model and fault",
            "Alerts firing and notified now (muted ones are on the Daemon dashboard).",
            "none", q("sum by (model, fault) (driftwatch_alerts_firing{" + JOB + "})",
                      "{{model}} {{fault}}", instant=True), red_at=1.0, width=8))
        .with_panel(bars(
            "Warm-up",
            "Share of the reference each model has collected; no test runs before 100 %.",
            "percentunit",
            q("sum by (model) (driftwatch_reference_events{" + JOB + "}) / sum by (model) "
              "(driftwatch_reference_events_required{" + JOB + "})", "{{model}}",
              instant=True), maximum=1.0, width=8))
        .with_row(Row("Alerts and traffic"))
        .with_panel(graph(
            "Firing alerts by team",
            "data-science: model faults (drift, performance); ml-engineering: the "
            "infrastructure (latency, errors, broken feeds).", "none",
            q("sum by (team, fault) (job_team_fault:driftwatch_alerts_firing:sum{" + JOB
              + "})", "{{team}} ({{fault}})")))
        .with_panel(graph(
            "Predictions per second by model", "Valid prediction events consumed.", "reqps",
            q("sum by (model) (job_model:driftwatch_predictions:rate5m{" + JOB + "})",
              "{{model}}")))
        .with_panel(graph(
            "Serving error rate by model", "Share of predictions whose serving failed.",
            "percentunit",
            q("max by (model) (job_model:driftwatch_prediction_errors:ratio_rate5m{" + JOB
              + "})", "{{model}}")))
        .with_panel(graph(
            "Invalid events by reason", "Events rejected before any detector saw them.",
            "reqps",
            q("sum by (reason) (rate(driftwatch_events_invalid_total{" + JOB
              + "}[$__rate_interval]))", "{{reason}}")))
        .with_row(Row("The daemon"))
        .with_panel(graph(
            "Kafka consumer lag", "Messages not processed yet, per topic and partition.",
            "short",
            q("sum by (topic, partition) (driftwatch_kafka_consumer_lag{" + JOB + "})",
              "{{topic}}/{{partition}}"), width=8))
        .with_panel(graph(
            "Daemon readiness", "1 while /readyz answers ready; up: Prometheus reaches it.",
            "none",
            q("driftwatch_ready{" + JOB + "}", "ready {{instance}}"),
            q("up{" + JOB + "}", "up {{instance}}"), width=8))
        .with_panel(graph(
            "Checkpoint age", "Seconds since state and offsets were last stored together.",
            "s",
            q("time() - (driftwatch_last_checkpoint_timestamp_seconds{" + JOB + "} > 0)",
              "{{instance}}"), width=8))
    )


def model() -> Dashboard:
    return (
        _base("driftwatch-model", "driftwatch / Model",
              "One model (and version): traffic, serving against its contract, quality "
              "against its reference and contract, drift per feature; alert starts are "
              "annotations.")
        .with_variable(_query_var(
            "model", "Model", "label_values(driftwatch_events_total{" + JOB + "}, model)"))
        .with_variable(_query_var(
            "version", "Version",
            "label_values(driftwatch_predictions_total{" + MODEL + "}, model_version)",
            multi=True))
        .annotation(
            AnnotationQuery().name("Alert starts").datasource(DATASOURCE).enable(True)
            .icon_color("red")
            .expr(_starts("kind, team", MODEL)))
        .with_row(Row("State"))
        .with_panel(single(
            "Firing alerts", "Alerts of this model firing and notified now.", "none",
            q("sum(driftwatch_alerts_firing{" + MODEL + "}) or vector(0)", "firing"),
            red_at=1.0))
        .with_panel(single(
            "Muted alerts", "Firing but inhibited (a broken feed explains them) or silenced.",
            "none",
            q("sum(driftwatch_alerts_suppressed{" + MODEL + "}) or vector(0)", "muted")))
        .with_panel(single(
            "Warm-up", "Share of the reference collected; no test runs before 100 %.",
            "percentunit",
            q("sum(driftwatch_reference_events{" + MODEL + "}) / "
              "sum(driftwatch_reference_events_required{" + MODEL + "})", "reference")))
        .with_panel(single(
            "Worst drift score", "The largest drift score of the model (1 = alarm).", "none",
            q("max(driftwatch_drift_score{" + MODEL + "})", "score"), red_at=1.0))
        .with_panel(_queries(
            table.Panel().title("Alerts by kind").description(
                "Each kind firing (notified) or muted (inhibited, silenced), with the team "
                "that owns it.").datasource(DATASOURCE).span(24).height(6),
            (q("sum by (kind, team, fault) (driftwatch_alerts_firing{" + MODEL + "})",
               table=True),
             q("sum by (kind, team, fault, reason) (driftwatch_alerts_suppressed{" + MODEL
               + "})", table=True))))
        .with_row(Row("Serving"))
        .with_panel(graph(
            "Traffic", "Predictions per second by version and status.", "reqps",
            q("sum by (model_version, status) (rate(driftwatch_predictions_total{" + VERSION
              + "}[$__rate_interval]))", "{{model_version}} {{status}}"), width=8))
        .with_panel(graph(
            "Latency against the contract",
            "Serving latency quantiles; the contract's p95 and the reference's p95 drawn "
            "beside them.", "s",
            *[q(f"histogram_quantile({x}, sum by (le) (rate("
                "driftwatch_serving_latency_seconds_bucket{" + VERSION
                + "}[$__rate_interval])))", f"p{round(x * 100)}") for x in (0.5, 0.95, 0.99)],
            q("max(driftwatch_model_contract{" + MODEL + ', metric="latency_p95_seconds"})',
              "contract p95"),
            q("max(driftwatch_model_reference{" + MODEL + ', metric="latency_p95_seconds"})',
              "reference p95"), width=8))
        .with_panel(graph(
            "Error rate against the contract",
            "Share of predictions whose serving failed; contract and reference beside it.",
            "percentunit",
            q("sum(rate(driftwatch_predictions_total{" + VERSION + ', status="error"}'
              "[$__rate_interval])) / sum(rate(driftwatch_predictions_total{" + VERSION
              + "}[$__rate_interval]))", "error rate"),
            q("max(driftwatch_model_contract{" + MODEL + ', metric="error_rate"})',
              "contract"),
            q("max(driftwatch_model_reference{" + MODEL + ', metric="error_rate"})',
              "reference"), width=8))
        .with_row(Row("Quality"))
        .with_panel(graph(
            "Accuracy, AUC, MAE against reference and contract",
            "Quality against ground truth in the latest performance window, the same on "
            "the reference, and the contract's floor.", "none",
            q("driftwatch_performance{" + MODEL + "}", "{{metric}}"),
            q("driftwatch_model_reference{" + MODEL
              + ', metric!~"latency_.*|error_rate|estimated_accuracy"}', "reference {{metric}}"),
            q("driftwatch_model_contract{" + MODEL + ', metric="accuracy"}',
              "contract {{metric}}"), width=8, minimum=None))
        .with_panel(graph(
            "Estimated accuracy (CBPE, no labels)",
            "Accuracy a binary classifier's own probabilities imply, on the latest window "
            "and on the reference; true accuracy beside it once labels come.",
            "percentunit",
            q("driftwatch_performance_estimate{" + MODEL + "}", "estimated {{metric}}"),
            q("driftwatch_model_reference{" + MODEL + ', metric="estimated_accuracy"}',
              "reference estimate"),
            q("driftwatch_performance{" + MODEL + ', metric="accuracy"}', "accuracy"),
            width=8, minimum=None))
        .with_panel(graph(
            "Label coverage", "Share of predictions that got a label.", "percentunit",
            q("driftwatch_label_coverage{" + MODEL + "}", "coverage"), width=4))
        .with_panel(graph(
            "Label delay", "Label time minus prediction time, over the latest joins.", "s",
            q("driftwatch_label_delay_seconds{" + MODEL + "}", "p{{percentile}}"), width=4))
        .with_row(Row("Drift"))
        .with_panel(graph(
            "Drift score per feature",
            "How close each input (and the outputs, __prediction__) is to a drift alarm: "
            "window tests and CUSUMs on one scale, 1 is the alarm.", "none",
            q("driftwatch_drift_score{" + MODEL + "}", "{{feature}}"), line_at=1.0,
            width=12, height=10))
        .with_panel(graph(
            "Drift p-values", "The latest window's test p-values (log scale).", "none",
            q("driftwatch_drift_p_value{" + MODEL + "}", "{{feature}} ({{detector}})"),
            log=True, width=12, height=10, minimum=None))
        .with_row(Row("Versions"))
        .with_panel(_queries(
            table.Panel().title("Tracked versions").description(
                "Each version the champion/challenger watch tracks: its prediction events "
                "and whether it is the champion (1) or a challenger (0).")
            .datasource(DATASOURCE).span(8).height(8),
            (q("sum by (model_version) (driftwatch_version_events_total{" + MODEL + "})",
               table=True),
             q("max by (model_version) (driftwatch_version_champion{" + MODEL + "})",
               table=True))))
        .with_panel(_queries(
            table.Panel().title("Challenger verdicts").description(
                "Each challenger's verdict against the champion: worse (an alert went to "
                "the version's owners), no_worse (a promotion notice), or pending.")
            .datasource(DATASOURCE).span(16).height(8),
            (q("driftwatch_version_verdict{" + VERSION + "} == 1", table=True),)))
        .with_panel(graph(
            "Challenger minus champion",
            "Per compared metric: the estimated difference and its anytime-valid lower and "
            "upper bounds (latency_p50 as a log ratio, rates and accuracy as differences, "
            "each on its own scale). A verdict comes when a bound clears the metric's "
            "margin; docs/versions.md.", "none",
            q("driftwatch_version_difference{" + VERSION + "}",
              "{{model_version}} {{metric}} {{bound}}"),
            width=24, height=10, minimum=None))
    )


def daemon() -> Dashboard:
    return (
        _base("driftwatch-daemon", "driftwatch / Daemon",
              "The daemon itself: notifications, outbox, muting, checkpoints, errors, "
              "resources.")
        .with_row(Row("Notifications"))
        .with_panel(graph(
            "Notifications by receiver and outcome",
            "sent; retry: failed and rescheduled with backoff; failed: given up.", "reqps",
            q("sum by (receiver, outcome) (rate(driftwatch_notifications_total{" + JOB
              + "}[$__rate_interval]))", "{{receiver}} {{outcome}}")))
        .with_panel(graph(
            "Outbox backlog", "Notifications waiting (due or backing off).", "short",
            q("driftwatch_outbox_pending{" + JOB + "}", "{{instance}}")))
        .with_panel(graph(
            "Muted alerts", "Alerts firing but muted now, and how fast alerts get muted.",
            "none",
            q("sum by (model, kind, reason) (driftwatch_alerts_suppressed{" + JOB + "})",
              "{{model}} {{kind}} {{reason}}"),
            q("sum by (reason) (rate(driftwatch_alerts_muted_total{" + JOB
              + "}[$__rate_interval]))", "muted/s {{reason}}")))
        .with_panel(graph(
            "Alert state changes", "Alerts notified as firing or resolved, by team.", "none",
            q("sum by (team, status) (increase(driftwatch_alert_state_changes_total{" + JOB
              + "}[$__rate_interval]))", "{{team}} {{status}}")))
        .with_row(Row("Checkpoints and errors"))
        .with_panel(graph(
            "Checkpoint failures", "Checkpoints the store refused (nothing committed).",
            "none",
            q("sum by (instance) (increase(driftwatch_checkpoint_failures_total{" + JOB
              + "}[$__rate_interval]))", "{{instance}}"), width=8))
        .with_panel(graph(
            "Batch errors", "Batches the pipeline failed on (logged; the daemon goes on).",
            "none",
            q("sum by (instance, source) (increase(driftwatch_batch_errors_total{" + JOB
              + "}[$__rate_interval]))", "{{instance}} {{source}}"), width=8))
        .with_panel(graph(
            "Checkpoint age", "Seconds since state and offsets were last stored together.",
            "s",
            q("time() - (driftwatch_last_checkpoint_timestamp_seconds{" + JOB + "} > 0)",
              "{{instance}}"), width=8))
        .with_row(Row("Process"))
        .with_panel(graph(
            "Batches per second", "Polled batches processed, by source.", "reqps",
            q("sum by (instance, source) (rate(driftwatch_batches_total{" + JOB
              + "}[$__rate_interval]))", "{{instance}} {{source}}"), width=8))
        .with_panel(graph(
            "CPU", "Cores the daemon process uses.", "none",
            q("rate(process_cpu_seconds_total{" + JOB + "}[$__rate_interval])",
              "{{instance}}"), width=8))
        .with_panel(graph(
            "Memory", "Resident memory of the daemon process.", "bytes",
            q("process_resident_memory_bytes{" + JOB + "}", "{{instance}}"), width=8))
    )


def generate() -> dict[str, dict[str, Any]]:
    """Each dashboard as the JSON object Grafana loads, by file name."""
    built = {"fleet": fleet(), "model": model(), "daemon": daemon()}
    out = {}
    for name, d in built.items():
        dashboard = json.loads(json.dumps(d.build(), cls=JSONEncoder))
        for i, panel in enumerate(dashboard["panels"], start=1):
            panel["id"] = i
        out[FILES[name]] = dashboard
    return out


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


PROVISIONING = """\
# Grafana file provisioning: copy to /etc/grafana/provisioning/dashboards/ and the
# dashboards' JSON files to the path below (generated by `driftwatch dashboards`).
apiVersion: 1
providers:
  - name: driftwatch
    folder: driftwatch
    type: file
    disableDeletion: false
    allowUiUpdates: false
    options:
      path: /var/lib/grafana/dashboards/driftwatch
      foldersFromFilesStructure: false
"""


def files() -> dict[str, str]:
    """Every file ``write`` makes: name -> text."""
    out = {name: render(d) for name, d in generate().items()}
    out["provisioning.yml"] = PROVISIONING
    return out


def stale(out: str | Path) -> list[str]:
    """The files in ``out`` that differ from (or lack) what the code generates."""
    root = Path(out)
    return [name for name, text in files().items()
            if not (root / name).is_file() or (root / name).read_text() != text]


def write(out: str | Path) -> list[Path]:
    """Write the dashboards and their provisioning file into ``out``; returns the paths."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files().items():
        path = root / name
        path.write_text(text)
        paths.append(path)
    return paths
