"""Repository of ``soilclay.parcels``: the upsert of loaded parcels and the parcel queries of prediction.

A parcel is ``(source, parcel_id)``: the register or dataset it comes from and its id there, so two
registers with the same ids never collide. Inside the database it is ``parcel_key`` (an identity), which
also cuts an AOI's parcels into chunks: inclusive ``(first, last)`` ranges of keys. ``geom_hash`` is
generated from the stored geometry; an estimate references the ``(parcel_key, geom_hash)`` it was
computed on (``soilclay.parcel_geometries`` keeps every geometry a parcel has had, filled by a trigger),
so a changed geometry has no current estimate until predict estimates the new shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import shapely
from sqlalchemy import Connection, text

#: (first, last) parcel_key, inclusive.
ParcelRange = tuple[int, int]

#: The geometry hash of migration 0004's generated column ``parcels.geom_hash``, for an expression ``g``.
_HASH = "left(encode(sha256(ST_AsBinary({g})), 'hex'), 32)"

_UPSERT = text(f"""
WITH input AS (
    SELECT r.parcel_id, ST_Multi(ST_GeomFromWKB(decode(r.wkb, 'base64'), 4326)) AS geom,
           coalesce(r.attributes, '{{}}'::jsonb) AS attributes
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(parcel_id text, wkb text, attributes jsonb)
), previous AS (
    SELECT p.parcel_id, p.source_file, p.geom_hash FROM soilclay.parcels AS p JOIN input USING (parcel_id)
    WHERE p.source = :source
), written AS (
    INSERT INTO soilclay.parcels AS p (source, parcel_id, geom, source_file, attributes)
    SELECT :source, parcel_id, geom, :source_file, attributes FROM input
    ON CONFLICT (source, parcel_id) DO UPDATE
    SET geom = EXCLUDED.geom, source_file = EXCLUDED.source_file, attributes = EXCLUDED.attributes,
        updated_at = now()
    WHERE NOT ST_OrderingEquals(p.geom, EXCLUDED.geom)
       OR (p.source_file, p.attributes) IS DISTINCT FROM (EXCLUDED.source_file, EXCLUDED.attributes)
    RETURNING p.parcel_id, (p.xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE w.inserted) AS inserted,
       count(*) FILTER (WHERE NOT w.inserted) AS updated,
       count(*) FILTER (WHERE NOT w.inserted AND pr.geom_hash <> {_HASH.format(g="i.geom")}) AS reshaped,
       coalesce(array_agg(w.parcel_id ORDER BY w.parcel_id)
                FILTER (WHERE NOT w.inserted AND pr.source_file <> :source_file), '{{}}') AS taken_over
FROM written AS w JOIN input AS i USING (parcel_id) LEFT JOIN previous AS pr USING (parcel_id)
""")

#: Per other source: how many parcels of ``:source`` have exactly the geometry of one of its parcels.
_SAME_SHAPES = text("""
SELECT o.source, count(DISTINCT p.parcel_key) AS n FROM soilclay.parcels AS p
JOIN soilclay.parcels AS o ON o.geom_hash = p.geom_hash AND o.source <> p.source
WHERE p.source = :source GROUP BY o.source ORDER BY n DESC, o.source
""")

#: Parcels intersecting the AOI, optionally only those with ids in [lo, hi] (bytewise).
_IN_AOI = ("FROM soilclay.parcels p JOIN soilclay.aois a ON ST_Intersects(p.geom, a.geom) WHERE a.aoi_id = :a"
           " AND (CAST(:lo AS bigint) IS NULL OR p.parcel_key BETWEEN :lo AND :hi)")

_CHUNKS = text(
    "SELECT min(k) AS lo, max(k) AS hi FROM ("
    " SELECT p.parcel_key AS k, (row_number() OVER (ORDER BY p.parcel_key) - 1)"
    f" / :size AS chunk {_IN_AOI}) t GROUP BY chunk ORDER BY chunk")

_TO_ESTIMATE = text(
    f"SELECT p.parcel_key, p.source, p.parcel_id, p.geom_hash, ST_AsBinary(p.geom) AS wkb {_IN_AOI} AND NOT EXISTS ("
    " SELECT 1 FROM soilclay.parcel_predictions pp WHERE pp.parcel_key = p.parcel_key"
    " AND pp.geom_hash = p.geom_hash AND pp.model_version = :m AND pp.s2_composite_id = :s2"
    " AND pp.s1_composite_id IS NOT DISTINCT FROM :s1) ORDER BY p.parcel_key")


@dataclass(frozen=True)
class UpsertCounts:
    """What one upsert statement did: rows inserted, rows updated (of which ``reshaped`` got a new geometry),
    updated ids of the source last loaded from another file."""

    inserted: int
    updated: int
    reshaped: int = 0
    taken_over: tuple[str, ...] = ()


def upsert_parcels(conn: Connection, rows_json: str, source: str, source_file: str) -> UpsertCounts:
    """Insert or update the parcels of ``source`` by id; unchanged ones are not touched.

    ``rows_json`` is a JSON array of ``{"parcel_id", "wkb" (base64 of 2-D WKB in EPSG:4326), "attributes"}``.
    """
    row = conn.execute(_UPSERT, {"rows": rows_json, "source": source, "source_file": source_file}).one()
    return UpsertCounts(int(row.inserted), int(row.updated), int(row.reshaped), tuple(row.taken_over))


def same_shapes_elsewhere(conn: Connection, source: str) -> dict[str, int]:
    """Per other source, how many parcels of ``source`` have exactly the geometry of one of its parcels
    (the same register loaded under two sources, most likely)."""
    return {r.source: int(r.n) for r in conn.execute(_SAME_SHAPES, {"source": source})}


def _bounds(parcel_range: ParcelRange | None) -> dict[str, int | None]:
    lo, hi = parcel_range if parcel_range is not None else (None, None)
    return {"lo": lo, "hi": hi}


def count_in_aoi(conn: Connection, aoi_id: int, parcel_range: ParcelRange | None = None) -> int:
    """How many parcels intersect the AOI (only those in ``parcel_range`` when given)."""
    return int(conn.execute(text(f"SELECT count(*) {_IN_AOI}"), {"a": aoi_id, **_bounds(parcel_range)}).scalar_one())


def id_chunks(conn: Connection, aoi_id: int, size: int) -> tuple[ParcelRange, ...]:
    """The AOI's parcel keys cut into consecutive ranges of ``size`` parcels (the last may be shorter)."""
    rows = conn.execute(_CHUNKS, {"a": aoi_id, "size": size, "lo": None, "hi": None}).all()
    return tuple((r.lo, r.hi) for r in rows)


def parcels_to_estimate(conn: Connection, aoi_id: int, *, model_version: int, s2_composite_id: int,
                        s1_composite_id: int | None, parcel_range: ParcelRange | None = None) -> gpd.GeoDataFrame:
    """The AOI's parcels (in ``parcel_range``) whose current geometry has no estimate from ``model_version``
    on exactly these composites (a None S1 id matches only estimates made without S1): columns
    ``parcel_key``, ``source``, ``parcel_id``, ``geom_hash``, ``geometry`` (EPSG:4326), ordered by key."""
    rows = conn.execute(_TO_ESTIMATE, {"a": aoi_id, "m": model_version, "s2": s2_composite_id,
                                       "s1": s1_composite_id, **_bounds(parcel_range)}).all()
    geoms = list(shapely.from_wkb([bytes(r.wkb) for r in rows])) if rows else []
    return gpd.GeoDataFrame({"parcel_key": [int(r.parcel_key) for r in rows], "source": [r.source for r in rows],
                             "parcel_id": [r.parcel_id for r in rows], "geom_hash": [r.geom_hash for r in rows]},
                            geometry=geoms, crs="EPSG:4326")
