"""Upsert parcels read by :mod:`soilclay.parcels.read` into ``soilclay.parcels`` in one transaction."""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path

import geopandas as gpd
import shapely
from sqlalchemy import Engine

from soilclay.db import parcels as parcels_repo
from soilclay.db.tx import transaction
from soilclay.errors import BadInputError
from soilclay.parcels.read import ParcelReport, read_parcels

log = logging.getLogger(__name__)

#: Rows per upsert statement (all statements run in one transaction).
CHUNK = 20_000
#: What a source name may be (the database's ``parcels_source_format`` check).
SOURCE_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
#: Extensions left out of a file's default source name (also in migration 0004, tested to agree).
_EXTENSIONS = re.compile(r"(\.(zip|gpkg|shp|geojson|json|parquet|geoparquet|fgb|gml|kml|sqlite))+$", re.IGNORECASE)


def default_source(path: str | Path) -> str:
    """The source of a file's parcels when none is given: its name without the vector extensions
    (``brp_2023.gpkg`` -> ``brp_2023``, ``lohkot.shp.zip`` -> ``lohkot``), other characters than letters,
    digits, ``.``, ``_`` and ``-`` as ``-``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", _EXTENSIONS.sub("", Path(path).name))
    return stem if SOURCE_FORMAT.match(stem) else "unnamed"


def check_source(source: str) -> str:
    """``source`` if it is a valid source name, else one :class:`BadInputError` line saying which are."""
    if not isinstance(source, str) or not SOURCE_FORMAT.match(source):
        shown = repr(source) if len(str(source)) <= 60 else repr(str(source)[:60]) + f"… ({len(source)} characters)"
        raise BadInputError(f"parcel source {shown} is not allowed: 1 to 128 characters, letters, digits, '.', "
                            f"'_', ':' and '-', starting with a letter or digit (e.g. 'nl-brp', 'fi-gsaa-2023')")
    return source


def _json_rows(parcels: gpd.GeoDataFrame) -> str:
    wkbs = shapely.to_wkb(parcels.geometry.to_numpy(), output_dimension=2, byte_order=1)
    rows = [{"parcel_id": pid, "wkb": base64.b64encode(w).decode("ascii"), "attributes": attrs}
            for pid, w, attrs in zip(parcels["parcel_id"], wkbs, parcels["attributes"], strict=True)]
    return json.dumps(rows, ensure_ascii=False, allow_nan=False)


def load_parcels(engine: Engine, path: str | Path, *, layer: str | None = None,
                 id_column: str | None = None, id_prefix: str = "", source: str | None = None) -> ParcelReport:
    """Read ``path`` (:func:`read_parcels`) and upsert its valid parcels by (source, id) in one transaction.

    ``source`` is the register or dataset the parcels belong to (default: :func:`default_source` of the
    file name), so two registers never overwrite each other's parcels; loading a new extract of a register
    into the parcels loaded before from another file is the explicit ``source=`` of that register.
    Unchanged parcels are not touched (reloading a file reports them all unchanged); a changed
    geometry, attribute or source file name updates the row and its ``updated_at``; a changed geometry
    leaves its estimates as history (predict estimates the new shape). Rejected features are reported,
    never stored. A parcel the database refuses raises :class:`~soilclay.errors.BadInputError` naming
    the file; nothing of the file is then stored.
    """
    path = Path(path)
    source = check_source(source) if source is not None else default_source(path)
    parcels, report = read_parcels(path, layer=layer, id_column=id_column, id_prefix=id_prefix)
    report.source = source
    report.stored = True
    if parcels.empty and report.read:
        shown = "; ".join(p.render() for p in report.rejected[:3]) + ("; …" if len(report.rejected) > 3 else "")
        raise BadInputError(f"{path}: none of its {report.read} features is a valid parcel ({shown}); nothing loaded")
    if parcels.empty:
        log.warning("%s: no parcels to load", path)
        return report
    taken_over: list[str] = []
    with transaction(engine, f"loading parcels from {path}") as conn:
        for start in range(0, len(parcels), CHUNK):
            counts = parcels_repo.upsert_parcels(conn, _json_rows(parcels.iloc[start:start + CHUNK]), source,
                                                 path.name)
            report.inserted += counts.inserted
            report.updated += counts.updated
            report.reshaped += counts.reshaped
            taken_over += counts.taken_over
        report.same_shapes = parcels_repo.same_shapes_elsewhere(conn, source) if report.inserted else {}
    report.unchanged = report.valid - report.inserted - report.updated
    report.taken_over, report.taken_over_ids = len(taken_over), sorted(taken_over)[:20]
    if taken_over:
        log.warning("%s: %d parcels of source %s were last loaded from another file (e.g. %s)", path,
                    len(taken_over), source, ", ".join(taken_over[:5]))
    for other, n in report.same_shapes.items():
        log.warning("%s: %d parcels of source %s have exactly the geometry of parcels of source %s: the same "
                    "register loaded under two names? To update that register's parcels load with --source %s",
                    path, n, source, other, other)
    log.info("%s (source %s): %d inserted, %d updated (%d reshaped), %d unchanged, %d repaired, %d rejected", path,
             source, report.inserted, report.updated, report.reshaped, report.unchanged, report.repaired,
             len(report.rejected))
    return report

