"""The parcel map plugin's app against real PostGIS and Airflow's real authentication.

A database of its own holds a small state built with ``tests/db/builders.py`` (two composite versions, a
retired and a champion model, parcels with, without and with an old estimate, a failed run). The plugin's
app (``plugins/soilclay_parcel_map.py``, database from the ``soilclay_reader`` Airflow connection) is
mounted at ``/soilclay`` as the api-server mounts it; requests carry JWTs made by Airflow's own auth
manager (SimpleAuthManager) with the session's secret, validated by Airflow (revocation is checked in the
metadata database, so that is migrated once).
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys

import pytest
from sqlalchemy import text

from soilclay.db import migrate
from soilclay.db import parcel_map as queries
from soilclay.db.engine import make_engine
from soilclay.errors import SoilclayError
from soilclay.stack.config import connection_json
from tests import airflow_env
from tests.db import builders

P2_GEOM = "SRID=4326;MULTIPOLYGON(((12.902 52.6,12.903 52.6,12.903 52.601,12.902 52.601,12.902 52.6)))"
P3_GEOM = "SRID=4326;MULTIPOLYGON(((12.9 52.602,12.901 52.602,12.901 52.603,12.9 52.603,12.9 52.602)))"
#: Far away from the others: not in the tiles of the first three.
FAR_GEOM = "SRID=4326;MULTIPOLYGON(((13.5 52.0,13.501 52.0,13.501 52.001,13.5 52.001,13.5 52.0)))"
FAILURE = "composite: scene S2B_X.tif is truncated (read 10 of 20 MB)"


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
        c1 = builders.composite(conn, aoi, 1)
        c2 = builders.composite(conn, aoi, 2)
        builders.composite(conn, aoi, 1, sensor="sentinel-1")
        builders.model(conn, 1, "retired")
        builders.model(conn, 2, "champion")
        for version, rmse in ((1, 4.2), (2, 3.1)):
            conn.execute(text("UPDATE soilclay.model_versions SET metrics = :m WHERE version = :v"),
                         {"v": version, "m": json.dumps({"models": {"cnn": {"r2": 0.9, "rmse": rmse + 0.5}},
                                                         "data": {"gate": {"samples": 12, "candidate_rmse": rmse}}})})
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
        (1, "retired", 4.2), (2, "champion", 3.1)]
    assert doc["champion"] == 2
    assert [f["error"] for f in aoi["failures"]] == [FAILURE]
    assert {r["run_id"] for r in aoi["runs"]} == {"run-1", "run-2", "run-bad"}
    assert doc["parcels_extent_3857"][0] < doc["parcels_extent_3857"][2]


# --- the database side: roles, read-only --------------------------------------------------------------------

def test_the_parcel_queries_run_as_the_reader_which_sees_no_base_table(state):
    _, engine = state
    with queries.read_only_as(engine, queries.READER) as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "soilclay_reader"
        assert queries.parcels_in_extent(conn, (-2e7, -2e7, 2e7, 2e7)) == 4
    with pytest.raises(SoilclayError, match="permission denied"), queries.read_only_as(engine, queries.READER) as c:
        c.execute(text("SELECT count(*) FROM soilclay.parcels"))


def test_nothing_can_be_written_through_the_page_transactions(state):
    _, engine = state
    with pytest.raises(SoilclayError, match="read-only transaction"), \
            queries.read_only_as(engine, queries.STATUS_ROLE) as conn:
        conn.execute(text("DELETE FROM soilclay.pipeline_runs"))
    with pytest.raises(ValueError):
        queries.read_only_as(engine, "postgres").__enter__()


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
