"""Each DAG run for real with ``dag.test()`` against PostGIS on the small demo world, in pipeline order.

Airflow's metadata database is the session's SQLite file (``tests/airflow_env.py``); soilclay's data
lives in a fresh PostGIS database reached through the ``soilclay_db`` Airflow connection. The tests
share one world and run in file order: scenes → composites → model → estimates, then a failure and
the Earth Engine branch (export and operation polling scripted: no network).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from soilclay.db import migrate
from soilclay.db.aois import read_aoi_file, register_aoi
from soilclay.db.engine import make_engine
from soilclay.parcels.load import load_parcels
from soilclay.samples.load import load_samples
from tests.airflow_env import DAGS_FOLDER, migrated_metadata_db
from tests.worlds import AOI, FAST

pytestmark = [pytest.mark.db, pytest.mark.slow]
SENSORS = ["sentinel-2", "sentinel-1"]


@pytest.fixture(scope="module")
def world(db_factory, small_world, tmp_path_factory):
    """A soilclay database with the AOI, samples and parcels (what people load by hand); the rest is the DAGs'."""
    migrated_metadata_db()
    url = db_factory()
    migrate.upgrade(url)
    engine = make_engine(url)
    geometry, props = read_aoi_file(small_world / "aoi.geojson")
    register_aoi(engine, AOI, geometry, props["grid_crs"])
    load_samples(engine, small_world / "samples.csv", source="demo")
    load_parcels(engine, small_world / "parcels.gpkg")
    root = tmp_path_factory.mktemp("dagruns")
    (root / "model.json").write_text(json.dumps(FAST))
    parts = make_url(url)
    conn = {"conn_type": "postgres", "host": parts.host or "localhost", "port": parts.port or 5432,
            "login": parts.username, "schema": parts.database}
    env = {"AIRFLOW_CONN_SOILCLAY_DB": json.dumps(conn), "SOILCLAY_DATABASE_URL": "postgresql://nowhere.invalid/x",
           "SOILCLAY_SCENE_ARCHIVE": str(small_world / "scenes"), "SOILCLAY_STORE_URL": str(root / "store"),
           "SOILCLAY_MODEL_BASE_PATH": str(root / "models"), "SOILCLAY_WORK_DIR": str(root / "work"),
           "SOILCLAY_TF_SERVING_CONFIG_DIR": str(root / "tf-serving"),
           "SOILCLAY_MODEL_CONFIG_FILE": str(root / "model.json")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield engine, root
    engine.dispose()


@pytest.fixture(scope="module")
def dags(world):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {}
    return bag.dags


def run(dags, dag_id: str, **conf):
    """``dag.test()`` one run; return (run state, {task_id or task_id[i]: state})."""
    from airflow.utils.session import create_session

    dr = dags[dag_id].test(run_conf=conf)
    with create_session() as session:
        tis = dr.get_task_instances(session=session)
        states = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in tis}
        state = str(dr.state)
    return state, states


def asset_events(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return [e.extra for e in session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri.like(f"{uri}%")).order_by(AssetEvent.id)]


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def runs_of(engine, dag_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT run_id, stage, status, error, dag_run_id, summary FROM soilclay.pipeline_runs WHERE dag_id = :d "
            "ORDER BY started_at"), {"d": dag_id}).all()


def test_scene_watch_records_scenes_and_emits_scenes_once(world, dags, small_world):
    engine, _ = world
    state, tis = run(dags, "soilclay_scene_watch", aois=[AOI])
    assert state == "success" and tis["publish_scenes"] == "success", tis
    n_items = len(list((small_world / "scenes").rglob("*.json")))
    recorded = scalar(engine, "SELECT count(*) FROM soilclay.scenes")
    assert recorded > 200 and recorded <= n_items
    (event,) = asset_events("soilclay://scenes")
    assert event["new_scenes"] == recorded and list(event["by_aoi"]) == [AOI]
    (row,) = runs_of(engine, "soilclay_scene_watch")
    assert row.status == "success" and row.stage == "scene_sync" and row.run_id.startswith("scene_sync:")
    assert row.dag_run_id and row.summary["listed"] == recorded

    state, tis = run(dags, "soilclay_scene_watch", aois=[AOI])  # nothing new: no event
    assert state == "success" and tis["publish_scenes"] == "skipped"
    assert len(asset_events("soilclay://scenes")) == 1
    assert scalar(engine, "SELECT count(*) FROM soilclay.scenes") == recorded


def test_retrain_before_any_composite_is_skipped_and_recorded_so(world, dags):
    """A monthly run on a fresh system: nothing to train on yet, so skipped (not failed), no event."""
    engine, _ = world
    state, tis = run(dags, "soilclay_retrain", aoi=AOI)
    assert state == "success" and tis["retrain"] == tis["publish_model"] == "skipped", tis
    (row,) = runs_of(engine, "soilclay_retrain")
    assert row.status == "skipped" and "no sentinel-2 composite yet" in row.summary["reason"]
    assert asset_events("soilclay://model") == []


def test_composites_builds_both_sensors_and_emits_the_versions(world, dags):
    engine, root = world
    state, tis = run(dags, "soilclay_composites", aois=[AOI])
    assert state == "success", tis
    assert tis["build[0]"] == tis["build[1]"] == "success"
    assert tis["plan_exports"] == tis["earthengine_export"] == tis["register_exports"] == "skipped"
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT sensor, version, uri, backend, run_id FROM soilclay.composites")).all()
    assert sorted((r.sensor, r.version, r.backend) for r in rows) == [("sentinel-1", 1, "local"),
                                                                       ("sentinel-2", 1, "local")]
    assert all(Path(r.uri).is_file() and str(root / "store") in r.uri for r in rows)
    assert all(r.run_id.startswith("composite:soilclay_composites:") for r in rows)
    (event,) = asset_events("soilclay://composites")
    assert sorted(c["sensor"] for c in event["created"]) == ["sentinel-1", "sentinel-2"]

    state, tis = run(dags, "soilclay_composites", aois=[AOI])  # same scenes: up to date, no event
    assert state == "success" and tis["publish_composites"] == "skipped"
    assert len(asset_events("soilclay://composites")) == 1


def test_predict_before_the_first_champion_is_skipped_not_failed(world, dags):
    """The first COMPOSITES event starts retrain and predict together: predict waits for MODEL."""
    engine, _ = world
    state, tis = run(dags, "soilclay_predict_parcels", aoi=AOI)
    assert state == "success" and tis["plan"] == "skipped" and tis["publish_predictions"] == "skipped", tis
    assert asset_events("soilclay://predictions") == []
    assert scalar(engine, "SELECT count(*) FROM soilclay.parcel_predictions") == 0


def test_retrain_publishes_a_champion_and_emits_model(world, dags):
    engine, root = world
    state, tis = run(dags, "soilclay_retrain", aoi=AOI)
    assert state == "success" and tis["publish_model"] == "success", tis
    assert scalar(engine, "SELECT version FROM soilclay.model_versions WHERE status = 'champion'") == 1
    assert (root / "models" / "1" / "saved_model.pb").is_file()
    assert (root / "tf-serving" / "models.config").is_file()
    (event,) = asset_events("soilclay://model")
    assert event["version"] == 1 and event["previous_champion"] is None
    row = runs_of(engine, "soilclay_retrain")[-1]
    assert row.status == "success" and row.summary["config_hash"] and row.summary["samples"] > 100  # FAST config

    from soilclay_retrain import registered_by_run  # how a retry after the promotion still emits MODEL

    assert registered_by_run(engine, 1, "soilclay_retrain", row.dag_run_id)
    assert not registered_by_run(engine, 1, "soilclay_retrain", "manual__another-run")

    state, tis = run(dags, "soilclay_retrain", aoi=AOI)  # same inputs: nothing trained, no event
    assert state == "success" and tis["publish_model"] == "skipped"
    assert scalar(engine, "SELECT count(*) FROM soilclay.model_versions") == 1


def test_predict_maps_over_parcel_chunks_and_writes_every_parcel_once(world, dags, small_world):
    engine, _ = world
    parcels = scalar(engine, "SELECT count(*) FROM soilclay.parcels")
    state, tis = run(dags, "soilclay_predict_parcels", aoi=AOI, chunk_size=20)
    chunks = sorted(k for k in tis if k.startswith("predict_chunk["))
    assert state == "success" and len(chunks) == -(-parcels // 20) >= 2, tis
    assert all(tis[k] == "success" for k in chunks) and tis["publish_predictions"] == "success"
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT count(*) AS n, count(DISTINCT parcel_id) AS parcels, min(model_version) AS lo, "
            "max(model_version) AS hi, count(DISTINCT run_id) AS runs FROM soilclay.parcel_predictions")).one()
    assert (rows.n, rows.parcels, rows.lo, rows.hi, rows.runs) == (parcels, parcels, 1, 1, len(chunks))
    (event,) = asset_events("soilclay://predictions")
    assert event["written"] == parcels and event["model_version"] == 1
    assert {r.stage for r in runs_of(engine, "soilclay_predict_parcels")} == {"predict"}

    state, tis = run(dags, "soilclay_predict_parcels", aoi=AOI, chunk_size=20)  # nothing new to write
    assert state == "success" and tis["publish_predictions"] == "skipped"
    assert scalar(engine, "SELECT count(*) FROM soilclay.parcel_predictions") == parcels


def test_a_failure_fails_the_run_and_is_recorded_with_its_reason(world, dags):
    engine, _ = world
    state, tis = run(dags, "soilclay_composites", aois=["nowhere"], sensors=["sentinel-2"])
    assert state == "failed" and tis["build[0]"] == "failed" and tis["all_composites_built"] == "upstream_failed"
    failed = [r for r in runs_of(engine, "soilclay_composites") if r.status == "failed"]
    assert len(failed) == 1 and "nowhere" in failed[0].error and failed[0].stage == "composite"

    state, tis = run(dags, "soilclay_predict_parcels", aoi=AOI, model_version=7)  # not the champion
    assert state == "failed" and tis["plan"] == "failed"
    (row,) = [r for r in runs_of(engine, "soilclay_predict_parcels") if r.status == "failed"]
    assert "model version 7" in row.error and row.run_id.endswith(":plan:try1")  # one try: no retry


def test_earthengine_branch_exports_with_the_deferrable_operator_and_registers(world, dags, monkeypatch):
    """Backend earthengine: plan → mapped deferrable export (trigger run inline by dag.test) → register.
    Earth Engine itself is scripted: the export start returns an operation, polling reports SUCCEEDED."""
    from soilclay_airflow.hooks.earthengine import EarthEngineHook

    from soilclay.composites.earthengine import EarthEngineBackend

    engine, _ = world
    with engine.begin() as conn:  # an AOI whose scenes came from the Earth Engine catalogue
        conn.execute(text(
            "INSERT INTO soilclay.aois (name, geom, grid_crs) SELECT 'demo-ee', geom, grid_crs FROM soilclay.aois "
            "WHERE name = :a"), {"a": AOI})
        conn.execute(text(
            "INSERT INTO soilclay.scenes (aoi_id, scene_id, collection, platform, acquired_at, source, properties) "
            "SELECT (SELECT aoi_id FROM soilclay.aois WHERE name = 'demo-ee'), scene_id, collection, platform, "
            "acquired_at, 'earthengine', properties FROM soilclay.scenes"))
    started: list[tuple[str, str]] = []

    def start(self, recipe, sensor, aoi_geometry, period, name):
        started.append((sensor, name))
        return f"projects/p/operations/OP{len(started)}", f"gs://{self.bucket}/{self.prefix}/{name}.tif"

    def get_operation(self, name):
        return {"name": name, "done": True, "metadata": {"state": "SUCCEEDED", "destinationUris": []}}

    monkeypatch.setattr(EarthEngineBackend, "start", start)
    monkeypatch.setattr(EarthEngineHook, "initialize", lambda self: None)
    monkeypatch.setattr(EarthEngineHook, "get_operation", get_operation)
    monkeypatch.setenv("SOILCLAY_STORE_URL", "gs://soilclay-test/prefix")
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                       json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "p"}}))

    state, tis = run(dags, "soilclay_composites", aois=["demo-ee"], backend="earthengine", sensors=SENSORS)
    assert state == "success", tis
    assert tis["earthengine_export[0]"] == tis["earthengine_export[1]"] == "success"
    assert tis["build[0]"] == "skipped" and tis["register_exports"] == "success"
    assert sorted(s for s, _ in started) == ["sentinel-1", "sentinel-2"]
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.sensor, c.version, c.backend, c.uri FROM soilclay.composites c JOIN soilclay.aois a "
            "USING (aoi_id) WHERE a.name = 'demo-ee' ORDER BY c.sensor")).all()
    assert [(r.sensor, r.version, r.backend) for r in rows] == [("sentinel-1", 1, "earthengine"),
                                                               ("sentinel-2", 1, "earthengine")]
    assert all(r.uri.startswith("gs://soilclay-test/prefix/composites/demo-ee/") for r in rows)
    assert asset_events("soilclay://composites")[-1]["created"][0]["uri"].startswith("gs://soilclay-test/")
    items = [r.run_id.rsplit("/", 2)[-2:] for r in runs_of(engine, "soilclay_composites")
             if ":register_exports:" in r.run_id]
    assert sorted(items) == [["demo-ee", "sentinel-1"], ["demo-ee", "sentinel-2"]]  # one record per export

    state, tis = run(dags, "soilclay_composites", aois=["demo-ee"], backend="earthengine",
                     sensors=SENSORS)  # up to date
    assert state == "success" and tis["publish_composites"] == "skipped" and len(started) == 2


def test_the_demo_summary_reads_back_what_the_dags_wrote(world, small_world):
    from soilclay.demo.summary import collect, render

    engine, _ = world
    summary = collect(engine, AOI, small_world)
    assert summary.champion == 1 and [c["sensor"] for c in summary.composites] == ["sentinel-2", "sentinel-1"]
    assert summary.estimated == summary.parcels == scalar(engine, "SELECT count(*) FROM soilclay.parcels "
                                                                  "WHERE parcel_id LIKE 'DEMO-%'")
    assert summary.skill is not None and summary.skill.r2 > 0.6 and summary.skill.inside_interval > 0.8
    assert set(summary.models[0]["models"]) >= {"cnn", "rf", "ann"}
    text_out = render(summary, ui_url="http://localhost:8080", ui_login="admin / admin")
    assert "Champion:            v1" in text_out and "CNN R²" in text_out and "parcel_clay_latest" in text_out
