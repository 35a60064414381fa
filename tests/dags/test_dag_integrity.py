"""The soilclay DAGs parse cleanly, fast, without lookups or heavy imports, with the intended schedules and params."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
from airflow.sdk.definitions.asset import AssetAny
from airflow.sdk.definitions.retry_policy import RetryAction
from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSkipException, ParamValidationError

from tests.dags.conftest import DAGS_FOLDER, PLUGINS_FOLDER

if str(DAGS_FOLDER) not in sys.path:
    sys.path.append(str(DAGS_FOLDER))

import _soilclay_common as common  # noqa: E402

EXPECTED = {
    "soilclay_scene_watch.py": "soilclay_scene_watch",
    "soilclay_composites.py": "soilclay_composites",
    "soilclay_retrain.py": "soilclay_retrain",
    "soilclay_predict_parcels.py": "soilclay_predict_parcels",
}
HEAVY = ("tensorflow", "keras", "rasterio", "ee", "geopandas", "sklearn")


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))


def parse(path: Path) -> BundleDagBag:
    """Parse like the 3.3 dag processor: the bundle (dags/) on sys.path, so `_soilclay_common` imports."""
    return BundleDagBag(dag_folder=path, bundle_path=DAGS_FOLDER)


@pytest.fixture(scope="module")
def dags():
    bag = parse(DAGS_FOLDER)
    assert bag.import_errors == {}
    return bag.dags


def resolved(dag, **overrides):
    params = copy.deepcopy(dag.params)
    for key, value in overrides.items():
        params[key] = value
    return params.validate()


def fake_context(monkeypatch, task):
    """Run a TaskFlow callable outside Airflow: get_current_context() returns a stub with outlet_events."""
    events = defaultdict(SimpleNamespace)
    monkeypatch.setitem(task.python_callable.__globals__, "get_current_context",
                        lambda: {"outlet_events": events, "dag_run": None})
    return events


# --- parsing -------------------------------------------------------------------------------------


def test_the_dag_files_are_the_expected_ones():
    assert sorted(p.name for p in dag_files()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_imports_without_errors_and_defines_exactly_its_dag(name):
    bag = parse(DAGS_FOLDER / name)
    assert bag.import_errors == {}
    assert list(bag.dags) == [EXPECTED[name]]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_parses_in_well_under_a_second(name):
    parse(DAGS_FOLDER / "soilclay_retrain.py")  # warm-up: Airflow's parsing machinery imported
    sys.modules.pop("_soilclay_common", None)  # the shared module counts too
    started = time.perf_counter()
    bag = parse(DAGS_FOLDER / name)
    elapsed = time.perf_counter() - started
    assert bag.import_errors == {}
    assert elapsed < 1.0, f"{name} took {elapsed:.2f} s to parse"


def test_parsing_makes_no_connection_variable_or_database_lookups(monkeypatch):
    import psycopg
    import sqlalchemy.engine
    from airflow.sdk import BaseHook, Connection, Variable

    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("lookup at parse time")

    monkeypatch.setattr(Connection, "get", forbidden)
    monkeypatch.setattr(BaseHook, "get_connection", forbidden)
    monkeypatch.setattr(Variable, "get", forbidden)
    monkeypatch.setattr(sqlalchemy.engine.Engine, "connect", forbidden)
    monkeypatch.setattr(psycopg, "connect", forbidden)
    with pytest.raises(AssertionError):
        Connection.get("soilclay_db")  # the trap works
    calls.clear()
    sys.modules.pop("_soilclay_common", None)
    bag = parse(DAGS_FOLDER)
    assert bag.import_errors == {}
    assert sorted(bag.dags) == sorted(EXPECTED.values())
    assert calls == []


def test_importing_the_dags_imports_no_heavy_library():
    code = f"""
import importlib.util, json, sys
sys.path.insert(0, {str(DAGS_FOLDER)!r})
sys.path.insert(0, {str(PLUGINS_FOLDER)!r})
for path in {[str(p) for p in dag_files()]!r}:
    spec = importlib.util.spec_from_file_location(path.rsplit("/", 1)[1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
heavy = [m for m in sys.modules if m.split(".")[0] in {HEAVY!r}]
print(json.dumps({{"heavy": heavy, "soilclay": sorted(m for m in sys.modules if m.startswith("soilclay"))}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []
    # Only the tiny error module (named in the retry policy) and the Earth Engine operator with its pure
    # operation and error modules (no ee); settings, db and pipelines load inside tasks.
    allowed = {"soilclay", "soilclay.errors", "soilclay.earthengine", "soilclay.earthengine.operations",
               "soilclay.earthengine.errors"}
    assert {m for m in found["soilclay"] if not m.startswith("soilclay_airflow")} <= allowed


def test_dags_serialize_for_the_scheduler(dags):
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dags.values():
        again = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert again.dag_id == dag.dag_id
        assert set(again.task_dict) == set(dag.task_dict)


# --- common shape -----------------------------------------------------------------------------------


def test_every_dag_has_no_catchup_tags_docs_and_task_timeouts_and_retries_only_transient(dags):
    for dag in dags.values():
        assert dag.catchup is False
        assert "soilclay" in dag.tags
        assert dag.doc_md and "Asset" in dag.doc_md
        for t in dag.tasks:
            assert t.execution_timeout is not None, t.task_id
            assert t.retries == 3 and t.retry_exponential_backoff and t.max_retry_delay
            assert t.retry_policy.serialize() == common.RETRY_POLICY.serialize()


def test_retry_policy_retries_transient_errors_only():
    from sqlalchemy.exc import OperationalError

    from soilclay.db.tx import classify
    from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError

    def action(exc):
        return common.RETRY_POLICY.evaluate(exc, 1, 4).action

    lost = OperationalError("select 1", {}, Exception("server closed the connection unexpectedly"))
    assert action(TransientExternalError("quota")) is RetryAction.RETRY
    assert action(classify(lost, "reading")) is RetryAction.RETRY, "a lost connection, as the db layer raises it"
    # The policy names soilclay's errors only: a driver error that escaped its boundary is a bug.
    assert action(lost) is RetryAction.FAIL
    assert action(BadInputError("row 3")) is RetryAction.FAIL
    assert action(FinalExternalError("403")) is RetryAction.FAIL
    assert action(KeyError("bug")) is RetryAction.FAIL


def test_assets_are_declared_once_and_distinct():
    assets = [common.SCENES, common.COMPOSITES, common.MODEL, common.PREDICTIONS]
    assert len({a.uri for a in assets}) == 4 and all(a.uri.startswith("soilclay://") for a in assets)


@pytest.mark.parametrize(("dag_id", "task_id", "asset"), [
    ("soilclay_scene_watch", "publish_scenes", "SCENES"),
    ("soilclay_composites", "publish_composites", "COMPOSITES"),
    ("soilclay_retrain", "publish_model", "MODEL"),
    ("soilclay_predict_parcels", "publish_predictions", "PREDICTIONS"),
])
def test_only_the_publish_task_emits_the_asset(dags, dag_id, task_id, asset):
    dag = dags[dag_id]
    emitting = {t.task_id: t.outlets for t in dag.tasks if t.outlets}
    assert emitting == {task_id: [getattr(common, asset)]}


# --- schedules -------------------------------------------------------------------------------------


def test_scene_watch_runs_every_six_hours_utc(dags):
    timetable = dags["soilclay_scene_watch"].timetable
    assert isinstance(timetable, CronTriggerTimetable)
    assert timetable.expression == "0 */6 * * *"
    assert str(timetable.timezone) == "UTC"


def test_composites_run_on_scenes(dags):
    dag = dags["soilclay_composites"]
    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    assert dag.timetable.asset_condition == common.SCENES
    assert dag.max_active_runs == 1


def test_retrain_runs_on_composites_or_monthly(dags):
    dag = dags["soilclay_retrain"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.asset_condition == common.COMPOSITES
    assert dag.timetable.timetable.expression == "0 3 1 * *"
    assert dag.max_active_runs == 1


def test_predict_runs_on_composites_or_model(dags):
    dag = dags["soilclay_predict_parcels"]
    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    assert list(condition.objects) == [common.COMPOSITES, common.MODEL]


# --- params ----------------------------------------------------------------------------------------


def test_defaults_are_valid(dags):
    assert resolved(dags["soilclay_scene_watch"]) == {"aois": ["demo"], "source": "local", "dry_run": False}
    assert resolved(dags["soilclay_composites"]) == {
        "aois": ["demo"], "sensors": ["sentinel-2", "sentinel-1"], "years": 3, "ndvi_max": 0.25,
        "nbr2_max": 0.075, "backend": "local", "dry_run": False}
    assert resolved(dags["soilclay_retrain"]) == {"aoi": "demo", "force_retrain": False, "dry_run": False}
    assert resolved(dags["soilclay_predict_parcels"]) == {
        "aoi": "demo", "serving": "local", "model_version": None, "chunk_size": 500, "dry_run": False}


def test_good_values_are_accepted(dags):
    assert resolved(dags["soilclay_composites"], years=20, sensors=["sentinel-1"], backend="earthengine",
                    ndvi_max=-0.5)["years"] == 20
    assert resolved(dags["soilclay_predict_parcels"], model_version=4, serving="tfserving")["model_version"] == 4


@pytest.mark.parametrize(("dag_id", "overrides"), [
    ("soilclay_scene_watch", {"aois": []}),
    ("soilclay_scene_watch", {"aois": "demo"}),
    ("soilclay_scene_watch", {"dry_run": "yes"}),
    ("soilclay_scene_watch", {"source": "stac"}),
    ("soilclay_composites", {"years": 0}),
    ("soilclay_composites", {"years": 21}),
    ("soilclay_composites", {"backend": "gcs"}),
    ("soilclay_composites", {"sensors": ["landsat-8"]}),
    ("soilclay_composites", {"sensors": []}),
    ("soilclay_composites", {"ndvi_max": 1.0}),
    ("soilclay_composites", {"nbr2_max": -1}),
    ("soilclay_retrain", {"force_retrain": "no"}),
    ("soilclay_retrain", {"aoi": ""}),
    ("soilclay_predict_parcels", {"serving": "http"}),
    ("soilclay_predict_parcels", {"model_version": 0}),
    ("soilclay_predict_parcels", {"model_version": "latest"}),
    ("soilclay_predict_parcels", {"chunk_size": 0}),
])
def test_bad_values_are_rejected(dags, dag_id, overrides):
    with pytest.raises(ParamValidationError):
        resolved(dags[dag_id], **overrides)


def test_default_aois_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SOILCLAY_AOIS", "north, south,,")
    assert common.default_aois() == ["north", "south"]
    parsed = parse(DAGS_FOLDER).dags  # read when the DAGs are parsed: the default of their AOI params
    for dag_id in ("soilclay_scene_watch", "soilclay_composites"):
        assert resolved(parsed[dag_id])["aois"] == ["north", "south"]
    for dag_id in ("soilclay_retrain", "soilclay_predict_parcels"):
        assert resolved(parsed[dag_id])["aoi"] == "north"
    monkeypatch.delenv("SOILCLAY_AOIS")
    assert common.default_aois() == ["demo"]
    reparsed = parse(DAGS_FOLDER / "soilclay_scene_watch.py").dags["soilclay_scene_watch"]
    assert resolved(reparsed)["aois"] == ["demo"]


# --- runtime helpers and asset emission (no database: dry runs and publish tasks) --------------------


def test_database_url_comes_from_the_connection_when_defined(monkeypatch):
    from airflow.sdk import Connection

    conn = Connection(conn_id="soilclay_db", conn_type="postgres", host="db.example", login="soil",
                      password="p@ss", schema="soilclay", port=5433, extra='{"sslmode": "require", "cursor": "x"}')
    monkeypatch.setattr(Connection, "get", lambda conn_id: conn)
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", "postgresql://env-host/envdb")
    settings = common.build_settings()
    assert settings.database_url == "postgresql+psycopg://soil:p%40ss@db.example:5433/soilclay?sslmode=require"


def test_a_unix_socket_connection_becomes_libpq_host_and_reaches_the_server(monkeypatch, migrated_url):
    from airflow.sdk import Connection
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    socket_dir = "/var/run/postgresql"
    conn = Connection(conn_id="soilclay_db", conn_type="postgres", host=socket_dir,
                      login=make_url(migrated_url).username, schema=make_url(migrated_url).database)
    monkeypatch.setattr(Connection, "get", lambda conn_id: conn)
    url = common.database_url_from_connection()
    assert make_url(url).host is None and make_url(url).query["host"] == socket_dir
    engine = create_engine(url)
    with engine.connect() as c:  # the real server over its socket
        assert c.execute(text("SELECT current_database()")).scalar() == make_url(migrated_url).database
    engine.dispose()


def test_tf_serving_addresses_come_from_the_tf_serving_connection(monkeypatch):
    from airflow.sdk import Connection

    conns = {"tf_serving": Connection(conn_id="tf_serving", conn_type="generic", host="serving.internal", port=9500,
                                      extra='{"rest_url": "http://serving.internal:9501"}')}

    def get(conn_id):
        if conn_id not in conns:
            raise AirflowNotFoundException(conn_id)
        return conns[conn_id]

    monkeypatch.setattr(Connection, "get", get)
    monkeypatch.setenv("SOILCLAY_TF_SERVING_GRPC", "env-host:1")
    settings = common.build_settings()
    assert (settings.tf_serving_grpc, settings.tf_serving_rest) == ("serving.internal:9500",
                                                                    "http://serving.internal:9501")
    conns.clear()
    assert common.build_settings().tf_serving_grpc == "env-host:1"


def test_database_url_falls_back_to_the_environment(monkeypatch):
    from airflow.sdk import Connection

    def missing(conn_id):
        raise AirflowNotFoundException(conn_id)

    monkeypatch.setattr(Connection, "get", missing)
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", "postgresql://env-host/envdb")
    assert common.database_url_from_connection() is None
    assert common.build_settings().database_url == "postgresql+psycopg://env-host/envdb"


def test_scene_watch_emits_scenes_only_when_something_new(dags, monkeypatch):
    task = dags["soilclay_scene_watch"].task_dict["publish_scenes"]
    events = fake_context(monkeypatch, task)
    with pytest.raises(AirflowSkipException):
        task.python_callable([{"aoi": "demo", "listed": 4, "new": {}}, None])
    assert not events
    extra = task.python_callable([{"aoi": "demo", "listed": 4, "new": {"sentinel-2-l2a": 2, "sentinel-1-grd": 1}},
                                  {"aoi": "north", "listed": 0, "new": {}}, None])
    assert extra["new_scenes"] == 3 and list(extra["by_aoi"]) == ["demo"]
    assert events[common.SCENES].extra == extra


def test_scene_sync_dry_run_touches_nothing(dags):
    task = dags["soilclay_scene_watch"].task_dict["sync_aoi"]
    assert task.python_callable("demo", params={"dry_run": True})["new"] == {}


def test_composites_branch_not_chosen_is_skipped_and_dry_run_touches_nothing(dags):
    build = dags["soilclay_composites"].task_dict["build"]
    plan = dags["soilclay_composites"].task_dict["plan_exports"]
    params = {"backend": "earthengine", "dry_run": False, "years": 3}
    with pytest.raises(AirflowSkipException, match="backend=earthengine"):
        build.python_callable("demo", "sentinel-2", params=params)
    with pytest.raises(AirflowSkipException, match="backend=local"):
        plan.python_callable(params={**params, "backend": "local"})
    result = build.python_callable("demo", "sentinel-1", params={**params, "backend": "local", "dry_run": True})
    assert result["status"] == "dry-run"


def test_composites_earthengine_branch_uses_the_deferrable_operator_in_its_pool(dags):
    from soilclay_airflow.operators.earthengine import EarthEngineExportOperator

    dag = dags["soilclay_composites"]
    export = dag.task_dict["earthengine_export"]
    assert export.operator_class is EarthEngineExportOperator or issubclass(export.operator_class,
                                                                            EarthEngineExportOperator)
    assert export.pool == "earthengine"
    assert export.upstream_task_ids == {"plan_exports"}
    assert dag.task_dict["register_exports"].upstream_task_ids == {"plan_exports", "earthengine_export"}


def test_composites_emit_only_new_versions(dags, monkeypatch):
    task = dags["soilclay_composites"].task_dict["publish_composites"]
    events = fake_context(monkeypatch, task)
    with pytest.raises(AirflowSkipException):
        task.python_callable([{"aoi": "demo", "sensor": "sentinel-2", "status": "up-to-date", "version": 1}, None],
                             None)
    created = {"aoi": "demo", "sensor": "sentinel-1", "status": "created", "version": 2}
    assert task.python_callable([created, {"status": "no-scenes"}], None) == [created]
    assert events[common.COMPOSITES].extra == {"created": [created]}
    exported = {"aoi": "demo", "sensor": "sentinel-2", "status": "created", "version": 3}
    assert task.python_callable(None, [exported]) == [exported]  # the Earth Engine branch


def test_retrain_emits_model_only_for_a_new_champion(dags, monkeypatch):
    task = dags["soilclay_retrain"].task_dict["publish_model"]
    events = fake_context(monkeypatch, task)
    for status in ("rejected", "champion"):  # the champion case: already champion before this run
        with pytest.raises(AirflowSkipException):
            task.python_callable({"aoi": "demo", "version": 3, "status": status, "previous_champion": 3,
                                  "new_champion": False})
    task.python_callable({"aoi": "demo", "version": 4, "status": "champion", "previous_champion": 3,
                          "new_champion": True})
    assert events[common.MODEL].extra == {"version": 4, "previous_champion": 3, "aoi": "demo"}


def test_predict_emits_predictions_only_when_written(dags, monkeypatch):
    task = dags["soilclay_predict_parcels"].task_dict["publish_predictions"]
    events = fake_context(monkeypatch, task)
    with pytest.raises(AirflowSkipException):
        task.python_callable(PLAN, [{"estimated": 0, "written": 0, "flags": {}, "s1_composite_id": 4}])
    with pytest.raises(AirflowSkipException):
        task.python_callable(PLAN, None)  # dry run: nothing mapped
    first = {"estimated": 5, "written": 5, "flags": {"too_few_pixels": 1}, "s1_composite_id": 4}
    task.python_callable(PLAN, [first, None, {**first, "estimated": 2, "written": 2, "flags": {"too_few_pixels": 2}}])
    assert events[common.PREDICTIONS].extra == {
        "aoi": "demo", "model_version": 2, "s2_composite_id": 3, "s1_composite_id": 4, "estimated": 7, "written": 7,
        "flags": {"too_few_pixels": 3}}


PLAN = {"aoi": "demo", "model_version": 2, "s2_composite_id": 3, "s1_composite_id": 4, "parcels_in_aoi": 9,
        "chunks": [[1, 6], [7, 11]]}


def test_predict_chunks_carry_the_pins_and_dry_run_maps_nothing(dags):
    task = dags["soilclay_predict_parcels"].task_dict["chunks"]
    chunks = task.python_callable(PLAN, params={"dry_run": False})
    assert chunks == [{"aoi": "demo", "model_version": 2, "s2_composite_id": 3, "s1_composite_id": 4,
                       "first": 1, "last": 6},
                      {"aoi": "demo", "model_version": 2, "s2_composite_id": 3, "s1_composite_id": 4,
                       "first": 7, "last": 11}]
    assert task.python_callable(PLAN, params={"dry_run": True}) == []
