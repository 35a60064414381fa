"""Cloud-Optimised GeoTIFF writing through GDAL's COG driver (deterministic bytes for equal input)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def write_cog(path: str | Path, bands: np.ndarray | Sequence[np.ndarray], *, transform: Affine, crs: str,
              nodata: float | int | None, descriptions: Sequence[str] | None = None,
              categorical: bool = False, blocksize: int = 512) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array as a COG with ZSTD compression.

    Overviews use averaging for continuous data and nearest for ``categorical`` data.
    """
    data = np.asarray(bands)
    if data.ndim == 2:
        data = data[None]
    count, height, width = data.shape
    if descriptions is not None and len(descriptions) != count:
        raise ValueError(f"{len(descriptions)} descriptions for {count} bands in {path}")
    path = Path(path)
    profile = dict(
        driver="COG", width=width, height=height, count=count, dtype=data.dtype.name, crs=crs,
        transform=transform, nodata=nodata, compress="ZSTD", level=6, predictor="YES",
        blocksize=blocksize, overview_resampling="nearest" if categorical else "average",
        num_threads=1,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, name)
    return path
