"""Reading composite COGs at points (the local path of the feature table).

The pixel that contains each point, on the raster's own grid, after reprojecting the point to the
raster's CRS. Bands are found by their description (the band name), never by position, so a
composite written with other band orders or extra bands still reads right. The raster's nodata
value (NaN for the local backend, -9999 for Earth Engine exports) and NaN are missing values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from soilclay.contract import S2_BANDS
from soilclay.errors import BadInputError
from soilclay.features.table import S1_FEATURES, S2_FEATURES, STATUS_NODATA, STATUS_OK, STATUS_OUTSIDE
from soilclay.io.raster import nodata_to_nan


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
            values[:, j] = nodata_to_nan(values[:, j], src.nodatavals[index - 1])
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
