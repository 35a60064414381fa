"""Read and check parcel polygons from vector files (the upsert is in :mod:`soilclay.parcels.load`).

**Formats.** GeoPackage, Shapefile, GeoJSON (and whatever else GDAL reads) through pyogrio, also
zipped (``x.shp.zip``, ``x.gpkg.zip``: read in place through GDAL's ``/vsizip/``); GeoParquet
(``.parquet``, ``.geoparquet``, including fiboa files) through pyarrow. A file with several layers
needs ``layer`` unless exactly one of them holds polygons; the error lists the layers.

**CRS.** Any CRS, reprojected to EPSG:4326 (:data:`soilclay.settings.STORAGE_SRID`). A layer
without a CRS (a Shapefile without ``.prj``, a GeoPackage with an undefined SRS, a GeoParquet file
whose ``crs`` is null) is refused: guessing would put parcels in the wrong place. GeoJSON without a
``crs`` member is EPSG:4326 by definition (RFC 7946), and GeoParquet without a ``crs`` key is
OGC:CRS84 by its specification.

**Parcel ids** come from ``id_column`` when given (``"A+B"`` joins several columns with ``/``);
else from the first of these columns present (names matched case-insensitively):

=====================  ==========================================================================
column(s)              convention
=====================  ==========================================================================
``parcel_id``          soilclay's own (the demo world)
``id``                 fiboa (GeoParquet / GeoJSON); the Dutch BRP Gewaspercelen, whose
                       GeoPackage names its FID column ``id``
``FLIK``               German Feldblock-Identifikator (e.g. Schleswig-Holstein Feldblöcke)
``GEO_ID``             Austrian INSPIRE Schläge (AMA): the id of the field's geometry
``TUNNUS``             Finnish GSAA kasvulohkot (Ruokavirasto)
``ID_PARCEL``          French RPG (Registre Parcellaire Graphique)
``Journalnr+Marknr``   Danish Markkort: application journal number + field number in it,
                       joined as ``26-0023282/1-0`` (``Marknr`` alone repeats between farms and
                       ``CVR`` is blank for some fields)
=====================  ==========================================================================

A GeoPackage FID column with a producer-given name (anything but ``fid``/``ogc_fid``) is read as a
column of that name, as above for the Dutch ``id``. GDAL's generated FIDs (row numbers) are never
used: they change when a register is re-extracted (nor are integer GeoJSON feature ids, which
GDAL turns into its FID; string ones are read as column ``id``). Ids become text: integral
numbers without a decimal point (``106806035.0`` -> ``106806035``), strings without surrounding
blanks; blank ids are rejected. Without any id column, ids are **derived from the geometry** (:func:`derived_id`:
``geom-`` + the first 16 hex digits of the SHA-256 of the WKB of the normalised geometry rounded to
0.01 m, or 1e-7 degrees in a geographic CRS, in the source CRS), stable for an unchanged geometry;
the report states the choice.

**Geometries.** Polygon and MultiPolygon only, stored as 2-D MultiPolygon. Invalid ones are
repaired with ``shapely.make_valid`` (method ``structure``: rings are fixed and overlapping parts
unioned, collapsed parts dropped, so only the areal part is kept) and counted with GEOS's reason;
a geometry that turns invalid in EPSG:4326 is repaired the same way. Null, empty and non-areal
geometries (points, lines, collections), ones with no area left after repair, and later features
repeating an id already taken by an earlier loadable feature are rejected with the feature number
(1 = first feature of the layer), the parcel id and the reason.

**Loading** upserts by ``(source, parcel_id)`` in one transaction (set-based, ``jsonb_to_recordset``).
The source is the register or dataset (``--source``; by default the file's name without its
extension, so two registers never collide and the same file reloaded updates in place); loading a new
extract of a register into the parcels of an earlier one is the explicit ``--source`` of that one.
Geometry, ``source_file`` (the file's name: the same file loaded from another folder changes
nothing; the run record keeps the full path) and ``attributes`` (every other column, made
JSON-safe) are written, and ``updated_at`` moves only when one of them changed, so reloading a file
reports every parcel unchanged. A changed geometry is counted ("reshaped"): estimates belong to the
geometry they were computed on, so the old ones become history and the next predict estimates the new
shape. A parcel of the source last loaded from another file is counted and named in the report; parcels
with exactly the geometry of another source's parcels are reported too (one register under two names).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from soilclay.errors import BadInputError
from soilclay.parcels.geometry import _crs_name, _reproject, check_geometries
from soilclay.parcels.ids import IdChoice, _dedupe, _ids, choose_id, derived_id
from soilclay.settings import STORAGE_SRID

log = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".geoparquet")
#: GDAL FID column names that are row numbers, not producer ids.
GENERATED_FID_NAMES = {"", "fid", "ogc_fid"}



class ParcelProblem(NamedTuple):
    """A rejected or repaired feature: its parcel id ('' when blank), the reason and its feature number
    (1 = the first feature of the layer)."""

    parcel_id: str
    reason: str
    feature: int

    def render(self) -> str:
        who = f"parcel {self.parcel_id}" if self.parcel_id else "no id"
        return f"feature {self.feature} ({who}): {self.reason}"


@dataclass
class ParcelReport:
    """What reading (and loading) a parcel file did."""

    path: str
    layer: str | None
    source_crs: str
    id_choice: IdChoice
    read: int = 0
    valid: int = 0
    repairs: list[ParcelProblem] = field(default_factory=list)
    rejected: list[ParcelProblem] = field(default_factory=list)
    stored: bool = False
    #: The register or dataset the parcels were loaded into (set by loading).
    source: str | None = None
    inserted: int = 0
    updated: int = 0
    #: Updated parcels whose geometry changed (their estimates became history).
    reshaped: int = 0
    unchanged: int = 0
    #: Parcels of the source whose row last came from another file: their ids, first ones.
    taken_over: int = 0
    taken_over_ids: list[str] = field(default_factory=list)
    #: Per other source: parcels of this one with exactly the geometry of one of its parcels.
    same_shapes: dict[str, int] = field(default_factory=dict)

    @property
    def repaired(self) -> int:
        return len(self.repairs)

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def summary(self) -> dict[str, Any]:
        """Counts for a run record."""
        return {"layer": self.layer, "source_crs": self.source_crs, "ids": self.id_choice.describe(),
                "read": self.read, "valid": self.valid, "repaired": self.repaired, "rejected": len(self.rejected),
                "source": self.source, "loaded": self.loaded, "inserted": self.inserted, "updated": self.updated,
                "reshaped": self.reshaped, "unchanged": self.unchanged, "taken_over": self.taken_over,
                "same_shapes": self.same_shapes}

    def render(self, max_problems: int = 20) -> str:
        layer = f"layer {self.layer}, " if self.layer else ""
        lines = [f"parcels from {self.path} ({layer}{self.source_crs} -> EPSG:{STORAGE_SRID}): {self.read} read, "
                 f"{self.valid} valid, {self.repaired} repaired, {len(self.rejected)} rejected",
                 f"{self.id_choice.describe()}"]
        if self.stored:
            reshaped = f" ({self.reshaped} with a new geometry: estimated anew by the next predict)" \
                if self.reshaped else ""
            lines.append(f"loaded {self.loaded} into source {self.source}: inserted {self.inserted}, updated "
                         f"{self.updated}{reshaped}, unchanged {self.unchanged}")
        if self.taken_over:
            shown = ", ".join(self.taken_over_ids[:10]) + (", ..." if self.taken_over > 10 else "")
            lines.append(f"{self.taken_over} parcels of source {self.source} were last loaded from another file "
                         f"and now come from this one: {shown}")
        for other, n in self.same_shapes.items():
            lines.append(f"warning: {n} parcels have exactly the geometry of parcels of source {other}: the same "
                         f"register under two names? To update that register load with --source {other}")
        for title, problems in (("repaired", self.repairs), ("rejected", self.rejected)):
            if problems:
                lines.append(f"{title} {len(problems)}:")
                lines += [f"  {p.render()}" for p in problems[:max_problems]]
                if len(problems) > max_problems:
                    lines.append(f"  ... and {len(problems) - max_problems} more")
        return "\n".join(lines)


# --------------------------------------------------------------------------- opening files


def _is_polygonal(geometry_type: str | None) -> bool:
    kind = (geometry_type or "").lower()
    return "polygon" in kind or "surface" in kind


def _choose_layer(path: Path, layers: np.ndarray, layer: str | None) -> str:
    """The layer to read: the given one, the only one, or the only polygon layer."""
    listed = ", ".join(f"{name} ({kind or 'no geometry'})" for name, kind in layers) or "none"
    names = [str(name) for name, _ in layers]
    if layer is not None:
        if layer not in names:
            raise BadInputError(f"{path}: no layer {layer!r}; layers: {listed}")
        return layer
    if len(names) == 1:
        return names[0]
    polygonal = [str(name) for name, kind in layers if _is_polygonal(kind)]
    if len(polygonal) == 1:
        return polygonal[0]
    raise BadInputError(f"{path} has {len(names)} layers ({len(polygonal)} with polygons): choose one with "
                        f"--layer (layer=...); layers: {listed}")


def _no_crs(path: Path, layer: str | None) -> BadInputError:
    where = f"{path}" + (f" layer {layer!r}" if layer else "")
    return BadInputError(f"{where} has no coordinate reference system (a Shapefile needs its .prj, a GeoPackage a "
                         f"defined SRS, GeoParquet a 'crs'): define it first, e.g. "
                         f"ogr2ogr -a_srs EPSG:25832 fixed.gpkg {path.name}")


def _read_gdal(path: Path, layer: str | None) -> tuple[gpd.GeoDataFrame, str]:
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError, FieldError, GeometryError

    try:
        name = _choose_layer(path, pyogrio.list_layers(str(path)), layer)
        info = pyogrio.read_info(str(path), layer=name)
        frame = pyogrio.read_dataframe(str(path), layer=name, fid_as_index=True)
    except (DataSourceError, DataLayerError, FieldError, GeometryError) as e:
        raise BadInputError(f"cannot read {path} as a vector file: {e}") from e
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame.columns:
        raise BadInputError(f"{path} layer {name!r} has no geometry column")
    if frame.crs is None:
        raise _no_crs(path, name)
    fid_column = str(info.get("fid_column") or "")
    if fid_column.lower() not in GENERATED_FID_NAMES and fid_column not in frame.columns:
        frame.insert(0, fid_column, frame.index.to_numpy())
    return frame.reset_index(drop=True), name


def _read_parquet(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    if layer is not None and layer != path.stem:
        raise BadInputError(f"{path}: a GeoParquet file has one layer ({path.stem!r}), found layer={layer!r}")
    try:
        frame = gpd.read_parquet(path)
    except (ValueError, OSError) as e:
        raise BadInputError(f"cannot read {path} as GeoParquet: {e}") from e
    if frame.crs is None:
        raise _no_crs(path, None)
    return frame.reset_index(drop=True)


def _open(path: Path, layer: str | None) -> tuple[gpd.GeoDataFrame, str | None]:
    """The layer's features (index 0..n-1) and the layer name (None for GeoParquet)."""
    if not path.exists():
        raise BadInputError(f"parcel file not found: {path}")
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        return _read_parquet(path, layer), None
    return _read_gdal(path, layer)


# --------------------------------------------------------------------------- attributes


def json_safe(value: Any) -> Any:
    """A value JSON can hold: numbers (NaN/inf -> null), text (no NUL), ISO dates, hex bytes, lists, objects."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta | pd.Timedelta):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, shapely.Geometry):
        return value.wkt
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [json_safe(v) for v in value]
    return str(value)


def _attributes(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    if not columns:
        return [{} for _ in range(len(frame))]
    return [{str(k): json_safe(v) for k, v in row.items()} for row in frame[columns].to_dict("records")]


# --------------------------------------------------------------------------- reading


def read_parcels(path: str | Path, *, layer: str | None = None, id_column: str | None = None,
                 id_prefix: str = "") -> tuple[gpd.GeoDataFrame, ParcelReport]:
    """Read and check the parcels of ``path``.

    Returns the loadable parcels (columns ``parcel_id`` text, ``attributes`` JSON-safe dict of the
    other columns, ``geometry`` MultiPolygon; EPSG:4326; index ``feature``, 1 = the layer's first
    feature) and a :class:`ParcelReport` (nothing stored yet). Raises :class:`BadInputError` for an
    unreadable file, a missing CRS, an ambiguous or unknown layer and an unknown ``id_column``.
    ``id_prefix`` (e.g. ``nl-brp-2023:``) is put before every id: parcel ids are one key across all
    files, and registers of different countries reuse the same numbers.
    """
    if id_prefix and (id_prefix.strip() != id_prefix or len(id_prefix) > 64):
        raise BadInputError(f"--id-prefix must be 1..64 characters without surrounding spaces, found {id_prefix!r}")
    path = Path(path)
    frame, layer_name = _open(path, layer)
    crs = CRS.from_user_input(frame.crs)
    geometry_column = frame.geometry.name
    other = [c for c in frame.columns if c != geometry_column]
    choice = choose_id(other, id_column, where=str(path))
    geoms, reasons, repairs = check_geometries(frame.geometry.to_numpy())
    derived = not choice.columns
    if derived:
        ok = np.array([not r for r in reasons], dtype=bool)
        ids = [""] * len(frame)
        for i, pid in zip(np.flatnonzero(ok), derived_id(geoms[ok], crs), strict=True):
            ids[i] = pid
    else:
        ids = _ids(frame, choice, reasons)
    ids = [f"{id_prefix}{pid}" if pid else pid for pid in ids]
    ok = np.array([not r for r in reasons], dtype=bool)
    stored = _reproject(geoms, ok, crs, reasons, repairs)
    _dedupe(ids, reasons, derived)
    keep = np.array([not r for r in reasons], dtype=bool)
    attribute_columns = [c for c in other if c not in choice.columns]
    kept_frame = frame.loc[keep]
    parcels = gpd.GeoDataFrame(
        {"parcel_id": [pid for pid, k in zip(ids, keep, strict=True) if k],
         "attributes": _attributes(kept_frame, attribute_columns)},
        geometry=gpd.GeoSeries(stored[keep], crs=STORAGE_SRID).values, crs=STORAGE_SRID,
        index=pd.Index(np.flatnonzero(keep) + 1, name="feature"))
    report = ParcelReport(
        path=str(path), layer=layer_name, source_crs=_crs_name(crs), id_choice=choice, read=len(frame),
        valid=int(keep.sum()),
        repairs=[ParcelProblem(ids[i], why, i + 1) for i, why in sorted(repairs.items()) if keep[i]],
        rejected=[ParcelProblem(ids[i], "; ".join(r), i + 1) for i, r in enumerate(reasons) if r])
    for problem in report.rejected[:20]:
        log.warning("%s %s", path, problem.render())
    if len(report.rejected) > 20:
        log.warning("%s: %d more features rejected", path, len(report.rejected) - 20)
    return parcels, report
