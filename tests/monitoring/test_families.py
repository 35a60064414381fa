"""Snapshot -> metric families, without a database: absent things are absent or 0, never NaN."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from soilclay.db.monitoring import (
    CompositeState,
    ModelVersionState,
    ParcelState,
    RunGroup,
    SceneSeries,
    Snapshot,
)
from soilclay.errors import TransientExternalError
from soilclay.monitoring.catalogue import BY_NAME
from soilclay.monitoring.exporter import SoilclayCollector
from soilclay.monitoring.families import exporter_families, snapshot_families

T0 = datetime(2025, 1, 2, tzinfo=UTC)
EMPTY = Snapshot(aois=("a",), scenes=(SceneSeries("a", "sentinel-2", "sentinel-2-l2a", 0, None, None),),
                 models=(), parcels=(ParcelState("a", 0, 0, {}, None),), runs=())


def _samples(families) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_an_empty_service_has_zeros_and_no_nan():
    m = _samples(snapshot_families(EMPTY))
    assert m[("soilclay_model_champion_version", ())] == 0
    assert ("soilclay_model_champion_promoted_timestamp_seconds", ()) not in m
    assert m[("soilclay_model_challengers_rejected_total", ())] == 0
    assert m[("soilclay_scenes_recorded", (("aoi", "a"), ("collection", "sentinel-2-l2a"),
                                           ("sensor", "sentinel-2")))] == 0
    assert not [k for k in m if k[0].startswith("soilclay_composite_")]
    assert not [k for k in m if k[0] == "soilclay_estimates_lag_seconds"]
    assert {k[1][1][1] for k in m if k[0] == "soilclay_parcels_flagged"} == {
        "no_pixels", "too_few_pixels", "pixels_sampled", "mostly_out_of_domain"}
    assert {dict(k[1])["status"] for k in m if k[0] == "soilclay_model_versions"} == {
        "candidate", "champion", "rejected", "retired"}
    assert all(math.isfinite(v) for v in m.values())


def test_values_and_labels_of_a_full_snapshot():
    snap = Snapshot(
        aois=("a",),
        scenes=(SceneSeries("a", "sentinel-2", "sentinel-2-l2a", 7, T0, T0,
                            CompositeState(3, T0, 6, 1, T0, 2)),),
        models=(ModelVersionState(1, "retired", T0, 5.5, None), ModelVersionState(2, "champion", T0, 4.5, 0.6),
                ModelVersionState(3, "rejected", None, float("nan"), 0.1)),
        parcels=(ParcelState("a", 10, 7, {"no_pixels": 2, "new_flag": 1}, 90.0),),
        runs=(RunGroup("predict", "success", 3, 30.0, 3, T0), RunGroup("predict", "running", 1, 0.0, 0, None),
              RunGroup("predict", "failed", 1, 2.0, 1, T0)))
    m = _samples(snapshot_families(snap))
    a2 = (("aoi", "a"), ("sensor", "sentinel-2"))
    assert m[("soilclay_composite_version", a2)] == 3
    assert m[("soilclay_composite_newest_scene_timestamp_seconds", a2)] == T0.timestamp()
    assert m[("soilclay_scenes_newer_than_composite", a2)] == 2
    assert m[("soilclay_model_champion_version", ())] == 2
    assert m[("soilclay_model_gate_r2", (("status", "champion"), ("version", "2")))] == 0.6
    assert ("soilclay_model_gate_r2", (("status", "retired"), ("version", "1"))) not in m  # not recorded
    assert ("soilclay_model_gate_rmse", (("status", "rejected"), ("version", "3"))) not in m  # NaN: absent
    assert m[("soilclay_parcels_waiting", (("aoi", "a"),))] == 3
    assert m[("soilclay_parcels_flagged", (("aoi", "a"), ("flag", "new_flag")))] == 1
    assert m[("soilclay_estimates_lag_seconds", (("aoi", "a"),))] == 90.0
    assert m[("soilclay_pipeline_runs_total", (("outcome", "success"), ("stage", "predict")))] == 3
    assert m[("soilclay_pipeline_runs_running", (("stage", "predict"),))] == 1
    assert m[("soilclay_pipeline_run_duration_seconds_sum", (("outcome", "failed"), ("stage", "predict")))] == 2.0
    assert m[("soilclay_pipeline_run_duration_seconds_count", (("outcome", "success"), ("stage", "predict")))] == 3
    for name, labels in m:
        assert name in BY_NAME and {k for k, _ in labels} == set(BY_NAME[name].labels), name


def test_exporter_families_say_whether_the_database_was_read():
    assert _samples(exporter_families(False, 0.25)) == {("soilclay_database_up", ()): 0,
                                                        ("soilclay_scrape_duration_seconds", ()): 0.25}


def test_the_collector_turns_a_failing_read_into_database_up_0():
    def broken(_engine):
        raise TransientExternalError("reading the monitoring snapshot: the database is unreachable")

    ticks = iter([10.0, 10.5])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SoilclayCollector(None, snapshot=broken, clock=lambda: next(ticks)))
    page = generate_latest(registry).decode()
    m = {s.name: s.value for f in text_string_to_metric_families(page) for s in f.samples}
    assert m == {"soilclay_database_up": 0, "soilclay_scrape_duration_seconds": 0.5}

    ok = CollectorRegistry(auto_describe=False)
    ok.register(SoilclayCollector(None, snapshot=lambda _e: EMPTY))
    m = {s.name for f in text_string_to_metric_families(generate_latest(ok).decode()) for s in f.samples}
    assert "soilclay_parcels" in m and "soilclay_database_up" in m
