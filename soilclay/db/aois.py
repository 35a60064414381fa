"""Repository of ``soilclay.aois``: areas of interest, looked up by name."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from soilclay.db.tx import reading, transaction
from soilclay.errors import BadInputError


@dataclass(frozen=True)
class Aoi:
    aoi_id: int
    name: str
    geometry: dict  # GeoJSON MultiPolygon, EPSG:4326
    grid_crs: str


def get_aoi(conn: Connection, name: str) -> Aoi:
    row = conn.execute(text(
        "SELECT aoi_id, name, ST_AsGeoJSON(geom)::jsonb AS g, grid_crs FROM soilclay.aois WHERE name = :n"),
        {"n": name}).first()
    if row is None:
        known = conn.execute(text("SELECT name FROM soilclay.aois ORDER BY name")).scalars().all()
        raise BadInputError(f"unknown AOI {name!r}; registered: {', '.join(known) or 'none'} "
                            "(add one with `soilclay aoi add FILE`)")
    return Aoi(row.aoi_id, row.name, row.g, row.grid_crs)


def register_aoi(engine: Engine, name: str, geometry: dict, grid_crs: str, description: str | None = None) -> Aoi:
    """Insert or update the AOI ``name`` (geometry repaired if invalid); returns it."""
    with transaction(engine, f"registering AOI {name}") as conn:
        conn.execute(text(
            "INSERT INTO soilclay.aois (name, geom, grid_crs, description) "
            "VALUES (:n, ST_Multi(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326))), :c, :d) "
            "ON CONFLICT (name) DO UPDATE SET geom = EXCLUDED.geom, grid_crs = EXCLUDED.grid_crs, "
            "description = EXCLUDED.description"),
            {"n": name, "g": json.dumps(geometry), "c": grid_crs, "d": description})
        return get_aoi(conn, name)


def load_aoi(engine: Engine, name: str) -> Aoi:
    """:func:`get_aoi` in a read of its own."""
    with reading(engine, f"looking up AOI {name}") as conn:
        return get_aoi(conn, name)


@dataclass(frozen=True)
class AoiSummary:
    name: str
    grid_crs: str
    area_km2: float
    scenes: int


def summaries(conn: Connection) -> list[AoiSummary]:
    """Every AOI with its area and the number of scenes recorded, by name."""
    rows = conn.execute(text(
        "SELECT a.name, a.grid_crs, round((ST_Area(a.geom::geography) / 1e6)::numeric, 1)::float8 AS km2, "
        "count(s.scene_id) AS scenes FROM soilclay.aois a LEFT JOIN soilclay.scenes s USING (aoi_id) "
        "GROUP BY a.aoi_id ORDER BY a.name")).all()
    return [AoiSummary(r.name, r.grid_crs, r.km2, r.scenes) for r in rows]
