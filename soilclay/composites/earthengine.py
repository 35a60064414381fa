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
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

import ee
from rasterio.windows import Window

from soilclay.composites.backend import CompositePlan, Computed
from soilclay.composites.grid import TargetGrid
from soilclay.composites.parity import MASK_BANDS, MAX_RAW
from soilclay.composites.recipe import Recipe
from soilclay.composites.selection import selection_of
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
#: soilclay's Sentinel-2 band names -> Earth Engine's.
EE_NAME = dict(zip(S2_BANDS, EE_S2_BANDS, strict=True))


def _date_range(start: date, end: date) -> tuple[str, str]:
    """Inclusive ``start``..``end`` as the half-open ISO bounds ``filterDate`` wants."""
    if end < start:
        raise BadInputError(f"composite period ends {end} before it starts {start}")
    return start.isoformat(), (end + timedelta(days=1)).isoformat()


def _reducer(statistic: str, scenes: int) -> ee.Reducer:
    """The reducer of a recipe statistic over ``scenes`` images: ``median``, ``mean`` or ``pNN``. Median and
    percentiles are computed from the raw values up to ``maxRaw`` observations per pixel and estimated
    from a histogram above it; ``maxRaw`` is set explicitly (the server's default is undocumented) to at
    least the number of images, each of which gives a pixel at most one observation: exact by
    construction (see :mod:`soilclay.composites.parity`)."""
    max_raw = max(MAX_RAW, scenes)
    if statistic == "median":
        return ee.Reducer.median(maxRaw=max_raw)
    if statistic == "mean":
        return ee.Reducer.mean()
    match = re.fullmatch(r"p([1-9][0-9]?)", statistic)
    if match:
        return ee.Reducer.percentile([int(match.group(1))], maxRaw=max_raw)
    raise BadInputError(f"statistic must be median, mean or p1..p99, found {statistic!r}")


def _scene_filter(scene_ids: Sequence[str]) -> tuple[ee.Filter, int]:
    """Exactly the planned scenes (their ``system:index``): the scenes the composite's lineage names; and
    how many they are."""
    ids = sorted({str(i) for i in scene_ids})
    if not ids:
        raise BadInputError("an Earth Engine composite needs at least one scene id")
    return ee.Filter.inList("system:index", ids), len(ids)


# --------------------------------------------------------------------------- Sentinel-2


def s2_composite(recipe: Recipe, region: ee.Geometry, start: date, end: date, *,
                 scene_ids: Sequence[str]) -> ee.Image:
    """The bare-soil Sentinel-2 composite of ``recipe`` over ``start``..``end`` (inclusive) from exactly
    the scenes ``scene_ids`` (``system:index``; those :func:`soilclay.composites.selection.select_s2` kept).

    Per scene: clear = SCL in ``scl_keep`` (and, optionally, s2cloudless probability below
    ``cloud_probability_max``); valid = clear where B4, B8, B11 and B12 hold data; bare = valid and
    NDVI < ``ndvi_max`` and NBR2 < ``nbr2_max`` (and, optionally, NDVI + NBR <= ``scmap_max``). The
    recipe statistic of the bare pixels gives the spectrum (L2A DN = reflectance x 10000, masked where
    ``bare_count < min_bare_count``); ``bare_count`` and ``valid_count`` count bare and valid observations
    (0 where none), ``bare_frequency`` is their ratio in floating point (masked where nothing was valid).
    Bands, all float32: :data:`S2_BANDS` then :data:`S2_COUNT_BANDS`. The meaning both backends share is
    stated in :mod:`soilclay.composites.parity`.
    """
    params = recipe.s2
    if params is None:
        raise BadInputError(f"recipe for {recipe.aoi} has no sentinel-2 part")
    first, after_last = _date_range(start, end)
    planned, n_scenes = _scene_filter(scene_ids)
    scenes = ee.ImageCollection(S2_ASSET).filterBounds(region).filterDate(first, after_last).filter(planned)
    if params.cloud_probability_max is not None:
        probabilities = (ee.ImageCollection(S2_CLOUD_PROBABILITY_ASSET)
                         .filterBounds(region).filterDate(first, after_last).filter(planned))
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
        # Valid: clear, and the four bands of the bare-soil rules hold data (their masks, scene and 20 m edges).
        has_data = image.select([EE_NAME[b] for b in MASK_BANDS]).mask().reduce(ee.Reducer.min())
        valid = clear.And(has_data)
        ndvi = image.normalizedDifference(["B8", "B4"])
        rules = ndvi.lt(params.ndvi_max).And(image.normalizedDifference(["B11", "B12"]).lt(params.nbr2_max))
        if params.scmap_max is not None:
            nbr = image.normalizedDifference(["B8", "B12"])
            rules = rules.And(ndvi.add(nbr).lte(params.scmap_max))
        bare = valid.And(rules)
        spectrum = image.select(list(EE_S2_BANDS), list(S2_BANDS)).updateMask(bare)
        return spectrum.addBands(bare.rename("bare")).addBands(valid.rename("valid"))

    masked = scenes.map(masked_scene)
    counts = masked.select(["bare", "valid"]).sum().unmask(0)
    bare_count = counts.select("bare").rename("bare_count")
    valid_count = counts.select("valid").rename("valid_count")
    # Counts are integers: Image.divide of two integer images is an integer division, so cast first.
    bare_frequency = (bare_count.toFloat().divide(valid_count.toFloat()).updateMask(valid_count.gt(0))
                      .rename("bare_frequency"))
    spectrum = (masked.select(list(S2_BANDS)).reduce(_reducer(params.statistic, n_scenes)).rename(list(S2_BANDS))
                .updateMask(bare_count.gte(params.min_bare_count)))
    image = ee.Image.cat(spectrum, bare_count, valid_count, bare_frequency).toFloat()
    return image.select(list(S2_COMPOSITE_BANDS))


# --------------------------------------------------------------------------- Sentinel-1


def _boxcar_db(image: ee.Image, size: int) -> ee.Image:
    """Boxcar (square mean) speckle filter of a dB image, averaged in linear power.

    The kernel radius is in pixels of the projection the computation is requested in: Earth Engine
    evaluates lazily, so an export computes the focal mean on the export grid (the recipe's), as the
    local backend does on its target grid; nothing here reprojects. 10^(dB/10) is written as
    exp(dB * ln10 / 10) so the scene stays the first operand and keeps its properties.
    """
    linear = image.multiply(math.log(10) / 10).exp()
    smoothed = linear.focalMean(kernel=ee.Kernel.square(size // 2, "pixels"))
    return smoothed.log10().multiply(10)


def s1_composite(recipe: Recipe, region: ee.Geometry, start: date, end: date, *,
                 scene_ids: Sequence[str]) -> ee.Image:
    """The Sentinel-1 GRD composite of ``recipe`` over ``start``..``end`` (inclusive) from exactly the
    scenes ``scene_ids`` (those :func:`soilclay.composites.selection.select_s1` kept: the orbit pass is
    decided there).

    S1_GRD values are already sigma0 in dB. Optionally boxcar-filtered per scene; then the median
    in dB. Bands, all float32: ``VV``, ``VH``, ``VV_VH`` (VV - VH in dB, i.e. the ratio) and
    ``count`` (valid VV observations, 0 where none).
    """
    params = recipe.s1
    if params is None:
        raise BadInputError(f"recipe for {recipe.aoi} has no sentinel-1 part")
    first, after_last = _date_range(start, end)
    planned, n_scenes = _scene_filter(scene_ids)
    scenes = (ee.ImageCollection(S1_ASSET).filterBounds(region).filterDate(first, after_last)
              .filter(s1_iw_dual_pol_filter()).filter(planned))
    scenes = scenes.select(["VV", "VH"])
    if params.speckle_filter == "boxcar":
        size = params.speckle_size
        scenes = scenes.map(lambda image: _boxcar_db(ee.Image(image), size))
    median = scenes.reduce(_reducer("median", n_scenes)).rename(["VV", "VH"])
    vv, vh = median.select("VV"), median.select("VH")
    count = scenes.select("VV").count().unmask(0).rename("count")
    image = ee.Image.cat(vv, vh, vv.subtract(vh).rename("VV_VH"), count).toFloat()
    return image.select(list(S1_COMPOSITE_BANDS))


# --------------------------------------------------------------------------- backend


def export_region(grid: TargetGrid) -> ee.Geometry:
    """The region an export covers: the target grid's rectangle in its own CRS (the local backend's
    extent, :meth:`TargetGrid.for_aoi`). An export clips to its region, so with this rectangle the
    composite is not clipped to the AOI polygon; its corners are pixel corners of the export lattice
    (``crsTransform`` with edges on multiples of the resolution), so every pixel of the grid is wholly
    inside (no partial edge masks) and the file holds exactly ``width`` x ``height`` pixels."""
    x0, y0, x1, y1 = grid.bounds(Window(0, 0, grid.width, grid.height))
    return ee.Geometry.Rectangle([x0, y0, x1, y1], grid.crs, False)


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
              name: str, scene_ids: Sequence[str]) -> tuple[str, str]:
        """Start the export of ``sensor``'s composite of exactly ``scene_ids`` (``system:index``, as
        :func:`soilclay.composites.selection.select_for` picks them); return (operation name, COG gs:// URI).

        An export already running under the same description (an earlier try of the same name,
        after a timeout or a lost worker) is waited for instead of started again."""
        builders = {"sentinel-2": s2_composite, "sentinel-1": s1_composite}
        if sensor not in builders:
            raise BadInputError(f"sensor must be one of {sorted(builders)}, found {sensor!r}")
        target = object_name(self.prefix, name)
        # The description names the destination (bucket, prefix and name): two deployments sharing an Earth
        # Engine project, with other buckets or prefixes, never adopt each other's export.
        description = export_description(f"{self.bucket}/{target}")
        uri = cog_uri(self.bucket, target)
        region = geometry_from_geojson(aoi_geometry)
        grid = TargetGrid.for_aoi(aoi_geometry, recipe.grid)
        if max(grid.width, grid.height) > DEFAULT_FILE_DIMENSIONS:
            raise BadInputError(f"AOI {recipe.aoi} spans {grid.width} x {grid.height} pixels of "
                                f"{recipe.grid.resolution} m; one export file holds at most "
                                f"{DEFAULT_FILE_DIMENSIONS} per side: split the AOI")
        running = find_active_export(description, uri)
        if running is not None:
            log.info("Earth Engine export %s is already running as %s: waiting for it", description, running)
            return running, uri
        image = builders[sensor](recipe, region, *period, scene_ids=scene_ids)
        task = export_to_gcs(image, bucket=self.bucket, prefix=target, description=description,
                             region=export_region(grid), grid=recipe.grid)
        return start_export(task), uri

    def build(self, recipe: Recipe, sensor: str, aoi: Aoi, period: tuple[date, date], name: str,
              scene_ids: Sequence[str]) -> str:
        """Start the export and block until Earth Engine has written the COG; return its URI.

        This is the waiting path (CLI); the Airflow operator defers on the same operation instead.
        Both decide with :mod:`soilclay.earthengine.operations`.
        """
        operation, uri = self.start(recipe, sensor, aoi.geometry, period, name, scene_ids)
        log.info("Earth Engine export %s started -> %s", operation, uri)
        wait_for_export(operation)
        return uri

    def compute(self, plan: CompositePlan, store: object = None) -> Computed:
        """Export ``plan``'s composite under its key and wait for it (Earth Engine writes to Cloud
        Storage itself, so ``store`` is not used). Every planned scene is an input; the export is made
        of those :func:`~soilclay.composites.selection.select_for` keeps, the others are listed as skipped."""
        selection = selection_of(plan)
        if not selection.selected:
            reasons = "; ".join(f"{sid}: {why}" for sid, why in selection.ruled_out[:5]) or "none of the recipe's pass"
            raise BadInputError(f"no usable {plan.sensor} scenes for {plan.recipe.aoi} ({len(plan.scenes)} listed): "
                                f"{reasons}")
        uri = self.build(plan.recipe, plan.sensor, plan.aoi, plan.period, plan.key.removesuffix(".tif"),
                         selection.ids)
        return Computed(uri, len(selection.selected), list(selection.ruled_out))

    @classmethod
    def from_settings(cls, settings: Settings) -> EarthEngineBackend:
        """Initialise Earth Engine and export under the store URL (which must be gs://bucket/prefix)."""
        if not settings.store_url.startswith("gs://"):
            raise BadInputError("the earthengine backend exports to Cloud Storage: set SOILCLAY_STORE_URL to "
                                f"gs://bucket/prefix, found {settings.store_url!r}")
        bucket, prefix = split_gs_url(settings.store_url)
        initialize(settings.ee_project, settings.ee_service_account or None, settings.ee_key_file or None)
        return cls(bucket, prefix)
