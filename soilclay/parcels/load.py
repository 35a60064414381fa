"""Read parcel polygons from vector files and upsert them into ``soilclay.parcels``.

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

**Loading** upserts by ``parcel_id`` in one transaction (set-based, ``jsonb_to_recordset``):
geometry, ``source_file`` (the file's name: the same file loaded from another folder changes
nothing; the run record keeps the full path) and ``attributes`` (every other column, made
JSON-safe) are written, and ``updated_at`` moves only when one of them changed, so reloading a file
reports every parcel unchanged. Parcel ids are global: a parcel last loaded from another file is
taken over, counted and named in the report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping
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
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError, InternalError

from soilclay.errors import BadInputError
from soilclay.settings import STORAGE_SRID

log = logging.getLogger(__name__)

#: Id columns tried in order when none is given: (columns joined with ``/``, the convention).
ID_CANDIDATES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("parcel_id",), "soilclay convention"),
    (("id",), "fiboa / Dutch BRP"),
    (("FLIK",), "German Feldblock-Identifikator"),
    (("GEO_ID",), "Austrian INSPIRE Schläge, geometry id"),
    (("TUNNUS",), "Finnish GSAA parcel id"),
    (("ID_PARCEL",), "French RPG parcel id"),
    (("Journalnr", "Marknr"), "Danish Markkort: journal number / field number"),
)
#: Separator of composite ids (several id columns).
ID_SEPARATOR = "/"
#: Prefix of ids derived from the geometry.
DERIVED_PREFIX = "geom-"
#: Rounding grid of derived ids: metres in projected CRSs, about 1 cm in degrees in geographic ones.
DERIVED_GRID_M = 0.01
DERIVED_GRID_DEG = 1e-7
PARQUET_SUFFIXES = (".parquet", ".geoparquet")
#: GDAL FID column names that are row numbers, not producer ids.
GENERATED_FID_NAMES = {"", "fid", "ogc_fid"}
#: Rows per upsert statement (all statements run in one transaction).
CHUNK = 20_000
_POLYGON, _MULTIPOLYGON = 3, 6  # shapely type ids


class ParcelProblem(NamedTuple):
    """A rejected or repaired feature: its parcel id ('' when blank), the reason and its feature number
    (1 = the first feature of the layer)."""

    parcel_id: str
    reason: str
    feature: int

    def render(self) -> str:
        who = f"parcel {self.parcel_id}" if self.parcel_id else "no id"
        return f"feature {self.feature} ({who}): {self.reason}"


@dataclass(frozen=True)
class IdChoice:
    """Where parcel ids come from: ``columns`` (joined with ``/``) or, when empty, the geometry."""

    columns: tuple[str, ...]
    how: str  # 'given', 'detected' or 'derived'
    note: str = ""

    def describe(self) -> str:
        if not self.columns:
            return self.note
        cols = " + ".join(self.columns)
        joined = f" joined with '{ID_SEPARATOR}'" if len(self.columns) > 1 else ""
        what = f"column{'s' if len(self.columns) > 1 else ''} {cols}{joined}"
        return f"ids from {what} ({self.how}{': ' + self.note if self.note else ''})"


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
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Parcels whose row last came from another file (same id in two files): their ids, first ones.
    taken_over: int = 0
    taken_over_ids: list[str] = field(default_factory=list)

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
                "loaded": self.loaded, "inserted": self.inserted, "updated": self.updated,
                "unchanged": self.unchanged, "taken_over": self.taken_over}

    def render(self, max_problems: int = 20) -> str:
        layer = f"layer {self.layer}, " if self.layer else ""
        lines = [f"parcels from {self.path} ({layer}{self.source_crs} -> EPSG:{STORAGE_SRID}): {self.read} read, "
                 f"{self.valid} valid, {self.repaired} repaired, {len(self.rejected)} rejected",
                 f"{self.id_choice.describe()}"]
        if self.stored:
            lines.append(f"loaded {self.loaded}: inserted {self.inserted}, updated {self.updated}, "
                         f"unchanged {self.unchanged}")
        if self.taken_over:
            shown = ", ".join(self.taken_over_ids[:10]) + (", ..." if self.taken_over > 10 else "")
            lines.append(f"{self.taken_over} parcel ids were last loaded from another file and now come from this "
                         f"one: {shown}")
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


# --------------------------------------------------------------------------- ids


def choose_id(columns: Iterable[str], id_column: str | None, *, where: str = "input") -> IdChoice:
    """Which column(s) hold the parcel id: ``id_column`` (``"A+B"`` for several), else the first of
    :data:`ID_CANDIDATES` present, else the geometry. Raises :class:`BadInputError` naming the
    available columns when ``id_column`` is absent."""
    available = [str(c) for c in columns]
    by_lower: dict[str, str] = {}
    for name in available:
        by_lower.setdefault(name.lower(), name)

    def find(name: str) -> str | None:
        return name if name in available else by_lower.get(name.strip().lower())

    if id_column is not None:
        parts = [id_column] if find(id_column) else [p for p in id_column.split("+") if p.strip()]
        found = [find(p) for p in parts]
        if not parts or None in found:
            missing = ", ".join(p for p, f in zip(parts, found, strict=True) if f is None) or repr(id_column)
            raise BadInputError(f"{where}: id column {missing} not found; available columns: "
                                f"{', '.join(available) or 'none'}")
        return IdChoice(tuple(f for f in found if f is not None), "given")
    for names, convention in ID_CANDIDATES:
        found = [find(n) for n in names]
        if None not in found:
            return IdChoice(tuple(f for f in found if f is not None), "detected", convention)
    tried = ", ".join("+".join(names) for names, _ in ID_CANDIDATES)
    return IdChoice((), "derived", f"no id column found (looked for {tried}; give one with --id-column); ids derived "
                                   f"from the geometry: '{DERIVED_PREFIX}' + 16 hex digits of SHA-256 of the WKB of "
                                   f"the normalised geometry rounded to 0.01 m (1e-7 degrees if geographic) in the "
                                   f"source CRS")


def id_text(value: Any) -> str:
    """An id cell as text ('' for missing): integral numbers without a decimal point, strings stripped."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else repr(float(value))
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _hash_grid(crs: CRS) -> float:
    if crs.is_geographic:
        return DERIVED_GRID_DEG
    try:
        metres_per_unit = float(crs.axis_info[0].unit_conversion_factor) or 1.0
    except (IndexError, AttributeError):
        metres_per_unit = 1.0
    return DERIVED_GRID_M / metres_per_unit


def derived_id(geometries: np.ndarray, crs: CRS) -> list[str]:
    """Stable ids from geometries in their source CRS: ``geom-`` + the first 16 hex digits of the SHA-256
    of the little-endian 2-D WKB of the normalised geometry with coordinates rounded to 0.01 m."""
    grid = _hash_grid(crs)
    rounded = shapely.transform(np.asarray(geometries, dtype=object), lambda c: np.round(c / grid) * grid + 0.0)
    wkbs = shapely.to_wkb(shapely.normalize(rounded), output_dimension=2, byte_order=1)
    return [DERIVED_PREFIX + hashlib.sha256(w).hexdigest()[:16] for w in wkbs]


# --------------------------------------------------------------------------- geometries


def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Polygons wrapped as MultiPolygons (MultiPolygons unchanged)."""
    out = geoms.copy()
    single = shapely.get_type_id(out) == _POLYGON
    if single.any():
        out[single] = shapely.multipolygons(out[single], indices=np.arange(int(single.sum())))
    return out


def _areal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of a repaired geometry (empty if none)."""
    if shapely.get_type_id(geom) in (_POLYGON, _MULTIPOLYGON):
        return geom
    polygons = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (_POLYGON, _MULTIPOLYGON)]
    return shapely.union_all(polygons) if polygons else shapely.Polygon()


def _repair(geoms: np.ndarray, mask: np.ndarray, reasons: list[list[str]], repairs: dict[int, str],
            context: str) -> None:
    """Repair the invalid geometries among ``mask`` in place; note the repair or, with no area left, the reason."""
    invalid = np.flatnonzero(mask & ~shapely.is_valid(geoms))
    if not len(invalid):
        return
    why = shapely.is_valid_reason(geoms[invalid])
    fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
    for i, reason, geom in zip(invalid, why, fixed, strict=True):
        geom = _areal(geom)
        if shapely.is_empty(geom) or not shapely.is_valid(geom):
            reasons[i].append(f"invalid geometry{context} ({reason}) with no area left after repair")
        else:
            geoms[i] = geom
            repairs[i] = f"invalid geometry{context} repaired ({reason})"


def check_geometries(geoms: np.ndarray) -> tuple[np.ndarray, list[list[str]], dict[int, str]]:
    """Geometries as 2-D MultiPolygons (invalid ones repaired), the rejection reasons per feature (empty
    list: loadable) and the repairs by feature position."""
    geoms = np.array(geoms, dtype=object)
    reasons: list[list[str]] = [[] for _ in geoms]
    repairs: dict[int, str] = {}
    missing = shapely.is_missing(geoms)
    geoms[~missing] = shapely.force_2d(geoms[~missing])
    empty = ~missing & shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    for i in np.flatnonzero(missing):
        reasons[i].append("no geometry (null)")
    for i in np.flatnonzero(empty):
        reasons[i].append(f"empty geometry ({geoms[i].geom_type})")
    wrong = ~missing & ~empty & ~np.isin(types, [_POLYGON, _MULTIPOLYGON])
    for i in np.flatnonzero(wrong):
        reasons[i].append(f"{geoms[i].geom_type} geometry, expected Polygon or MultiPolygon")
    _repair(geoms, ~missing & ~empty & ~wrong, reasons, repairs, "")
    ok = np.array([not r for r in reasons], dtype=bool)
    geoms[ok] = _as_multipolygons(geoms[ok])
    return geoms, reasons, repairs


def _reproject(geoms: np.ndarray, ok: np.ndarray, crs: CRS, reasons: list[list[str]],
               repairs: dict[int, str]) -> np.ndarray:
    """The loadable geometries in EPSG:4326, checked again there (validity, finite lon/lat)."""
    out = np.full(len(geoms), None, dtype=object)
    target = CRS.from_epsg(STORAGE_SRID)
    if crs.equals(target, ignore_axis_order=True):
        out[ok] = geoms[ok]
    elif ok.any():
        out[ok] = gpd.GeoSeries(geoms[ok], crs=crs).to_crs(target).to_numpy()
    coords, index = shapely.get_coordinates(out[ok], return_index=True)
    bad = ~np.isfinite(coords).all(axis=1) | (np.abs(coords[:, 0]) > 180) | (np.abs(coords[:, 1]) > 90)
    positions = np.flatnonzero(ok)
    for i in positions[np.unique(index[bad])]:
        reasons[i].append(f"cannot be reprojected from {_crs_name(crs)} to EPSG:{STORAGE_SRID} "
                          f"(coordinates outside the CRS's area?)")
    still = ok & np.array([not r for r in reasons], dtype=bool)
    _repair(out, still, reasons, repairs, f" in EPSG:{STORAGE_SRID}")
    still = still & np.array([not r for r in reasons], dtype=bool)
    out[still] = _as_multipolygons(out[still])
    out[~still] = None
    return out


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


def _ids(frame: pd.DataFrame, choice: IdChoice, reasons: list[list[str]]) -> list[str]:
    """Ids from the chosen columns ('' where blank, with the reason noted)."""
    columns = [[id_text(v) for v in frame[c].to_numpy(dtype=object)] for c in choice.columns]
    ids = []
    for i, parts in enumerate(zip(*columns, strict=True)):
        blank = [c for c, p in zip(choice.columns, parts, strict=True) if not p]
        if blank:
            reasons[i].insert(0, f"blank id ({', '.join(blank)})")
            ids.append("")
        else:
            ids.append(ID_SEPARATOR.join(parts))
    return ids


def _dedupe(ids: list[str], reasons: list[list[str]], derived: bool) -> None:
    """Reject later loadable features repeating the id of an earlier loadable one."""
    first: dict[str, int] = {}
    for i, pid in enumerate(ids):
        if reasons[i]:
            continue
        if pid in first:
            what = "the same geometry" if derived else "the same id"
            reasons[i].append(f"duplicate id {pid}: feature {first[pid] + 1} has {what} and is kept")
        else:
            first[pid] = i


def _crs_name(crs: CRS) -> str:
    authority = crs.to_authority(min_confidence=70)
    return f"{authority[0]}:{authority[1]}" if authority else crs.name


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


# --------------------------------------------------------------------------- loading

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
