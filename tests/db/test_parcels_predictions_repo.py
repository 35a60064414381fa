"""The parcels, samples and predictions repositories against PostGIS, their error translation, and the
prediction request object."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
import shapely
from sqlalchemy import text

from soilclay.db import parcels, predictions, samples
from soilclay.db.engine import make_engine
from soilclay.db.tx import reading, transaction
from soilclay.errors import BadInputError, TransientExternalError
from soilclay.predict.run import NEWEST, NONE, CompositePin, PredictPlan, PredictRequest
from soilclay.serving.factory import ServingChoice
from soilclay.settings import Settings
from tests.db import builders as b

INSIDE = "SRID=4326;MULTIPOLYGON(((12.9002 52.6002,12.9004 52.6002,12.9004 52.6004,12.9002 52.6004,12.9002 52.6002)))"
OUTSIDE = "SRID=4326;MULTIPOLYGON(((13.5 52.6,13.501 52.6,13.501 52.601,13.5 52.601,13.5 52.6)))"


def _parcel_rows(*items: tuple[str, str, dict]) -> str:
    """The upsert's JSON rows from (id, WKT, attributes)."""
    return json.dumps([{"parcel_id": pid, "wkb": base64.b64encode(shapely.from_wkt(wkt).wkb).decode(),
                        "attributes": attrs} for pid, wkt, attrs in items])


def _key(conn, parcel_id: str) -> tuple[int, str]:
    """(parcel_key, current geom_hash) of the test parcel ``parcel_id``."""
    return tuple(conn.execute(text("SELECT parcel_key, geom_hash FROM soilclay.parcels WHERE parcel_id = :p"),
                              {"p": parcel_id}).one())


def _estimate(geometry: tuple[int, str], model: int, s2: int, s1: int | None = None, clay: float = 30.0) -> tuple:
    return (*geometry, model, s2, s1, "run-1", clay, clay, clay - 5, clay + 5, 40, 0.8, 0.0, [])


@pytest.fixture
def world(conn):
    """An AOI with S2 and S1 composites, a champion, a run, and parcels inside (inserted, so keyed, in the
    order p3, Z, P2, P1) and one outside."""
    aoi = b.aoi(conn)
    s2, s1 = b.composite(conn, aoi), b.composite(conn, aoi, sensor="sentinel-1")
    b.model(conn, 1, "champion")
    b.run(conn)
    for pid in ("p3", "Z", "P2", "P1"):
        b.parcel(conn, pid, INSIDE)
    b.parcel(conn, "FAR", OUTSIDE)
    return {"aoi": aoi, "s2": s2, "s1": s1}


# --------------------------------------------------------------------------- parcels


def test_upsert_parcels_counts_inserts_updates_reshapes_and_takeovers_per_source(conn):
    square, moved = "POLYGON((0 0,1 0,1 1,0 1,0 0))", "POLYGON((0 0,2 0,2 2,0 2,0 0))"
    rows = _parcel_rows(("U1", square, {"crop": "rye"}), ("U2", square, {}))
    first = parcels.upsert_parcels(conn, rows, "reg-a", "a.gpkg")
    assert first == parcels.UpsertCounts(2, 0, 0, ())
    assert parcels.upsert_parcels(conn, _parcel_rows(("U1", square, {"crop": "rye"})), "reg-a", "a.gpkg") == (
        parcels.UpsertCounts(0, 0, 0, ()))
    again = parcels.upsert_parcels(conn, _parcel_rows(("U1", moved, {"crop": "rye"}), ("U2", square, {})), "reg-a",
                                   "b.gpkg")
    assert again == parcels.UpsertCounts(0, 2, 1, ("U1", "U2"))  # both from another file, U1 reshaped
    stored = conn.execute(text("SELECT ST_GeometryType(geom), source_file FROM soilclay.parcels "
                               "WHERE parcel_id = 'U1'")).one()
    assert tuple(stored) == ("ST_MultiPolygon", "b.gpkg")
    # Another register with the same ids: new parcels, nothing of reg-a touched; the same shapes are reported.
    assert parcels.upsert_parcels(conn, rows, "reg-b", "c.gpkg") == parcels.UpsertCounts(2, 0, 0, ())
    assert conn.execute(text("SELECT count(*) FROM soilclay.parcels")).scalar() == 4
    assert parcels.same_shapes_elsewhere(conn, "reg-b") == {"reg-a": 2}  # U1 of reg-b is U2's square of reg-a


def test_parcels_of_an_aoi_counted_and_chunked_by_key(conn, world):
    p3, z, p2, p1 = (_key(conn, pid)[0] for pid in ("p3", "Z", "P2", "P1"))
    assert p3 < z < p2 < p1
    assert parcels.count_in_aoi(conn, world["aoi"]) == 4  # FAR lies outside
    assert parcels.count_in_aoi(conn, world["aoi"], (z, p2)) == 2
    assert parcels.id_chunks(conn, world["aoi"], 2) == ((p3, z), (p2, p1))
    assert parcels.id_chunks(conn, world["aoi"], 3) == ((p3, p2), (p1, p1))
    nowhere = world["aoi"] + 1000
    assert parcels.id_chunks(conn, nowhere, 3) == () and parcels.count_in_aoi(conn, nowhere) == 0


def test_parcels_to_estimate_skip_those_estimated_on_exactly_these_composites(conn, world):
    aoi, s2, s1 = world["aoi"], world["s2"], world["s1"]
    b.prediction(conn, "P1", 1, s2, "run-1")  # without S1
    b.prediction(conn, "P2", 1, s2, "run-1", s1=s1)
    todo = parcels.parcels_to_estimate(conn, aoi, model_version=1, s2_composite_id=s2, s1_composite_id=None)
    assert todo.parcel_id.tolist() == ["p3", "Z", "P2"] and todo.crs.to_epsg() == 4326
    assert todo.geometry.iloc[0].geom_type == "MultiPolygon" and set(todo.source) == {"test"}
    assert list(zip(todo.parcel_key, todo.geom_hash, strict=True)) == [_key(conn, p) for p in ("p3", "Z", "P2")]
    z, p1 = _key(conn, "Z")[0], _key(conn, "P1")[0]
    with_s1 = parcels.parcels_to_estimate(conn, aoi, model_version=1, s2_composite_id=s2, s1_composite_id=s1,
                                          parcel_range=(z, p1))
    assert with_s1.parcel_id.tolist() == ["Z", "P1"]
    assert parcels.parcels_to_estimate(conn, aoi, model_version=1, s2_composite_id=s2, s1_composite_id=None,
                                       parcel_range=(p1, p1)).empty
    # P1 gets a new shape: its estimate is of the old one, so it is to be estimated again.
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_Multi(ST_Buffer(geom, 0.00001)) "
                      "WHERE parcel_id = 'P1'"))
    assert parcels.parcels_to_estimate(conn, aoi, model_version=1, s2_composite_id=s2, s1_composite_id=None,
                                       parcel_range=(p1, p1)).parcel_id.tolist() == ["P1"]


# --------------------------------------------------------------------------- predictions


def test_insert_estimates_adds_new_rows_only_and_may_run_twice_in_one_transaction(conn, world):
    s2 = world["s2"]
    p1, p2, z = (_key(conn, p) for p in ("P1", "P2", "Z"))
    assert predictions.insert_estimates(conn, [_estimate(p1, 1, s2), _estimate(p2, 1, s2)]) == 2
    assert predictions.insert_estimates(conn, [_estimate(p1, 1, s2, clay=50.0), _estimate(z, 1, s2)]) == 1
    assert predictions.insert_estimates(conn, []) == 0
    clay = conn.execute(text("SELECT clay_mean FROM soilclay.parcel_predictions WHERE parcel_key = :k"),
                        {"k": p1[0]}).scalar()
    assert clay == 30.0  # the first estimate stays


# --------------------------------------------------------------------------- samples


def test_upsert_samples_and_the_samples_inside_an_aoi(conn, world):
    rows = [{"point_id": "1", "lon": 12.9003, "lat": 52.6003, "clay": 23.4, "sand": None, "silt": None,
             "survey_date": "2018-06-01", "attributes": {"OC": "12"}},
            {"point_id": "2", "lon": 13.6, "lat": 52.6, "clay": 10.0, "sand": None, "silt": None,
             "survey_date": None, "attributes": {}}]
    assert samples.upsert_samples(conn, json.dumps(rows), "repo-a") == samples.UpsertCounts(2, 0)
    assert samples.upsert_samples(conn, json.dumps(rows), "repo-a") == samples.UpsertCounts(0, 0)
    rows[0]["clay"] = 25.0
    assert samples.upsert_samples(conn, json.dumps(rows[:1]), "repo-a") == samples.UpsertCounts(0, 1)
    assert samples.upsert_samples(conn, json.dumps(rows[:1]), "repo-b") == samples.UpsertCounts(1, 0)

    inside = samples.samples_in_aoi(conn, world["aoi"], None)
    assert list(inside.columns) == list(samples.POINT_COLUMNS) and inside.point_id.tolist() == ["1", "1"]
    only_a = samples.samples_in_aoi(conn, world["aoi"], ["repo-a"])
    assert len(only_a) == 1 and only_a.iloc[0][["lon", "lat", "clay"]].tolist() == [12.9003, 52.6003, 25.0]
    assert samples.samples_in_aoi(conn, world["aoi"], []).empty


# --------------------------------------------------------------------------- error translation


def test_a_refused_estimate_is_bad_input_naming_what_was_done(engine):
    row = _estimate((910001, "0" * 32), 91, 91, clay=150.0)  # the CHECK refuses it before any foreign key
    with pytest.raises(BadInputError, match=r"^writing test estimates: the database refused the data: .*"
                                            r"parcel_predictions_\w+_range"):
        with transaction(engine, "writing test estimates") as conn:
            predictions.insert_estimates(conn, [row])
    bad_copy = (*_estimate((910001, "0" * 32), 91, 91)[:10], "many", 0.8, 0.0, [])  # pixel_count: COPY refuses it
    with pytest.raises(BadInputError, match=r"^copying estimates: the database refused the data: .*integer"):
        with transaction(engine, "copying estimates") as conn:
            predictions.insert_estimates(conn, [bad_copy])
    with reading(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_predictions WHERE parcel_key = 910001")
                            ).scalar() == 0


def test_a_refused_parcel_is_bad_input_naming_the_file(engine):
    rows = json.dumps([{"parcel_id": "BROKEN-1", "wkb": "bm90IGEgZ2VvbWV0cnk=", "attributes": {}}])
    with pytest.raises(BadInputError, match=r"^loading parcels from /x/fields\.gpkg: the database "):
        with transaction(engine, "loading parcels from /x/fields.gpkg") as conn:
            parcels.upsert_parcels(conn, rows, "fields", "fields.gpkg")


def test_a_lost_connection_is_transient(migrated_url, engine):
    own = make_engine(migrated_url)
    try:
        with pytest.raises(TransientExternalError, match=r"^counting parcels: the database"):
            with reading(own, "counting parcels") as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                with engine.connect() as other:
                    assert other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
                parcels.count_in_aoi(conn, 1)
        with reading(own) as conn:  # the pool recovers
            assert parcels.count_in_aoi(conn, 1) >= 0
    finally:
        own.dispose()
    closed = make_engine("postgresql+psycopg://soilclay@127.0.0.1:1/x")
    try:
        with pytest.raises(TransientExternalError, match=r"^planning: the database is unreachable"):
            with reading(closed, "planning") as conn:
                parcels.count_in_aoi(conn, 1)
    finally:
        closed.dispose()


# --------------------------------------------------------------------------- the request object


def test_prediction_request_is_frozen_and_validated(tmp_path):
    request = PredictRequest("demo", "run-1", parcel_range=[1, 6], workdir=str(tmp_path))
    assert request.parcel_range == (1, 6) and request.workdir == Path(tmp_path)
    assert (request.s2, request.s1, request.model_version) == (NEWEST, NEWEST, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.aoi = "other"  # type: ignore[misc]
    for kwargs, message in [
        ({"aoi": " "}, "aoi must be a non-empty string"),
        ({"run_id": None}, "run_id must be a non-empty string"),
        ({"model_version": 0}, "model_version must be an integer >= 1"),
        ({"model_version": True}, "model_version must be an integer >= 1"),
        ({"s2": NONE}, "need a Sentinel-2 composite"),
        ({"s1": 5}, r"s1 must be a CompositePin \(NEWEST, NONE or CompositePin.of\(id\)\)"),
        ({"parcel_range": (9, 1)}, "first <= last"),
        ({"parcel_range": (1,)}, "parcel_range must be"),
        ({"parcel_range": ("A", "F")}, "parcel keys"),
        ({"max_pixels": 0}, "max_pixels must be an integer >= 1"),
        ({"min_pixels": -1}, "min_pixels must be an integer >= 0"),
        ({"inward_buffer_m": float("nan")}, "inward_buffer_m must be a finite number"),
        ({"inward_buffer_m": -1}, "inward_buffer_m must be a finite number"),
    ]:
        with pytest.raises(BadInputError, match=message):
            PredictRequest(**{"aoi": "demo", "run_id": "run-1", **kwargs})
    assert str(CompositePin.of(4)) == "composite 4" and CompositePin.exactly(None) == NONE
    for args in [("id",), ("newest", 3), ("latest",), ("id", 0), ("id", True)]:
        with pytest.raises(BadInputError, match="composite"):
            CompositePin(*args)  # type: ignore[arg-type]


def test_a_plan_makes_the_request_of_each_chunk():
    plan = PredictPlan("demo", 2, 3, None, 9, ((1, 6), (7, 11)))
    assert PredictPlan.from_dict(json.loads(json.dumps(plan.as_dict()))) == plan
    request = plan.request_for([7, 11], run_id="r", max_pixels=50)
    assert request == PredictRequest("demo", "r", 2, CompositePin.of(3), NONE, (7, 11), max_pixels=50)
    assert plan.chunk_args()[1] == {"aoi": "demo", "model_version": 2, "s2_composite_id": 3, "s1_composite_id": None,
                                    "first": 7, "last": 11}
    with pytest.raises(BadInputError, match=r"\(1, 11\) is not a chunk of the plan for AOI demo"):
        plan.request_for((1, 11), run_id="r")
    with pytest.raises(BadInputError, match="not a prediction plan"):
        PredictPlan.from_dict({"aoi": "demo"})


def test_serving_choice_from_settings():
    settings = Settings(tf_serving_grpc="ts:9000", tf_serving_rest="http://ts:9001", tf_serving_model="m",
                        tf_serving_base_path="/srv/m", tf_serving_config_dir=Path("/cfg"))
    choice = ServingChoice.from_settings(settings, "tfserving", "rest")
    assert (choice.target, choice.model_name, choice.base_path, choice.config_dir) == (
        "http://ts:9001", "m", "/srv/m", Path("/cfg"))
    assert ServingChoice.from_settings(settings, "tfserving").target == "ts:9000"
    with pytest.raises(BadInputError, match="serving must be one of local, tfserving"):
        ServingChoice(kind="http")  # type: ignore[arg-type]
