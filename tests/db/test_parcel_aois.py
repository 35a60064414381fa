"""``soilclay.parcel_aois`` (migration 0005): which AOIs each parcel's current geometry intersects, kept by the
database's triggers whoever writes, so it always equals ``ST_Intersects`` of the stored geometries."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from soilclay.db import migrate
from soilclay.db.parcels import upsert_parcels


def _box(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"SRID=4326;MULTIPOLYGON((({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0})))"


WEST, EAST = _box(0, 0, 1, 1), _box(2, 0, 3, 1)


def _aoi(conn, name: str, geom: str) -> int:
    return conn.execute(text("INSERT INTO soilclay.aois (name, geom, grid_crs) VALUES (:n, ST_GeomFromEWKT(:g), "
                             "'EPSG:32631') RETURNING aoi_id"), {"n": name, "g": geom}).scalar_one()


def _parcels(conn, rows: dict[str, str]) -> None:
    """One multi-row statement (as the loader writes), so the statement-level triggers see several rows."""
    values = ", ".join(f"('t', :id{i}, ST_GeomFromEWKT(:g{i}), 't.gpkg')" for i in range(len(rows)))
    params = {}
    for i, (pid, g) in enumerate(rows.items()):
        params |= {f"id{i}": pid, f"g{i}": g}
    conn.execute(text(f"INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file) VALUES {values}"), params)


def _members(conn) -> set[tuple[str, str]]:
    """(AOI name, parcel id) of parcel_aois, after checking it is exactly what ST_Intersects says now,
    with the parcels' current geometry hashes."""
    stored = conn.execute(text("SELECT aoi_id, parcel_key, geom_hash FROM soilclay.parcel_aois")).all()
    truth = conn.execute(text("SELECT a.aoi_id, p.parcel_key, p.geom_hash FROM soilclay.parcels AS p "
                              "JOIN soilclay.aois AS a ON ST_Intersects(p.geom, a.geom)")).all()
    assert sorted(map(tuple, stored)) == sorted(map(tuple, truth))
    return {tuple(r) for r in conn.execute(text(
        "SELECT a.name, p.parcel_id FROM soilclay.parcel_aois AS m JOIN soilclay.aois AS a USING (aoi_id) "
        "JOIN soilclay.parcels AS p USING (parcel_key)"))}


def test_new_parcels_and_aois_get_their_memberships(conn):
    _aoi(conn, "west", WEST)
    _parcels(conn, {"in-west": _box(0.4, 0.4, 0.5, 0.5), "across": _box(0.9, 0.4, 2.1, 0.5),
                    "nowhere": _box(5, 5, 5.1, 5.1), "touching": _box(1, 0.2, 1.1, 0.3)})
    assert _members(conn) == {("west", "in-west"), ("west", "across"), ("west", "touching")}  # touching counts
    _aoi(conn, "east", EAST)  # a new AOI finds the parcels already there
    assert _members(conn) == {("west", "in-west"), ("west", "across"), ("west", "touching"), ("east", "across")}


def test_a_reshaped_or_moved_parcel_follows_its_geometry(conn):
    _aoi(conn, "west", WEST)
    _aoi(conn, "east", EAST)
    _parcels(conn, {"a": _box(0.4, 0.4, 0.5, 0.5), "b": _box(0.6, 0.6, 0.7, 0.7)})
    hash_of_a = text("SELECT m.geom_hash FROM soilclay.parcel_aois AS m JOIN soilclay.parcels USING (parcel_key) "
                     "WHERE parcel_id = 'a'")
    hash_before = conn.execute(hash_of_a).scalar_one()
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_Multi(ST_Buffer(geom, 0.01)) WHERE parcel_id = 'a'"))
    assert _members(conn) == {("west", "a"), ("west", "b")}  # reshaped in place: the new hash (checked)
    assert conn.execute(hash_of_a).scalar_one() != hash_before
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_GeomFromEWKT(:g) WHERE parcel_id = 'a'"),
                 {"g": _box(2.4, 0.4, 2.5, 0.5)})
    assert _members(conn) == {("east", "a"), ("west", "b")}  # moved out of west into east
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_GeomFromEWKT(:g) WHERE parcel_id = 'b'"),
                 {"g": _box(7, 7, 7.1, 7.1)})
    assert _members(conn) == {("east", "a")}  # moved out of every AOI
    conn.execute(text("UPDATE soilclay.parcels SET source_file = 'again.gpkg', attributes = '{\"x\": 1}'"))
    assert _members(conn) == {("east", "a")}  # other columns: nothing to do


def test_the_loaders_upsert_keeps_memberships(conn):
    _aoi(conn, "west", WEST)
    _aoi(conn, "east", EAST)

    def rows(**shapes) -> str:
        return json.dumps([{"parcel_id": k, "wkb": base64.b64encode(shapely.to_wkb(shapely.box(*v))).decode()}
                           for k, v in shapes.items()])

    upsert_parcels(conn, rows(p1=(0.1, 0.1, 0.2, 0.2), p2=(2.1, 0.1, 2.2, 0.2)), "reg", "reg.gpkg")
    assert _members(conn) == {("west", "p1"), ("east", "p2")}
    counts = upsert_parcels(conn, rows(p1=(2.3, 0.3, 2.4, 0.4), p2=(2.1, 0.1, 2.2, 0.2), p3=(0.5, 0.5, 0.6, 0.6)),
                            "reg", "reg.gpkg")  # one statement: p1 moved, p2 as it was, p3 new
    assert (counts.inserted, counts.updated, counts.reshaped) == (1, 1, 1)
    assert _members(conn) == {("east", "p1"), ("east", "p2"), ("west", "p3")}


def test_deleted_parcels_and_aois_take_their_memberships_with_them(conn):
    west = _aoi(conn, "west", WEST)
    _aoi(conn, "east", EAST)
    _parcels(conn, {"a": _box(0.4, 0.4, 0.5, 0.5), "across": _box(0.9, 0.4, 2.1, 0.5)})
    conn.execute(text("DELETE FROM soilclay.parcels WHERE parcel_id = 'a'"))
    assert _members(conn) == {("west", "across"), ("east", "across")}
    conn.execute(text("DELETE FROM soilclay.aois WHERE aoi_id = :a"), {"a": west})
    assert _members(conn) == {("east", "across")}


def test_an_aoi_whose_geometry_changes_is_recomputed(conn):
    west = _aoi(conn, "west", WEST)
    _parcels(conn, {"a": _box(0.4, 0.4, 0.5, 0.5), "b": _box(1.4, 0.4, 1.5, 0.5)})
    assert _members(conn) == {("west", "a")}
    conn.execute(text("UPDATE soilclay.aois SET geom = ST_GeomFromEWKT(:g) WHERE aoi_id = :a"),
                 {"g": _box(1, 0, 2, 1), "a": west})
    assert _members(conn) == {("west", "b")}
    conn.execute(text("UPDATE soilclay.aois SET geom = ST_GeomFromEWKT(:g), description = 'wider' WHERE aoi_id = :a"),
                 {"g": _box(0, 0, 2, 1), "a": west})
    assert _members(conn) == {("west", "a"), ("west", "b")}
    conn.execute(text("UPDATE soilclay.aois SET description = 'renamed only'"))
    assert _members(conn) == {("west", "a"), ("west", "b")}


def test_the_writer_keeps_memberships_but_cannot_write_them_and_the_reader_sees_the_view(conn):
    _aoi(conn, "west", WEST)
    conn.execute(text("SET LOCAL ROLE soilclay_writer"))
    _parcels(conn, {"a": _box(0.4, 0.4, 0.5, 0.5)})
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_GeomFromEWKT(:g) WHERE parcel_id = 'a'"),
                 {"g": _box(0.6, 0.6, 0.7, 0.7)})
    assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_aois")).scalar() == 1
    for sql in ("DELETE FROM soilclay.parcel_aois",
                "INSERT INTO soilclay.parcel_aois SELECT aoi_id, parcel_key, 'x' FROM soilclay.parcel_aois"):
        sp = conn.begin_nested()
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(sql))
        sp.rollback()
    conn.execute(text("RESET ROLE"))
    conn.execute(text("SET LOCAL ROLE soilclay_reader"))
    assert conn.execute(text("SELECT count(*) FROM soilclay.monitoring_parcel_aois")).scalar() == 1
    sp = conn.begin_nested()
    with pytest.raises(ProgrammingError, match="permission denied"):
        conn.execute(text("SELECT count(*) FROM soilclay.parcel_aois"))
    sp.rollback()


def test_an_aoi_added_while_parcels_are_being_written_still_gets_them(db_factory):
    """Neither transaction sees the other's uncommitted rows: the AOI's trigger waits for the parcel write
    (it locks the parcels against writes) and then reads the committed parcels."""
    url = db_factory()
    migrate.upgrade(url)
    eng = create_engine(url)
    try:
        with eng.connect() as writing, eng.connect() as adding:
            tx = writing.begin()
            _parcels(writing, {"a": _box(0.4, 0.4, 0.5, 0.5)})  # not committed yet
            errors: list[BaseException] = []

            def add() -> None:
                try:
                    with adding.begin():
                        _aoi(adding, "west", WEST)
                except BaseException as e:  # noqa: BLE001 - reported by the test
                    errors.append(e)

            thread = threading.Thread(target=add)
            thread.start()
            thread.join(1.0)
            assert thread.is_alive()  # waiting for the parcel write
            tx.commit()
            thread.join(30)
            assert not thread.is_alive() and not errors, errors
        with eng.connect() as conn:
            assert _members(conn) == {("west", "a")}
    finally:
        eng.dispose()
