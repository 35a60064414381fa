"""Sentinel-2 L2A surface reflectance of the demo world: soil, vegetation, straw, clouds, SCL.

Soil (dry) reflectance falls with clay (lower albedo) and the 2.2 um clay-mineral absorption
deepens (B12 relative to B11 falls) as clay rises; organic carbon darkens mostly the visible
bands; an iron-oxide field, independent of clay, reddens the spectrum. Moisture darkens soil
(exp(-k*theta), strongest in the SWIR). Green vegetation and dry straw mix in linearly by their
fractional cover. Clouds brighten, their shadows darken; the scene classification (SCL, 20 m)
flags them, missing thin cloud edges and part of the shadows, as the real Sen2Cor does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from soilclay.contract import S2_BANDS
from soilclay.demo.fields import SoilFields, smooth_field

#: The simulated bands: exactly the composite's Sentinel-2 bands (the per-band tables below follow this order).
BANDS = S2_BANDS
WAVELENGTH_UM = (0.490, 0.560, 0.665, 0.705, 0.740, 0.783, 0.842, 0.865, 1.610, 2.190)
COMMON_NAME = ("blue", "green", "red", "rededge", "rededge", "rededge", "nir", "nir08", "swir16", "swir22")
BAND_10M = ("B02", "B03", "B04", "B08")
I_B04, I_B08, I_B11, I_B12 = (BANDS.index(band) for band in ("B04", "B08", "B11", "B12"))

# Reference dry soil at 18 % clay, 1.2 % SOC; green leaves; straw; cloud tops.
_SOIL = np.array([0.080, 0.112, 0.150, 0.170, 0.186, 0.200, 0.214, 0.222, 0.305, 0.0], np.float32)
_VEG = np.array([0.035, 0.075, 0.040, 0.120, 0.300, 0.380, 0.420, 0.430, 0.220, 0.110], np.float32)
_STRAW = np.array([0.100, 0.130, 0.160, 0.190, 0.220, 0.240, 0.260, 0.270, 0.340, 0.240], np.float32)
_CLOUD = np.array([0.50, 0.49, 0.48, 0.48, 0.48, 0.48, 0.48, 0.48, 0.40, 0.30], np.float32)
# Moisture darkening exp(-k * theta), organic-carbon darkening exp(-c * (soc - 1.2)).
_K_WATER = np.array([0.9, 0.9, 1.0, 1.0, 1.0, 1.05, 1.05, 1.05, 1.60, 1.70], np.float32)
_C_SOC = np.array([0.35, 0.35, 0.32, 0.30, 0.26, 0.22, 0.20, 0.20, 0.10, 0.10], np.float32)
_C_IRON = np.array([-0.05, -0.02, 0.08, 0.06, 0.03, 0.0, 0.0, 0.0, 0.0, 0.0], np.float32)

SCL_SHADOW, SCL_VEG, SCL_BARE, SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS = 3, 4, 5, 8, 9, 10


def b12_b11_ratio(clay: np.ndarray) -> np.ndarray:
    """Dry-soil B12/B11: the 2.2 um Al-OH absorption of clay minerals deepens with clay content."""
    return (0.985 - 0.0018 * clay).astype(np.float32)


def dry_soil_reflectance(soil: SoilFields) -> np.ndarray:
    """(10, H, W) float32 reflectance of the dry bare soil."""
    albedo = 1.0 - 0.0055 * (soil.clay - 18.0)
    out = np.empty((len(BANDS),) + soil.clay.shape, np.float32)
    for b in range(len(BANDS) - 1):
        out[b] = _SOIL[b] * albedo * np.exp(-_C_SOC[b] * (soil.soc - 1.2)) * (1 + _C_IRON[b] * soil.redness)
    out[I_B12] = out[I_B11] * b12_b11_ratio(soil.clay)
    return out


@dataclass(frozen=True)
class S2Scene:
    reflectance: dict[str, np.ndarray]  # band -> float32 reflectance at its native resolution
    scl: np.ndarray  # uint8, 20 m
    cloud_cover: float  # % of SCL flagged cloud/cirrus


def cloud_fraction_target(rng: np.random.Generator, month: int) -> float:
    """Scene cloud cover: many clear scenes, many overcast ones; winters cloudier."""
    winter = month in (11, 12, 1, 2)
    u = rng.random() - (0.12 if winter else 0.0)
    if u < 0.25:
        return 0.0
    if u < 0.50:
        return float(rng.uniform(0.02, 0.3))
    if u < 0.72:
        return float(rng.uniform(0.3, 0.8))
    return float(rng.uniform(0.8, 1.0))


def render_s2(rng: np.random.Generator, dry_soil: np.ndarray, theta: np.ndarray, green: np.ndarray,
              dry: np.ndarray, month: int) -> S2Scene:
    """One acquisition. ``theta``, ``green``, ``dry`` are per-pixel (H, W) moisture and cover fractions."""
    nb, h, w = dry_soil.shape
    soil_frac = np.clip(1.0 - green - dry, 0.0, 1.0)
    gain = 1 + rng.normal(0, 0.015, nb).astype(np.float32)  # residual calibration/atmosphere
    offset = rng.normal(0, 0.003, nb).astype(np.float32) * np.linspace(1.5, 0.5, nb, dtype=np.float32)
    clean = np.empty_like(dry_soil)
    for b in range(nb):
        soil = dry_soil[b] * np.exp(-_K_WATER[b] * theta)
        clean[b] = (soil_frac * soil + green * _VEG[b] + dry * _STRAW[b]) * gain[b] + offset[b]

    # Clouds and shadows on the 20 m grid.
    h2, w2 = h // 2, w // 2
    cover = cloud_fraction_target(rng, month)
    length = max(h2, w2) / 12 + 2
    z = smooth_field(rng, (h2, w2), length)
    alpha20 = np.zeros((h2, w2), np.float32) if cover <= 0 else np.clip((z - ndtri(1 - cover)) / 0.7, 0, 1) ** 0.8
    dy, dx = int(round(0.06 * h2)) + 1, int(round(-0.08 * w2)) - 1  # sun from the south-east
    shadow20 = np.roll(alpha20, (dy, dx), axis=(0, 1)) * (1 - alpha20)
    cirrus20 = np.zeros_like(alpha20)
    if rng.random() < 0.1:
        cirrus20 = np.clip(smooth_field(rng, (h2, w2), length * 2) * 0.08 + 0.06, 0, 0.2)
    brightness = float(rng.uniform(0.85, 1.15))

    def up(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)

    alpha, shadow, cirrus = up(alpha20), up(shadow20), up(cirrus20)
    noise = rng.standard_normal((nb, h, w), dtype=np.float32)
    out: dict[str, np.ndarray] = {}
    observed = np.empty_like(clean)
    for b, name in enumerate(BANDS):
        r = clean[b] * (1 - 0.65 * shadow)
        r = (1 - alpha) * r + alpha * _CLOUD[b] * brightness + cirrus * 0.25
        observed[b] = r
        r = r + noise[b] * (0.003 + 0.01 * r)
        out[name] = r if name in BAND_10M else _block_mean(r)

    # Scene classification at 20 m, with realistic misses.
    red, nir = _block_mean(observed[I_B04]), _block_mean(observed[I_B08])
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.where(ndvi > 0.35, SCL_VEG, SCL_BARE).astype(np.uint8)
    detect = rng.random((h2, w2))
    scl[(shadow20 >= 0.25) & (detect < 0.7)] = SCL_SHADOW
    scl[cirrus20 >= 0.1] = SCL_CIRRUS
    scl[((alpha20 >= 0.12) & (detect < 0.5)) | (alpha20 >= 0.3)] = SCL_CLOUD_MED
    scl[alpha20 >= 0.6] = SCL_CLOUD_HIGH
    cloudy = np.isin(scl, (SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS)).mean() * 100
    return S2Scene(out, scl, round(float(cloudy), 2))


def _block_mean(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float32)


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance to L2A digital numbers (x 10000, uint16, 0 reserved for nodata)."""
    return np.clip(np.rint(reflectance * 10000.0), 1, 65535).astype(np.uint16)
