"""Cloud Storage image exports: the export request (a cloud-optimised GeoTIFF on a fixed pixel
lattice), finding an export already running under a description to the same destination, and
starting one.

Resampling: inputs coarser than the export grid (the 20 m Sentinel-2 bands and SCL) are brought to
it by nearest neighbour, Earth Engine's default when an export reprojects; nothing here asks for
another one, so no pixel values are interpolated.
"""

from __future__ import annotations

import ee

from soilclay.earthengine.errors import translated
from soilclay.earthengine.geometry import PixelGrid, crs_transform
from soilclay.earthengine.operations import active_operation
from soilclay.errors import BadInputError, TransientExternalError

#: Written into the GeoTIFF for masked pixels (JSON cannot carry NaN in the export request).
NODATA = -9999.0
#: Export tiles are computed in 256-pixel shards; file dimensions must be a multiple of it.
SHARD_SIZE = 256
#: One file per export up to 8192 x 8192 pixels (81.92 km at 10 m): 13 float32 bands then stay
#: below 4 GiB (8192^2 * 13 * 4 B = 3.25 GiB), the classic-TIFF limit.
DEFAULT_FILE_DIMENSIONS = 8192


def export_to_gcs(image: ee.Image, *, bucket: str, prefix: str, description: str, region: ee.Geometry,
                  grid: PixelGrid, max_pixels: int = 10**13,
                  file_dimensions: int | None = DEFAULT_FILE_DIMENSIONS) -> ee.batch.Task:
    """An unstarted export of ``image`` on ``grid`` over ``region`` to ``gs://bucket/prefix.tif``
    as a cloud-optimised GeoTIFF (masked pixels = :data:`NODATA`). ``file_dimensions`` (a multiple
    of 256, or None for Earth Engine's own) is the largest file side before the export is split."""
    if not bucket or not prefix:
        raise BadInputError(f"an export needs a bucket and an object prefix, found {bucket!r} and {prefix!r}")
    if file_dimensions is not None and (file_dimensions <= 0 or file_dimensions % SHARD_SIZE):
        raise BadInputError(f"file_dimensions must be a positive multiple of {SHARD_SIZE}, found {file_dimensions}")
    return ee.batch.Export.image.toCloudStorage(
        image=image, description=description, bucket=bucket, fileNamePrefix=prefix, region=region,
        crs=grid.crs, crsTransform=crs_transform(grid.resolution), maxPixels=max_pixels,
        fileDimensions=file_dimensions, fileFormat="GeoTIFF",
        formatOptions={"cloudOptimized": True, "noData": NODATA})


def find_active_export(description: str, destination: str) -> str | None:
    """The operation name of a pending or running export named ``description`` that writes
    ``destination`` (the gs:// URI of its file, :func:`soilclay.earthengine.assets.cog_uri`), else
    None. One of that description writing elsewhere is not adopted (see
    :func:`soilclay.earthengine.operations.active_operation`)."""
    with translated("cannot list Earth Engine operations"):
        operations = ee.data.listOperations() or []
    return active_operation(operations, description, destination)


def start_export(task: ee.batch.Task) -> str:
    """Start ``task`` and return its operation name (``projects/<p>/operations/<id>``)."""
    description = (task.config or {}).get("description", "?")
    with translated(f"Earth Engine refused to start export {description!r}"):
        task.start()
    if not task.name:
        raise TransientExternalError(f"Earth Engine started export {description!r} without an operation name")
    return task.name
