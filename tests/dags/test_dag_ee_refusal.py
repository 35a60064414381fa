"""The Earth Engine branch of ``soilclay_composites`` refuses an all-nodata export as a local build does
(issue 12 item 3): run for real with ``dag.test()`` against PostGIS, the exports landing in a real
``gcp-storage-emulator`` bucket.

Earth Engine itself is scripted (no network): the export start writes a real COG on the AOI's grid to the
bucket, as Earth Engine would, and polling reports SUCCEEDED. ``register_exports`` then reads the COG back
through the store (``SOILCLAY_STORE_URL=gs://...``, the emulator reached through ``STORAGE_EMULATOR_HOST``).
"""

from __future__ import annotations

import json
import uuid

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from sqlalchemy import text

from soilclay.testing import record_world_scenes, register_world_aoi
from tests.airflow_env import DAGS_FOLDER, migrated_metadata_db
from tests.dags.earthengine_fakes import BUCKET, EXPORTED_SCENES, fake_earth_engine
from tests.dags.test_dag_runs import DagRuns, dag_environment, runs_of

AOI = "demo-ee"
SENSORS = ["sentinel-2", "sentinel-1"]


@pytest.fixture(scope="module")
def dag_bag() -> dict:
    from airflow.dag_processing.dagbag import BundleDagBag

    migrated_metadata_db()
    bag = BundleDagBag(dag_folder=DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {}
    return bag.dags


def _versions(engine) -> list[tuple[str, int, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT c.sensor, c.version, c.backend, c.uri FROM soilclay.composites c JOIN soilclay.aois a "
            "USING (aoi_id) WHERE a.name = :n ORDER BY c.sensor, c.version"), {"n": AOI}).all()]


def _newest_uri(engine, sensor: str) -> str | None:
    from soilclay.db import composites as composite_rows
    from soilclay.db.aois import get_aoi

    with engine.connect() as conn:
        row = composite_rows.newest(conn, get_aoi(conn, AOI).aoi_id, sensor)
    return None if row is None else row.uri


def _registered(dag_run_id: str) -> list[dict]:
    """What ``register_exports`` returned in the DAG run ``dag_run_id`` (its XCom)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id="soilclay_composites", run_id=dag_run_id,
                                                 task_id="register_exports", key="return_value").one()
        value = row.value
    return json.loads(value) if isinstance(value, str | bytes) else value


def test_an_all_nodata_export_is_refused_and_the_previous_version_stays_newest(world_states, dag_bag, emulator_host,
                                                                               tmp_path, monkeypatch):
    world = world_states.fresh("loaded", tmp_path / "world")
    for key, value in dag_environment(world).items():
        monkeypatch.setenv(key, value)
    engine = world.engine
    register_world_aoi(engine, world.source, AOI)  # an AOI whose scenes came from the Earth Engine catalogue
    record_world_scenes(engine, world.source, AOI, source="earthengine")

    prefix = f"t-{uuid.uuid4().hex[:12]}/soilclay"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_host)
    monkeypatch.setenv("SOILCLAY_STORE_URL", f"gs://{BUCKET}/{prefix}")
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                       json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "p"}}))
    bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket(BUCKET)
    empty: set[str] = set()
    started = fake_earth_engine(monkeypatch, bucket, tmp_path, empty)
    dags = DagRuns(dag_bag)

    # 1. A sentinel-2 export with data: registered as version 1.
    state, tis = dags.run("soilclay_composites", aois=[AOI], backend="earthengine", sensors=["sentinel-2"])
    assert state == "success" and tis["register_exports"] == "success", tis
    ((sensor, version, backend, first_uri),) = _versions(engine)
    assert (sensor, version, backend) == ("sentinel-2", 1, "earthengine")
    assert first_uri.startswith(f"gs://{BUCKET}/{prefix}/composites/{AOI}/sentinel-2/")

    # 2. Another recipe (ndvi_max), so sentinel-2 is exported anew, but all nodata; sentinel-1 has data.
    empty.add("sentinel-2")
    state, tis = dags.run("soilclay_composites", aois=[AOI], backend="earthengine", sensors=SENSORS, ndvi_max=0.3)
    assert state == "success", tis
    assert tis["earthengine_export[0]"] == tis["earthengine_export[1]"] == "success"
    assert tis["register_exports"] == tis["publish_composites"] == tis["all_composites_built"] == "success"
    assert sorted(s for s, _ in started) == ["sentinel-1", "sentinel-2", "sentinel-2"]
    (refused_uri,) = [u for s, u in started[1:] if s == "sentinel-2"]

    # The refused export is not registered: sentinel-2's newest version is still the first one.
    versions = _versions(engine)
    assert [(s, v, b) for s, v, b, _ in versions] == [("sentinel-1", 1, "earthengine"),
                                                     ("sentinel-2", 1, "earthengine")]
    assert _newest_uri(engine, "sentinel-2") == first_uri
    s1_uri = _newest_uri(engine, "sentinel-1")

    # Its outcome says 'refused' with the reason: one line naming the AOI, the sensor, the COG and the share.
    results = {r["sensor"]: r for r in _registered(dags.run_ids[-1][1])}
    assert (results["sentinel-1"]["status"], results["sentinel-1"]["version"]) == ("created", 1)
    refused = results["sentinel-2"]
    assert (refused["status"], refused["version"], refused["uri"]) == ("refused", None, None)
    reason = refused["reason"]
    assert refused_uri.startswith(f"gs://{BUCKET}/{prefix}/composites/{AOI}/sentinel-2/") and refused_uri != first_uri
    assert reason.startswith(f"AOI {AOI}: sentinel-2 composite refused, 0.0% of the grid's pixels valid (0 of ")
    assert f"in {refused_uri}, below the minimum 5.0%; not registered" in reason and "\n" not in reason
    (record,) = [r for r in runs_of(engine, "soilclay_composites")
                 if ":register_exports:" in r.run_id and r.run_id.endswith(f"{AOI}/sentinel-2")
                 and r.summary["sentinel-2"]["status"] == "refused"]
    assert record.status == "success" and record.summary["sentinel-2"] == {"status": "refused", "version": None,
                                                                           "reason": reason}

    # Only sentinel-1's version is announced; the refused COG is gone from the bucket, the registered stay.
    first_event, second_event = dags.events("soilclay://composites")
    assert [c["sensor"] for c in first_event["created"]] == ["sentinel-2"]
    assert [(c["sensor"], c["uri"]) for c in second_event["created"]] == [("sentinel-1", s1_uri)]
    names = {b.name for b in bucket.list_blobs(prefix=f"{prefix}/composites/")}
    assert names == {u.removeprefix(f"gs://{BUCKET}/") for u in (first_uri, s1_uri)}

    # Each export was made of exactly the recorded scenes of its sensor, and is registered with that count.
    with engine.connect() as conn:
        recorded = dict(conn.execute(text(
            "SELECT s.collection, count(*) FROM soilclay.scenes s JOIN soilclay.aois a USING (aoi_id) "
            "WHERE a.name = :n GROUP BY s.collection"), {"n": AOI}).all())
        counts = dict(conn.execute(text("SELECT uri, scene_count FROM soilclay.composites")).all())
    assert len(EXPORTED_SCENES[s1_uri]) == counts[s1_uri] == recorded["sentinel-1-grd"]
    assert len(EXPORTED_SCENES[first_uri]) == counts[first_uri] == recorded["sentinel-2-l2a"]
