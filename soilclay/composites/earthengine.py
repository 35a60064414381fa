"""Earth Engine backend of the composites: the same :class:`Recipe` as the local backend, computed
server-side and exported as one cloud-optimised GeoTIFF per AOI and sensor to Cloud Storage.

This module holds the composite expressions (:func:`s2_composite`, :func:`s1_composite`) and
:class:`EarthEngineBackend`; the session, geometry, naming, export requests, error translation and
operation polling come from :mod:`soilclay.earthengine`. The export grid is fixed by the recipe's
CRS and resolution (see :mod:`soilclay.earthengine.geometry`), so every export of a grid lands on
the same pixel lattice whatever the AOI's bounds.
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

from soilclay.composites.backend import CompositePlan, Computed
from soilclay.composites.recipe import Grid, Recipe
from soilclay.contract import S1_COMPOSITE_BANDS, S2_BANDS, S2_COMPOSITE_BANDS
from soilclay.earthengine.assets import (
    EE_S2_BANDS,
    S1_ASSET,
    S2_ASSET,
    S2_CLOUD_PROBABILITY_ASSET,
    cog_uri,
    export_description,
    object_name,
)
from soilclay.earthengine.exports import DEFAULT_FILE_DIMENSIONS, export_to_gcs, find_active_export, start_export
from soilclay.earthengine.filters import s1_iw_dual_pol_filter
from soilclay.earthengine.geometry import geometry_from_geojson
from soilclay.earthengine.operations import wait_for_export
from soilclay.earthengine.session import initialize
from soilclay.errors import BadInputError
from soilclay.io.store import split_gs_url

if TYPE_CHECKING:
    from soilclay.db.aois import Aoi
    from soilclay.settings import Settings

log = logging.getLogger(__name__)


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
    return image.select(list(S2_COMPOSITE_BANDS))


# --------------------------------------------------------------------------- Sentinel-1


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
    return image.select(list(S1_COMPOSITE_BANDS))


# --------------------------------------------------------------------------- backend


def _pixel_extent(aoi_geometry: Mapping, grid: Grid) -> tuple[int, int]:
    """Width and height in grid pixels of the AOI's bounds in the grid CRS."""
    to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform
    minx, miny, maxx, maxy = shapely.transform(shape(aoi_geometry), to_grid, interleaved=False).bounds
    res = grid.resolution
    return (math.floor(maxx / res) - math.floor(minx / res) + 1, math.floor(maxy / res) - math.floor(miny / res) + 1)


class EarthEngineBackend:
    """Starts one composite export per (AOI, sensor, period) into ``gs://bucket/prefix/``.

    Assumes :func:`soilclay.earthengine.session.initialize` was called (:meth:`from_settings` does).
    The result is one COG ``gs://{bucket}/{prefix}/{name}.tif``. A
    :class:`~soilclay.composites.backend.CompositeBackend`: :meth:`compute` exports a plan and waits.
    """

    name = "earthengine"

    def __init__(self, bucket: str, prefix: str) -> None:
        bucket = bucket if bucket.startswith("gs://") else f"gs://{bucket}"
        try:
            self.bucket, extra = split_gs_url(bucket)
        except BadInputError as exc:
            raise BadInputError(f"expected a Cloud Storage bucket name, found {bucket!r}: {exc}") from None
        if extra:
            raise BadInputError(f"expected a Cloud Storage bucket name, found {bucket!r} (with a path)")
        self.prefix = prefix.strip("/")

    def start(self, recipe: Recipe, sensor: str, aoi_geometry: dict, period: tuple[date, date],
              name: str) -> tuple[str, str]:
        """Start the export of ``sensor``'s composite; return (operation name, COG gs:// URI).

        An export already running under the same description (an earlier try of the same name,
        after a timeout or a lost worker) is waited for instead of started again."""
        builders = {"sentinel-2": s2_composite, "sentinel-1": s1_composite}
        if sensor not in builders:
            raise BadInputError(f"sensor must be one of {sorted(builders)}, found {sensor!r}")
        target, description = object_name(self.prefix, name), export_description(name)
        uri = cog_uri(self.bucket, target)
        region = geometry_from_geojson(aoi_geometry)
        width, height = _pixel_extent(aoi_geometry, recipe.grid)
        if max(width, height) > DEFAULT_FILE_DIMENSIONS:
            raise BadInputError(f"AOI {recipe.aoi} spans {width} x {height} pixels of {recipe.grid.resolution} m; "
                                f"one export file holds at most {DEFAULT_FILE_DIMENSIONS} per side: split the AOI")
        running = find_active_export(description)
        if running is not None:
            log.info("Earth Engine export %s is already running as %s: waiting for it", description, running)
            return running, uri
        image = builders[sensor](recipe, region, *period)
        task = export_to_gcs(image, bucket=self.bucket, prefix=target, description=description, region=region,
                             grid=recipe.grid)
        return start_export(task), uri

    def build(self, recipe: Recipe, sensor: str, aoi: Aoi, period: tuple[date, date], name: str) -> str:
        """Start the export and block until Earth Engine has written the COG; return its URI.

        This is the waiting path (CLI); the Airflow operator defers on the same operation instead.
        Both decide with :mod:`soilclay.earthengine.operations`.
        """
        operation, uri = self.start(recipe, sensor, aoi.geometry, period, name)
        log.info("Earth Engine export %s started -> %s", operation, uri)
        wait_for_export(operation)
        return uri

    def compute(self, plan: CompositePlan, store: object = None) -> Computed:
        """Export ``plan``'s composite under its key and wait for it (Earth Engine writes to Cloud
        Storage itself, so ``store`` is not used); every planned scene is an input."""
        uri = self.build(plan.recipe, plan.sensor, plan.aoi, plan.period, plan.key.removesuffix(".tif"))
        return Computed(uri, len(plan.scenes), [])

    @classmethod
    def from_settings(cls, settings: Settings) -> EarthEngineBackend:
        """Initialise Earth Engine and export under the store URL (which must be gs://bucket/prefix)."""
        if not settings.store_url.startswith("gs://"):
            raise BadInputError("the earthengine backend exports to Cloud Storage: set SOILCLAY_STORE_URL to "
                                f"gs://bucket/prefix, found {settings.store_url!r}")
        bucket, prefix = split_gs_url(settings.store_url)
        initialize(settings.ee_project, settings.ee_service_account or None, settings.ee_key_file or None)
        return cls(bucket, prefix)
