"""The reader sees the view only; the writer writes data but not schema; the view shows the
champion's estimate on the newest composite, one row per parcel."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from tests.db import builders as b


def _denied(conn, sql: str) -> None:
    sp = conn.begin_nested()
    with pytest.raises(ProgrammingError, match="permission denied"):
        conn.execute(text(sql))
    sp.rollback()


@pytest.fixture
def populated(conn):
    """Two parcels; P1 has estimates from an old champion, the champion on two composites, and a
    rejected candidate; P2 has none."""
    a = b.aoi(conn)
    c1, c2 = b.composite(conn, a, 1), b.composite(conn, a, 2)
    r = b.run(conn)
    b.parcel(conn, "P1")
    b.parcel(conn, "P2", "SRID=4326;MULTIPOLYGON(((13 52,13.001 52,13.001 52.001,13 52.001,13 52)))")
    b.model(conn, 1, "retired")
    b.model(conn, 2, "champion")
    b.model(conn, 3, "rejected")
    b.prediction(conn, "P1", 1, c2, r, clay=11.0, lower=9.0, upper=13.0)
    b.prediction(conn, "P1", 2, c1, r, clay=21.0, lower=19.0, upper=23.0)
    b.prediction(conn, "P1", 2, c2, r, clay=22.0, lower=20.0, upper=24.0)
    b.prediction(conn, "P1", 3, c2, r, clay=33.0, lower=30.0, upper=36.0)
    return {"c2": c2}


def test_view_shows_champion_on_newest_composite(conn, populated):
    rows = conn.execute(text(
        "SELECT parcel_id, clay, clay_lower, clay_upper, model_version, s2_composite_version, "
        "ST_SRID(geom) AS srid FROM soilclay.parcel_clay_latest ORDER BY parcel_id")).mappings().all()
    assert [r["parcel_id"] for r in rows] == ["P1", "P2"]
    p1, p2 = rows
    assert (p1["clay"], p1["clay_lower"], p1["clay_upper"]) == (22.0, 20.0, 24.0)
    assert (p1["model_version"], p1["s2_composite_version"], p1["srid"]) == (2, 2, 4326)
    assert p2["clay"] is None and p2["model_version"] is None


def test_a_promotion_never_blanks_the_view(conn, populated):
    """Right after v4 is promoted it has estimated nothing: every parcel keeps its former champion's
    number (marked 'retired'); as v4's estimates arrive they replace them parcel by parcel."""
    from soilclay.db import models

    b.model(conn, 4, "candidate")
    models.promote(conn, 4, "beat v2 on the gate set")
    sql = text("SELECT parcel_id, clay, model_version, model_status, s2_composite_version "
               "FROM soilclay.parcel_clay_latest ORDER BY parcel_id")
    assert [tuple(r) for r in conn.execute(sql)] == [("P1", 22.0, 2, "retired", 2), ("P2", None, None, None, None)]
    b.prediction(conn, "P2", 4, populated["c2"], "run-1", clay=30.0, lower=28.0, upper=32.0)
    assert [tuple(r) for r in conn.execute(sql)] == [("P1", 22.0, 2, "retired", 2), ("P2", 30.0, 4, "champion", 2)]
    b.prediction(conn, "P1", 4, populated["c2"], "run-1", clay=25.0, lower=23.0, upper=27.0)
    assert [tuple(r) for r in conn.execute(sql)][0] == ("P1", 25.0, 4, "champion", 2)
    # candidates and rejected versions never show, whatever they estimated
    assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_clay_latest WHERE model_version = 3")).scalar() == 0


def test_reader_reads_the_view_only_and_writes_nothing(conn, populated):
    conn.execute(text("SET LOCAL ROLE soilclay_reader"))
    n = conn.execute(text("SELECT count(*) FROM soilclay.parcel_clay_latest WHERE clay > 20")).scalar()
    assert n == 1
    history = conn.execute(text("SELECT model_version, model_status, s2_composite_version, clay "
                                "FROM soilclay.parcel_clay_history WHERE parcel_id = 'P1' ORDER BY model_version, "
                                "s2_composite_version")).all()
    assert [tuple(r) for r in history] == [(1, "retired", 2, 11.0), (2, "champion", 1, 21.0), (2, "champion", 2, 22.0),
                                           (3, "rejected", 2, 33.0)]
    for table in ("parcels", "parcel_geometries", "parcel_predictions", "model_versions", "samples", "composites",
                  "alembic_version"):
        _denied(conn, f"SELECT * FROM soilclay.{table} LIMIT 1")
    _denied(conn, "INSERT INTO soilclay.pipeline_runs (run_id, stage) VALUES ('x', 'predict')")
    _denied(conn, "DELETE FROM soilclay.parcel_predictions")
    _denied(conn, "UPDATE soilclay.parcels SET source_file = 'x'")
    _denied(conn, "CREATE TABLE soilclay.sneaky (id int)")
    _denied(conn, "CREATE TABLE public.sneaky (id int)")


def test_writer_writes_rows_but_not_schema(conn, populated):
    conn.execute(text("SET LOCAL ROLE soilclay_writer"))
    conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage) VALUES ('w-1', 'predict')"))
    conn.execute(text("UPDATE soilclay.parcels SET source_file = 'reloaded.gpkg' WHERE parcel_id = 'P2'"))
    # a new geometry: the trigger keeps it in parcel_geometries with the writer's rights
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_Multi(ST_Buffer(geom, 0.0001)) WHERE parcel_id = 'P2'"))
    assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_geometries")).scalar() == 3
    assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_clay_latest")).scalar() == 2
    _denied(conn, "UPDATE soilclay.alembic_version SET version_num = 'x'")
    _denied(conn, "CREATE TABLE soilclay.sneaky (id int)")
    sp = conn.begin_nested()
    with pytest.raises(ProgrammingError, match="must be owner"):
        conn.execute(text("DROP TABLE soilclay.parcel_predictions"))
    sp.rollback()


def test_a_reshaped_parcel_shows_no_stale_estimate_and_keeps_its_history(conn, populated):
    """An estimate belongs to the geometry it was computed on: after P1 changes shape the view has no number
    for it (until predict estimates the new shape), and the history keeps the old estimates with the old shape."""
    old_area = conn.execute(text("SELECT ST_Area(geom) FROM soilclay.parcels WHERE parcel_id = 'P1'")).scalar()
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_Multi(ST_Buffer(geom, 0.0002)) WHERE parcel_id = 'P1'"))
    latest = conn.execute(text("SELECT clay, model_version, flags FROM soilclay.parcel_clay_latest "
                               "WHERE parcel_id = 'P1'")).one()
    assert tuple(latest) == (None, None, None)
    history = conn.execute(text("SELECT bool_or(geometry_current) AS current, count(*) AS n, "
                                "max(abs(ST_Area(geom) - :a)) AS area_diff FROM soilclay.parcel_clay_history "
                                "WHERE parcel_id = 'P1'"), {"a": old_area}).one()
    assert (history.current, history.n, history.area_diff) == (False, 4, 0.0)
    b.prediction(conn, "P1", 2, populated["c2"], "run-1", clay=27.0, lower=25.0, upper=29.0)  # the new shape
    latest = conn.execute(text("SELECT clay, model_version FROM soilclay.parcel_clay_latest "
                               "WHERE parcel_id = 'P1'")).one()
    assert tuple(latest) == (27.0, 2)
