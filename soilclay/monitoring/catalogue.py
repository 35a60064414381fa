"""The metrics soilclay's exporter publishes: one frozen list, the contract between the exporter
(:mod:`soilclay.monitoring.exporter`), the alert rules (``monitoring/prometheus/rules``) and the Grafana
dashboards (``monitoring/grafana/dashboards``). Tests check that the exporter publishes exactly these
and that every rule and panel names only these, TF Serving's or Airflow's.

Prometheus conventions: ``soilclay_`` prefix, base units (seconds, ratios 0..1), ``_total`` for
counters, ``_timestamp_seconds`` for points in time (Unix seconds), ``_seconds`` for durations.
The labels ``aoi`` (AOI name), ``sensor`` (``sentinel-2``/``sentinel-1``), ``collection``, ``stage``
(pipeline stage), ``outcome`` (a run's final status) and ``flag`` (a parcel estimate's flag) have the
same meaning on every metric that carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["gauge", "counter"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


METRICS: tuple[MetricSpec, ...] = (
    # exporter and database
    MetricSpec("soilclay_database_up", "gauge", "1 when the exporter could read PostGIS at this scrape, else 0"),
    MetricSpec("soilclay_scrape_duration_seconds", "gauge", "Time the exporter spent reading PostGIS for this scrape"),
    # scenes
    MetricSpec("soilclay_scenes_recorded", "gauge", "Scenes recorded for the AOI, per collection",
               ("aoi", "sensor", "collection")),
    MetricSpec("soilclay_scene_newest_acquisition_timestamp_seconds", "gauge",
               "Acquisition time of the newest recorded scene", ("aoi", "sensor", "collection")),
    MetricSpec("soilclay_scene_newest_recorded_timestamp_seconds", "gauge",
               "When the newest scene was recorded by a scene watch", ("aoi", "sensor", "collection")),
    # composites
    MetricSpec("soilclay_composite_version", "gauge", "Version number of the newest composite", ("aoi", "sensor")),
    MetricSpec("soilclay_composite_created_timestamp_seconds", "gauge", "When the newest composite was registered",
               ("aoi", "sensor")),
    MetricSpec("soilclay_composite_newest_scene_timestamp_seconds", "gauge",
               "Acquisition time of the newest scene inside the newest composite", ("aoi", "sensor")),
    MetricSpec("soilclay_composite_scenes", "gauge", "Scenes that went into the newest composite", ("aoi", "sensor")),
    MetricSpec("soilclay_composite_scenes_skipped", "gauge", "Scenes the newest composite skipped (unreadable, "
               "other grid, ...)", ("aoi", "sensor")),
    MetricSpec("soilclay_scenes_newer_than_composite", "gauge",
               "Recorded scenes acquired after the newest scene of the newest composite", ("aoi", "sensor")),
    # model
    MetricSpec("soilclay_model_champion_version", "gauge", "Version number of the champion model (0: none)"),
    MetricSpec("soilclay_model_champion_promoted_timestamp_seconds", "gauge", "When the champion was promoted"),
    MetricSpec("soilclay_model_gate_rmse", "gauge", "Gate-set RMSE of a model version (clay, %)",
               ("version", "status")),
    MetricSpec("soilclay_model_gate_r2", "gauge", "Gate-set R² of a model version", ("version", "status")),
    MetricSpec("soilclay_model_versions", "gauge", "Model versions registered, per status", ("status",)),
    MetricSpec("soilclay_model_challengers_rejected_total", "counter", "Challengers the gate rejected"),
    # parcels and estimates
    MetricSpec("soilclay_parcels", "gauge", "Parcels (current geometry) intersecting the AOI", ("aoi",)),
    MetricSpec("soilclay_parcels_estimated_current", "gauge",
               "Parcels with an estimate by the champion on the newest composites", ("aoi",)),
    MetricSpec("soilclay_parcels_waiting", "gauge",
               "Parcels without an estimate by the champion on the newest composites", ("aoi",)),
    MetricSpec("soilclay_parcels_flagged", "gauge", "Parcels whose current estimate carries the flag",
               ("aoi", "flag")),
    MetricSpec("soilclay_estimates_lag_seconds", "gauge",
               "Seconds from the newest composite to the estimates built on it (until now while there are none)",
               ("aoi",)),
    # pipeline runs
    MetricSpec("soilclay_pipeline_runs_total", "counter", "Pipeline runs finished, per stage and outcome",
               ("stage", "outcome")),
    MetricSpec("soilclay_pipeline_runs_running", "gauge", "Pipeline runs in progress", ("stage",)),
    MetricSpec("soilclay_pipeline_last_success_timestamp_seconds", "gauge", "End of the last successful run (0: never)",
               ("stage",)),
    MetricSpec("soilclay_pipeline_last_failure_timestamp_seconds", "gauge", "End of the last failed run (0: never)",
               ("stage",)),
    MetricSpec("soilclay_pipeline_run_duration_seconds_sum", "counter", "Total duration of finished runs",
               ("stage", "outcome")),
    MetricSpec("soilclay_pipeline_run_duration_seconds_count", "counter", "Finished runs with a duration",
               ("stage", "outcome")),
)

BY_NAME = {m.name: m for m in METRICS}
