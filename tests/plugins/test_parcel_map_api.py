"""The parcel map plugin's app against real PostGIS and Airflow's real authentication.

A database of its own holds a small state built with ``tests/db/builders.py`` (two composite versions, a
retired and a champion model, parcels with, without and with an old estimate, scenes, a failed run, and a
failure of no AOI whose error holds credentials in clear, as rows stored before errors were redacted do). The
page reads all of it as ``soilclay_reader`` (views only); the tests check that for every query it sends. The
plugin's
app (``plugins/soilclay_parcel_map.py``, database from the ``soilclay_reader`` Airflow connection) is
mounted at ``/soilclay`` as the api-server mounts it; requests carry JWTs made by Airflow's own auth
manager (SimpleAuthManager) with the session's secret, validated by Airflow (revocation is checked in the
metadata database, so that is migrated once).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import struct
import subprocess
import sys

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import make_url

from soilclay.db import migrate
from soilclay.db import parcel_map as queries
from soilclay.db.engine import make_engine
from soilclay.errors import SoilclayError
from soilclay.redact import redact
from soilclay.stack.config import connection_json
from tests import airflow_env
from tests.db import builders

P2_GEOM = "SRID=4326;MULTIPOLYGON(((12.902 52.6,12.903 52.6,12.903 52.601,12.902 52.601,12.902 52.6)))"
P3_GEOM = "SRID=4326;MULTIPOLYGON(((12.9 52.602,12.901 52.602,12.901 52.603,12.9 52.603,12.9 52.602)))"
#: Far away from the others: not in the tiles of the first three.
FAR_GEOM = "SRID=4326;MULTIPOLYGON(((13.5 52.0,13.501 52.0,13.501 52.001,13.5 52.001,13.5 52.0)))"
FAILURE = "composite: scene S2B_X.tif is truncated (read 10 of 20 MB)"
#: An error stored unredacted (as before 06c02e4, or by another client): the page must not show the secrets.
SECRETS = ("hunter2", "tok3n", "s1gnature", "pgpass")
LEAKY = ("OperationalError: GET https://bob:hunter2@stac.example/x?token=tok3n&X-Amz-Signature=s1gnature&page=2 "
         "failed; conninfo host=db password=pgpass user=bob")
#: How the page shows it: URL credentials masked as ``redact`` masks them, libpq's ``password=`` too.
LEAKY_MASKED = ("OperationalError: GET https://bob:***@stac.example/x?token=***&X-Amz-Signature=***&page=2 "
                "failed; conninfo host=db password=*** user=bob")
#: The base tables: none is readable by the reader.
BASE_TABLES = ("aois", "scenes", "composites", "samples", "parcels", "parcel_geometries", "model_versions",
               "parcel_predictions", "pipeline_runs", "alembic_version")


# --- a minimal Mapbox vector tile decoder (protobuf wire format, vector_tile.proto v2) -------------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _packed(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v)
    return out


def _value(buf: bytes):
    for number, _, v in _fields(buf):
        if number == 1:
            return v.decode()
        if number == 2:
            return struct.unpack("<f", v)[0]
        if number == 3:
            return struct.unpack("<d", v)[0]
        if number in (4, 5):
            return v if number == 5 or v < 2 ** 63 else v - 2 ** 64
        if number == 6:
            return (v >> 1) ^ -(v & 1)
        if number == 7:
            return bool(v)
    return None


def decode_tile(data: bytes) -> dict[str, list[dict]]:
    """layer name -> features ({"id", "type", "properties"})."""
    layers = {}
    for number, _, layer_buf in _fields(data):
        if number != 3:
            continue
        name, keys, values, raw = None, [], [], []
        for n, _, v in _fields(layer_buf):
            if n == 1:
                name = v.decode()
            elif n == 2:
                raw.append(v)
            elif n == 3:
                keys.append(v.decode())
            elif n == 4:
                values.append(_value(v))
        features = []
        for fbuf in raw:
            feature = {"id": None, "type": None, "properties": {}}
            for n, _, v in _fields(fbuf):
                if n == 1:
                    feature["id"] = v
                elif n == 2:
                    tags = _packed(v)
                    feature["properties"] = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
                elif n == 3:
                    feature["type"] = v
            features.append(feature)
        layers[name] = features
    return layers


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


# --- the state, the app, the tokens ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def state(db_factory):
    url = db_factory("soilclay_map")
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        aoi = builders.aoi(conn, "map-aoi")
        builders.run(conn, "run-1", "predict")
        builders.run(conn, "run-2", "predict")
        conn.execute(text("UPDATE soilclay.pipeline_runs SET status = 'success', finished_at = now(), "
                          "params = '{\"aoi\": \"map-aoi\"}'"))
        conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage, aoi_id, status, error, finished_at) "
                          "VALUES ('run-bad', 'composite', :a, 'failed', :e, now())"), {"a": aoi, "e": FAILURE})
        conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage, status, error, dag_id, dag_run_id, "
                          "started_at, finished_at) VALUES ('run-leaky', 'sample_load', 'failed', :e, "
                          "'soilclay_samples', 'manual__1', now() - interval '1 hour', now())"), {"e": LEAKY})
        for collection, scene, days in (("sentinel-2-l2a", "S2A_1", 40), ("sentinel-2-l2a", "S2B_2", 3),
                                        ("sentinel-1-grd", "S1A_1", 9)):
            conn.execute(text("INSERT INTO soilclay.scenes (aoi_id, scene_id, collection, platform, acquired_at, "
                              "source, first_seen_at) VALUES (:a, :s, :c, 'x', now() - make_interval(days => :d), "
                              "'local', now() - make_interval(days => :d - 1))"),
                         {"a": aoi, "s": scene, "c": collection, "d": days})
        c1 = builders.composite(conn, aoi, 1)
        c2 = builders.composite(conn, aoi, 2)
        builders.composite(conn, aoi, 1, sensor="sentinel-1")
        builders.model(conn, 1, "retired")
        builders.model(conn, 2, "champion")
        for version, rmse in ((1, 4.2), (2, 3.1)):  # v3: gated, its scores only in the lineage
            conn.execute(text("UPDATE soilclay.model_versions SET metrics = :m, decision_reason = :r, "
                              "training_data = '{\"aoi\": \"map-aoi\"}' WHERE version = :v"),
                         {"v": version, "r": f"v{version} gated", "m": json.dumps(
                             {"models": {"cnn": {"r2": 0.9, "rmse": rmse + 0.5}},
                              "data": {"gate": {"samples": 12, "candidate_rmse": rmse, "champion_rmse": 5.0}}})})
        builders.model(conn, 3, "rejected")
        conn.execute(text("UPDATE soilclay.model_versions SET decision_reason = 'worse than v2', training_data = :t "
                          "WHERE version = 3"), {"t": json.dumps({"aoi": "map-aoi", "gate": {
                              "samples": 12, "candidate_rmse": 3.4, "champion_version": 2, "champion_rmse": 3.1}})})
        builders.parcel(conn, "P1")
        builders.parcel(conn, "P2", P2_GEOM)
        builders.parcel(conn, "P3", P3_GEOM)
        builders.parcel(conn, "FAR", FAR_GEOM)
        builders.prediction(conn, "P1", 1, c1, "run-1", clay=28.0, lower=22.0, upper=34.0)
        builders.prediction(conn, "P1", 2, c2, "run-2", clay=31.5, lower=27.25, upper=36.0, pixels=73)
        builders.prediction(conn, "P2", 2, c2, "run-2", clay=40.0, lower=30.0, upper=50.0,
                            flags=["mostly_out_of_domain"])
        builders.prediction(conn, "P3", 2, c2, "run-2", clay=None, lower=None, upper=None, pixels=2,
                            flags=["too_few_pixels"])
    yield url, engine
    engine.dispose()


@pytest.fixture(scope="module")
def airflow_auth():
    """Airflow's auth manager (SimpleAuthManager), initialised as the api-server does, with a JWT secret
    for this session; the metadata database migrated (token revocation is looked up there)."""
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "parcel-map-test-secret-" + "0123456789abcdef" * 4)
    airflow_env.migrated_metadata_db()
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture(scope="module")
def client(state, airflow_auth):
    import soilclay_parcel_map
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    url, _ = state
    old = os.environ.get("AIRFLOW_CONN_SOILCLAY_READER")
    os.environ["AIRFLOW_CONN_SOILCLAY_READER"] = connection_json(url)
    outer = FastAPI()
    outer.mount(soilclay_parcel_map.URL_PREFIX, soilclay_parcel_map.build_app())
    with TestClient(outer) as c:
        yield c
    if old is None:
        os.environ.pop("AIRFLOW_CONN_SOILCLAY_READER", None)
    else:
        os.environ["AIRFLOW_CONN_SOILCLAY_READER"] = old


def token_for(auth_manager, role: str = "viewer") -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=f"map-{role}", role=role))


@pytest.fixture(scope="module")
def auth(airflow_auth) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(airflow_auth)}"}


def key_of(engine, parcel_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT parcel_key FROM soilclay.parcels WHERE parcel_id = :p"),
                            {"p": parcel_id}).scalar_one()


# --- authentication ------------------------------------------------------------------------------------------

ENDPOINTS = ["/soilclay/api/status", "/soilclay/api/parcels/1", "/soilclay/tiles/16/35118/21470.pbf",
             "/soilclay/static/parcel_map.js", "/soilclay/static/ol.js"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_refuses_a_request_without_a_token(client, path):
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_forged_or_foreign_token_is_refused(client, airflow_auth, path):
    forged = token_for(airflow_auth)[:-4] + "AAAA"
    assert client.get(path, headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    import jwt

    claims = {"sub": "admin", "role": "admin", "aud": "apache-airflow"}
    foreign = jwt.encode(claims, "another-secret-" + "x" * 64, "HS512")
    assert client.get(path, headers={"Authorization": f"Bearer {foreign}"}).status_code == 403


def test_the_page_sends_a_browser_without_a_login_to_airflows_login(client):
    r = client.get("/soilclay/", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/auth/login?next=")
    assert "soilclay" in r.headers["location"]


def test_a_valid_token_is_accepted_in_the_header_and_in_the_ui_cookie(client, airflow_auth, auth):
    assert client.get("/soilclay/api/status", headers=auth).status_code == 200
    client.cookies.set("_token", token_for(airflow_auth, "admin"))
    try:
        r = client.get("/soilclay/")
    finally:
        client.cookies.clear()
    assert r.status_code == 200 and 'content="/soilclay/"' in r.text
    assert '<script src="/soilclay/static/ol.js">' in r.text


def test_a_user_without_a_role_is_forbidden(client, airflow_auth):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = airflow_auth.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    assert client.get("/soilclay/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 403


# --- tiles, detail, status -------------------------------------------------------------------------------------

def test_a_tile_holds_every_parcel_it_touches_with_its_latest_estimate(client, auth, state):
    _, engine = state
    z = 15
    x, y = tile_of(12.9005, 52.6005, z)
    r = client.get(f"/soilclay/tiles/{z}/{x}/{y}.pbf", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    features = decode_tile(r.content)["parcels"]
    by_id = {f["properties"]["parcel_id"]: f for f in features}
    assert set(by_id) == {"P1", "P2", "P3"}
    with engine.connect() as conn:
        rows = {r.parcel_id: r for r in conn.execute(text(
            "SELECT parcel_key, parcel_id, clay, clay_lower, clay_upper, pixel_count, model_version, "
            "s2_composite_version FROM soilclay.parcel_clay_latest WHERE parcel_id IN ('P1', 'P2', 'P3')"))}
    for pid, row in rows.items():
        props = by_id[pid]["properties"]
        assert by_id[pid]["id"] == row.parcel_key == props["parcel_key"]
        assert by_id[pid]["type"] == 3  # polygon
        assert props["source"] == "test" and props["pixel_count"] == row.pixel_count
        assert props["model_version"] == row.model_version == 2 and props["s2_composite_version"] == 2
        if row.clay is None:
            assert "clay" not in props
        else:
            assert props["clay"] == pytest.approx(row.clay)
            assert props["width"] == pytest.approx(row.clay_upper - row.clay_lower)
    assert by_id["P1"]["properties"]["clay"] == pytest.approx(31.5)  # the champion's, not the retired model's
    assert by_id["P2"]["properties"]["flags"] == "mostly_out_of_domain"
    assert by_id["P3"]["properties"]["flags"] == "too_few_pixels"


def test_a_tile_without_parcels_is_empty_and_a_tile_outside_the_grid_is_404(client, auth):
    assert client.get("/soilclay/tiles/15/0/0.pbf", headers=auth).content == b""
    assert client.get("/soilclay/tiles/3/8/1.pbf", headers=auth).status_code == 404


def test_the_detail_is_what_the_database_holds(client, auth, state):
    _, engine = state
    key = key_of(engine, "P1")
    r = client.get(f"/soilclay/api/parcels/{key}", headers=auth)
    assert r.status_code == 200
    doc = r.json()
    p = doc["parcel"]
    assert (p["parcel_id"], p["source"], p["parcel_key"]) == ("P1", "test", key)
    assert (p["clay"], p["clay_lower"], p["clay_upper"], p["width"]) == (31.5, 27.25, 36.0, 8.75)
    assert (p["pixel_count"], p["flags"], p["model_version"], p["model_status"]) == (73, [], 2, "champion")
    assert p["s2_composite_version"] == 2 and p["hectares"] > 0
    assert [(h["model_version"], h["s2_composite_version"], h["clay"]) for h in doc["history"]] == [
        (1, 1, 28.0), (2, 2, 31.5)]
    assert client.get("/soilclay/api/parcels/999999", headers=auth).status_code == 404
    assert client.get("/soilclay/api/parcels/not-a-key", headers=auth).status_code == 422


def test_status_lists_composite_versions_models_with_their_skill_and_failures(client, auth):
    doc = client.get("/soilclay/api/status", headers=auth).json()
    (aoi,) = doc["aois"]
    assert aoi["name"] == "map-aoi" and len(aoi["extent_3857"]) == 4
    assert [(c["sensor"], c["version"]) for c in aoi["composites"]] == [
        ("sentinel-1", 1), ("sentinel-2", 2), ("sentinel-2", 1)]
    assert [(m["version"], m["status"], m["gate_rmse"]) for m in doc["models"]] == [
        (1, "retired", 4.2), (2, "champion", 3.1), (3, "rejected", 3.4)]
    assert doc["champion"] == 2
    assert [f["error"] for f in aoi["failures"]] == [FAILURE]
    assert {r["run_id"] for r in aoi["runs"]} == {"run-1", "run-2", "run-bad"}
    assert doc["parcels_extent_3857"][0] < doc["parcels_extent_3857"][2]
    assert [f["run_id"] for f in doc["unassigned"]["failures"]] == ["run-leaky"]


def _expected_status(conn: Connection) -> dict:
    """The status document computed from the base tables (as their owner), independently of the views."""
    aois = [dict(r) for r in conn.execute(text(
        "SELECT aoi_id, name, grid_crs, description, created_at, "
        "ARRAY[ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)] AS extent_3857, "
        "ARRAY[ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom)] AS extent_4326 "
        "FROM soilclay.aois, LATERAL (SELECT ST_Transform(geom, 3857)::box2d AS b) AS e ORDER BY name")).mappings()]
    names = {a["name"]: a["aoi_id"] for a in aois}
    runs = [dict(r) for r in conn.execute(text(
        "SELECT run_id, stage, aoi_id, params->>'aoi' AS aoi, status, error, dag_id, dag_run_id, started_at, "
        "finished_at FROM soilclay.pipeline_runs ORDER BY started_at DESC, run_id")).mappings()]
    for r in runs:
        r["aoi_id"] = r["aoi_id"] if r["aoi_id"] is not None else names.get(r.pop("aoi"))
        r.pop("aoi", None)
        r["error"] = LEAKY_MASKED if r["error"] == LEAKY else None if r["error"] is None else redact(r["error"])
    for a in aois:
        a["scenes"] = [dict(r) for r in conn.execute(text(
            "SELECT collection, count(*) AS scenes, max(acquired_at) AS newest_acquired, "
            "max(first_seen_at) AS last_seen FROM soilclay.scenes WHERE aoi_id = :a "
            "GROUP BY collection ORDER BY collection"), {"a": a["aoi_id"]}).mappings()]
        a["composites"] = [dict(r) for r in conn.execute(text(
            "SELECT composite_id, sensor, version, period_start, period_end, scene_count, skipped_count, backend, "
            "recipe->'s2'->>'statistic' AS statistic, created_at FROM soilclay.composites WHERE aoi_id = :a "
            "ORDER BY sensor, version DESC"), {"a": a["aoi_id"]}).mappings()]
    by_aoi: dict = {}
    for r in runs:
        by_aoi.setdefault(r.pop("aoi_id"), []).append(r)

    def newest(aoi_id) -> dict:
        own = by_aoi.get(aoi_id, [])
        return {"runs": own[:15], "failures": [r for r in own if r["status"] == "failed"][:10]}

    for a in aois:
        a.update(newest(a["aoi_id"]))
    models = []
    for r in conn.execute(text("SELECT version, status, created_at, promoted_at, decision_reason, metrics, "
                               "training_data FROM soilclay.model_versions ORDER BY version")).mappings():
        gate = r["metrics"].get("data", {}).get("gate") or r["training_data"].get("gate", {})
        cnn = r["metrics"].get("models", {}).get("cnn", {})
        models.append({"version": r["version"], "status": r["status"], "created_at": r["created_at"],
                       "promoted_at": r["promoted_at"], "decision_reason": r["decision_reason"],
                       "gate_rmse": gate.get("candidate_rmse"), "gate_champion_rmse": gate.get("champion_rmse"),
                       "gate_samples": gate.get("samples"), "cnn_r2": cnn.get("r2"),
                       "cnn_rmse": cnn.get("rmse", r["metrics"].get("rmse")), "aoi": r["training_data"].get("aoi")})
    extent = conn.execute(text(
        "SELECT ARRAY[ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)] FROM "
        "(SELECT ST_Transform(ST_SetSRID(ST_Extent(geom)::geometry, 4326), 3857)::box2d AS b FROM soilclay.parcels) e"
    )).scalar_one()
    champion = next((m["version"] for m in models if m["status"] == "champion"), None)
    return {"aois": aois, "models": models, "champion": champion, "parcels_extent_3857": extent,
            "unassigned": newest(None)}


def test_status_read_as_the_reader_equals_the_database(client, auth, state):
    """Everything the panel shows is what the tables hold (errors with their credentials masked), read as the
    tables' owner without the views."""
    from pydantic_core import to_jsonable_python

    _, engine = state
    doc = client.get("/soilclay/api/status", headers=auth).json()
    with engine.connect() as conn:
        expected = to_jsonable_python(_expected_status(conn))
    assert doc == expected
    assert {len(a["scenes"]) for a in doc["aois"]} == {2}
    assert [m["decision_reason"] for m in doc["models"]] == ["v1 gated", "v2 gated", "worse than v2"]
    assert [(m["gate_champion_rmse"], m["cnn_rmse"]) for m in doc["models"]] == [(5.0, 4.7), (5.0, 3.6), (3.1, 5.0)]


def test_no_secret_of_a_stored_error_reaches_the_page(client, auth):
    """An error stored in clear (before redaction at write time existed) is masked by the view."""
    body = client.get("/soilclay/api/status", headers=auth).text
    assert not [s for s in SECRETS if s in body]
    (leaky,) = client.get("/soilclay/api/status", headers=auth).json()["unassigned"]["failures"]
    assert leaky["error"] == LEAKY_MASKED != redact(LEAKY)
    assert (leaky["stage"], leaky["dag_id"], leaky["dag_run_id"], leaky["status"]) == (
        "sample_load", "soilclay_samples", "manual__1", "failed")
    assert leaky["started_at"] < leaky["finished_at"]


# --- the database side: roles, read-only --------------------------------------------------------------------

@pytest.fixture
def recorded(state):
    """Every statement the app sends to the state's database while the test runs: (statement, parameters)."""
    url, own = state
    database = make_url(url).database
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if conn.engine is not own and conn.engine.url.database == database:
            statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    yield statements
    event.remove(Engine, "before_cursor_execute", record)


def _as_reader(engine: Engine):
    """A connection in a READ ONLY transaction after a plain ``SET ROLE soilclay_reader`` (not the page's
    helper); rolled back and discarded at the end."""
    conn = engine.connect()
    conn.begin()
    conn.execute(text("SET TRANSACTION READ ONLY"))
    conn.execute(text("SET ROLE soilclay_reader"))
    return conn


def _close(conn) -> None:
    conn.rollback()
    conn.invalidate()
    conn.close()


def test_every_query_the_app_sends_runs_as_the_reader(client, auth, state, recorded):
    """Every request reads in transactions that switch to soilclay_reader first, and every statement it sent
    succeeds again under ``SET ROLE soilclay_reader`` in a read-only transaction."""
    _, engine = state
    z = 15
    x, y = tile_of(12.9005, 52.6005, z)
    for path in ("/soilclay/api/status", f"/soilclay/api/parcels/{key_of(engine, 'P1')}", "/soilclay/api/parcels/0",
                 f"/soilclay/tiles/{z}/{x}/{y}.pbf", "/soilclay/tiles/15/0/0.pbf"):
        assert client.get(path, headers=auth).status_code in (200, 404)
    sets = [st for st, _ in recorded if st.startswith("SET ")]
    roles = [st for st in sets if "ROLE" in st]
    assert roles and set(roles) == {'SET LOCAL ROLE "soilclay_reader"'}
    assert len(roles) == sets.count("SET TRANSACTION READ ONLY") == 5  # one transaction per request
    queries_sent = [(st, p) for st, p in recorded if not st.startswith("SET ")]
    assert {name for st, _ in queries_sent for name in re.findall(r"soilclay\.(\w+)", st)} == {
        "status_aois", "status_composites", "status_model_versions", "status_pipeline_runs", "monitoring_scenes",
        "parcel_clay_latest", "parcel_clay_history"}
    conn = _as_reader(engine)
    try:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "soilclay_reader"
        for statement, parameters in queries_sent:
            conn.exec_driver_sql(statement, parameters)
    finally:
        _close(conn)


def test_every_query_function_succeeds_as_the_reader(state):
    """Each query of :mod:`soilclay.db.parcel_map` (all of them: a new one needs its arguments here) under a
    plain ``SET ROLE soilclay_reader`` in a read-only transaction."""
    _, engine = state
    x, y = tile_of(12.9005, 52.6005, 15)
    args = {"tile": (15, x, y), "parcel_detail": (key_of(engine, "P1"),),
            "parcels_in_extent": ((-2e7, -2e7, 2e7, 2e7),)}
    functions = {name: fn for name, fn in vars(queries).items() if inspect.isfunction(fn)
                 and fn.__module__ == queries.__name__
                 and list(inspect.signature(fn).parameters)[:1] == ["conn"]}
    assert {"tile", "parcel_detail", "parcels_extent", "aois", "scene_freshness", "composite_versions",
            "model_skill", "recent_runs", "recent_failures"} <= set(functions)
    conn = _as_reader(engine)
    try:
        results = {name: fn(conn, *args.get(name, ())) for name, fn in functions.items()}
    finally:
        _close(conn)
    assert results["tile"] and results["parcel_detail"] is not None and results["parcels_in_extent"] == 4
    assert results["aois"] and results["scene_freshness"] and results["model_skill"] and results["recent_failures"]


def test_the_page_transactions_run_as_the_reader(state):
    _, engine = state
    assert queries.ROLES == (queries.READER,) and queries.READER == "soilclay_reader"
    with queries.read_only_as(engine, queries.READER) as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "soilclay_reader"
        assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
        assert queries.parcels_in_extent(conn, (-2e7, -2e7, 2e7, 2e7)) == 4


def test_the_reader_is_denied_every_base_table(state):
    """Every table of the schema (as the catalogue lists them now, so a new one is covered too)."""
    _, engine = state
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'soilclay'")).scalars().all()
    assert set(BASE_TABLES) <= set(tables)
    for table in tables:
        with pytest.raises(SoilclayError, match="permission denied"), \
                queries.read_only_as(engine, queries.READER) as c:
            c.execute(text(f"SELECT 1 FROM soilclay.{table} LIMIT 1"))
    conn = _as_reader(engine)
    try:
        assert [t for t in tables if conn.execute(text("SELECT has_table_privilege(current_user, :t, 'SELECT')"),
                                                  {"t": f"soilclay.{t}"}).scalar_one()] == []
    finally:
        _close(conn)


def test_nothing_can_be_written_through_the_page_transactions(state):
    _, engine = state
    with pytest.raises(SoilclayError, match="read-only transaction"), \
            queries.read_only_as(engine, queries.READER) as conn:
        conn.execute(text("CREATE TEMP TABLE scratch (i int)"))  # the reader may create temporary tables
    with pytest.raises(SoilclayError, match="permission denied"), \
            queries.read_only_as(engine, queries.READER) as conn:
        conn.execute(text("DELETE FROM soilclay.status_composites"))
    for role in ("postgres", "soilclay_writer"):
        with pytest.raises(ValueError):
            queries.read_only_as(engine, role).__enter__()


# --- the plugin ------------------------------------------------------------------------------------------------

def test_airflow_registers_the_app_and_the_navigation_entry():
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "soilclay parcel map"] == ["/soilclay"]
    views = [v for p in plugins_manager._get_plugins()[0] for v in p.external_views]
    assert {"name": "Parcel map", "href": "/soilclay/", "url_route": "soilclay-parcel-map", "destination": "nav",
            "category": None} in views


def test_importing_the_plugin_loads_no_heavy_library():
    code = (f"import sys; sys.path.insert(0, {str(airflow_env.PLUGINS_FOLDER)!r}); import soilclay_parcel_map; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'rasterio', 'sklearn', 'ee') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, **airflow_env.ENV})
    assert out.stdout.strip().splitlines()[-1] == "[]"
