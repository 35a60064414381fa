"""Repository of ``soilclay.samples``: the upsert of loaded soil samples, the samples inside an AOI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, text

#: Columns of :func:`samples_in_aoi`.
POINT_COLUMNS = ("sample_id", "point_id", "lon", "lat", "clay")

_UPSERT = text("""
WITH input AS (
    SELECT r.point_id, ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) AS geom, r.clay, r.sand, r.silt, r.survey_date,
           coalesce(r.attributes, '{}'::jsonb) AS attributes
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        point_id text, lon float8, lat float8, clay real, sand real, silt real, survey_date date, attributes jsonb)
), written AS (
    INSERT INTO soilclay.samples AS s (source, point_id, geom, clay, sand, silt, survey_date, attributes)
    SELECT :source, point_id, geom, clay, sand, silt, survey_date, attributes FROM input
    ON CONFLICT (source, point_id, survey_date) DO UPDATE
    SET geom = EXCLUDED.geom, clay = EXCLUDED.clay, sand = EXCLUDED.sand, silt = EXCLUDED.silt,
        attributes = EXCLUDED.attributes, loaded_at = now()
    WHERE NOT ST_OrderingEquals(s.geom, EXCLUDED.geom)
       OR (s.clay, s.sand, s.silt, s.attributes)
          IS DISTINCT FROM (EXCLUDED.clay, EXCLUDED.sand, EXCLUDED.silt, EXCLUDED.attributes)
    RETURNING (s.xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM written
""")

_IN_AOI = text("""
SELECT s.sample_id, s.point_id, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
       s.clay::numeric::float8 AS clay  -- the real as written (23.4, not 23.399999618530273)
FROM soilclay.samples AS s
JOIN soilclay.aois AS a ON ST_Intersects(s.geom, a.geom)
WHERE a.aoi_id = :a AND (CAST(:sources AS text[]) IS NULL OR s.source = ANY(CAST(:sources AS text[])))
ORDER BY s.sample_id
""")


_OUTSIDE = text("""
SELECT count(*) AS outside,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM soilclay.aois AS a
                                      WHERE ST_Intersects(ST_FlipCoordinates(s.geom), a.geom))) AS swapped_inside,
       (array_agg(s.point_id || ' at lon ' || round(ST_X(s.geom)::numeric, 4) || ', lat '
                  || round(ST_Y(s.geom)::numeric, 4) ORDER BY s.point_id))[1:3] AS examples
FROM soilclay.samples AS s
WHERE s.source = :source AND s.point_id = ANY(CAST(:ids AS text[]))
  AND EXISTS (SELECT 1 FROM soilclay.aois)
  AND NOT EXISTS (SELECT 1 FROM soilclay.aois AS a WHERE ST_Intersects(s.geom, a.geom))
""")


@dataclass(frozen=True)
class OutsideAois:
    """Samples inside no registered AOI (none are counted while no AOI is registered)."""

    outside: int
    swapped_inside: int
    examples: tuple[str, ...]


def outside_aois(conn: Connection, source: str, point_ids: Sequence[str]) -> OutsideAois:
    """Of ``source``'s samples with these point ids, those inside no AOI, and how many of them would be
    inside one with longitude and latitude swapped."""
    row = conn.execute(_OUTSIDE, {"source": source, "ids": list(point_ids)}).one()
    return OutsideAois(int(row.outside), int(row.swapped_inside), tuple(row.examples or ()))


@dataclass(frozen=True)
class UpsertCounts:
    """What one upsert did: rows inserted and rows updated (the rest were unchanged)."""

    inserted: int
    updated: int


def upsert_samples(conn: Connection, rows_json: str, source: str) -> UpsertCounts:
    """Insert or update samples by (source, point id, survey date); unchanged ones are not touched.

    ``rows_json`` is a JSON array of ``{"point_id", "lon", "lat" (EPSG:4326), "clay", "sand", "silt",
    "survey_date" (ISO or null), "attributes"}``.
    """
    row = conn.execute(_UPSERT, {"rows": rows_json, "source": source}).one()
    return UpsertCounts(int(row.inserted), int(row.updated))


def samples_in_aoi(conn: Connection, aoi_id: int, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """The samples inside the AOI (only from ``sources`` when given), ordered by ``sample_id``: columns
    :data:`POINT_COLUMNS`, coordinates in EPSG:4326, clay as written in the file."""
    rows = conn.execute(_IN_AOI, {"a": aoi_id, "sources": list(sources) if sources is not None else None})
    return pd.DataFrame(rows.mappings().all(), columns=list(POINT_COLUMNS))
