"""Repository of ``soilclay.aois``: areas of interest, looked up by name."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from soilclay.db.tx import reading, transaction
from soilclay.errors import BadInputError

#: What the database's check ``aois_name_format`` accepts (``sql/migrations/versions/0001_foundation.py``).
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_NAMES_ALLOWED = ("lowercase letters, digits, '_' and '-', starting with a letter or digit, "
                  "at most 63 characters")
_GRID_EXPECTED = "expected a metric projected CRS, e.g. a UTM zone EPSG:326xx"


def _shown(value: object, limit: int = 40) -> str:
    """``repr`` of ``value``, cut to ``limit`` characters (one line whatever it holds)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return repr(value)


def check_aoi_name(name: object, where: str = "AOI name") -> str:
    """``name`` if the database would accept it as an AOI name, else :class:`BadInputError` saying why."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise BadInputError(f"{where}: {_shown(name)} is not a valid AOI name; expected {_NAMES_ALLOWED}")
    return name


def check_grid_crs(value: object, where: str = "grid CRS") -> str:
    """``value`` as ``EPSG:<code>`` if it is a metric projected CRS pyproj knows, else :class:`BadInputError`."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if not isinstance(value, str) or not value.strip():
        raise BadInputError(f"{where}: {_shown(value)} is not a CRS; {_GRID_EXPECTED}")
    try:
        crs = CRS.from_user_input(value.strip())
    except CRSError:
        raise BadInputError(f"{where}: {_shown(value)} is not a CRS pyproj knows; {_GRID_EXPECTED}") from None
    if not crs.is_projected:
        kind = "geographic (degrees)" if crs.is_geographic else "not projected"
        raise BadInputError(f"{where}: {_shown(value)} ({crs.name}) is {kind}; {_GRID_EXPECTED}")
    units = {axis.unit_name for axis in crs.axis_info}
    if units != {"metre"}:
        raise BadInputError(f"{where}: {_shown(value)} ({crs.name}) has units {', '.join(sorted(units))}, "
                            f"not metres; {_GRID_EXPECTED}")
    code = crs.to_epsg()
    if code is None:
        raise BadInputError(f"{where}: {_shown(value)} ({crs.name}) has no EPSG code; {_GRID_EXPECTED}")
    return f"EPSG:{code}"


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
    """Insert or update the AOI ``name`` (geometry repaired if invalid); returns it.

    ``name`` and ``grid_crs`` are checked (:func:`check_aoi_name`, :func:`check_grid_crs`) before the
    database is touched; ``grid_crs`` is stored as ``EPSG:<code>``."""
    name = check_aoi_name(name)
    grid_crs = check_grid_crs(grid_crs)
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
