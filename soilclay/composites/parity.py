"""What a composite means, stated once for both backends, and how close two computations of it must be.

The local backend (:mod:`soilclay.composites.local`, numpy) and the Earth Engine backend
(:mod:`soilclay.composites.earthengine`) compute this; ``tests/composites/test_parity.py`` checks both
against it (the local maths numerically, the Earth Engine expression by evaluating its serialised graph
offline), and ``tests/composites/test_parity_live.py`` compares the two on Earth Engine's own pixels
where credentials are configured.

Scenes: exactly those :mod:`soilclay.composites.selection` keeps of the plan (Earth Engine filters its
collections by their ``system:index``).

Sentinel-2, per scene (L2A digital numbers, reflectance x 10000; Earth Engine's harmonised collection):

- clear: SCL in ``scl_keep`` (and the s2cloudless probability below ``cloud_probability_max``);
- valid: clear, and :data:`MASK_BANDS` all hold data (not nodata / not masked);
- bare: valid and NDVI < ``ndvi_max`` and NBR2 < ``nbr2_max`` (and NDVI + NBR <= ``scmap_max``).

Over the scenes: each band is the recipe statistic of its bare observations, nodata where
``bare_count < min_bare_count``; ``bare_count`` and ``valid_count`` count bare and valid observations (0,
not nodata, where none); ``bare_frequency`` is ``bare_count / valid_count`` in floating point, nodata
where ``valid_count`` is 0.

Sentinel-1, per scene (sigma0): backscatter in dB (10 log10 of linear power; optionally a boxcar mean of
``speckle_size`` grid pixels in linear power first); over the scenes: the median of VV and of VH in dB,
``VV_VH`` = VV - VH, ``count`` = valid VV observations (0 where none).

Extent: the AOI's bounding box in the grid CRS snapped outward to whole pixels
(:meth:`soilclay.composites.grid.TargetGrid.for_aoi`), not clipped to the AOI polygon: parcels on the
AOI's edge see the same pixels from both backends. Inputs coarser than the grid (20 m bands, SCL) are
taken by nearest neighbour.

Statistic: ``mean`` is the arithmetic mean. ``median`` and ``pNN`` are, locally, numpy's linear
interpolation between the closest ranks; in Earth Engine, the reducers are computed from the raw values
up to :data:`MAX_RAW` observations per pixel (set explicitly: above it they are estimated from a
histogram) and Earth Engine does not document how it interpolates between ranks. The difference this can
make was measured on the demo world (``benchmarks/median_definitions.py``, docs/parity-median.md) and
is what :data:`TOLERANCES` allows for the spectral and backscatter bands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The bands every bare-soil rule reads: an observation is valid only where all of them hold data.
MASK_BANDS = ("B04", "B08", "B11", "B12")
#: Raw values Earth Engine's median/percentile reducers keep per pixel before they fall back to a
#: histogram: above the largest stack a composite sees (3 years of Sentinel-1 over two passes and
#: overlapping orbits is some hundreds of observations; Sentinel-2 bare observations fewer).
MAX_RAW = 5000


@dataclass(frozen=True)
class Tolerance:
    """Two computations of a band agree when they mark the same pixels nodata (but for ``nodata_share``
    of the pixels) and, where both have a value, differ by at most ``atol`` on all but ``outside_share``
    of the pixels and never by more than ``max_abs``."""

    atol: float
    outside_share: float = 0.0
    max_abs: float = math.inf
    nodata_share: float = 0.0


#: Spectral bands: DN; backscatter: dB; counts exact; the frequency to float32 rounding.
TOLERANCES: dict[str, Tolerance] = {
    **{band: Tolerance(atol=0.5, outside_share=0.05, max_abs=500.0, nodata_share=0.001)
       for band in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")},
    "bare_count": Tolerance(atol=0.0, outside_share=0.001, nodata_share=0.0),
    "valid_count": Tolerance(atol=0.0, outside_share=0.001, nodata_share=0.0),
    "bare_frequency": Tolerance(atol=1e-6, outside_share=0.001, nodata_share=0.001),
    **{band: Tolerance(atol=0.01, outside_share=0.05, max_abs=3.0, nodata_share=0.001)
       for band in ("VV", "VH", "VV_VH")},
    "count": Tolerance(atol=0.0, outside_share=0.001, nodata_share=0.0),
}


@dataclass(frozen=True)
class BandDifference:
    """How one band of two computations differs (``a`` and ``b``: the same grid, NaN for nodata)."""

    band: str
    pixels: int
    nodata_mismatch: int
    compared: int
    outside: int  # compared pixels differing by more than the tolerance's atol
    max_abs: float
    p99_abs: float
    ok: bool

    def render(self) -> str:
        verdict = "ok" if self.ok else "DIFFERENT"
        return (f"{self.band:<15} {verdict:<9} pixels {self.pixels:>9}  nodata mismatch {self.nodata_mismatch:>7}  "
                f"beyond tolerance {self.outside:>7}  max |diff| {self.max_abs:.6g}  p99 |diff| {self.p99_abs:.6g}")


def compare_band(band: str, a: np.ndarray, b: np.ndarray, tolerance: Tolerance | None = None) -> BandDifference:
    """Compare band ``band`` of two computations against its tolerance (default :data:`TOLERANCES`)."""
    if a.shape != b.shape:
        raise ValueError(f"band {band}: shapes differ, {a.shape} and {b.shape}")
    tol = tolerance or TOLERANCES[band]
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a_nan, b_nan = np.isnan(a64), np.isnan(b64)
    both = ~a_nan & ~b_nan
    diff = np.abs(a64[both] - b64[both])
    mismatch, compared = int((a_nan != b_nan).sum()), int(both.sum())
    outside = int((diff > tol.atol).sum())
    max_abs = float(diff.max()) if compared else 0.0
    p99 = float(np.percentile(diff, 99)) if compared else 0.0
    pixels = a64.size
    ok = (mismatch <= tol.nodata_share * pixels and outside <= tol.outside_share * max(compared, 1)
          and max_abs <= tol.max_abs)
    return BandDifference(band, pixels, mismatch, compared, outside, max_abs, p99, ok)


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[BandDifference]:
    """:func:`compare_band` for every band of ``a`` (which ``b`` must hold too)."""
    missing = [band for band in a if band not in b]
    if missing:
        raise ValueError(f"bands missing from the other computation: {', '.join(missing)}")
    return [compare_band(band, a[band], b[band]) for band in a]
