"""Features at soil sample points: the composite pixel under each sample, as one training table.

The table has one row per usable sample, in this column order (:func:`table_columns`):
``sample_id, point_id, lon, lat, clay``, the Sentinel-2 composite's ``B02 .. B12`` and
``bare_count``, and, when a Sentinel-1 composite is used, ``VV VH VV_VH``. Both flavours produce
exactly this layout:

- **local**: :func:`sample_composites` reads the composite COGs at the points (the pixel that
  contains the point, on the raster's own grid, after reprojecting the point to the raster's CRS);
  :func:`features_for_aoi` does so for the samples inside an AOI and a composite version of it;
- **Earth Engine**: :func:`ee_sample_points` builds ``Image.sampleRegions`` over the points and
  :func:`ee_rows_to_table` turns its ``getInfo()`` features into the same table.

Bands are found by their description (the band name), never by position, so a composite written
with other band orders or extra bands still reads right. The raster's nodata value (NaN for the
local backend, -9999 for Earth Engine exports) and NaN are missing values. A sample on a pixel
with a missing spectral (or, with Sentinel-1, backscatter) value is excluded and counted as
``excluded_nodata``; one outside a raster as ``excluded_outside``. Earth Engine's sampleRegions
drops masked pixels itself: there, excluded = requested - rows.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from soilclay.composites.recipe import S1_BANDS, S2_BANDS
from soilclay.db.aois import get_aoi
from soilclay.errors import BadInputError, NotReadyError

if TYPE_CHECKING:
    import ee

    from soilclay.io.store import ObjectStore

log = logging.getLogger(__name__)

ID_COLUMNS = ("sample_id", "point_id", "lon", "lat", "clay")
#: Features from the Sentinel-2 composite: the spectrum, then how many bare observations made it.
S2_FEATURES = (*S2_BANDS, "bare_count")
#: Features from the Sentinel-1 composite (its ``count`` band is not a feature).
S1_FEATURES = tuple(b for b in S1_BANDS if b != "count")
#: Per-point outcome of :func:`sample_composites`.
STATUS_OK, STATUS_NODATA, STATUS_OUTSIDE = "ok", "nodata", "outside"


def table_columns(with_s1: bool) -> list[str]:
    """The feature table's columns, in order."""
    return [*ID_COLUMNS, *S2_FEATURES, *(S1_FEATURES if with_s1 else ())]


def _as_table(frame: pd.DataFrame, with_s1: bool) -> pd.DataFrame:
    """``frame`` in the table layout with its dtypes (shared by the local and Earth Engine paths)."""
    columns = table_columns(with_s1)
    table = frame.reindex(columns=columns).reset_index(drop=True)
    table["sample_id"] = table["sample_id"].astype("int64")
    table["point_id"] = table["point_id"].astype(str)
    for column in columns[2:]:
        table[column] = table[column].astype("float64")
    return table


@dataclass
class FeatureTable:
    """Training rows at sample points, how many samples were asked for and dropped, and the lineage."""

    data: pd.DataFrame
    requested: int
    excluded_nodata: int = 0
    excluded_outside: int = 0
    lineage: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data.attrs["lineage"] = self.lineage

    @property
    def excluded(self) -> int:
        return self.excluded_nodata + self.excluded_outside

    def render(self) -> str:
        used = ", ".join(f"{k} {v}" for k, v in self.lineage.items() if k.endswith("_composite_id") and v is not None)
        return (f"{len(self.data)} of {self.requested} samples with features ({used or 'composites unknown'}); "
                f"excluded {self.excluded_nodata} on nodata pixels, {self.excluded_outside} outside the rasters")


# --------------------------------------------------------------------------- reading rasters at points


def band_indexes(descriptions: Sequence[str | None], names: Sequence[str], path: str) -> list[int]:
    """1-based indexes of the bands described as ``names``; :class:`BadInputError` names a missing one."""
    found = {d: i for i, d in enumerate(descriptions, start=1) if d}
    missing = [n for n in names if n not in found]
    if missing:
        raise BadInputError(f"{path} has no band {missing[0]!r} (band descriptions: "
                            f"{', '.join(d or '(none)' for d in descriptions)}); expected {', '.join(names)}")
    return [found[n] for n in names]


def read_at_points(path: str, lon: np.ndarray, lat: np.ndarray, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``bands`` of the raster at ``path`` under EPSG:4326 points: (n, bands) float64 with NaN
    for missing (the dataset's nodata, or NaN), and whether each point falls on the raster."""
    import rasterio
    from pyproj import Transformer
    from rasterio.windows import Window

    lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    values = np.full((len(lon), len(bands)), np.nan)
    with rasterio.open(path) as src:
        indexes = band_indexes(src.descriptions, bands, path)
        if src.crs is None:
            raise BadInputError(f"{path} declares no CRS: cannot place points on it")
        if not len(lon):
            return values, np.zeros(0, dtype=bool)
        x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(lon, lat)
        inverse = ~src.transform
        col = np.floor(inverse.a * x + inverse.b * y + inverse.c)
        row = np.floor(inverse.d * x + inverse.e * y + inverse.f)
        inside = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < src.width) & (row >= 0) & (row < src.height)
        for i in np.flatnonzero(inside):
            pixel = src.read(indexes, window=Window(int(col[i]), int(row[i]), 1, 1), out_dtype="float64")
            values[i] = pixel[:, 0, 0]
        for j, index in enumerate(indexes):
            nodata = src.nodatavals[index - 1]
            if nodata is not None and not np.isnan(nodata):
                values[values[:, j] == nodata, j] = np.nan
    return values, inside


def sample_composites(points: pd.DataFrame, s2_path: str, s1_path: str | None = None) -> pd.DataFrame:
    """``points`` (columns ``lon``, ``lat`` in EPSG:4326, anything else kept) with the composite values
    under each point: :data:`S2_FEATURES` from ``s2_path``, :data:`S1_FEATURES` from ``s1_path`` if
    given, and ``status``: ``ok``, ``nodata`` (a spectral or backscatter value missing) or ``outside``
    (off a raster). Same index as ``points``."""
    missing = [c for c in ("lon", "lat") if c not in points.columns]
    if missing:
        raise BadInputError(f"points need columns lon and lat (EPSG:4326), missing {', '.join(missing)}; "
                            f"found {', '.join(map(str, points.columns)) or 'none'}")
    out = points.copy()
    lon, lat = points["lon"].to_numpy(), points["lat"].to_numpy()
    s2, inside = read_at_points(str(s2_path), lon, lat, S2_FEATURES)
    out[list(S2_FEATURES)] = s2
    nodata = np.isnan(s2[:, :len(S2_BANDS)]).any(axis=1)
    if s1_path is not None:
        s1, s1_inside = read_at_points(str(s1_path), lon, lat, S1_FEATURES)
        out[list(S1_FEATURES)] = s1
        inside &= s1_inside
        nodata |= np.isnan(s1).any(axis=1)
    out["status"] = np.where(~inside, STATUS_OUTSIDE, np.where(nodata, STATUS_NODATA, STATUS_OK))
    return out


# --------------------------------------------------------------------------- from the database


@dataclass(frozen=True)
class _Composite:
    composite_id: int
    sensor: str
    version: int
    uri: str


def pick_composite(conn: Connection, aoi_id: int, aoi_name: str, sensor: str,
                   composite_id: int | None) -> _Composite | None:
    """The composite ``composite_id`` (checked to be the AOI's ``sensor`` composite), or the newest
    version of that sensor for the AOI (None when there is none)."""
    if composite_id is None:
        row = conn.execute(text(
            "SELECT composite_id, sensor, version, uri FROM soilclay.composites "
            "WHERE aoi_id = :a AND sensor = :s ORDER BY version DESC LIMIT 1"), {"a": aoi_id, "s": sensor}).first()
        return None if row is None else _Composite(row.composite_id, row.sensor, row.version, row.uri)
    row = conn.execute(text(
        "SELECT c.composite_id, c.sensor, c.version, c.uri, c.aoi_id, a.name FROM soilclay.composites c "
        "JOIN soilclay.aois a USING (aoi_id) WHERE c.composite_id = :i"), {"i": composite_id}).first()
    if row is None:
        raise BadInputError(f"no composite with id {composite_id}; expected a {sensor} composite of AOI {aoi_name!r}")
    if row.aoi_id != aoi_id or row.sensor != sensor:
        raise BadInputError(f"composite {composite_id} is a {row.sensor} composite of AOI {row.name!r}; "
                            f"expected a {sensor} composite of AOI {aoi_name!r}")
    return _Composite(row.composite_id, row.sensor, row.version, row.uri)


def local_path(uri: str, store: ObjectStore | None, tmpdir: Path) -> str:
    """A local file path for a composite URI: a path or ``file://`` URI as it is; a ``gs://`` object
    downloaded (through ``store`` when the URI lies under it, else a store on the URI's bucket)."""
    parsed = urlparse(uri)
    if parsed.scheme == "gs":
        from soilclay.io.store import open_store

        prefix = f"{store.url.rstrip('/')}/" if store is not None else ""
        if store is None or not uri.startswith(prefix):
            store, prefix = open_store(f"gs://{parsed.netloc}"), f"gs://{parsed.netloc}/"
        key = uri[len(prefix):]
        return str(store.download(key, tmpdir / Path(key).name))
    if parsed.scheme == "file":
        uri = unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise BadInputError(f"unsupported composite URI {uri!r}: expected a local path, file:// or gs://")
    if not Path(uri).is_file():
        raise BadInputError(f"composite file {uri} not found")
    return uri


_SAMPLES = text("""
SELECT s.sample_id, s.point_id, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
       s.clay::numeric::float8 AS clay  -- the real as written (23.4, not 23.399999618530273)
FROM soilclay.samples AS s
JOIN soilclay.aois AS a ON ST_Intersects(s.geom, a.geom)
WHERE a.aoi_id = :a AND (CAST(:sources AS text[]) IS NULL OR s.source = ANY(CAST(:sources AS text[])))
ORDER BY s.sample_id
""")


def features_for_aoi(engine: Engine, aoi_name: str, *, s2_composite_id: int | None = None,
                     s1_composite_id: int | None = None, store: ObjectStore | None = None,
                     workdir: Path | None = None, sources: Sequence[str] | None = None) -> FeatureTable:
    """The feature table of the samples inside AOI ``aoi_name`` (optionally only from ``sources``).

    Composites default to the AOI's newest version per sensor; without any Sentinel-1 composite the
    table has no SAR columns (a missing Sentinel-2 composite is an error). Composites stored in
    Cloud Storage are downloaded to a temporary file below ``workdir``. The composite ids and URIs
    used are the table's ``lineage`` (also in ``table.data.attrs``).
    """
    with engine.connect() as conn:
        aoi = get_aoi(conn, aoi_name)
        s2 = pick_composite(conn, aoi.aoi_id, aoi.name, "sentinel-2", s2_composite_id)
        if s2 is None:
            raise NotReadyError(f"AOI {aoi.name!r} has no sentinel-2 composite yet "
                                f"(build one with `soilclay composites build --aoi {aoi.name}`)")
        s1 = pick_composite(conn, aoi.aoi_id, aoi.name, "sentinel-1", s1_composite_id)
        points = pd.DataFrame(conn.execute(_SAMPLES, {"a": aoi.aoi_id,
                                                      "sources": list(sources) if sources is not None else None})
                              .mappings().all(), columns=list(ID_COLUMNS))
    if s1 is None:
        log.info("AOI %s has no sentinel-1 composite: the feature table has no SAR columns", aoi.name)
    lineage = {"aoi": aoi.name, "s2_composite_id": s2.composite_id, "s2_version": s2.version, "s2_uri": s2.uri,
               "s1_composite_id": s1.composite_id if s1 else None, "s1_version": s1.version if s1 else None,
               "s1_uri": s1.uri if s1 else None, "sources": list(sources) if sources is not None else None}
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soilclay-features-", dir=workdir) as tmp:
        s2_path = local_path(s2.uri, store, Path(tmp))
        s1_path = local_path(s1.uri, store, Path(tmp)) if s1 else None
        sampled = sample_composites(points, s2_path, s1_path)
    status = sampled["status"]
    table = FeatureTable(_as_table(sampled[status == STATUS_OK], with_s1=s1 is not None), requested=len(points),
                         excluded_nodata=int((status == STATUS_NODATA).sum()),
                         excluded_outside=int((status == STATUS_OUTSIDE).sum()), lineage=lineage)
    log.info("AOI %s: %s", aoi.name, table.render())
    return table


# --------------------------------------------------------------------------- Earth Engine


def ee_feature_image(s2: ee.Image, s1: ee.Image | None = None) -> ee.Image:
    """The bands sampled as features: :data:`S2_FEATURES` of the Sentinel-2 composite, then
    :data:`S1_FEATURES` of the Sentinel-1 composite when given."""
    image = s2.select(list(S2_FEATURES))
    return image if s1 is None else image.addBands(s1.select(list(S1_FEATURES)))


def ee_sample_points(image: ee.Image, points: pd.DataFrame, scale: float, *,
                     crs: str | None = None) -> ee.FeatureCollection:
    """``image.sampleRegions`` at the points (columns ``sample_id``, ``point_id``, ``lon``, ``lat``
    (EPSG:4326), ``clay``), copying those columns as properties, with ``geometries=True``.

    With ``crs`` the sampling grid is that CRS with pixel edges on multiples of ``scale`` -- the
    lattice :func:`soilclay.composites.earthengine.export_to_gcs` exports -- so the sampled pixels are
    the exported ones. Points on masked pixels are dropped by Earth Engine. The points travel inside
    the request, which suits the hundreds to few thousands of samples per AOI.
    """
    import ee

    missing = [c for c in ID_COLUMNS if c not in points.columns]
    if missing:
        raise BadInputError(f"points need columns {', '.join(ID_COLUMNS)}; missing {', '.join(missing)}")
    if not scale or scale <= 0:
        raise BadInputError(f"scale must be a positive number of metres, found {scale!r}")
    features = [
        ee.Feature(ee.Geometry.Point([float(p.lon), float(p.lat)]),
                   {"sample_id": int(p.sample_id), "point_id": str(p.point_id), "lon": float(p.lon),
                    "lat": float(p.lat), "clay": float(p.clay)})
        for p in points.itertuples(index=False)
    ]
    projection = ee.Projection(crs, [scale, 0, 0, 0, -scale, 0]) if crs else None
    return image.sampleRegions(collection=ee.FeatureCollection(features), properties=list(ID_COLUMNS),
                               scale=scale, projection=projection, geometries=True)


def ee_rows_to_table(rows: list[dict] | dict) -> pd.DataFrame:
    """The ``getInfo()`` result of :func:`ee_sample_points` (its feature list, or the collection dict)
    as the feature table of the local path. ``lon``/``lat`` are the samples' own positions (the
    properties), not the pixel centres sampleRegions snaps geometries to."""
    features = rows.get("features", []) if isinstance(rows, dict) else rows
    records = []
    for i, feature in enumerate(features):
        props = dict(feature.get("properties") or {})
        if "sample_id" not in props:
            raise BadInputError(f"Earth Engine feature {i} has no sample_id property; found {sorted(props)}")
        if "lon" not in props or "lat" not in props:
            coordinates = (feature.get("geometry") or {}).get("coordinates") or [None, None]
            props.setdefault("lon", coordinates[0])
            props.setdefault("lat", coordinates[1])
        records.append(props)
    frame = pd.DataFrame.from_records(records)
    with_s1 = any(c in frame.columns for c in S1_FEATURES)
    return _as_table(frame, with_s1)
