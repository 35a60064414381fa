"""Upsert parcels read by :mod:`soilclay.parcels.read` into ``soilclay.parcels`` in one transaction."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import geopandas as gpd
import shapely
from sqlalchemy import Engine

from soilclay.db import parcels as parcels_repo
from soilclay.db.tx import transaction
from soilclay.parcels.read import ParcelReport, read_parcels

log = logging.getLogger(__name__)

#: Rows per upsert statement (all statements run in one transaction).
CHUNK = 20_000


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
    features are reported, never stored. A parcel the database refuses raises
    :class:`~soilclay.errors.BadInputError` naming the file; nothing of the file is then stored.
    """
    path = Path(path)
    parcels, report = read_parcels(path, layer=layer, id_column=id_column, id_prefix=id_prefix)
    report.stored = True
    if parcels.empty:
        log.warning("%s: no valid parcels to load", path)
        return report
    taken_over: list[str] = []
    with transaction(engine, f"loading parcels from {path}") as conn:
        for start in range(0, len(parcels), CHUNK):
            counts = parcels_repo.upsert_parcels(conn, _json_rows(parcels.iloc[start:start + CHUNK]), path.name)
            report.inserted += counts.inserted
            report.updated += counts.updated
            taken_over += counts.taken_over
    report.unchanged = report.valid - report.inserted - report.updated
    report.taken_over, report.taken_over_ids = len(taken_over), sorted(taken_over)[:20]
    if taken_over:
        log.warning("%s: %d parcel ids were last loaded from another file (e.g. %s)", path, len(taken_over),
                    ", ".join(taken_over[:5]))
    log.info("%s: %d inserted, %d updated, %d unchanged, %d repaired, %d rejected", path, report.inserted,
             report.updated, report.unchanged, report.repaired, len(report.rejected))
    return report

