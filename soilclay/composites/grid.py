"""The target grid of a composite: the AOI's bounds in the grid CRS, snapped outward to whole
pixels, and its tiling. Pure geometry, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import shape

from soilclay.composites.recipe import Grid


@dataclass(frozen=True)
class TargetGrid:
    crs: str
    transform: Affine
    width: int
    height: int

    @classmethod
    def for_aoi(cls, aoi_geometry: dict, grid: Grid) -> TargetGrid:
        """Snap the AOI (GeoJSON in EPSG:4326) to whole pixels of ``grid`` (outward)."""
        to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
        projected = shapely.transform(shape(aoi_geometry), lambda xy: np.column_stack(to_grid.transform(*xy.T)))
        xmin, ymin, xmax, ymax = projected.bounds
        res = grid.resolution
        # Snap outward, but forgive a quarter pixel: an AOI drawn on the grid and stored in lon/lat comes
        # back with edges bowed by the reprojection, and should land on the same grid.
        tol = 0.25
        x0 = math.floor(xmin / res + tol) * res
        y0 = math.floor(ymin / res + tol) * res
        x1 = math.ceil(xmax / res - tol) * res
        y1 = math.ceil(ymax / res - tol) * res
        return cls(grid.crs, from_origin(x0, y1, res, res), int(round((x1 - x0) / res)), int(round((y1 - y0) / res)))

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def tiles(self, size: int) -> Iterator[Window]:
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield Window(col, row, min(size, self.width - col), min(size, self.height - row))

    def bounds(self, window: Window) -> tuple[float, float, float, float]:
        return window_bounds(window, self.transform)
