"""Repository of ``soilclay.parcels``: the upsert of loaded parcels and the parcel queries of prediction.

Parcel ids are compared bytewise (``COLLATE "C"``) wherever ranges are involved, whatever the
database's collation, so a plan's chunk bounds mean the same in every query (and in Python, whose
string order is code-point order, the same as UTF-8 bytewise order).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import shapely
from sqlalchemy import Connection, text

#: (first, last) parcel id, inclusive, bytewise order.
ParcelRange = tuple[str, str]

_UPSERT = text("""
WITH input AS (
    SELECT r.parcel_id, ST_Multi(ST_GeomFromWKB(decode(r.wkb, 'base64'), 4326)) AS geom,
           coalesce(r.attributes, '{}'::jsonb) AS attributes
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(parcel_id text, wkb text, attributes jsonb)
), previous AS (
    SELECT p.parcel_id, p.source_file FROM soilclay.parcels AS p JOIN input USING (parcel_id)
), written AS (
    INSERT INTO soilclay.parcels AS p (parcel_id, geom, source_file, attributes)
    SELECT parcel_id, geom, :source_file, attributes FROM input
    ON CONFLICT (parcel_id) DO UPDATE
    SET geom = EXCLUDED.geom, source_file = EXCLUDED.source_file, attributes = EXCLUDED.attributes,
        updated_at = now()
    WHERE NOT ST_OrderingEquals(p.geom, EXCLUDED.geom)
       OR (p.source_file, p.attributes) IS DISTINCT FROM (EXCLUDED.source_file, EXCLUDED.attributes)
    RETURNING p.parcel_id, (p.xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE w.inserted) AS inserted,
       count(*) FILTER (WHERE NOT w.inserted) AS updated,
       coalesce(array_agg(w.parcel_id ORDER BY w.parcel_id)
                FILTER (WHERE NOT w.inserted AND pr.source_file <> :source_file), '{}') AS taken_over
FROM written AS w LEFT JOIN previous AS pr USING (parcel_id)
""")

#: Parcels intersecting the AOI, optionally only those with ids in [lo, hi] (bytewise).
_IN_AOI = ("FROM soilclay.parcels p JOIN soilclay.aois a ON ST_Intersects(p.geom, a.geom) WHERE a.aoi_id = :a"
           " AND (CAST(:lo AS text) IS NULL OR p.parcel_id COLLATE \"C\" BETWEEN :lo AND :hi)")

_CHUNKS = text(
    "SELECT min(id) AS lo, max(id) AS hi FROM ("
    " SELECT p.parcel_id COLLATE \"C\" AS id, (row_number() OVER (ORDER BY p.parcel_id COLLATE \"C\") - 1)"
    f" / :size AS chunk {_IN_AOI}) t GROUP BY chunk ORDER BY chunk")

_TO_ESTIMATE = text(
    f"SELECT p.parcel_id, ST_AsBinary(p.geom) AS wkb {_IN_AOI} AND NOT EXISTS ("
    " SELECT 1 FROM soilclay.parcel_predictions pp WHERE pp.parcel_id = p.parcel_id"
    " AND pp.model_version = :m AND pp.s2_composite_id = :s2"
    " AND pp.s1_composite_id IS NOT DISTINCT FROM :s1) ORDER BY p.parcel_id")


@dataclass(frozen=True)
class UpsertCounts:
    """What one upsert statement did: rows inserted, rows updated, updated ids last loaded from another file."""

    inserted: int
    updated: int
    taken_over: tuple[str, ...] = ()


def upsert_parcels(conn: Connection, rows_json: str, source_file: str) -> UpsertCounts:
    """Insert or update parcels by id; unchanged ones are not touched.

    ``rows_json`` is a JSON array of ``{"parcel_id", "wkb" (base64 of 2-D WKB in EPSG:4326), "attributes"}``.
    """
    row = conn.execute(_UPSERT, {"rows": rows_json, "source_file": source_file}).one()
    return UpsertCounts(int(row.inserted), int(row.updated), tuple(row.taken_over))


def _bounds(parcel_range: ParcelRange | None) -> dict[str, str | None]:
    lo, hi = parcel_range if parcel_range is not None else (None, None)
    return {"lo": lo, "hi": hi}


def count_in_aoi(conn: Connection, aoi_id: int, parcel_range: ParcelRange | None = None) -> int:
    """How many parcels intersect the AOI (only those in ``parcel_range`` when given)."""
    return int(conn.execute(text(f"SELECT count(*) {_IN_AOI}"), {"a": aoi_id, **_bounds(parcel_range)}).scalar_one())


def id_chunks(conn: Connection, aoi_id: int, size: int) -> tuple[ParcelRange, ...]:
    """The AOI's parcel ids cut into consecutive ranges of ``size`` ids (the last may be shorter)."""
    rows = conn.execute(_CHUNKS, {"a": aoi_id, "size": size, "lo": None, "hi": None}).all()
    return tuple((r.lo, r.hi) for r in rows)


def parcels_to_estimate(conn: Connection, aoi_id: int, *, model_version: int, s2_composite_id: int,
                        s1_composite_id: int | None, parcel_range: ParcelRange | None = None) -> gpd.GeoDataFrame:
    """The AOI's parcels (in ``parcel_range``) without an estimate from ``model_version`` on exactly these
    composites (a None S1 id matches only estimates made without S1): columns ``parcel_id``, ``geometry``
    (EPSG:4326), ordered by id."""
    rows = conn.execute(_TO_ESTIMATE, {"a": aoi_id, "m": model_version, "s2": s2_composite_id,
                                       "s1": s1_composite_id, **_bounds(parcel_range)}).all()
    geoms = list(shapely.from_wkb([bytes(r.wkb) for r in rows])) if rows else []
    return gpd.GeoDataFrame({"parcel_id": [r.parcel_id for r in rows]}, geometry=geoms, crs="EPSG:4326")
