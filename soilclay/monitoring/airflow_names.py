"""Airflow's metrics as Prometheus sees them on Kubernetes: the official Apache Airflow Helm chart
(``apache-airflow/airflow``) runs a statsd-exporter that receives Airflow's plain StatsD and maps it with
the chart's ``chart/files/statsd-mappings.yml``. The frozen list below is every Airflow name the Grafana
dashboards use; tests check that panels name only these (or soilclay's, TF Serving's, ``up``).

How a name comes about (sources, in the apache/airflow repository unless said otherwise):

- Airflow 3 emits every metric under its new name and, while ``[metrics] legacy_names_on`` is true (the
  default, ``airflow-core/src/airflow/config_templates/config.yml``), also under its legacy name with the
  variables inside the name (``pool.open_slots.{pool_name}``). Plain StatsD (what the chart configures) has
  no tags, so only the legacy names carry dag_id, task_id or pool. The list of metrics, their kinds and
  legacy names: ``metrics_template.yaml`` (in the 3.3.2 package ``airflow/_shared/observability/metrics/``),
  rendered in the docs as ``airflow-core/docs/administration-and-deployment/logging-monitoring/metric_tables.rst``
  (included by ``metrics.rst``);
  ``_shared/observability/metrics/stats.py`` (``_get_legacy_stat_name_and_tags``) emits both names.
- The chart's mapping (``chart/files/statsd-mappings.yml``) turns some legacy names into one metric with
  labels, e.g. ``airflow.pool.open_slots.*`` -> ``airflow_pool_open_slots{pool="$1"}``.
- A name the mapping does not match keeps statsd-exporter's default: the StatsD name with ``.`` (and any
  other character not allowed in a Prometheus name) turned into ``_``, no labels:
  ``airflow.dag_processing.import_errors`` -> ``airflow_dag_processing_import_errors``.
- statsd-exporter (prometheus/statsd_exporter README) exports StatsD counters under the name as is (no
  ``_total`` suffix), and timers, without an ``observer_type`` (the chart's mapping sets none), as
  summaries in SECONDS (StatsD timers are milliseconds): ``{quantile="0.5"|"0.9"|"0.99"}`` over the last
  10 minutes, plus ``_sum`` and ``_count``.

Checked against the chart's mapping file as of Airflow's main branch (it maps ``dag_processor_heartbeat``
and ``ti.running|queued|scheduled|deferred``; older chart versions lacked those) and Airflow 3.3's
``metrics_template.yaml`` (the installed ``apache-airflow==3.3.2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AirflowKind = Literal["counter", "gauge", "summary"]

EARTHENGINE_POOL = "earthengine"  # plugins/soilclay_airflow/operators/earthengine.py (EARTHENGINE_POOL)

# The soilclay DAGs (dags/*.py, dag_id=...): the dashboards filter Airflow's per-DAG metrics to these.
SOILCLAY_DAG_IDS: tuple[str, ...] = (
    "soilclay_scene_watch",
    "soilclay_composites",
    "soilclay_retrain",
    "soilclay_predict_parcels",
)


@dataclass(frozen=True)
class AirflowMetric:
    name: str
    kind: AirflowKind
    labels: tuple[str, ...]
    statsd: str  # what Airflow sends over StatsD (with the chart's statsd prefix "airflow")
    help: str
    rule: str | None = None  # the chart mapping's `match` that produces name and labels; None: default name


# In the comments: MAPPED = a rule of the chart's chart/files/statsd-mappings.yml (`rule`) gives name and labels;
# UNMAPPED = no rule matches, statsd-exporter's default name (dots become underscores), no labels.
AIRFLOW_METRICS: tuple[AirflowMetric, ...] = (
    # --- heartbeats --------------------------------------------------------------------------------------
    # MAPPED: `airflow.scheduler_heartbeat` -> airflow_scheduler_heartbeat, label type="counter" (constant).
    # metrics_template.yaml: scheduler_heartbeat, counter, no legacy name (jobs/scheduler_job_runner.py).
    AirflowMetric("airflow_scheduler_heartbeat", "counter", ("type",), "airflow.scheduler_heartbeat",
                  "Scheduler heartbeats",
                  rule="airflow.scheduler_heartbeat"),
    # MAPPED (chart on Airflow main; older charts: UNMAPPED, same name without the label):
    # `airflow.dag_processor_heartbeat` -> airflow_dag_processor_heartbeat{type="counter"}.
    AirflowMetric("airflow_dag_processor_heartbeat", "counter", ("type",), "airflow.dag_processor_heartbeat",
                  "Standalone DAG processor heartbeats",
                  rule="airflow.dag_processor_heartbeat"),
    # UNMAPPED. metrics_template.yaml: triggerer_heartbeat, counter, no legacy name.
    AirflowMetric("airflow_triggerer_heartbeat", "counter", (), "airflow.triggerer_heartbeat",
                  "Triggerer heartbeats"),
    # --- DAG runs ----------------------------------------------------------------------------------------
    # MAPPED: `airflow.dagrun.duration.success.*` -> airflow_dagrun_duration{dag_id="$1"}.
    # metrics_template.yaml: dagrun.duration.success, timer, legacy dagrun.duration.success.{dag_id}.
    AirflowMetric("airflow_dagrun_duration", "summary", ("dag_id",), "airflow.dagrun.duration.success.<dag_id>",
                  "Seconds a DAG run took to reach success",
                  rule="airflow.dagrun.duration.success.*"),
    # MAPPED: `airflow.dagrun.duration.failed.*` -> airflow_dagrun_failed{dag_id="$1"} (a summary of the
    # durations of failed runs: its _count counts the failed runs).
    # metrics_template.yaml: dagrun.duration.failed, timer, legacy dagrun.duration.failed.{dag_id}.
    AirflowMetric("airflow_dagrun_failed", "summary", ("dag_id",), "airflow.dagrun.duration.failed.<dag_id>",
                  "Seconds a DAG run took to reach failed",
                  rule="airflow.dagrun.duration.failed.*"),
    # MAPPED: `airflow.dagrun.schedule_delay.*` -> airflow_dagrun_schedule_delay{dag_id="$1"}.
    # metrics_template.yaml: dagrun.schedule_delay, timer, legacy dagrun.schedule_delay.{dag_id}.
    AirflowMetric("airflow_dagrun_schedule_delay", "summary", ("dag_id",), "airflow.dagrun.schedule_delay.<dag_id>",
                  "Seconds between a run's scheduled and actual start",
                  rule="airflow.dagrun.schedule_delay.*"),
    # UNMAPPED. metrics_template.yaml: scheduler.dagruns.running, gauge, no legacy name.
    AirflowMetric("airflow_scheduler_dagruns_running", "gauge", (), "airflow.scheduler.dagruns.running",
                  "DAGs whose latest run is running"),
    # --- tasks -------------------------------------------------------------------------------------------
    # MAPPED: `airflow.dag.*.*.duration` -> airflow_task_duration{dag_id="$1", task_id="$2"}.
    # metrics_template.yaml: task.duration, timer, legacy dag.{dag_id}.{task_id}.duration.
    AirflowMetric("airflow_task_duration", "summary", ("dag_id", "task_id"), "airflow.dag.<dag_id>.<task_id>.duration",
                  "Seconds a task instance ran",
                  rule="airflow.dag.*.*.duration"),
    # UNMAPPED. metrics_template.yaml: ti_failures, counter, legacy "-" (its dag_id/task_id tags are dropped
    # by plain StatsD, so the count is over all DAGs).
    AirflowMetric("airflow_ti_failures", "counter", (), "airflow.ti_failures", "Task instance failures, all DAGs"),
    # UNMAPPED. metrics_template.yaml: ti_successes, counter, legacy "-".
    AirflowMetric("airflow_ti_successes", "counter", (), "airflow.ti_successes", "Task instance successes, all DAGs"),
    # MAPPED (regex): `airflow.operator_failures_(.*)` -> airflow_operator_failures{operator="$1"}.
    # metrics_template.yaml: operator_failures, counter, legacy operator_failures_{operator_name}.
    AirflowMetric("airflow_operator_failures", "counter", ("operator",), "airflow.operator_failures_<operator>",
                  "Task failures per operator class",
                  rule="airflow.operator_failures_(.*)"),
    # MAPPED (regex): `airflow.operator_successes_(.*)` -> airflow_operator_successes{operator="$1"}.
    AirflowMetric("airflow_operator_successes", "counter", ("operator",), "airflow.operator_successes_<operator>",
                  "Task successes per operator class",
                  rule="airflow.operator_successes_(.*)"),
    # MAPPED (chart on Airflow main): `airflow.ti.running.*.*.*` -> airflow_ti_running{queue, dag_id, task_id}.
    # metrics_template.yaml: ti.running, gauge, legacy ti.running.{queue}.{dag_id}.{task_id}.
    AirflowMetric("airflow_ti_running", "gauge", ("queue", "dag_id", "task_id"),
                  "airflow.ti.running.<queue>.<dag_id>.<task_id>", "Running task instances",
                  rule="airflow.ti.running.*.*.*"),
    # UNMAPPED. metrics_template.yaml: scheduler.tasks.starving, gauge (no open pool slot).
    AirflowMetric("airflow_scheduler_tasks_starving", "gauge", (), "airflow.scheduler.tasks.starving",
                  "Tasks that cannot be scheduled for lack of an open pool slot"),
    # --- pools -------------------------------------------------------------------------------------------
    # MAPPED: `airflow.pool.open_slots.*` -> airflow_pool_open_slots{pool="$1"}.
    # metrics_template.yaml: pool.open_slots, gauge, legacy pool.open_slots.{pool_name}.
    AirflowMetric("airflow_pool_open_slots", "gauge", ("pool",), "airflow.pool.open_slots.<pool>",
                  "Open slots in the pool",
                  rule="airflow.pool.open_slots.*"),
    # MAPPED: `airflow.pool.starving_tasks.*` -> airflow_pool_starving_tasks{pool="$1"}.
    AirflowMetric("airflow_pool_starving_tasks", "gauge", ("pool",), "airflow.pool.starving_tasks.<pool>",
                  "Tasks waiting for a slot of the pool",
                  rule="airflow.pool.starving_tasks.*"),
    # UNMAPPED legacy names, one metric per pool: the chart maps only open_slots/used_slots/starving_tasks
    # (Airflow 3 no longer sends pool.used_slots; it sends running/queued/deferred/scheduled_slots).
    # metrics_template.yaml: pool.running_slots / pool.queued_slots, gauges, legacy pool.<x>_slots.{pool_name}.
    AirflowMetric(f"airflow_pool_running_slots_{EARTHENGINE_POOL}", "gauge", (),
                  f"airflow.pool.running_slots.{EARTHENGINE_POOL}", "Running slots of the earthengine pool"),
    AirflowMetric(f"airflow_pool_queued_slots_{EARTHENGINE_POOL}", "gauge", (),
                  f"airflow.pool.queued_slots.{EARTHENGINE_POOL}", "Queued slots of the earthengine pool"),
    AirflowMetric(f"airflow_pool_deferred_slots_{EARTHENGINE_POOL}", "gauge", (),
                  f"airflow.pool.deferred_slots.{EARTHENGINE_POOL}", "Deferred slots of the earthengine pool"),
    # --- executor ----------------------------------------------------------------------------------------
    # metrics_template.yaml: executor.open_slots / queued_tasks / running_tasks, gauges; the legacy names
    # executor.<x>.{executor_class_name} are sent only with several executors (executors/base_executor.py,
    # _get_metric_name). With one executor: UNMAPPED, airflow_executor_open_slots without labels; with several:
    # MAPPED `airflow.executor.open_slots.*` -> airflow_executor_open_slots{executor="$1"}. Same name both ways.
    AirflowMetric("airflow_executor_open_slots", "gauge", ("executor",), "airflow.executor.open_slots[.<executor>]",
                  "Open executor slots",
                  rule="airflow.executor.open_slots.*"),
    AirflowMetric("airflow_executor_queued_tasks", "gauge", ("executor",),
                  "airflow.executor.queued_tasks[.<executor>]", "Tasks queued in the executor",
                  rule="airflow.executor.queued_tasks.*"),
    AirflowMetric("airflow_executor_running_tasks", "gauge", ("executor",),
                  "airflow.executor.running_tasks[.<executor>]", "Tasks running in the executor",
                  rule="airflow.executor.running_tasks.*"),
    # --- DAG processing ----------------------------------------------------------------------------------
    # UNMAPPED. metrics_template.yaml: dag_processing.import_errors, gauge, no legacy name.
    AirflowMetric("airflow_dag_processing_import_errors", "gauge", (), "airflow.dag_processing.import_errors",
                  "DAG files that failed to import"),
    # UNMAPPED. metrics_template.yaml: dagbag_size, gauge.
    AirflowMetric("airflow_dagbag_size", "gauge", (), "airflow.dagbag_size", "DAGs found by the last scan"),
    # UNMAPPED. metrics_template.yaml: dag_processing.total_parse_time, gauge (seconds).
    AirflowMetric("airflow_dag_processing_total_parse_time", "gauge", (), "airflow.dag_processing.total_parse_time",
                  "Seconds to parse all DAG files"),
)

AIRFLOW_BY_NAME = {m.name: m for m in AIRFLOW_METRICS}


def series_names(metric: AirflowMetric) -> tuple[str, ...]:
    """The names Prometheus stores for ``metric``: a summary also has ``_sum`` and ``_count``."""
    if metric.kind == "summary":
        return (metric.name, f"{metric.name}_sum", f"{metric.name}_count")
    return (metric.name,)


def series_labels(name: str) -> tuple[str, ...] | None:
    """Labels a stored series ``name`` may carry (besides job/instance), or None if it is not Airflow's."""
    for metric in AIRFLOW_METRICS:
        if name == metric.name:
            return metric.labels + (("quantile",) if metric.kind == "summary" else ())
        if name in series_names(metric):
            return metric.labels
    return None


AIRFLOW_METRIC_NAMES: frozenset[str] = frozenset(n for m in AIRFLOW_METRICS for n in series_names(m))
