"""Pure: a :class:`~soilclay.db.monitoring.Snapshot` -> the Prometheus metric families of the catalogue
(:mod:`soilclay.monitoring.catalogue`). No database, no clock: unit-testable.

Absent things are absent series, never NaN: no champion -> ``soilclay_model_champion_version`` 0 and no
promotion time; no composite -> no composite series and no lag. Counts that are zero are published as 0 for
the known label values (model statuses, estimate flags, sensors), so alert rules see a 0, not a gap.

``soilclay_pipeline_run_duration_seconds_sum``/``_count`` are published as the two series of one summary
family ``soilclay_pipeline_run_duration_seconds`` (a summary without quantiles): the only way to expose
exactly those names with consistent TYPE lines (a counter family's samples must end in ``_total``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from soilclay.db.monitoring import Snapshot
from soilclay.monitoring.catalogue import BY_NAME

#: The flags an estimate can carry (soilclay.predict.aggregate), published with 0 when absent.
KNOWN_FLAGS = ("no_pixels", "too_few_pixels", "pixels_sampled", "mostly_out_of_domain")
#: Model version statuses (model_versions_status_known), published with 0 when absent.
MODEL_STATUSES = ("candidate", "champion", "rejected", "retired")
#: A pipeline run's statuses; 'running' is not an outcome.
RUNNING = "running"
#: The outcomes of a finished run (pipeline_runs_status_known without 'running').
OUTCOMES = ("success", "failed", "skipped")
DURATION = "soilclay_pipeline_run_duration_seconds"


def _gauge(name: str) -> GaugeMetricFamily:
    spec = BY_NAME[name]
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


def _counter(name: str) -> CounterMetricFamily:
    spec = BY_NAME[name]
    return CounterMetricFamily(name, spec.help, labels=list(spec.labels))


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _add(family: Metric, labels: Iterable[str], value: float | int | None) -> None:
    """Add a sample unless the value is missing (None or not finite)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return
    family.add_metric(list(labels), value)


def exporter_families(up: bool, duration_seconds: float) -> list[Metric]:
    """``soilclay_database_up`` and ``soilclay_scrape_duration_seconds``."""
    db_up = _gauge("soilclay_database_up")
    db_up.add_metric([], 1 if up else 0)
    took = _gauge("soilclay_scrape_duration_seconds")
    took.add_metric([], max(float(duration_seconds), 0.0))
    return [db_up, took]


def snapshot_families(snapshot: Snapshot) -> list[Metric]:
    """Every catalogue family the snapshot fills (the exporter's own two aside)."""
    return [*_scene_families(snapshot), *_model_families(snapshot), *_parcel_families(snapshot),
            *_run_families(snapshot)]


def _scene_families(snapshot: Snapshot) -> Iterator[Metric]:
    recorded = _gauge("soilclay_scenes_recorded")
    acquired = _gauge("soilclay_scene_newest_acquisition_timestamp_seconds")
    seen = _gauge("soilclay_scene_newest_recorded_timestamp_seconds")
    version = _gauge("soilclay_composite_version")
    created = _gauge("soilclay_composite_created_timestamp_seconds")
    newest_scene = _gauge("soilclay_composite_newest_scene_timestamp_seconds")
    scenes = _gauge("soilclay_composite_scenes")
    skipped = _gauge("soilclay_composite_scenes_skipped")
    newer = _gauge("soilclay_scenes_newer_than_composite")
    for s in snapshot.scenes:
        series = (s.aoi, s.sensor, s.collection)
        _add(recorded, series, s.recorded)
        _add(acquired, series, _ts(s.newest_acquired))
        _add(seen, series, _ts(s.newest_recorded))
        c = s.composite
        if c is None:
            continue
        key = (s.aoi, s.sensor)
        _add(version, key, c.version)
        _add(created, key, _ts(c.created_at))
        _add(newest_scene, key, _ts(c.newest_scene))
        _add(scenes, key, c.scene_count)
        _add(skipped, key, c.skipped_count)
        _add(newer, key, c.scenes_newer)
    yield from (recorded, acquired, seen, version, created, newest_scene, scenes, skipped, newer)


def _model_families(snapshot: Snapshot) -> Iterator[Metric]:
    champion = snapshot.champion
    version = _gauge("soilclay_model_champion_version")
    version.add_metric([], champion.version if champion else 0)
    promoted = _gauge("soilclay_model_champion_promoted_timestamp_seconds")
    if champion is not None:
        _add(promoted, [], _ts(champion.promoted_at))
    rmse = _gauge("soilclay_model_gate_rmse")
    r2 = _gauge("soilclay_model_gate_r2")
    by_status = dict.fromkeys(MODEL_STATUSES, 0)
    for m in snapshot.models:
        _add(rmse, (str(m.version), m.status), m.gate_rmse)
        _add(r2, (str(m.version), m.status), m.gate_r2)
        by_status[m.status] = by_status.get(m.status, 0) + 1
    versions = _gauge("soilclay_model_versions")
    for status, n in sorted(by_status.items()):
        versions.add_metric([status], n)
    rejected = _counter("soilclay_model_challengers_rejected_total")
    rejected.add_metric([], by_status.get("rejected", 0))
    yield from (version, promoted, rmse, r2, versions, rejected)


def _parcel_families(snapshot: Snapshot) -> Iterator[Metric]:
    parcels = _gauge("soilclay_parcels")
    current = _gauge("soilclay_parcels_estimated_current")
    waiting = _gauge("soilclay_parcels_waiting")
    flagged = _gauge("soilclay_parcels_flagged")
    lag = _gauge("soilclay_estimates_lag_seconds")
    for p in snapshot.parcels:
        _add(parcels, [p.aoi], p.parcels)
        _add(current, [p.aoi], p.estimated_current)
        _add(waiting, [p.aoi], p.waiting)
        counts = {**dict.fromkeys(KNOWN_FLAGS, 0), **p.flagged}
        for flag, n in sorted(counts.items()):
            _add(flagged, [p.aoi, flag], n)
        _add(lag, [p.aoi], p.lag_seconds)
    yield from (parcels, current, waiting, flagged, lag)


def _run_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Every stage that has runs gets every outcome (0 when none) and both last-run times (0: never), so
    ``increase()`` sees a stage's first failure and dashboards show 'never' rather than nothing."""
    finished = _counter("soilclay_pipeline_runs_total")
    running = _gauge("soilclay_pipeline_runs_running")
    success = _gauge("soilclay_pipeline_last_success_timestamp_seconds")
    failure = _gauge("soilclay_pipeline_last_failure_timestamp_seconds")
    spec = BY_NAME[f"{DURATION}_sum"]
    duration = SummaryMetricFamily(DURATION, spec.help, labels=list(spec.labels))
    groups = {(g.stage, g.status): g for g in snapshot.runs}
    for stage in sorted({g.stage for g in snapshot.runs}):
        running.add_metric([stage], groups[(stage, RUNNING)].runs if (stage, RUNNING) in groups else 0)
        for outcome in OUTCOMES:
            g = groups.get((stage, outcome))
            finished.add_metric([stage, outcome], g.runs if g else 0)
            duration.add_metric([stage, outcome], count_value=g.duration_count if g else 0,
                                sum_value=g.duration_sum if g else 0.0)
        for family, outcome in ((success, "success"), (failure, "failed")):
            g = groups.get((stage, outcome))
            family.add_metric([stage], (_ts(g.last_end) if g else None) or 0.0)
    yield from (finished, running, success, failure, duration)
