"""Each DAG run for real with ``dag.test()`` against PostGIS on the small demo world.

Airflow's metadata database is the session's SQLite file (``tests/airflow_env.py``); soilclay's data
lives in PostGIS, reached through the ``soilclay_db`` Airflow connection. Every test starts from a
database of its own in the pipeline state it needs (``world_at(stage)``: a copy of a state built once
by ``soilclay.testing.WorldStates``), so the tests run in any order and alone; asset events are those
of the test's own DAG runs. Earth Engine is scripted in its branch (export and polling: no network).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from soilclay.testing import AOI, FAST, World, record_world_scenes, register_world_aoi
from tests.airflow_env import DAGS_FOLDER, migrated_metadata_db

SENSORS = ["sentinel-2", "sentinel-1"]


def dag_environment(world: World) -> dict[str, str]:
    """What the DAG tasks read: the ``soilclay_db`` connection to the world's database (the plain URL names
    a database that does not exist, so only the connection can work) and the world's directories."""
    root = world.root
    (root / "model.json").write_text(json.dumps(FAST))
    parts = make_url(world.url)
    conn = {"conn_type": "postgres", "host": parts.host or "localhost", "port": parts.port or 5432,
            "login": parts.username, "schema": parts.database}
    return {"AIRFLOW_CONN_SOILCLAY_DB": json.dumps(conn), "SOILCLAY_DATABASE_URL": "postgresql://nowhere.invalid/x",
            "SOILCLAY_SCENE_ARCHIVE": str(world.source / "scenes"), "SOILCLAY_STORE_URL": str(root / "store"),
            "SOILCLAY_MODEL_BASE_PATH": str(root / "models"), "SOILCLAY_WORK_DIR": str(root / "work"),
            "SOILCLAY_TF_SERVING_CONFIG_DIR": str(root / "tf-serving"),
            "SOILCLAY_MODEL_CONFIG_FILE": str(root / "model.json")}


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import BundleDagBag

    migrated_metadata_db()
    bag = BundleDagBag(dag_folder=DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {}
    return bag.dags


class DagRuns:
    """``dag.test()`` runs made by one test, and the asset events those runs emitted."""

    def __init__(self, bag: dict) -> None:
        self.bag = bag
        self.run_ids: list[tuple[str, str]] = []

    def run(self, dag_id: str, **conf) -> tuple[str, dict[str, str]]:
        """One run with ``conf`` over the DAG's defaults; return (run state, {task_id or task_id[i]: state})."""
        from airflow.utils.session import create_session

        dag = self.bag[dag_id]
        # Merging a run's conf sets the value of the DAG's (and its tasks') Param objects in place: harmless
        # where each task is a process of its own, but in this process it would become the next run's default.
        holders = [dag.params] + [t.params for t in dag.tasks if t.params]
        saved = [(param, param.value) for h in holders for param in (h.get_param(k) for k in h)]
        try:
            dr = dag.test(run_conf=conf)
        finally:
            for param, value in saved:
                param.value = value
        self.run_ids.append((dag_id, dr.run_id))
        with create_session() as session:
            tis = dr.get_task_instances(session=session)
            states = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state) for ti in tis}
            state = str(dr.state)
        return state, states

    def events(self, uri: str) -> list[dict]:
        """The extras of the events on assets ``uri*`` emitted by this test's runs, oldest first."""
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session

        if not self.run_ids:
            return []
        with create_session() as session:
            events = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                      .filter(AssetModel.uri.like(f"{uri}%")).order_by(AssetEvent.id).all())
            return [e.extra for e in events if (e.source_dag_id, e.source_run_id) in self.run_ids]


@pytest.fixture
def dags(dag_bag) -> DagRuns:
    return DagRuns(dag_bag)


@pytest.fixture
def world_at(world_states, tmp_path, monkeypatch):
    """``world_at(stage)``: a copy of the pipeline state ``stage`` for this test alone, with the DAG tasks'
    environment pointing at it for the test's duration."""

    def make(stage: str) -> World:
        world = world_states.fresh(stage, tmp_path / "world")
        for key, value in dag_environment(world).items():
            monkeypatch.setenv(key, value)
        return world

    return make


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def runs_of(engine, dag_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT run_id, stage, status, error, dag_run_id, summary FROM soilclay.pipeline_runs WHERE dag_id = :d "
            "ORDER BY started_at"), {"d": dag_id}).all()


def test_scene_watch_records_scenes_and_emits_scenes_once(world_at, dags):
    world = world_at("loaded")
    engine = world.engine
    assert scalar(engine, "SELECT count(*) FROM soilclay.scenes") == 0
    state, tis = dags.run("soilclay_scene_watch", aois=[AOI])
    assert state == "success" and tis["publish_scenes"] == "success", tis
    n_items = len(list((world.source / "scenes").rglob("*.json")))
    recorded = scalar(engine, "SELECT count(*) FROM soilclay.scenes")
    assert recorded > 200 and recorded <= n_items
    (event,) = dags.events("soilclay://scenes")
    assert event["new_scenes"] == recorded and list(event["by_aoi"]) == [AOI]
    (row,) = runs_of(engine, "soilclay_scene_watch")
    assert row.status == "success" and row.stage == "scene_sync" and row.run_id.startswith("scene_sync:")
    assert row.dag_run_id and row.summary["listed"] == recorded

    state, tis = dags.run("soilclay_scene_watch", aois=[AOI])  # nothing new: no event
    assert state == "success" and tis["publish_scenes"] == "skipped"
    assert len(dags.events("soilclay://scenes")) == 1
    assert scalar(engine, "SELECT count(*) FROM soilclay.scenes") == recorded


def test_retrain_before_any_composite_is_skipped_and_recorded_so(world_at, dags):
    """A monthly run on a fresh system: nothing to train on yet, so skipped (not failed), no event."""
    engine = world_at("scenes").engine
    state, tis = dags.run("soilclay_retrain", aoi=AOI)
    assert state == "success" and tis["retrain"] == tis["publish_model"] == "skipped", tis
    (row,) = runs_of(engine, "soilclay_retrain")
    assert row.status == "skipped" and "no sentinel-2 composite yet" in row.summary["reason"]
    assert dags.events("soilclay://model") == []
    assert scalar(engine, "SELECT count(*) FROM soilclay.model_versions") == 0


def test_composites_builds_both_sensors_and_emits_the_versions(world_at, dags):
    world = world_at("scenes")
    engine, root = world.engine, world.root
    state, tis = dags.run("soilclay_composites", aois=[AOI])
    assert state == "success", tis
    assert tis["build[0]"] == tis["build[1]"] == "success"
    assert tis["plan_exports"] == tis["earthengine_export"] == tis["register_exports"] == "skipped"
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT sensor, version, uri, backend, run_id FROM soilclay.composites")).all()
    assert sorted((r.sensor, r.version, r.backend) for r in rows) == [("sentinel-1", 1, "local"),
                                                                       ("sentinel-2", 1, "local")]
    assert all(Path(r.uri).is_file() and str(root / "store") in r.uri for r in rows)
    assert all(r.run_id.startswith("composite:soilclay_composites:") for r in rows)
    (event,) = dags.events("soilclay://composites")
    assert sorted(c["sensor"] for c in event["created"]) == ["sentinel-1", "sentinel-2"]

    state, tis = dags.run("soilclay_composites", aois=[AOI])  # same scenes: up to date, no event
    assert state == "success" and tis["publish_composites"] == "skipped"
    assert len(dags.events("soilclay://composites")) == 1


def test_predict_before_the_first_champion_is_skipped_not_failed(world_at, dags):
    """The first COMPOSITES event starts retrain and predict together: predict waits for MODEL."""
    engine = world_at("composites").engine
    state, tis = dags.run("soilclay_predict_parcels", aoi=AOI)
    assert state == "success" and tis["plan"] == "skipped" and tis["publish_predictions"] == "skipped", tis
    assert dags.events("soilclay://predictions") == []
    assert scalar(engine, "SELECT count(*) FROM soilclay.parcel_predictions") == 0


def test_retrain_publishes_a_champion_and_emits_model(world_at, dags):
    world = world_at("composites")
    engine, root = world.engine, world.root
    assert scalar(engine, "SELECT count(*) FROM soilclay.model_versions") == 0
    state, tis = dags.run("soilclay_retrain", aoi=AOI)
    assert state == "success" and tis["publish_model"] == "success", tis
    assert scalar(engine, "SELECT version FROM soilclay.model_versions WHERE status = 'champion'") == 1
    assert (root / "models" / "1" / "saved_model.pb").is_file()
    assert (root / "tf-serving" / "models.config").is_file()
    (event,) = dags.events("soilclay://model")
    assert event["version"] == 1 and event["previous_champion"] is None
    row = runs_of(engine, "soilclay_retrain")[-1]
    assert row.status == "success" and row.summary["config_hash"] and row.summary["samples"] > 100  # FAST config

    from soilclay.db.models import registered_in_dag_run  # how a retry after the promotion still emits MODEL

    with engine.connect() as conn:
        assert registered_in_dag_run(conn, 1, "soilclay_retrain", row.dag_run_id)
        assert not registered_in_dag_run(conn, 1, "soilclay_retrain", "manual__another-run")

    state, tis = dags.run("soilclay_retrain", aoi=AOI)  # same inputs: nothing trained, no event
    assert state == "success" and tis["publish_model"] == "skipped"
    assert len(dags.events("soilclay://model")) == 1
    assert scalar(engine, "SELECT count(*) FROM soilclay.model_versions") == 1


def test_predict_maps_over_parcel_chunks_and_writes_every_parcel_once(world_at, dags):
    engine = world_at("champion").engine
    parcels = scalar(engine, "SELECT count(*) FROM soilclay.parcels")
    assert scalar(engine, "SELECT count(*) FROM soilclay.parcel_predictions") == 0
    state, tis = dags.run("soilclay_predict_parcels", aoi=AOI, chunk_size=20)
    chunks = sorted(k for k in tis if k.startswith("predict_chunk["))
    assert state == "success" and len(chunks) == -(-parcels // 20) >= 2, tis
    assert all(tis[k] == "success" for k in chunks) and tis["publish_predictions"] == "success"
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT count(*) AS n, count(DISTINCT parcel_key) AS parcels, min(model_version) AS lo, "
            "max(model_version) AS hi, count(DISTINCT run_id) AS runs FROM soilclay.parcel_predictions")).one()
    assert (rows.n, rows.parcels, rows.lo, rows.hi, rows.runs) == (parcels, parcels, 1, 1, len(chunks))
    (event,) = dags.events("soilclay://predictions")
    assert event["written"] == parcels and event["model_version"] == 1
    assert {r.stage for r in runs_of(engine, "soilclay_predict_parcels")} == {"predict"}

    state, tis = dags.run("soilclay_predict_parcels", aoi=AOI, chunk_size=20)  # nothing new to write
    assert state == "success" and tis["publish_predictions"] == "skipped"
    assert len(dags.events("soilclay://predictions")) == 1
    assert scalar(engine, "SELECT count(*) FROM soilclay.parcel_predictions") == parcels


def test_a_failed_build_fails_the_run_and_is_recorded_with_its_reason(world_at, dags):
    engine = world_at("loaded").engine
    state, tis = dags.run("soilclay_composites", aois=["nowhere"], sensors=["sentinel-2"])
    assert state == "failed" and tis["build[0]"] == "failed" and tis["all_composites_built"] == "upstream_failed"
    failed = [r for r in runs_of(engine, "soilclay_composites") if r.status == "failed"]
    assert len(failed) == 1 and "nowhere" in failed[0].error and failed[0].stage == "composite"
    assert dags.events("soilclay://composites") == []


def test_predict_pinned_to_a_version_that_is_not_the_champion_fails_without_retry(world_at, dags):
    engine = world_at("champion").engine
    state, tis = dags.run("soilclay_predict_parcels", aoi=AOI, model_version=7)  # the champion is version 1
    assert state == "failed" and tis["plan"] == "failed"
    (row,) = [r for r in runs_of(engine, "soilclay_predict_parcels") if r.status == "failed"]
    assert "model version 7" in row.error and row.run_id.endswith(":plan:try1")  # one try: no retry
    assert dags.events("soilclay://predictions") == []
    assert scalar(engine, "SELECT count(*) FROM soilclay.parcel_predictions") == 0


def test_earthengine_branch_exports_with_the_deferrable_operator_and_registers(world_at, dags, monkeypatch,
                                                                               emulator_host):
    """Backend earthengine: plan → mapped deferrable export (trigger run inline by dag.test) → register.
    Earth Engine itself is scripted: the export start returns an operation, polling reports SUCCEEDED."""
    world = world_at("loaded")
    engine = world.engine
    register_world_aoi(engine, world.source, "demo-ee")  # an AOI whose scenes came from the Earth Engine catalogue
    record_world_scenes(engine, world.source, "demo-ee", source="earthengine")
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from tests.dags.earthengine_fakes import fake_earth_engine

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_host)  # exports write real COGs to the emulator
    bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket("soilclay-test")
    started = fake_earth_engine(monkeypatch, bucket, world.root, empty=set())
    monkeypatch.setenv("SOILCLAY_STORE_URL", "gs://soilclay-test/prefix")
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                       json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "p"}}))

    state, tis = dags.run("soilclay_composites", aois=["demo-ee"], backend="earthengine", sensors=SENSORS)
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
    (event,) = dags.events("soilclay://composites")
    assert event["created"][0]["uri"].startswith("gs://soilclay-test/")
    items = [r.run_id.rsplit("/", 2)[-2:] for r in runs_of(engine, "soilclay_composites")
             if ":register_exports:" in r.run_id]
    assert sorted(items) == [["demo-ee", "sentinel-1"], ["demo-ee", "sentinel-2"]]  # one record per export

    state, tis = dags.run("soilclay_composites", aois=["demo-ee"], backend="earthengine",
                          sensors=SENSORS)  # up to date
    assert state == "success" and tis["publish_composites"] == "skipped" and len(started) == 2
    assert len(dags.events("soilclay://composites")) == 1


@pytest.fixture(scope="module")
def estimated_by_dag(world_states, dag_bag, tmp_path_factory) -> World:
    """A champion state whose every parcel the predict DAG has estimated (read-only for the tests using it)."""
    world = world_states.fresh("champion", tmp_path_factory.mktemp("estimated"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in dag_environment(world).items():
            mp.setenv(key, value)
        state, tis = DagRuns(dag_bag).run("soilclay_predict_parcels", aoi=AOI)
    assert state == "success" and tis["publish_predictions"] == "success", tis
    return world


def test_the_demo_summary_reads_back_what_the_dags_wrote(estimated_by_dag):
    from soilclay.demo.summary import collect, render

    world = estimated_by_dag
    engine = world.engine
    summary = collect(engine, AOI, world.source)
    assert summary.champion == 1 and [c["sensor"] for c in summary.composites] == ["sentinel-2", "sentinel-1"]
    assert summary.estimated == summary.parcels == scalar(engine, "SELECT count(*) FROM soilclay.parcels "
                                                                  "WHERE parcel_id LIKE 'DEMO-%'")
    assert summary.skill is not None and summary.skill.r2 > 0.6 and summary.skill.inside_interval > 0.8
    assert set(summary.models[0]["models"]) >= {"cnn", "rf", "ann"}
    text_out = render(summary, ui_url="http://localhost:8080", ui_login="admin / admin")
    assert "Champion:            v1" in text_out and "CNN R²" in text_out and "parcel_clay_latest" in text_out
