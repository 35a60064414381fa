"""The exporter against real PostGIS: a state built with the test builders, scraped through the real CLI and
the library; as the read-only role; and with the database down (database_up 0, still an answer)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
import requests
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from soilclay.cli import main
from soilclay.db import migrate
from soilclay.monitoring import exporter
from soilclay.monitoring.catalogue import BY_NAME, METRICS
from tests.db import builders as b

NORTH = "SRID=4326;MULTIPOLYGON(((12.8 52.5,13.0 52.5,13.0 52.7,12.8 52.7,12.8 52.5)))"
SOUTH = "SRID=4326;MULTIPOLYGON(((11.0 48.0,11.1 48.0,11.1 48.1,11.0 48.1,11.0 48.0)))"


def _square(x: float, y: float) -> str:
    return f"SRID=4326;MULTIPOLYGON((({x} {y},{x + 0.001} {y},{x + 0.001} {y + 0.001},{x} {y + 0.001},{x} {y})))"


def _scene(conn, aoi_id: int, scene_id: str, collection: str, acquired: str, seen: str) -> None:
    conn.execute(text("INSERT INTO soilclay.scenes (aoi_id, scene_id, collection, platform, acquired_at, source, "
                      "first_seen_at) VALUES (:a, :s, :c, 'x', :t, 'local', :f)"),
                 {"a": aoi_id, "s": scene_id, "c": collection, "t": acquired, "f": seen})


def _run(conn, run_id: str, stage: str, status: str, started: str, finished: str | None) -> None:
    conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage, status, error, started_at, finished_at) "
                      "VALUES (:r, :s, :st, CASE WHEN :st = 'failed' THEN 'boom' END, :a, :f)"),
                 {"r": run_id, "s": stage, "st": status, "a": started, "f": finished})


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def state(db_factory) -> dict:
    """Two AOIs: 'north' with scenes, two S2 versions, an S1 version, models, parcels and estimates, runs;
    'south' with nothing."""
    url = db_factory("soilclay_metrics")
    migrate.upgrade(url)
    eng = create_engine(url)
    with eng.begin() as conn:
        north = conn.execute(text("INSERT INTO soilclay.aois (name, geom, grid_crs) VALUES ('north', "
                                  "ST_GeomFromEWKT(:g), 'EPSG:32633') RETURNING aoi_id"), {"g": NORTH}).scalar_one()
        conn.execute(text("INSERT INTO soilclay.aois (name, geom, grid_crs) VALUES ('south', ST_GeomFromEWKT(:g), "
                          "'EPSG:32632')"), {"g": SOUTH})
        for i, day in enumerate(("2024-01-05", "2024-06-01", "2024-12-20")):
            _scene(conn, north, f"S2-{i}", "sentinel-2-l2a", f"{day}T10:00:00+00", "2025-01-01T00:00:00+00")
        _scene(conn, north, "S1-0", "sentinel-1-grd", "2024-11-02T05:00:00+00", "2025-01-01T00:00:00+00")
        b.run(conn, "run-c", "composite")
        old_s2 = b.composite(conn, north, 1, "sentinel-2")
        s2 = b.composite(conn, north, 2, "sentinel-2")
        s1 = b.composite(conn, north, 1, "sentinel-1")
        conn.execute(text("UPDATE soilclay.composites SET created_at = '2025-01-02T00:00:00+00', skipped_count = 2, "
                          "scene_count = 3 WHERE composite_id = :c"), {"c": s2})
        conn.execute(text("UPDATE soilclay.composites SET created_at = '2025-01-01T12:00:00+00' "
                          "WHERE composite_id IN (:a, :b)"), {"a": old_s2, "b": s1})
        # recorded after the composite: one in its window but too late, one acquired after the window
        _scene(conn, north, "S2-late", "sentinel-2-l2a", "2024-12-30T10:00:00+00", "2025-01-03T00:00:00+00")
        _scene(conn, north, "S2-new", "sentinel-2-l2a", "2025-01-04T10:00:00+00", "2025-01-05T00:00:00+00")
        for version, status in ((1, "retired"), (2, "champion"), (3, "rejected"), (4, "candidate")):
            b.model(conn, version, status)
            conn.execute(text("UPDATE soilclay.model_versions SET training_data = :t WHERE version = :v"),
                         {"v": version, "t": json.dumps({"gate": {"candidate_rmse": 4.0 + version,
                                                                  "candidate_r2": 0.5 + version / 10}})})
        conn.execute(text("UPDATE soilclay.model_versions SET promoted_at = '2025-01-02T06:00:00+00' "
                          "WHERE version = 2"))
        for i in range(4):
            b.parcel(conn, f"P{i}", _square(12.85 + i * 0.01, 52.55))
        b.parcel(conn, "far", _square(5.0, 45.0))
        b.prediction(conn, "P0", 2, s2, "run-c", flags=["pixels_sampled"])
        b.prediction(conn, "P1", 2, s2, "run-c", s1=s1, clay=None, lower=None, upper=None,
                     flags=["too_few_pixels"])
        b.prediction(conn, "P1", 2, s2, "run-c", flags=["no_pixels"], clay=None, lower=None, upper=None)
        b.prediction(conn, "P2", 2, old_s2, "run-c")  # an older composite: waiting
        b.prediction(conn, "P3", 1, s2, "run-c")  # the former champion: waiting
        conn.execute(text("UPDATE soilclay.parcel_predictions SET predicted_at = '2025-01-02T01:00:00+00'"))
        conn.execute(text("UPDATE soilclay.parcel_predictions SET predicted_at = '2025-01-02T02:30:00+00' "
                          "WHERE model_version = 2 AND s2_composite_id = :c AND s1_composite_id IS NOT NULL"),
                     {"c": s2})
        conn.execute(text("UPDATE soilclay.pipeline_runs SET status = 'success', started_at = "
                          "'2025-01-01T11:00:00+00', finished_at = '2025-01-01T11:10:00+00'"))
        _run(conn, "p-1", "predict", "success", "2025-01-02T01:00:00+00", "2025-01-02T01:01:40+00")
        _run(conn, "p-2", "predict", "success", "2025-01-02T02:00:00+00", "2025-01-02T02:00:20+00")
        _run(conn, "p-3", "predict", "failed", "2025-01-02T03:00:00+00", "2025-01-02T03:00:05+00")
        _run(conn, "p-4", "predict", "running", "2025-01-02T04:00:00+00", None)
        _run(conn, "t-1", "train", "skipped", "2025-01-01T00:00:00+00", "2025-01-01T00:00:01+00")
    eng.dispose()
    return {"url": url}


def _show(url: str) -> str:
    result = CliRunner().invoke(main, ["metrics", "show"], env={"SOILCLAY_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


def _samples(page: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _has(samples: dict, name: str, **labels) -> bool:
    return (name, tuple(sorted(labels.items()))) in samples


def test_a_scrape_reports_every_aoi_from_the_database(state):
    m = _samples(_show(state["url"]))
    assert _get(m, "soilclay_database_up") == 1
    assert 0 < _get(m, "soilclay_scrape_duration_seconds") < 5
    # scenes per collection
    s2 = {"aoi": "north", "sensor": "sentinel-2", "collection": "sentinel-2-l2a"}
    assert _get(m, "soilclay_scenes_recorded", **s2) == 5
    assert _get(m, "soilclay_scene_newest_acquisition_timestamp_seconds", **s2) == _ts("2025-01-04T10:00:00")
    assert _get(m, "soilclay_scene_newest_recorded_timestamp_seconds", **s2) == _ts("2025-01-05T00:00:00")
    assert _get(m, "soilclay_scenes_recorded", aoi="south", sensor="sentinel-1", collection="sentinel-1-grd") == 0
    assert not _has(m, "soilclay_scene_newest_acquisition_timestamp_seconds", aoi="south", sensor="sentinel-1",
                    collection="sentinel-1-grd")
    # the newest composite and its lineage: S2-late was recorded after it, S2-new acquired after its window
    north2 = {"aoi": "north", "sensor": "sentinel-2"}
    assert _get(m, "soilclay_composite_version", **north2) == 2
    assert _get(m, "soilclay_composite_created_timestamp_seconds", **north2) == _ts("2025-01-02T00:00:00")
    assert _get(m, "soilclay_composite_scenes", **north2) == 3
    assert _get(m, "soilclay_composite_scenes_skipped", **north2) == 2
    assert _get(m, "soilclay_composite_newest_scene_timestamp_seconds", **north2) == _ts("2024-12-20T10:00:00")
    assert _get(m, "soilclay_scenes_newer_than_composite", **north2) == 2
    assert _get(m, "soilclay_composite_version", aoi="north", sensor="sentinel-1") == 1
    assert _get(m, "soilclay_scenes_newer_than_composite", aoi="north", sensor="sentinel-1") == 0
    assert not _has(m, "soilclay_composite_version", aoi="south", sensor="sentinel-2")
    # models
    assert _get(m, "soilclay_model_champion_version") == 2
    assert _get(m, "soilclay_model_champion_promoted_timestamp_seconds") == _ts("2025-01-02T06:00:00")
    assert _get(m, "soilclay_model_gate_rmse", version="3", status="rejected") == 7.0
    assert _get(m, "soilclay_model_gate_r2", version="2", status="champion") == pytest.approx(0.7)
    assert {s: _get(m, "soilclay_model_versions", status=s) for s in ("candidate", "champion", "rejected",
                                                                        "retired")} == dict.fromkeys(
        ("candidate", "champion", "rejected", "retired"), 1)
    assert _get(m, "soilclay_model_challengers_rejected_total") == 1
    # parcels: P0..P3 inside north, 'far' in no AOI; P0 and P1 estimated by the champion on the newest composites
    assert _get(m, "soilclay_parcels", aoi="north") == 4
    assert _get(m, "soilclay_parcels_estimated_current", aoi="north") == 2
    assert _get(m, "soilclay_parcels_waiting", aoi="north") == 2
    flags = {f: _get(m, "soilclay_parcels_flagged", aoi="north", flag=f)
             for f in ("no_pixels", "too_few_pixels", "pixels_sampled", "mostly_out_of_domain")}
    assert flags == {"no_pixels": 0, "too_few_pixels": 1, "pixels_sampled": 1, "mostly_out_of_domain": 0}
    # lag: newest current estimate (02:30) minus the newest composite's registration (00:00)
    assert _get(m, "soilclay_estimates_lag_seconds", aoi="north") == 2.5 * 3600
    assert _get(m, "soilclay_parcels", aoi="south") == 0 and not _has(m, "soilclay_estimates_lag_seconds",
                                                                       aoi="south")
    # runs
    assert _get(m, "soilclay_pipeline_runs_total", stage="predict", outcome="success") == 2
    assert _get(m, "soilclay_pipeline_runs_total", stage="predict", outcome="failed") == 1
    assert not _has(m, "soilclay_pipeline_runs_total", stage="predict", outcome="running")
    assert _get(m, "soilclay_pipeline_runs_running", stage="predict") == 1
    assert _get(m, "soilclay_pipeline_runs_running", stage="train") == 0
    assert _get(m, "soilclay_pipeline_last_success_timestamp_seconds", stage="predict") == _ts("2025-01-02T02:00:20")
    assert _get(m, "soilclay_pipeline_last_failure_timestamp_seconds", stage="predict") == _ts("2025-01-02T03:00:05")
    # a stage without failures: its failed counter is 0 (so increase() sees the first one) and 'never' is 0
    assert _get(m, "soilclay_pipeline_last_failure_timestamp_seconds", stage="train") == 0
    assert _get(m, "soilclay_pipeline_runs_total", stage="train", outcome="failed") == 0
    assert _get(m, "soilclay_pipeline_runs_total", stage="train", outcome="success") == 0
    assert _get(m, "soilclay_pipeline_run_duration_seconds_sum", stage="predict", outcome="success") == 120
    assert _get(m, "soilclay_pipeline_run_duration_seconds_count", stage="predict", outcome="success") == 2
    assert all(v == v for v in m.values())  # never NaN


def test_the_exporter_publishes_exactly_the_catalogue(state):
    page = _show(state["url"])
    names = {name for name, _ in _samples(page)}
    assert names == {m.name for m in METRICS}
    kinds = {f.name: f.type for f in text_string_to_metric_families(page)}
    for spec in METRICS:
        family = spec.name.removesuffix("_total")
        if spec.name.startswith("soilclay_pipeline_run_duration_seconds_"):
            family, kind = "soilclay_pipeline_run_duration_seconds", "summary"  # _sum/_count: counters of a summary
        else:
            kind = spec.kind
        assert kinds[family] == kind, spec.name
    for (name, labels), _ in _samples(page).items():
        assert {k for k, _ in labels} == set(BY_NAME[name].labels), name
    assert "# HELP soilclay_parcels Parcels (current geometry) intersecting the AOI" in page


def test_the_reader_role_reads_the_same(state):
    role = f"metrics_reader_{uuid.uuid4().hex[:8]}"
    admin = create_engine(state["url"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN IN ROLE soilclay_reader'))
    try:
        as_reader = make_url(state["url"]).set(username=role).render_as_string(hide_password=False)
        engine = exporter.exporter_engine(as_reader)
        with engine.connect() as conn:  # really the reader: the tables stay closed
            assert conn.execute(text("SELECT current_user")).scalar() == role
            with pytest.raises(Exception, match="permission denied"):
                conn.execute(text("SELECT count(*) FROM soilclay.pipeline_runs"))
        engine.dispose()
        strip = re.compile(r"^soilclay_scrape_duration_seconds .*$", re.M)
        assert strip.sub("", _show(as_reader)) == strip.sub("", _show(state["url"]))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_database_down_still_answers_with_database_up_0(caplog):
    down = "postgresql+psycopg://nobody@127.0.0.1:1/soilclay"
    registry = exporter.make_registry(exporter.exporter_engine(down))
    with caplog.at_level("INFO", logger="soilclay.monitoring.exporter"):
        pages = [exporter.scrape(registry) for _ in range(3)]
    m = _samples(pages[-1])
    assert _get(m, "soilclay_database_up") == 0
    assert {name for name, _ in m} == {"soilclay_database_up", "soilclay_scrape_duration_seconds"}
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].exc_info is None  # one line for three failing scrapes


def test_serve_answers_http_while_the_database_is_down_and_stops_on_sigterm():
    env = {**os.environ, "SOILCLAY_DATABASE_URL": "postgresql+psycopg://nobody:s3cret@127.0.0.1:1/soilclay"}
    proc = subprocess.Popen([sys.executable, "-m", "soilclay.cli", "metrics", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match, line
        assert "s3cret" not in line
        for _ in range(2):
            r = requests.get(f"http://127.0.0.1:{match[1]}/metrics", timeout=30)
            assert r.status_code == 200
            assert _get(_samples(r.text), "soilclay_database_up") == 0
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err and "s3cret" not in err
    assert len([x for x in err.splitlines() if "WARNING" in x]) == 1


def test_the_gate_stores_the_r2_the_exporter_publishes(db_factory, monkeypatch, tmp_path):
    """What the gate records (training_data->'gate') is what soilclay_model_gate_rmse/_r2 publish."""
    import types

    import numpy as np

    from soilclay.db.engine import make_engine
    from soilclay.model import gate, registry
    from soilclay.model.report import jsonable

    observed = np.array([10.0, 20.0, 30.0, 40.0])
    predicted = np.array([12.0, 18.0, 33.0, 37.0])  # residuals 2, -2, 3, -3: SSres 26, SStot 500
    cnn = types.ModuleType("soilclay.model.cnn")
    cnn.predict_cnn = lambda _model, _features: predicted
    monkeypatch.setitem(sys.modules, "soilclay.model.cnn", cnn)  # no TensorFlow: the gate's arithmetic only
    url = db_factory("soilclay_gate")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        experiment = types.SimpleNamespace(final=types.SimpleNamespace(cnn=None), lineage={"aoi": "north"})
        decision, champion = gate.evaluate(engine, experiment, None, observed, tmp_path, False)
        assert champion is None and decision.promote
        assert experiment.lineage["gate"]["candidate_r2"] == pytest.approx(1 - 26 / 500)
        registry.register_candidate(engine, version=1, artefact_uri="file:///models/clay/1", metrics={},
                                    training_data=jsonable(experiment.lineage), config_hash="h", run_id=None)
    finally:
        engine.dispose()
    m = _samples(_show(url))
    assert _get(m, "soilclay_model_gate_r2", version="1", status="candidate") == pytest.approx(0.948)
    assert _get(m, "soilclay_model_gate_rmse", version="1", status="candidate") == pytest.approx(26 ** 0.5 / 2)
