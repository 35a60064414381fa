"""The Grafana dashboards, generated: ``python -m soilclay.monitoring.dashboards --write`` writes them to
``monitoring/grafana/dashboards/<uid>.json`` (provisioned by docker/compose.yaml, and through the symlink
``helm/soilclay/dashboards`` embedded in the Helm chart's ConfigMaps); ``--check`` fails if the files differ.

Every panel queries the Prometheus datasource chosen by the ``datasource`` variable (default: the
provisioned datasource, uid :data:`PROMETHEUS_UID`). Metric names come only from soilclay's catalogue
(:mod:`soilclay.monitoring.catalogue`, job ``soilclay``), TensorFlow Serving's
(:mod:`soilclay.monitoring.tf_serving`, job ``tf-serving``) and Airflow's as the official chart's
statsd-exporter exports them (:mod:`soilclay.monitoring.airflow_names`); ``tests/monitoring`` checks it.

:func:`panel_queries` yields every panel query, for tests against a running Prometheus.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from soilclay.monitoring.airflow_names import EARTHENGINE_POOL, SOILCLAY_DAG_IDS

PROMETHEUS_UID = "soilclay-prometheus"  # monitoring/grafana/provisioning/datasources/prometheus.yaml
SCHEMA_VERSION = 41  # Grafana 12
REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO_ROOT / "monitoring" / "grafana" / "dashboards"
TAG = "soilclay"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SOILCLAY_JOB = "soilclay"
TF_SERVING_JOB = "tf-serving"
US = "1e6"  # TF Serving latencies are microseconds
MS = "1000"  # Grafana's dateTime units take milliseconds

AOI = 'aoi=~"$aoi"'
DAGS = 'dag_id=~"$dag_id"'
MODEL = 'model_name=~"$model"'

# What template variables stand for when a query runs outside Grafana (tests, live checks).
DEFAULT_VARIABLES: dict[str, str] = {
    "aoi": ".*",
    "dag_id": "|".join(SOILCLAY_DAG_IDS),
    "model": ".*",
    "datasource": PROMETHEUS_UID,
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
}


# --- panels --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Q:
    expr: str
    legend: str = "__auto"
    instant: bool = False


@dataclass
class Panel:
    type: str
    title: str
    queries: list[Q]
    unit: str = "none"
    description: str = ""
    w: int = 6
    h: int = 4
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, "green")])
    mappings: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "color": {"mode": "thresholds" if self.type in ("stat", "bargauge") else "palette-classic"},
            "thresholds": {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in self.thresholds]},
            "mappings": self.mappings,
        }
        for key in ("decimals", "min", "max"):
            if getattr(self, key) is not None:
                defaults[key] = getattr(self, key)
        if self.custom:
            defaults["custom"] = self.custom
        return {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.options,
            "targets": [
                {
                    "datasource": DATASOURCE,
                    "refId": chr(ord("A") + i),
                    "expr": q.expr,
                    "legendFormat": q.legend,
                    "instant": q.instant,
                    "range": not q.instant,
                    "editorMode": "code",
                }
                for i, q in enumerate(self.queries)
            ],
        }


def _reduce(calc: str = "lastNotNull") -> dict[str, Any]:
    return {"calcs": [calc], "fields": "", "values": False}


def stat(title: str, *queries: Q, unit: str = "none", w: int = 6, h: int = 4, **kw: Any) -> Panel:
    options = {"reduceOptions": _reduce(), "colorMode": "value", "graphMode": "none", "textMode": "auto",
               "orientation": "auto", "justifyMode": "auto", "wideLayout": True, "showPercentChange": False}
    return Panel("stat", title, list(queries), unit=unit, w=w, h=h, options=options, **kw)


def timeseries(title: str, *queries: Q, unit: str = "none", w: int = 12, h: int = 8, bars: bool = False,
               stack: bool = False, **kw: Any) -> Panel:
    options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 80 if bars else 10,
              "showPoints": "never", "spanNulls": False, "axisSoftMin": 0,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    return Panel("timeseries", title, list(queries), unit=unit, w=w, h=h, options=options, custom=custom, **kw)


def bargauge(title: str, *queries: Q, unit: str = "none", w: int = 12, h: int = 8, **kw: Any) -> Panel:
    options = {"reduceOptions": _reduce(), "orientation": "horizontal", "displayMode": "gradient",
               "showUnfilled": True, "valueMode": "color", "namePlacement": "auto", "sizing": "auto",
               "minVizHeight": 16, "minVizWidth": 8, "maxVizHeight": 300}
    return Panel("bargauge", title, list(queries), unit=unit, w=w, h=h, options=options, **kw)


UP_DOWN = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0},
                                         "1": {"text": "UP", "color": "green", "index": 1}}}]
RED_BELOW_1 = [(None, "red"), (1, "green")]
#: The exporter's last-run timestamps are 0 for 'never'.
NEVER = [{"type": "value", "options": {"0": {"text": "never", "color": "green", "index": 0}}}]


def _age(expr: str) -> str:
    return f"time() - ({expr})"


# --- dashboards ----------------------------------------------------------------------------------------


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[tuple[str, list[Panel]]]
    variables: list[str] = field(default_factory=list)  # names in VARIABLES, after "datasource"
    time_from: str = "now-24h"
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        panels: list[dict[str, Any]] = []
        next_id, y = 1, 0
        for row_title, row_panels in self.rows:
            panels.append({"id": next_id, "type": "row", "title": row_title, "collapsed": False, "panels": [],
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
            next_id += 1
            y += 1
            x, line_h = 0, 0
            for p in row_panels:
                if x + p.w > 24:
                    x, y, line_h = 0, y + line_h, 0
                panels.append(p.to_json(next_id, x, y))
                next_id += 1
                x += p.w
                line_h = max(line_h, p.h)
            y += line_h
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": [TAG, *self.tags],
            "editable": True,
            "graphTooltip": 1,
            "timezone": "browser",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": "1m",
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
            }]},
            "links": [{"title": "soilclay dashboards", "type": "dashboards", "tags": [TAG], "asDropdown": True,
                       "includeVars": False, "keepTime": True, "targetBlank": False, "icon": "external link",
                       "tooltip": "", "url": ""}],
            "templating": {"list": [VARIABLES[name] for name in ("datasource", *self.variables)]},
            "panels": panels,
        }


def _query_variable(name: str, label: str, definition: str, *, include_all: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"qryType": 1, "query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,  # on time range change
        "sort": 1,
        "multi": True,
        "includeAll": include_all,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "hide": 0,
    }


VARIABLES: dict[str, dict[str, Any]] = {
    "datasource": {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": PROMETHEUS_UID},
        "options": [],
        "regex": "",
        "refresh": 1,
        "hide": 0,
        "includeAll": False,
        "multi": False,
    },
    "aoi": _query_variable("aoi", "AOI", "label_values(soilclay_parcels, aoi)"),
    "model": _query_variable("model", "Model", "label_values(:tensorflow:serving:request_count, model_name)"),
    "dag_id": {
        "name": "dag_id",
        "label": "DAG",
        "type": "custom",
        "query": ",".join(SOILCLAY_DAG_IDS),
        "multi": True,
        "includeAll": True,
        "allValue": "|".join(SOILCLAY_DAG_IDS),
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    },
}


def service_health() -> Dashboard:
    return Dashboard(
        "soilclay-health", "soilclay / Service health",
        "Freshness of scenes and composites per AOI, pipeline runs and failures per stage, exporter and database.",
        variables=["aoi"],
        rows=[
            ("Exporter and database", [
                stat("PostGIS readable", Q("min(soilclay_database_up)"), mappings=UP_DOWN, thresholds=RED_BELOW_1,
                     description="1 when the soilclay exporter could read PostGIS at its last scrape."),
                stat("soilclay exporter up", Q(f'min(up{{job="{SOILCLAY_JOB}"}})'), mappings=UP_DOWN,
                     thresholds=RED_BELOW_1, description="Prometheus could scrape the soilclay exporter."),
                stat("TF Serving up", Q(f'min(up{{job="{TF_SERVING_JOB}"}})'), mappings=UP_DOWN,
                     thresholds=RED_BELOW_1, description="Prometheus could scrape TensorFlow Serving."),
                stat("Exporter scrape time", Q("max(soilclay_scrape_duration_seconds)"), unit="s",
                     thresholds=[(None, "green"), (5, "orange"), (20, "red")],
                     description="Time the exporter spent reading PostGIS for the last scrape."),
            ]),
            ("Scenes and composites", [
                stat("Newest scene acquired", Q(_age(f"max by (aoi, sensor) "
                                                     f"(soilclay_scene_newest_acquisition_timestamp_seconds{{{AOI}}})"),
                                                "{{aoi}} {{sensor}}"),
                     unit="s", w=8, h=5, thresholds=[(None, "green"), (20 * 86400, "orange"), (45 * 86400, "red")],
                     description="Age of the newest recorded scene's acquisition, per AOI and sensor."),
                stat("Last scene recorded", Q(f"max by (aoi, sensor) "
                                              f"(soilclay_scene_newest_recorded_timestamp_seconds{{{AOI}}}) * {MS}",
                                              "{{aoi}} {{sensor}}"),
                     unit="dateTimeFromNow", w=8, h=5, description="When a scene watch last recorded a new scene."),
                stat("Newest composite built", Q(f"max by (aoi, sensor) "
                                                 f"(soilclay_composite_created_timestamp_seconds{{{AOI}}}) * {MS}",
                                                 "{{aoi}} {{sensor}}"),
                     unit="dateTimeFromNow", w=8, h=5, description="When the newest composite was registered."),
                timeseries("Composite staleness (age of its newest scene)",
                           Q(_age(f"max by (aoi, sensor) "
                                  f"(soilclay_composite_newest_scene_timestamp_seconds{{{AOI}}})"),
                             "{{aoi}} {{sensor}}"),
                           unit="s", w=12,
                           description="Time since the acquisition of the newest scene inside the newest composite."),
                timeseries("Scenes newer than the composite",
                           Q(f"sum by (aoi, sensor) (soilclay_scenes_newer_than_composite{{{AOI}}})",
                             "{{aoi}} {{sensor}}"),
                           w=12, decimals=0,
                           description="Recorded scenes acquired after the newest scene of the newest composite: "
                                       "work the next composite build will pick up."),
                bargauge("Composite version and scenes",
                         Q(f"max by (aoi, sensor) (soilclay_composite_version{{{AOI}}})",
                           "{{aoi}} {{sensor}} version", instant=True),
                         Q(f"max by (aoi, sensor) (soilclay_composite_scenes{{{AOI}}})",
                           "{{aoi}} {{sensor}} scenes", instant=True),
                         Q(f"max by (aoi, sensor) (soilclay_composite_scenes_skipped{{{AOI}}})",
                           "{{aoi}} {{sensor}} skipped", instant=True),
                         w=12, decimals=0),
                timeseries("Scenes recorded", Q(f"sum by (aoi, collection) (soilclay_scenes_recorded{{{AOI}}})",
                                                "{{aoi}} {{collection}}"), w=12, decimals=0),
            ]),
            ("Pipeline runs", [
                timeseries("Runs finished per hour, by stage and outcome",
                           Q("sum by (stage, outcome) (increase(soilclay_pipeline_runs_total[1h]))",
                             "{{stage}} {{outcome}}"),
                           bars=True, stack=True, w=12, decimals=0),
                bargauge("Failed runs (24 h), by stage",
                         Q('sum by (stage) (increase(soilclay_pipeline_runs_total{outcome="failed"}[24h]))',
                           "{{stage}}", instant=True),
                         w=6, decimals=0, thresholds=[(None, "green"), (1, "red")]),
                bargauge("Runs in progress", Q("sum by (stage) (soilclay_pipeline_runs_running)", "{{stage}}",
                                               instant=True), w=6, decimals=0),
                stat("Last failure, by stage", Q(f"max by (stage) (soilclay_pipeline_last_failure_timestamp_seconds)"
                                                 f" * {MS}", "{{stage}}"),
                     unit="dateTimeFromNow", w=12, h=6, thresholds=[(None, "orange")], mappings=NEVER,
                     description="End of the last failed run of each stage (see soilclay.pipeline_runs.error)."),
                stat("Last success, by stage", Q(f"max by (stage) (soilclay_pipeline_last_success_timestamp_seconds)"
                                                 f" * {MS}", "{{stage}}"),
                     unit="dateTimeFromNow", w=12, h=6, mappings=NEVER),
                timeseries("Mean run duration, by stage",
                           Q('sum by (stage) (soilclay_pipeline_run_duration_seconds_sum{outcome="success"}) / '
                             'sum by (stage) (soilclay_pipeline_run_duration_seconds_count{outcome="success"})',
                             "{{stage}}"),
                           unit="s", w=24, description="Mean duration of all successful runs so far."),
            ]),
        ],
    )


def model() -> Dashboard:
    return Dashboard(
        "soilclay-model", "soilclay / Model",
        "The champion clay model, gate-set RMSE and R² per version, versions by status, rejected challengers.",
        time_from="now-30d",
        rows=[
            ("Champion", [
                stat("Champion version", Q("max(soilclay_model_champion_version)"), decimals=0,
                     thresholds=RED_BELOW_1, mappings=[{"type": "value", "options": {"0": {"text": "none"}}}]),
                stat("Champion promoted", Q(f"max(soilclay_model_champion_promoted_timestamp_seconds) * {MS}"),
                     unit="dateTimeFromNow"),
                stat("Champion gate RMSE (clay %)", Q('max(soilclay_model_gate_rmse{status="champion"})'),
                     unit="percent", decimals=2),
                stat("Champion gate R²", Q('max(soilclay_model_gate_r2{status="champion"})'), decimals=3,
                     thresholds=[(None, "red"), (0.3, "orange"), (0.5, "green")]),
            ]),
            ("Versions", [
                bargauge("Gate RMSE by version (clay %)",
                         Q("max by (version, status) (soilclay_model_gate_rmse)", "v{{version}} {{status}}",
                           instant=True),
                         unit="percent", decimals=2,
                         description="Root-mean-square error on the held-out gate samples."),
                bargauge("Gate R² by version", Q("max by (version, status) (soilclay_model_gate_r2)",
                                                 "v{{version}} {{status}}", instant=True),
                         decimals=3, max=1),
                timeseries("Versions by status", Q("sum by (status) (soilclay_model_versions)", "{{status}}"),
                           decimals=0, stack=True),
                timeseries("Challengers rejected", Q("max(soilclay_model_challengers_rejected_total)", "total"),
                           Q("sum(increase(soilclay_model_challengers_rejected_total[1d]))", "per day"),
                           decimals=0, description="Challengers the gate kept out (they did not beat the champion)."),
            ]),
        ],
    )


def estimates() -> Dashboard:
    return Dashboard(
        "soilclay-estimates", "soilclay / Estimates",
        "Per-parcel clay estimates: coverage by the champion on the newest composites, waiting parcels, "
        "flags and lag.",
        variables=["aoi"],
        rows=[
            ("Coverage", [
                stat("Coverage", Q(f"sum by (aoi) (soilclay_parcels_estimated_current{{{AOI}}}) / "
                                   f"sum by (aoi) (soilclay_parcels{{{AOI}}})", "{{aoi}}"),
                     unit="percentunit", decimals=1, min=0, max=1,
                     thresholds=[(None, "red"), (0.9, "orange"), (0.99, "green")],
                     description="Parcels estimated by the champion on the newest composites / parcels in the AOI."),
                stat("Parcels", Q(f"sum by (aoi) (soilclay_parcels{{{AOI}}})", "{{aoi}}"), decimals=0),
                stat("Waiting", Q(f"sum by (aoi) (soilclay_parcels_waiting{{{AOI}}})", "{{aoi}}"), decimals=0,
                     thresholds=[(None, "green"), (1, "orange")],
                     description="Parcels without an estimate by the champion on the newest composites."),
                stat("Estimates lag", Q(f"max by (aoi) (soilclay_estimates_lag_seconds{{{AOI}}})", "{{aoi}}"),
                     unit="s", thresholds=[(None, "green"), (86400, "orange"), (3 * 86400, "red")],
                     description="From the newest composite to the estimates built on it (growing while none)."),
                timeseries("Coverage over time", Q(f"sum by (aoi) (soilclay_parcels_estimated_current{{{AOI}}}) / "
                                                   f"sum by (aoi) (soilclay_parcels{{{AOI}}})", "{{aoi}}"),
                           unit="percentunit", min=0, max=1),
                timeseries("Estimated and waiting parcels",
                           Q(f"sum by (aoi) (soilclay_parcels_estimated_current{{{AOI}}})", "{{aoi}} estimated"),
                           Q(f"sum by (aoi) (soilclay_parcels_waiting{{{AOI}}})", "{{aoi}} waiting"),
                           decimals=0),
            ]),
            ("Flags and lag", [
                bargauge("Flagged parcels, by flag", Q(f"sum by (flag) (soilclay_parcels_flagged{{{AOI}}})",
                                                       "{{flag}}", instant=True), decimals=0),
                timeseries("Flagged share, by flag",
                           Q(f"sum by (aoi, flag) (soilclay_parcels_flagged{{{AOI}}}) / on (aoi) group_left "
                             f"sum by (aoi) (soilclay_parcels{{{AOI}}})", "{{aoi}} {{flag}}"),
                           unit="percentunit", min=0),
                timeseries("Estimates lag", Q(f"max by (aoi) (soilclay_estimates_lag_seconds{{{AOI}}})", "{{aoi}}"),
                           unit="s", w=24),
            ]),
        ],
    )


def _tf_quantile(q: float, metric: str) -> Q:
    expr = (f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{MODEL}}}[$__rate_interval]))) / {US}")
    return Q(expr, f"p{int(q * 100)}")


def serving() -> Dashboard:
    requests = f":tensorflow:serving:request_count{{{MODEL}}}"
    return Dashboard(
        "soilclay-serving", "soilclay / TF Serving",
        "TensorFlow Serving (job tf-serving): request rate by status, latency quantiles, error share, model loads. "
        "TF Serving reports latencies in microseconds; panels show seconds.",
        variables=["model"], time_from="now-6h",
        rows=[
            ("Requests", [
                stat("TF Serving up", Q(f'min(up{{job="{TF_SERVING_JOB}"}})'), mappings=UP_DOWN,
                     thresholds=RED_BELOW_1),
                stat("Request rate", Q(f"sum(rate({requests}[$__rate_interval]))"), unit="reqps", decimals=2),
                stat("Error share", Q(f'sum(rate(:tensorflow:serving:request_count{{{MODEL}, status!="OK"}}'
                                      f"[$__rate_interval])) / sum(rate({requests}[$__rate_interval]))"),
                     unit="percentunit", decimals=2, thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
                     description="Requests whose status is not OK, of all requests (empty while there are none)."),
                stat("Request latency p99", _tf_quantile(0.99, ":tensorflow:serving:request_latency"), unit="s"),
                timeseries("Request rate by status",
                           Q(f"sum by (status) (rate({requests}[$__rate_interval]))", "{{status}}"),
                           unit="reqps", stack=True),
                timeseries("Error share", Q(f'sum(rate(:tensorflow:serving:request_count{{{MODEL}, status!="OK"}}'
                                            f"[$__rate_interval])) / sum(rate({requests}[$__rate_interval]))",
                                            "errors"),
                           unit="percentunit", min=0),
            ]),
            ("Latency", [
                timeseries("Request latency (server wall time)",
                           *(_tf_quantile(q, ":tensorflow:serving:request_latency") for q in (0.5, 0.9, 0.99)),
                           unit="s", description="Over REST only successful requests are observed."),
                timeseries("Runtime latency (TensorFlow session)",
                           *(_tf_quantile(q, ":tensorflow:serving:runtime_latency") for q in (0.5, 0.9, 0.99)),
                           unit="s"),
            ]),
            ("Model loads", [
                timeseries("Model load attempts by status",
                           Q("sum by (model_path, status) "
                             "(increase(:tensorflow:cc:saved_model:load_attempt_count[1h]))",
                             "{{model_path}} {{status}}"),
                           bars=True, decimals=0, description="SavedModel loads per hour (success / fail)."),
                stat("Failed loads (24 h)",
                     Q('sum(increase(:tensorflow:cc:saved_model:load_attempt_count{status="fail"}[24h])) or vector(0)'),
                     decimals=0, thresholds=[(None, "green"), (1, "red")]),
                stat("Mean load time", Q("sum(:tensorflow:cc:saved_model:load_latency) / "
                                         'sum(:tensorflow:cc:saved_model:load_attempt_count{status="success"}) '
                                         f"/ {US}"),
                     unit="s", description="Total load latency / successful loads since the server started."),
            ]),
        ],
    )


def airflow() -> Dashboard:
    pool = f'pool="{EARTHENGINE_POOL}"'
    return Dashboard(
        "soilclay-airflow", "soilclay / Airflow",
        "Airflow 3 as the official Helm chart's statsd-exporter exports it: heartbeats, soilclay DAG runs and tasks, "
        "the earthengine pool, executor slots, DAG import errors.",
        variables=["dag_id"], time_from="now-7d",
        rows=[
            ("Components", [
                stat("Scheduler heartbeats / min",
                     Q("sum(rate(airflow_scheduler_heartbeat[$__rate_interval])) * 60"), decimals=1,
                     thresholds=[(None, "red"), (1, "green")]),
                stat("DAG processor heartbeats / min",
                     Q("sum(rate(airflow_dag_processor_heartbeat[$__rate_interval])) * 60"), decimals=1,
                     thresholds=[(None, "red"), (1, "green")]),
                stat("Triggerer heartbeats / min",
                     Q("sum(rate(airflow_triggerer_heartbeat[$__rate_interval])) * 60"), decimals=1,
                     thresholds=[(None, "red"), (1, "green")]),
                stat("DAG import errors", Q("max(airflow_dag_processing_import_errors)"), decimals=0,
                     thresholds=[(None, "green"), (1, "red")]),
                timeseries("Heartbeats per minute",
                           Q("sum(rate(airflow_scheduler_heartbeat[$__rate_interval])) * 60", "scheduler"),
                           Q("sum(rate(airflow_dag_processor_heartbeat[$__rate_interval])) * 60", "dag-processor"),
                           Q("sum(rate(airflow_triggerer_heartbeat[$__rate_interval])) * 60", "triggerer")),
                timeseries("DAG processing", Q("max(airflow_dagbag_size)", "DAGs"),
                           Q("max(airflow_dag_processing_import_errors)", "import errors"),
                           Q("max(airflow_dag_processing_total_parse_time)", "parse time (s)")),
            ]),
            ("soilclay DAG runs", [
                timeseries("Successful run duration (p90, last 10 min of observations)",
                           Q(f'max by (dag_id) (airflow_dagrun_duration{{{DAGS}, quantile="0.9"}})', "{{dag_id}}"),
                           unit="s"),
                timeseries("Mean run duration",
                           Q(f"sum by (dag_id) (increase(airflow_dagrun_duration_sum{{{DAGS}}}[1d])) / "
                             f"sum by (dag_id) (increase(airflow_dagrun_duration_count{{{DAGS}}}[1d]))",
                             "{{dag_id}} success"),
                           Q(f"sum by (dag_id) (increase(airflow_dagrun_failed_sum{{{DAGS}}}[1d])) / "
                             f"sum by (dag_id) (increase(airflow_dagrun_failed_count{{{DAGS}}}[1d]))",
                             "{{dag_id}} failed"),
                           unit="s", description="Mean over the trailing day."),
                timeseries("DAG runs per hour",
                           Q(f"sum by (dag_id) (increase(airflow_dagrun_duration_count{{{DAGS}}}[1h]))",
                             "{{dag_id}} success"),
                           Q(f"sum by (dag_id) (increase(airflow_dagrun_failed_count{{{DAGS}}}[1h]))",
                             "{{dag_id}} failed"),
                           bars=True, decimals=0),
                bargauge("Failed DAG runs (7 d)",
                         Q(f"sum by (dag_id) (increase(airflow_dagrun_failed_count{{{DAGS}}}[7d]))", "{{dag_id}}",
                           instant=True),
                         decimals=0, thresholds=[(None, "green"), (1, "red")]),
                timeseries("Schedule delay (p90)",
                           Q(f'max by (dag_id) (airflow_dagrun_schedule_delay{{{DAGS}, quantile="0.9"}})',
                             "{{dag_id}}"),
                           unit="s", w=24),
            ]),
            ("Tasks", [
                timeseries("Task failures per hour (all DAGs)",
                           Q("sum(increase(airflow_ti_failures[1h]))", "failed"),
                           Q("sum(increase(airflow_ti_successes[1h]))", "succeeded"),
                           bars=True, decimals=0,
                           description="Plain StatsD drops ti_failures' dag_id tag: this counts every DAG's tasks."),
                timeseries("Task failures per hour, by operator",
                           Q("sum by (operator) (increase(airflow_operator_failures[1h]))", "{{operator}}"),
                           bars=True, decimals=0),
                timeseries("Task duration (p90), soilclay DAGs",
                           Q(f'max by (dag_id, task_id) (airflow_task_duration{{{DAGS}, quantile="0.9"}})',
                             "{{dag_id}}.{{task_id}}"),
                           unit="s"),
                timeseries("Running tasks, soilclay DAGs",
                           Q(f"sum by (dag_id) (airflow_ti_running{{{DAGS}}})", "{{dag_id}}"), decimals=0, stack=True),
            ]),
            (f"Pool {EARTHENGINE_POOL} and executor", [
                timeseries(f"Pool {EARTHENGINE_POOL} slots",
                           Q(f"max(airflow_pool_open_slots{{{pool}}})", "open"),
                           Q(f"max(airflow_pool_running_slots_{EARTHENGINE_POOL})", "running"),
                           Q(f"max(airflow_pool_queued_slots_{EARTHENGINE_POOL})", "queued"),
                           Q(f"max(airflow_pool_deferred_slots_{EARTHENGINE_POOL})", "deferred"),
                           Q(f"max(airflow_pool_starving_tasks{{{pool}}})", "starving tasks"),
                           decimals=0,
                           description="Earth Engine export tasks run in this pool (its size caps concurrent "
                                       "exports)."),
                timeseries("Executor slots",
                           Q("sum(airflow_executor_open_slots)", "open"),
                           Q("sum(airflow_executor_running_tasks)", "running"),
                           Q("sum(airflow_executor_queued_tasks)", "queued"),
                           Q("max(airflow_scheduler_tasks_starving)", "starving (no pool slot)"),
                           decimals=0),
            ]),
        ],
    )


DASHBOARDS = (service_health, model, estimates, serving, airflow)


def build() -> dict[str, dict[str, Any]]:
    """``{file name: dashboard JSON}`` for every dashboard."""
    out = {}
    for make in DASHBOARDS:
        d = make().to_json()
        out[f"{d['uid']}.json"] = d
    return out


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


# --- queries -------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """``expr`` with Grafana's template variables (``$aoi``, ``${aoi}``, ``$__rate_interval``) replaced."""
    values = {**DEFAULT_VARIABLES, **(values or {})}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"unknown template variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(repl, expr)


class PanelQuery(NamedTuple):
    dashboard: str  # uid
    panel: str  # title
    expr: str


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def panel_queries(dashboards: Iterable[dict[str, Any]] | None = None, *, values: dict[str, str] | None = None,
                  raw: bool = False) -> Iterator[PanelQuery]:
    """Every panel target of the dashboards (default: the generated ones) as (dashboard uid, panel title, expr),
    template variables substituted with ``values`` over :data:`DEFAULT_VARIABLES` unless ``raw``."""
    for d in dashboards if dashboards is not None else build().values():
        for panel in iter_panels(d):
            for target in panel.get("targets", []):
                expr = target["expr"]
                yield PanelQuery(d["uid"], panel["title"], expr if raw else substitute(expr, values))


# --- command line --------------------------------------------------------------------------------------


def write(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    dashboards = build()
    for name, d in dashboards.items():
        path = directory / name
        path.write_text(render(d), encoding="utf-8")
        written.append(path)
    for stale in directory.glob("*.json"):
        if stale.name not in dashboards:
            stale.unlink()
    return written


def check(directory: Path = DASHBOARDS_DIR) -> list[str]:
    """Differences between the files in ``directory`` and the generator's output (empty: up to date)."""
    problems = []
    dashboards = build()
    for name, d in dashboards.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != render(d):
            problems.append(f"{path}: differs from the generator")
    problems += [f"{p}: not generated" for p in directory.glob("*.json") if p.name not in dashboards]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soilclay.monitoring.dashboards",
                                     description="Write or check the Grafana dashboards.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help=f"write the dashboards to {DASHBOARDS_DIR}")
    group.add_argument("--check", action="store_true", help="exit 1 if the files differ from the generator")
    parser.add_argument("--dir", type=Path, default=DASHBOARDS_DIR)
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.dir):
            print(path)
        return 0
    problems = check(args.dir)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
