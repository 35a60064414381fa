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
interpolation between the closest ranks. Earth Engine computes its reducers from the raw values up to
``maxRaw`` observations per pixel (estimating from a histogram above it); soilclay sets ``maxRaw`` to at
least the number of scenes (:data:`MAX_RAW` or more), so its values are exact, but Earth Engine does not
document which value it takes between two ranks (an even count's median). Where the statistic falls on one
observation every exact rule agrees and so must the backends (:data:`TOLERANCES`); between two ranks the
difference any rule could make was measured on the demo world (``benchmarks/median_definitions.py``,
docs/parity-median.md) and is what :data:`BETWEEN_RANKS` allows.

Known, left as they are (no real data reaches them): thresholds are compared in float32 locally and in
double precision in Earth Engine (a pixel exactly on a threshold may fall either side); an SCL class 0
(no data) in ``scl_keep`` is never clear locally (read as nodata) but would be in Earth Engine; a scene
without its cloud-probability image is dropped by Earth Engine's join and skipped as unreadable locally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from soilclay.contract import S2_BANDS

#: The bands every bare-soil rule reads: an observation is valid only where all of them hold data.
MASK_BANDS = ("B04", "B08", "B11", "B12")
#: The least ``maxRaw`` of Earth Engine's median/percentile reducers (raw values kept per pixel before a
#: histogram takes over): above the stacks a composite sees (3 years of Sentinel-1 over two passes and
#: overlapping orbits is some hundreds of observations); an expression over more scenes uses their number.
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


SPECTRAL = S2_BANDS
BACKSCATTER = ("VV", "VH", "VV_VH")

#: Where the statistic falls on one observation (a median of an odd count, a percentile on a whole rank,
#: a mean): any exact definition agrees, so the backends must too. Spectral bands in DN, backscatter in dB,
#: counts exact, the frequency to float32 rounding.
TOLERANCES: dict[str, Tolerance] = {
    **{band: Tolerance(atol=0.5, outside_share=0.001, nodata_share=0.001) for band in SPECTRAL},
    "bare_count": Tolerance(atol=0.0, outside_share=0.001),
    "valid_count": Tolerance(atol=0.0, outside_share=0.001),
    "bare_frequency": Tolerance(atol=1e-6, outside_share=0.001, nodata_share=0.001),
    **{band: Tolerance(atol=0.01, outside_share=0.001, nodata_share=0.001) for band in BACKSCATTER},
    "count": Tolerance(atol=0.0, outside_share=0.001),
}
#: Where the statistic falls between two observations, Earth Engine's rule is undocumented; any rule
#: picking a value between them stays within these bounds of numpy's interpolation on the demo world
#: (the 99th percentile and the worst pixel, benchmarks/median_definitions.py, docs/parity-median.md:
#: 150 DN and 556 DN for Sentinel-2, 0.18 dB and 0.55 dB for Sentinel-1 medians).
BETWEEN_RANKS: dict[str, Tolerance] = {
    **{band: Tolerance(atol=160.0, outside_share=0.01, max_abs=600.0, nodata_share=0.001) for band in SPECTRAL},
    **{band: Tolerance(atol=0.2, outside_share=0.01, max_abs=0.6, nodata_share=0.001) for band in BACKSCATTER},
}
#: The count band each statistic band is a statistic of.
COUNT_OF = {**{band: "bare_count" for band in SPECTRAL}, **{band: "count" for band in BACKSCATTER}}


def on_one_rank(statistic: str, count: np.ndarray) -> np.ndarray:
    """Pixels whose ``statistic`` over ``count`` observations is one observation's value (not between two):
    every pixel for the mean; an odd count for the median; a whole rank q (n - 1) for percentile q."""
    n = np.nan_to_num(np.asarray(count, np.float64), nan=0.0).astype(np.int64)
    if statistic == "mean":
        return np.ones(n.shape, bool)
    q = 50 if statistic == "median" else int(statistic[1:])
    return (q * np.maximum(n - 1, 0)) % 100 == 0


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
        return (f"{self.band:<22} {verdict:<9} pixels {self.pixels:>9}  nodata mismatch {self.nodata_mismatch:>7}  "
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


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], *, statistic: str = "median"
            ) -> list[BandDifference]:
    """:func:`compare_band` for every band of ``a`` (which ``b`` must hold too). A statistic band is judged in
    two parts, by the counts of ``a``: where the recipe's ``statistic`` falls on one observation, by
    :data:`TOLERANCES`; between two (``<band> between ranks``), by :data:`BETWEEN_RANKS`."""
    missing = [band for band in a if band not in b]
    if missing:
        raise ValueError(f"bands missing from the other computation: {', '.join(missing)}")
    out = []
    for band in a:
        count = COUNT_OF.get(band)
        if count is None or count not in a:
            out.append(compare_band(band, a[band], b[band]))
            continue
        exact = on_one_rank(statistic, a[count])
        out.append(compare_band(band, np.where(exact, a[band], np.nan), np.where(exact, b[band], np.nan)))
        if not exact.all():
            out.append(compare_band(f"{band} between ranks", np.where(exact, np.nan, a[band]),
                                    np.where(exact, np.nan, b[band]), BETWEEN_RANKS[band]))
    return out
