"""Upsert parcels read by :mod:`soilclay.parcels.read` into ``soilclay.parcels`` in one transaction."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import geopandas as gpd
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError, InternalError

from soilclay.errors import BadInputError
from soilclay.parcels.read import ParcelReport, read_parcels

log = logging.getLogger(__name__)

#: Rows per upsert statement (all statements run in one transaction).
CHUNK = 20_000



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


def _json_rows(parcels: gpd.GeoDataFrame) -> str:
    wkbs = shapely.to_wkb(parcels.geometry.to_numpy(), output_dimension=2, byte_order=1)
    rows = [{"parcel_id": pid, "wkb": base64.b64encode(w).decode("ascii"), "attributes": attrs}
            for pid, w, attrs in zip(parcels["parcel_id"], wkbs, parcels["attributes"], strict=True)]
    return json.dumps(rows, ensure_ascii=False, allow_nan=False)


def load_parcels(engine: Engine, path: str | Path, *, layer: str | None = None,
                 id_column: str | None = None, id_prefix: str = "") -> ParcelReport:
    """Read ``path`` (:func:`read_parcels`) and upsert its valid parcels by id in one transaction.

    Unchanged parcels are not touched (reloading a file reports them all unchanged); a changed
    geometry, attribute or source file name updates the row and its ``updated_at``. Rejected
    features are reported, never stored.
    """
    path = Path(path)
    parcels, report = read_parcels(path, layer=layer, id_column=id_column, id_prefix=id_prefix)
    report.stored = True
    if parcels.empty:
        log.warning("%s: no valid parcels to load", path)
        return report
    taken_over: list[str] = []
    try:
        with engine.begin() as conn:
            for start in range(0, len(parcels), CHUNK):
                chunk = parcels.iloc[start:start + CHUNK]
                counts = conn.execute(_UPSERT, {"rows": _json_rows(chunk), "source_file": path.name}).one()
                report.inserted += counts.inserted
                report.updated += counts.updated
                taken_over += list(counts.taken_over)
    except (IntegrityError, DataError, InternalError) as e:
        raise BadInputError(f"the database refused the parcels of {path}: {e.orig}") from e
    report.unchanged = report.valid - report.inserted - report.updated
    report.taken_over, report.taken_over_ids = len(taken_over), sorted(taken_over)[:20]
    if taken_over:
        log.warning("%s: %d parcel ids were last loaded from another file (e.g. %s)", path, len(taken_over),
                    ", ".join(taken_over[:5]))
    log.info("%s: %d inserted, %d updated, %d unchanged, %d repaired, %d rejected", path, report.inserted,
             report.updated, report.unchanged, report.repaired, len(report.rejected))
    return report

