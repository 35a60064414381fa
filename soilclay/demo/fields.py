"""Static soil fields: smooth Gaussian random fields turned into clay, silt, sand, organic carbon
and an iron-oxide "redness" index that is independent of clay (a realistic confounder)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], length_px: float) -> np.ndarray:
    """A standardised (mean 0, sd 1) Gaussian random field with a Gaussian correlation length."""
    h, w = shape
    noise = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2.0 * (np.pi * length_px) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(h, w))
    field -= field.mean()
    sd = field.std()
    return (field / sd if sd > 0 else field).astype(np.float32)


@dataclass(frozen=True)
class SoilFields:
    """Per-pixel soil properties on the world grid (float32, percent or index)."""

    clay: np.ndarray  # %, roughly 5..60, log-normal, median ~18
    silt: np.ndarray  # %
    sand: np.ndarray  # %
    soc: np.ndarray  # soil organic carbon, %
    redness: np.ndarray  # iron-oxide index, standard normal, independent of clay


def soil_fields(rng: np.random.Generator, shape: tuple[int, int]) -> SoilFields:
    scale = max(shape) / 1000.0  # correlation lengths in pixels of the 10 km demo; shrink for small worlds
    z = (0.80 * smooth_field(rng, shape, 120 * scale + 6)
         + 0.45 * smooth_field(rng, shape, 30 * scale + 3)
         + 0.20 * smooth_field(rng, shape, 4))
    z = (z - z.mean()) / z.std()
    clay = np.clip(np.exp(np.log(18.0) + 0.50 * z), 3.0, 65.0)
    z_silt = smooth_field(rng, shape, 80 * scale + 5)
    silt = 10.0 + 25.0 / (1.0 + np.exp(-1.2 * z_silt)) + 0.1 * (clay - 18.0)
    silt = np.minimum(silt, 97.0 - clay)
    sand = 100.0 - clay - silt
    z_soc = smooth_field(rng, shape, 50 * scale + 4)
    soc = np.exp(np.log(1.2) + 0.30 * z_soc + 0.012 * (clay - 18.0))
    redness = smooth_field(rng, shape, 90 * scale + 5)
    f32 = np.float32
    return SoilFields(clay.astype(f32), silt.astype(f32), sand.astype(f32), soc.astype(f32), redness)
