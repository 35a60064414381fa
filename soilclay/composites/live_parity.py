"""Both backends on the same real pixels: Earth Engine's composite against the local backend's, band by band.

For one small AOI, sensor and period: the scenes Earth Engine lists are selected as for a build
(:mod:`soilclay.composites.selection`); each selected scene's bands are fetched from Earth Engine onto
the composite's target grid (``ee.data.computePixels``, nearest neighbour, Earth Engine's default) and
written as a local scene archive (one COG per band and a STAC Item, as the local backend reads them:
Sentinel-1 converted from dB to linear power); the local backend composites that archive, Earth Engine
computes :func:`~soilclay.composites.earthengine.s2_composite` (or ``s1_composite``) of the same scene ids
on the same grid, and :func:`soilclay.composites.parity.compare` judges every band against its
tolerance. Both backends see identical inputs, so what differs is the compositing itself.

The composite is fetched with ``computePixels`` on the export's lattice rather than exported to Cloud
Storage: the expression and the grid are the export's (the export only adds its region clip, which is the
grid's box, :func:`~soilclay.composites.earthengine.export_region`).

Needs Earth Engine credentials (``SOILCLAY_EE_PROJECT`` and a service account or default credentials);
``soilclay composites parity`` lists the scenes and runs it (``tests/composites/test_live_parity.py``
runs that command where Earth Engine is configured).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.transform import from_origin

from soilclay.composites.grid import TargetGrid
from soilclay.composites.parity import BandDifference, compare
from soilclay.composites.recipe import Recipe
from soilclay.composites.selection import select_for
from soilclay.contract import COLLECTION_OF, S1_COMPOSITE_BANDS, S2_BANDS, S2_COMPOSITE_BANDS, SceneRef
from soilclay.earthengine.assets import EE_S2_BANDS
from soilclay.errors import BadInputError

#: Written for masked pixels in fetched arrays (all bands are fetched as float32).
NODATA = -32768.0
#: Earth Engine's band names of a Sentinel-2 scene as the local archive's asset keys.
S2_ASSETS = {**dict(zip(S2_BANDS, EE_S2_BANDS, strict=True)), "SCL": "SCL"}
S1_ASSETS = {"vv": "VV", "vh": "VH"}

Fetch = Callable[[Any, TargetGrid], dict[str, np.ndarray]]


def pixel_grid(grid: TargetGrid) -> dict:
    """The Cloud API ``PixelGrid`` of ``grid`` (dimensions, affine transform, CRS code)."""
    t = grid.transform
    return {"dimensions": {"width": grid.width, "height": grid.height},
            "affineTransform": {"scaleX": t.a, "shearX": t.b, "translateX": t.c,
                                "shearY": t.d, "scaleY": t.e, "translateY": t.f},
            "crsCode": grid.crs}


def padded(grid: TargetGrid, margin: int) -> TargetGrid:
    """``grid`` grown by ``margin`` pixels on every side (same lattice)."""
    if margin == 0:
        return grid
    t = grid.transform
    return TargetGrid(grid.crs, from_origin(t.c - margin * t.a, t.f - margin * t.e, t.a, -t.e),
                      grid.width + 2 * margin, grid.height + 2 * margin)


def bands_of(structured: np.ndarray, nodata: float = NODATA) -> dict[str, np.ndarray]:
    """A ``NUMPY_NDARRAY`` answer (a structured array, one field per band) as float32 arrays, NaN for nodata."""
    names = structured.dtype.names
    if not names:
        raise BadInputError(f"expected a structured array with one field per band, found dtype {structured.dtype}")
    out = {}
    for name in names:
        values = np.asarray(structured[name], np.float32)
        out[name] = np.where(values == nodata, np.nan, values).astype(np.float32)
    return out


def compute_pixels(image: Any, grid: TargetGrid) -> dict[str, np.ndarray]:
    """``image`` (every band as float32, masked pixels as :data:`NODATA`) on ``grid``, fetched from Earth Engine."""
    import ee

    from soilclay.earthengine.errors import translated

    with translated("Earth Engine computePixels failed"):
        answer = ee.data.computePixels({"expression": ee.Image(image).toFloat().unmask(NODATA, False),
                                        "fileFormat": "NUMPY_NDARRAY", "grid": pixel_grid(grid)})
    return bands_of(answer)


def write_archive(root: Path, sensor: str, scenes: list[SceneRef], pixels: Mapping[str, Mapping[str, np.ndarray]],
                  grid: TargetGrid) -> list[SceneRef]:
    """A local scene archive of fetched pixels (``pixels[scene_id][asset]``, on ``grid``): per scene one COG
    per asset and a STAC Item naming them; returns the scenes as the local backend lists them."""
    from soilclay.io.cog import write_cog

    refs = []
    for scene in scenes:
        folder = root / sensor / scene.scene_id
        folder.mkdir(parents=True, exist_ok=True)
        assets = {}
        for key, values in pixels[scene.scene_id].items():
            write_cog(folder / f"{key}.tif", values.astype(np.float32), transform=grid.transform, crs=grid.crs,
                      nodata=float("nan"), categorical=key == "SCL")
            assets[key] = {"href": f"./{key}.tif"}
        item = {"type": "Feature", "id": scene.scene_id, "collection": scene.collection, "assets": assets,
                "properties": {"datetime": scene.acquired_at.isoformat()}}
        (folder / "item.json").write_text(json.dumps(item))
        properties = {**scene.properties, **({"s1:scale": "linear"} if sensor == "sentinel-1" else {})}
        refs.append(SceneRef(scene.scene_id, scene.collection, scene.platform, scene.acquired_at, "local",
                             str(folder / "item.json"), cloud_cover=scene.cloud_cover, orbit_state=scene.orbit_state,
                             properties=properties))
    return refs


def scene_pixels(sensor: str, scene: SceneRef, grid: TargetGrid, fetch: Fetch) -> dict[str, np.ndarray]:
    """One scene's assets on ``grid`` as the local backend reads them (Sentinel-1 in linear power)."""
    import ee

    assets = S2_ASSETS if sensor == "sentinel-2" else S1_ASSETS
    image = ee.Image(scene.href).select(list(assets.values()), list(assets))
    values = fetch(image, grid)
    if sensor == "sentinel-1":  # Earth Engine's S1_GRD is sigma0 in dB; the local archive holds linear power
        values = {k: np.power(10.0, v / 10.0).astype(np.float32) for k, v in values.items()}
    return values


@dataclass(frozen=True)
class ParityReport:
    sensor: str
    scenes: int
    grid: TargetGrid
    bands: list[BandDifference]

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.bands)

    def render(self) -> str:
        head = (f"{self.sensor}: {self.scenes} scenes on {self.grid.width} x {self.grid.height} pixels "
                f"({self.grid.crs}): {'parity holds' if self.ok else 'PARITY BROKEN'}")
        return "\n".join([head] + ["  " + b.render() for b in self.bands])


def run_parity(recipe: Recipe, sensor: str, aoi_geometry: dict, period: tuple[date, date], workdir: Path, *,
               scenes: list[SceneRef], fetch: Fetch = compute_pixels) -> ParityReport:
    """Compare both backends on ``scenes`` (as Earth Engine lists them) of ``sensor`` over ``period``."""
    import ee
    import rasterio

    from soilclay.composites.earthengine import s1_composite, s2_composite
    from soilclay.composites.local import LocalBackend
    from soilclay.earthengine.geometry import geometry_from_geojson

    grid = TargetGrid.for_aoi(aoi_geometry, recipe.grid)
    # Scenes are fetched with a margin, so a speckle filter sees the same neighbours at the grid's edge
    # in both backends (Earth Engine computes beyond the export's box before it clips).
    speckle = recipe.s1 if sensor == "sentinel-1" and recipe.s1 and recipe.s1.speckle_filter != "none" else None
    margin = speckle.speckle_size // 2 if speckle else 0
    fetched = padded(grid, margin)
    start, end = (datetime.combine(d, t, tzinfo=UTC) for d, t in ((period[0], time.min), (period[1], time.max)))
    listed = [s for s in scenes if s.collection == COLLECTION_OF[sensor] and start <= s.acquired_at <= end]
    selection = select_for(recipe, sensor, listed)
    if not selection.selected:
        raise BadInputError(f"no {sensor} scene of the AOI in {period[0]}..{period[1]} is selected by the recipe")
    pixels = {s.scene_id: scene_pixels(sensor, s, fetched, fetch) for s in selection.selected}
    local_scenes = write_archive(workdir / "archive", sensor, list(selection.selected), pixels, fetched)
    backend = LocalBackend(workdir / "local", workers=1)
    build = backend.s2 if sensor == "sentinel-2" else backend.s1
    result = build(recipe, grid, local_scenes, f"parity-{sensor}")
    bands = S2_COMPOSITE_BANDS if sensor == "sentinel-2" else S1_COMPOSITE_BANDS
    with rasterio.open(result.path) as src:
        local = {band: src.read(i + 1).astype(np.float32) for i, band in enumerate(bands)}
    builder = s2_composite if sensor == "sentinel-2" else s1_composite
    region = geometry_from_geojson(aoi_geometry)
    remote = fetch(ee.Image(builder(recipe, region, *period, scene_ids=selection.ids)), grid)
    statistic = recipe.s2.statistic if sensor == "sentinel-2" and recipe.s2 else "median"
    return ParityReport(sensor, len(selection.selected), grid,
                        compare(local, {b: remote[b] for b in bands}, statistic=statistic))
