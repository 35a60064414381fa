"""Areas of interest: register from a GeoJSON/vector file, look up by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text

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


def read_aoi_file(path: Path) -> tuple[dict, dict]:
    """(geometry in EPSG:4326 as GeoJSON, properties of the first feature) from a vector file."""
    import geopandas as gpd

    if not path.exists():
        raise BadInputError(f"AOI file not found: {path}")
    frame = gpd.read_file(path)
    if frame.empty:
        raise BadInputError(f"AOI file {path} has no features")
    if frame.crs is None:
        raise BadInputError(f"AOI file {path} declares no CRS")
    frame = frame.to_crs(4326)
    geom = frame.geometry.union_all()
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise BadInputError(f"AOI in {path} must be areal, found {geom.geom_type}")
    props = {k: v for k, v in frame.iloc[0].items() if k != "geometry"}
    return json.loads(json.dumps(geom.__geo_interface__)), props


def register_aoi(engine: Engine, name: str, geometry: dict, grid_crs: str, description: str | None = None) -> Aoi:
    """Insert or update the AOI ``name`` (geometry repaired if invalid); returns it."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO soilclay.aois (name, geom, grid_crs, description) "
            "VALUES (:n, ST_Multi(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326))), :c, :d) "
            "ON CONFLICT (name) DO UPDATE SET geom = EXCLUDED.geom, grid_crs = EXCLUDED.grid_crs, "
            "description = EXCLUDED.description"),
            {"n": name, "g": json.dumps(geometry), "c": grid_crs, "d": description})
        return get_aoi(conn, name)
