"""Pure compositing maths over numpy arrays: masks, bare-soil rules, NaN-aware temporal statistics.

No I/O here. The temporal reduction sorts each pixel's observations once (NaN sorts last) and
picks order statistics by index, which is what ``numpy.nanmedian``/``nanpercentile`` compute
(linear interpolation between closest ranks) at a fraction of their cost.
"""

from __future__ import annotations

import numpy as np

from soilclay.composites.recipe import S1Recipe, S2Recipe


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b), NaN where the sum is 0."""
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, (a - b) / total, np.nan).astype(np.float32)


def s2_clear(scl: np.ndarray, params: S2Recipe, cloud_probability: np.ndarray | None = None) -> np.ndarray:
    """Clear-sky observation mask: SCL class kept (and cloud probability below the limit)."""
    clear = np.isin(scl, params.scl_keep)
    if params.cloud_probability_max is not None:
        if cloud_probability is None:
            raise ValueError("cloud_probability_max is set but no cloud probability was given")
        clear &= cloud_probability < params.cloud_probability_max
    return clear


def s2_bare(b04: np.ndarray, b08: np.ndarray, b11: np.ndarray, b12: np.ndarray, params: S2Recipe) -> np.ndarray:
    """Bare-soil rule on reflectance (any common scale): NDVI < max and NBR2 < max (and SCMaP)."""
    ndvi = normalized_difference(b08, b04)
    bare = (ndvi < params.ndvi_max) & (normalized_difference(b11, b12) < params.nbr2_max)
    if params.scmap_max is not None:
        bare &= (ndvi + normalized_difference(b08, b12)) <= params.scmap_max
    return bare


def quantile_of(statistic: str) -> float | None:
    """0.5 for median, NN/100 for pNN, None for mean."""
    if statistic == "median":
        return 0.5
    if statistic == "mean":
        return None
    return int(statistic[1:]) / 100.0


def reduce_time(stack: np.ndarray, statistic: str) -> tuple[np.ndarray, np.ndarray]:
    """Reduce (T, ...) observations with NaN for missing along time: (statistic, count).

    Median and percentiles interpolate linearly between closest ranks (numpy's default), so the
    result equals ``numpy.nanmedian``/``nanpercentile``; pixels without observations are NaN.
    """
    t = stack.shape[0]
    spatial = stack.shape[1:]
    flat = stack.reshape(t, -1)
    count = np.count_nonzero(~np.isnan(flat), axis=0)
    q = quantile_of(statistic)
    if q is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (np.nansum(flat, axis=0, dtype=np.float64) / count).astype(np.float32)
        return value.reshape(spatial), count.reshape(spatial)
    ordered = np.ascontiguousarray(flat.T)  # (N, T): sorting a contiguous last axis in place is ~4x faster
    value = reduce_rows(ordered, statistic)
    return value.reshape(spatial), count.reshape(spatial)


def reduce_rows(ordered: np.ndarray, statistic: str) -> np.ndarray:
    """:func:`reduce_time` of observations laid out as (pixels, T) rows, NaN for missing (sorted in place:
    the caller's array is consumed). For a mean, the row mean of the observed values."""
    count = np.count_nonzero(~np.isnan(ordered), axis=1)
    q = quantile_of(statistic)
    if q is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (np.nansum(ordered, axis=1, dtype=np.float64) / count).astype(np.float32)
    ordered.sort(axis=1)  # NaN sort last
    pos = q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    frac = (pos - lo).astype(np.float32)
    rows = np.arange(ordered.shape[0])
    value = ordered[rows, lo] * (1 - frac) + ordered[rows, hi] * frac
    return np.where(count > 0, value, np.nan).astype(np.float32)


def _grouped_sorted(pixel: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """``values`` ordered by (pixel, value). Whole numbers >= 0 (Sentinel-2 DN) sort as one integer key
    ``pixel << bits | value``, a single pass of numpy's sort: 32-bit when the pixel index (of ``size``) and
    the values fit together (a 512 x 512 tile and DN below 16384), else 64-bit; anything else through
    ``lexsort``."""
    if not values.size or values.min() < 0 or not np.array_equal(values, np.floor(values)):
        return values[np.lexsort((values, pixel))]
    bits = max(int(values.max()), 1).bit_length()
    if bits + max(size - 1, 1).bit_length() <= 32:
        key32 = (pixel.astype(np.uint32) << np.uint32(bits)) | values.astype(np.uint32)
        key32.sort()
        return (key32 & np.uint32((1 << bits) - 1)).astype(np.float32)
    if bits > 31:
        return values[np.lexsort((values, pixel))]
    key = (pixel.astype(np.int64) << 32) | values.astype(np.int64)
    key.sort()
    return (key & 0xFFFFFFFF).astype(np.float32)


def reduce_observations(pixel: np.ndarray, values: np.ndarray, size: int, statistic: str
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The statistic of observations given sparsely: ``values[i]`` (float32, no NaN) observed at flat pixel
    index ``pixel[i]`` of ``size`` pixels, in any order: (statistic, count) per pixel, NaN where none.

    The same numbers as :func:`reduce_time` of the dense stack (the same ranks, the same float32
    interpolation), at a cost that grows with the observations rather than with scenes x pixels: a
    bare-soil stack is mostly empty.
    """
    count = np.bincount(pixel, minlength=size)
    q = quantile_of(statistic)
    if q is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            sums = np.bincount(pixel, weights=values.astype(np.float64), minlength=size)
            return (sums / count).astype(np.float32), count
    if values.size == 0:
        return np.full(size, np.nan, np.float32), count
    ordered = _grouped_sorted(pixel, values, size)
    starts = np.cumsum(count) - count
    pos = q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    frac = (pos - lo).astype(np.float32)
    last = ordered.size - 1  # pixels without observations index anywhere valid; masked below
    low = ordered[np.minimum(starts + lo, last)]
    high = ordered[np.minimum(starts + hi, last)]
    value = low * (1 - frac) + high * frac
    return np.where(count > 0, value, np.nan).astype(np.float32), count


def boxcar(linear: np.ndarray, size: int) -> np.ndarray:
    """NaN-aware mean filter of a 2-D image (missing pixels neither count nor spread)."""
    from scipy.ndimage import uniform_filter

    valid = ~np.isnan(linear)
    filled = np.where(valid, linear, 0).astype(np.float64)
    num = uniform_filter(filled, size=size, mode="constant")
    den = uniform_filter(valid.astype(np.float64), size=size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(valid & (den > 0), num / den, np.nan)
    return out.astype(np.float32)


def to_db(linear: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(linear > 0, 10 * np.log10(linear), np.nan).astype(np.float32)


def s1_valid(linear: np.ndarray) -> np.ndarray:
    return np.isfinite(linear) & (linear > 0)


def s1_prepare(linear: np.ndarray, params: S1Recipe) -> np.ndarray:
    """Linear backscatter → dB, NaN where invalid, optionally speckle-filtered first."""
    values = np.where(s1_valid(linear), linear, np.nan).astype(np.float32)
    if params.speckle_filter == "boxcar":
        values = boxcar(values, params.speckle_size)
    return to_db(values)
