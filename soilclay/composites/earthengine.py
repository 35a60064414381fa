"""Earth Engine backend of the composites: the same :class:`Recipe` as the local backend, computed
server-side and exported as one cloud-optimised GeoTIFF per AOI and sensor to Cloud Storage.

This is the only module (with :mod:`soilclay.scenes.earthengine`) that imports ``ee``; nothing
else in the package imports it at top level, so the rest runs without the Earth Engine client.

Resampling: the 20 m Sentinel-2 bands (B05 B06 B07 B8A B11 B12) and SCL are brought to the 10 m
export grid by nearest neighbour, which is Earth Engine's default resampling when the export
reprojects its inputs; nothing here asks for another one, so no pixel values are interpolated.

The export grid is fixed by ``crs`` and ``crsTransform`` = ``[res, 0, 0, 0, -res, 0]`` (pixel
edges on multiples of the resolution in the grid CRS) rather than ``scale`` alone, so every
export of a grid lands on the same pixel lattice whatever the AOI's bounds.

The state of a running export is decided by one pure function, :func:`export_outcome`, from the
Cloud API operation dict; the blocking :func:`wait_for_export` (and later an Airflow trigger)
use it, so both agree on what "done" means.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING

import ee
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from soilclay.composites.ee_operations import (  # noqa: F401  (re-exported)
    DEFAULT_WAIT_TIMEOUT_S,
    ExportOutcome,
    classify_ee_error,
    export_outcome,
    wait_for_export,
)
from soilclay.composites.recipe import S1_BANDS, S2_BANDS, S2_COUNT_BANDS, Grid, Recipe
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError

if TYPE_CHECKING:
    from soilclay.db.aois import Aoi
    from soilclay.settings import Settings

log = logging.getLogger(__name__)

S2_ASSET = "COPERNICUS/S2_SR_HARMONIZED"
S2_CLOUD_PROBABILITY_ASSET = "COPERNICUS/S2_CLOUD_PROBABILITY"
S1_ASSET = "COPERNICUS/S1_GRD"
#: Earth Engine's Sentinel-2 band names, in the order of our :data:`S2_BANDS`.
EE_S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
# S2_SR_HARMONIZED holds L2A digital numbers (reflectance x 10000, the 05.00 offset already
# removed), the unit of the local backend's spectra too: the composite keeps DN, as float32.

#: Written into the GeoTIFF for masked pixels (JSON cannot carry NaN in the export request).
NODATA = -9999.0
#: Export tiles are computed in 256-pixel shards; file dimensions must be a multiple of it.
SHARD_SIZE = 256
#: One file per export up to 8192 x 8192 pixels (81.92 km at 10 m): 13 float32 bands then stay
#: below 4 GiB (8192^2 * 13 * 4 B = 3.25 GiB), the classic-TIFF limit. Larger AOIs would be split
#: into several files, which :class:`EarthEngineBackend` refuses (it promises one URI).
DEFAULT_FILE_DIMENSIONS = 8192


# --------------------------------------------------------------------------- session


def initialize(project: str, service_account: str | None = None, key_file: str | None = None) -> None:
    """Initialise the Earth Engine client for ``project`` (always explicit, never guessed from
    the credentials). With ``service_account`` and ``key_file`` use that key; otherwise the
    default credentials (stored ``earthengine authenticate`` ones, else Application Default)."""
    if not project or not project.strip():
        raise FinalExternalError("Earth Engine needs an explicit Google Cloud project id; found an empty one")
    if bool(service_account) != bool(key_file):
        raise FinalExternalError("Earth Engine service-account login needs both service_account and key_file; "
                                 f"found service_account={service_account!r}, key_file={key_file!r}")
    try:
        credentials = (ee.ServiceAccountCredentials(service_account, key_file) if service_account
                       else "persistent")
        ee.Initialize(credentials, project=project.strip())
    except ee.EEException as exc:
        raise classify_ee_error(str(exc))(f"Earth Engine initialisation for project {project!r} failed: {exc}") from exc
    except (OSError, ValueError) as exc:  # unreadable or malformed key file
        raise FinalExternalError(f"cannot read Earth Engine service-account key {key_file!r}: {exc}") from exc


def geometry_from_geojson(geojson: Mapping) -> ee.Geometry:
    """An ``ee.Geometry`` from a GeoJSON geometry in EPSG:4326, with planar edges in lon/lat as
    GeoJSON (RFC 7946) and shapely mean, not geodesic ones."""
    if not isinstance(geojson, Mapping) or "type" not in geojson or "coordinates" not in geojson:
        raise BadInputError(f"expected a GeoJSON geometry with 'type' and 'coordinates', found {geojson!r:.200}")
    has_edges = geojson["type"] not in ("Point", "MultiPoint")  # points take no geodesic flag
    try:
        return ee.Geometry(dict(geojson), "EPSG:4326", False if has_edges else None)
    except ee.EEException as exc:
        raise BadInputError(f"not a usable GeoJSON geometry ({exc}): {geojson!r:.200}") from exc


def _date_range(start: date, end: date) -> tuple[str, str]:
    """Inclusive ``start``..``end`` as the half-open ISO bounds ``filterDate`` wants."""
    if end < start:
        raise BadInputError(f"composite period ends {end} before it starts {start}")
    return start.isoformat(), (end + timedelta(days=1)).isoformat()


def _reducer(statistic: str) -> ee.Reducer:
    """The reducer of a recipe statistic: ``median``, ``mean`` or ``pNN``."""
    if statistic == "median":
        return ee.Reducer.median()
    if statistic == "mean":
        return ee.Reducer.mean()
    match = re.fullmatch(r"p([1-9][0-9]?)", statistic)
    if match:
        return ee.Reducer.percentile([int(match.group(1))])
    raise BadInputError(f"statistic must be median, mean or p1..p99, found {statistic!r}")


# --------------------------------------------------------------------------- Sentinel-2


def s2_composite(recipe: Recipe, region: ee.Geometry, start: date, end: date) -> ee.Image:
    """The bare-soil Sentinel-2 composite of ``recipe`` over ``start``..``end`` (inclusive).

    Per scene: clear = SCL in ``scl_keep`` (and, optionally, s2cloudless probability below
    ``cloud_probability_max``); bare = clear and NDVI < ``ndvi_max`` and NBR2 < ``nbr2_max``
    (and, optionally, NDVI + NBR <= ``scmap_max``). The recipe statistic of the bare pixels gives
    the spectrum (L2A DN = reflectance x 10000, masked where ``bare_count < min_bare_count``); ``bare_count`` and
    ``valid_count`` count bare and clear observations (0 where none), ``bare_frequency`` is their
    ratio (masked where nothing was clear). Bands, all float32: :data:`S2_BANDS` then
    :data:`S2_COUNT_BANDS`.
    """
    params = recipe.s2
    if params is None:
        raise BadInputError(f"recipe for {recipe.aoi} has no sentinel-2 part")
    first, after_last = _date_range(start, end)
    scenes = ee.ImageCollection(S2_ASSET).filterBounds(region).filterDate(first, after_last)
    if params.max_scene_cloud_cover < 100:
        scenes = scenes.filter(ee.Filter.lte("CLOUDY_PIXEL_PERCENTAGE", params.max_scene_cloud_cover))
    if params.cloud_probability_max is not None:
        probabilities = (ee.ImageCollection(S2_CLOUD_PROBABILITY_ASSET)
                         .filterBounds(region).filterDate(first, after_last))
        # Inner join: a scene without its probability image is dropped rather than left unmasked.
        scenes = ee.ImageCollection(ee.Join.saveFirst("cloud_probability").apply(
            primary=scenes, secondary=probabilities,
            condition=ee.Filter.equals(leftField="system:index", rightField="system:index")))

    keep = list(params.scl_keep)

    def masked_scene(image) -> ee.Image:
        image = ee.Image(image)
        clear = image.select("SCL").remap(keep, [1] * len(keep), 0)
        if params.cloud_probability_max is not None:
            probability = ee.Image(image.get("cloud_probability")).select("probability")
            clear = clear.And(probability.lt(params.cloud_probability_max))
        ndvi = image.normalizedDifference(["B8", "B4"])
        rules = ndvi.lt(params.ndvi_max).And(image.normalizedDifference(["B11", "B12"]).lt(params.nbr2_max))
        if params.scmap_max is not None:
            nbr = image.normalizedDifference(["B8", "B12"])
            rules = rules.And(ndvi.add(nbr).lte(params.scmap_max))
        bare = clear.And(rules)
        spectrum = image.select(list(EE_S2_BANDS), list(S2_BANDS)).updateMask(bare)
        return spectrum.addBands(bare.rename("bare")).addBands(clear.rename("clear"))

    masked = scenes.map(masked_scene)
    counts = masked.select(["bare", "clear"]).sum().unmask(0)
    bare_count = counts.select("bare").rename("bare_count")
    valid_count = counts.select("clear").rename("valid_count")
    bare_frequency = bare_count.divide(valid_count).updateMask(valid_count.gt(0)).rename("bare_frequency")
    spectrum = (masked.select(list(S2_BANDS)).reduce(_reducer(params.statistic)).rename(list(S2_BANDS))
                .updateMask(bare_count.gte(params.min_bare_count)))
    image = ee.Image.cat(spectrum, bare_count, valid_count, bare_frequency).toFloat()
    return image.select(list(S2_BANDS + S2_COUNT_BANDS))


# --------------------------------------------------------------------------- Sentinel-1


def s1_iw_dual_pol_filter() -> ee.Filter:
    """S1_GRD scenes the composite uses: IW mode, VV+VH, 10 m GRD."""
    return ee.Filter.And(
        ee.Filter.eq("instrumentMode", "IW"),
        ee.Filter.listContains("transmitterReceiverPolarisation", "VV"),
        ee.Filter.listContains("transmitterReceiverPolarisation", "VH"),
        ee.Filter.eq("resolution_meters", 10),
    )


def _boxcar_db(image: ee.Image, size: int) -> ee.Image:
    """Boxcar (square mean) speckle filter of a dB image, averaged in linear power.

    10^(dB/10) is written as exp(dB * ln10 / 10) so the scene stays the first operand and keeps
    its native 10 m projection: the kernel radius is in those native pixels.
    """
    linear = image.multiply(math.log(10) / 10).exp()
    smoothed = linear.focalMean(kernel=ee.Kernel.square(size // 2, "pixels"))
    return smoothed.log10().multiply(10)


def s1_composite(recipe: Recipe, region: ee.Geometry, start: date, end: date) -> ee.Image:
    """The Sentinel-1 GRD composite of ``recipe`` over ``start``..``end`` (inclusive).

    S1_GRD values are already sigma0 in dB. Optionally boxcar-filtered per scene; then the median
    in dB. Bands, all float32: ``VV``, ``VH``, ``VV_VH`` (VV - VH in dB, i.e. the ratio) and
    ``count`` (valid VV observations, 0 where none).
    """
    params = recipe.s1
    if params is None:
        raise BadInputError(f"recipe for {recipe.aoi} has no sentinel-1 part")
    first, after_last = _date_range(start, end)
    scenes = (ee.ImageCollection(S1_ASSET).filterBounds(region).filterDate(first, after_last)
              .filter(s1_iw_dual_pol_filter()))
    if params.orbit_pass != "both":
        scenes = scenes.filter(ee.Filter.eq("orbitProperties_pass", params.orbit_pass.upper()))
    scenes = scenes.select(["VV", "VH"])
    if params.speckle_filter == "boxcar":
        size = params.speckle_size
        scenes = scenes.map(lambda image: _boxcar_db(ee.Image(image), size))
    median = scenes.median()
    vv, vh = median.select("VV"), median.select("VH")
    count = scenes.select("VV").count().unmask(0).rename("count")
    image = ee.Image.cat(vv, vh, vv.subtract(vh).rename("VV_VH"), count).toFloat()
    return image.select(list(S1_BANDS))


# --------------------------------------------------------------------------- export


def export_to_gcs(image: ee.Image, *, bucket: str, prefix: str, description: str, region: ee.Geometry, grid: Grid,
                  max_pixels: int = 10**13, file_dimensions: int | None = DEFAULT_FILE_DIMENSIONS) -> ee.batch.Task:
    """An unstarted export of ``image`` on ``grid`` over ``region`` to ``gs://bucket/prefix.tif``
    as a cloud-optimised GeoTIFF (masked pixels = :data:`NODATA`). ``file_dimensions`` (a multiple
    of 256, or None for Earth Engine's own) is the largest file side before the export is split."""
    if not bucket or not prefix:
        raise BadInputError(f"an export needs a bucket and an object prefix, found {bucket!r} and {prefix!r}")
    if file_dimensions is not None and (file_dimensions <= 0 or file_dimensions % SHARD_SIZE):
        raise BadInputError(f"file_dimensions must be a positive multiple of {SHARD_SIZE}, found {file_dimensions}")
    res = float(grid.resolution)
    return ee.batch.Export.image.toCloudStorage(
        image=image, description=description, bucket=bucket, fileNamePrefix=prefix, region=region,
        crs=grid.crs, crsTransform=[res, 0, 0, 0, -res, 0], maxPixels=max_pixels,
        fileDimensions=file_dimensions, fileFormat="GeoTIFF",
        formatOptions={"cloudOptimized": True, "noData": NODATA})


def find_active_export(description: str) -> str | None:
    """The operation name of a pending or running export named ``description``, else None. Export
    names carry the recipe and input hashes, so such an export computes exactly this composite."""
    try:
        operations = ee.data.listOperations() or []
    except ee.EEException as exc:
        raise classify_ee_error(str(exc))(f"cannot list Earth Engine operations: {exc}") from exc
    for op in operations:
        metadata = op.get("metadata") or {}
        if metadata.get("description") == description and str(metadata.get("state", "")).upper() in (
                "PENDING", "RUNNING"):
            return op.get("name")
    return None


def start_export(task: ee.batch.Task) -> str:
    """Start ``task`` and return its operation name (``projects/<p>/operations/<id>``)."""
    try:
        task.start()
    except ee.EEException as exc:
        raise classify_ee_error(str(exc))(f"Earth Engine refused to start export {_description(task)!r}: {exc}") \
            from exc
    if not task.name:
        raise TransientExternalError(f"Earth Engine started export {_description(task)!r} without an operation name")
    return task.name


def _description(task: ee.batch.Task) -> str:
    return (task.config or {}).get("description", "?")


# --------------------------------------------------------------------------- backend


def _pixel_extent(aoi_geometry: Mapping, grid: Grid) -> tuple[int, int]:
    """Width and height in grid pixels of the AOI's bounds in the grid CRS."""
    to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform
    minx, miny, maxx, maxy = shapely.transform(shape(aoi_geometry), to_grid, interleaved=False).bounds
    res = grid.resolution
    return (math.floor(maxx / res) - math.floor(minx / res) + 1, math.floor(maxy / res) - math.floor(miny / res) + 1)


class EarthEngineBackend:
    """Starts one composite export per (AOI, sensor, period) into ``gs://bucket/prefix/``.

    Assumes :func:`initialize` was called. The result is one COG ``gs://{bucket}/{prefix}/{name}.tif``.
    """

    def __init__(self, bucket: str, prefix: str) -> None:
        bucket = bucket.removeprefix("gs://").strip("/")
        if not bucket or "/" in bucket:
            raise BadInputError(f"expected a Cloud Storage bucket name, found {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def start(self, recipe: Recipe, sensor: str, aoi_geometry: dict, period: tuple[date, date],
              name: str) -> tuple[str, str]:
        """Start the export of ``sensor``'s composite; return (operation name, COG gs:// URI)."""
        builders = {"sentinel-2": s2_composite, "sentinel-1": s1_composite}
        if sensor not in builders:
            raise BadInputError(f"sensor must be one of {sorted(builders)}, found {sensor!r}")
        name = name.strip("/")
        if not name:
            raise BadInputError("an export needs a non-empty name")
        region = geometry_from_geojson(aoi_geometry)
        width, height = _pixel_extent(aoi_geometry, recipe.grid)
        if max(width, height) > DEFAULT_FILE_DIMENSIONS:
            raise BadInputError(f"AOI {recipe.aoi} spans {width} x {height} pixels of {recipe.grid.resolution} m; "
                                f"one export file holds at most {DEFAULT_FILE_DIMENSIONS} per side: split the AOI")
        object_name = f"{self.prefix}/{name}" if self.prefix else name
        description = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:100]
        running = find_active_export(description)
        if running is not None:  # an earlier try started it (retry after a timeout or a lost worker)
            log.info("Earth Engine export %s is already running as %s: waiting for it", description, running)
            return running, f"gs://{self.bucket}/{object_name}.tif"
        image = builders[sensor](recipe, region, *period)
        task = export_to_gcs(image, bucket=self.bucket, prefix=object_name, description=description,
                             region=region, grid=recipe.grid)
        return start_export(task), f"gs://{self.bucket}/{object_name}.tif"

    def build(self, recipe: Recipe, sensor: str, aoi: Aoi, period: tuple[date, date], name: str) -> str:
        """Start the export and block until Earth Engine has written the COG; return its URI.

        This is the waiting path (CLI); the Airflow operator defers on the same operation instead.
        Both decide success or failure with :func:`export_outcome`.
        """
        operation, uri = self.start(recipe, sensor, aoi.geometry, period, name)
        log.info("Earth Engine export %s started -> %s", operation, uri)
        wait_for_export(operation)
        return uri

    @classmethod
    def from_settings(cls, settings: Settings) -> EarthEngineBackend:
        """Initialise Earth Engine and export under the store URL (which must be gs://bucket/prefix)."""
        if not settings.store_url.startswith("gs://"):
            raise BadInputError("the earthengine backend exports to Cloud Storage: set SOILCLAY_STORE_URL to "
                                f"gs://bucket/prefix, found {settings.store_url!r}")
        initialize(settings.ee_project, settings.ee_service_account or None, settings.ee_key_file or None)
        bucket, _, prefix = settings.store_url.removeprefix("gs://").partition("/")
        return cls(bucket, prefix)
