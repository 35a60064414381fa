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
    n = len(parcel_ids)
    order = np.argsort(parcel, kind="stable")
    parcel, clay, lower, upper, in_domain = parcel[order], clay[order], lower[order], upper[order], in_domain[order]
    starts = np.searchsorted(parcel, np.arange(n))
    ends = np.searchsorted(parcel, np.arange(n), side="right")
    out = {k: np.full(n, np.nan) for k in ("mean", "median", "lower", "upper", "ood")}
    count = (ends - starts).astype(np.int64)
    flags: list[list[str]] = [[] for _ in range(n)]
    for p in range(n):
        a, b = starts[p], ends[p]
        if total_pixels[p] == 0:
            flags[p].append("no_pixels")  # smaller than a pixel, or outside the composite
            continue
        if usable_pixels[p] < min_pixels:
            flags[p].append("too_few_pixels")
            if b == a:
                continue
        values = clay[a:b]
        mean = float(values.mean())
        h_model = float(np.mean(upper[a:b] - lower[a:b]) / 2)
        m = b - a
        sampling = 0.0
        if usable_pixels[p] > m and m > 1:  # capped: the kept pixels are a sample of the usable ones
            fpc = np.sqrt((usable_pixels[p] - m) / (usable_pixels[p] - 1))
            sampling = Z90 * float(values.std(ddof=1)) / np.sqrt(m) * fpc
            flags[p].append("pixels_sampled")
        half = float(np.hypot(h_model, sampling))
        out["ood"][p] = float(1 - in_domain[a:b].mean())
        if out["ood"][p] > 0.5:
            flags[p].append("mostly_out_of_domain")
        if usable_pixels[p] < min_pixels:
            continue
        mean = min(max(mean, 0.0), 100.0)
        out["mean"][p], out["median"][p] = mean, float(np.median(values))
        out["lower"][p], out["upper"][p] = max(mean - half, 0.0), min(mean + half, 100.0)
    bare = np.where(total_pixels > 0, usable_pixels / np.maximum(total_pixels, 1), np.nan)
    return ParcelEstimates(list(parcel_ids), out["mean"], out["median"], out["lower"], out["upper"], count,
                           bare, out["ood"], flags)
