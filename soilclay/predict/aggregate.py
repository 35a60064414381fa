"""Per-parcel statistics from per-pixel predictions. Pure numpy.

- ``clay_mean`` / ``clay_median`` of the parcel's pixel predictions;
- a 90 % interval for the parcel mean combining the model's interval and the pixel spread: the
  model's conformal half-width ``h`` (its errors are largely shared by neighbouring pixels, so it
  is not divided by √n) and the sampling error of the mean over the kept pixels,
  ``z · sd / √n`` (only when pixels were sampled, with the finite-population correction);
  half-width = √(h² + s²), clipped to 0–100 around the mean;
- ``pixel_count`` (pixels used), ``bare_fraction`` (usable share of the parcel's pixels),
  ``out_of_domain_share`` (share of used pixels outside the model's applicability domain);
- parcels with fewer than ``min_pixels`` usable pixels get no number but a flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z90 = 1.6448536269514722


@dataclass
class ParcelEstimates:
    parcel_ids: list[str]
    clay_mean: np.ndarray
    clay_median: np.ndarray
    clay_lower: np.ndarray
    clay_upper: np.ndarray
    pixel_count: np.ndarray
    bare_fraction: np.ndarray
    out_of_domain_share: np.ndarray
    flags: list[list[str]]


def aggregate(parcel_ids: list[str], parcel: np.ndarray, clay: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              in_domain: np.ndarray, total_pixels: np.ndarray, usable_pixels: np.ndarray, *,
              min_pixels: int = 3) -> ParcelEstimates:
    """Vectorised over parcels (one sort for the medians); see the module docstring."""
    n = len(parcel_ids)
    parcel = np.asarray(parcel, dtype=np.int64)
    clay = np.asarray(clay, dtype=float)
    count = np.bincount(parcel, minlength=n)
    safe = np.maximum(count, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(parcel, weights=clay, minlength=n) / safe
        h_model = np.bincount(parcel, weights=(np.asarray(upper) - np.asarray(lower)) / 2, minlength=n) / safe
        ood = 1 - np.bincount(parcel, weights=np.asarray(in_domain, float), minlength=n) / safe
        var = (np.bincount(parcel, weights=clay**2, minlength=n) - count * mean**2) / np.maximum(count - 1, 1)
    order = np.lexsort((clay, parcel))
    ordered = clay[order]
    first = np.cumsum(count) - count
    lo = np.minimum(first + (count - 1) // 2, max(len(ordered) - 1, 0))
    hi = np.minimum(first + count // 2, max(len(ordered) - 1, 0))
    median = (ordered[lo] + ordered[hi]) / 2 if len(ordered) else np.full(n, np.nan)
    sampled = (usable_pixels > count) & (count > 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpc = np.sqrt(np.where(sampled, (usable_pixels - count) / np.maximum(usable_pixels - 1, 1), 0.0))
        sampling = np.where(sampled, Z90 * np.sqrt(np.maximum(var, 0)) / np.sqrt(safe) * fpc, 0.0)
    half = np.hypot(h_model, sampling)
    estimable = (usable_pixels >= min_pixels) & (count > 0)
    mean = np.clip(mean, 0, 100)
    out_mean = np.where(estimable, mean, np.nan)
    out_median = np.where(estimable, median, np.nan)
    out_lower = np.where(estimable, np.maximum(mean - half, 0.0), np.nan)
    out_upper = np.where(estimable, np.minimum(mean + half, 100.0), np.nan)
    out_ood = np.where(count > 0, ood, np.nan)
    flags: list[list[str]] = [[] for _ in range(n)]
    for p in np.flatnonzero(total_pixels == 0):
        flags[p].append("no_pixels")  # smaller than a pixel, or outside the composite
    for p in np.flatnonzero((total_pixels > 0) & (usable_pixels < min_pixels)):
        flags[p].append("too_few_pixels")
    for p in np.flatnonzero(sampled):
        flags[p].append("pixels_sampled")
    for p in np.flatnonzero((count > 0) & (out_ood > 0.5)):
        flags[p].append("mostly_out_of_domain")
    bare = np.where(total_pixels > 0, usable_pixels / np.maximum(total_pixels, 1), np.nan)
    return ParcelEstimates(list(parcel_ids), out_mean, out_median, out_lower, out_upper, count.astype(np.int64),
                           bare, out_ood, flags)
