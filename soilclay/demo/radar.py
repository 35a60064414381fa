"""Sentinel-1 IW GRD backscatter (sigma0, linear power) of the demo world: a water-cloud model.

Bare-soil backscatter rises with moisture (about 0.3 dB per vol-%) and surface roughness
(ploughed fields are rough, seedbeds smooth); vegetation adds volume scattering and attenuates
the soil term. Clay acts through moisture retention. Speckle is multiplicative gamma noise
(4.4 looks), plus the instrument noise floor (NESZ ~ -25 dB).
"""

from __future__ import annotations

import numpy as np

POLARISATIONS = ("vv", "vh")
INCIDENCE_DEG = {"ascending": 39.0, "descending": 36.0}
_ENL = 4.4
_NESZ = 10 ** (-25.0 / 10)


def render_s1(rng: np.random.Generator, theta: np.ndarray, green: np.ndarray, dry: np.ndarray,
              rough_db: np.ndarray, orbit: str) -> dict[str, np.ndarray]:
    cos_i = np.float32(np.cos(np.radians(INCIDENCE_DEG[orbit])))
    veg = green + 0.4 * dry
    soil_vv_db = -18.0 + 30.0 * theta + rough_db + (0.8 if orbit == "descending" else 0.0)
    soil = {"vv": 10 ** (soil_vv_db / 10), "vh": 10 ** ((soil_vv_db - 7.5) / 10)}
    params = {"vv": (0.10, 0.50), "vh": (0.025, 0.35)}  # (volume scattering A, attenuation B)
    out = {}
    for pol in POLARISATIONS:
        a, b = params[pol]
        tau2 = np.exp(-2 * b * veg / cos_i)
        sigma = a * veg * cos_i * (1 - tau2) + tau2 * soil[pol]
        speckle = rng.gamma(_ENL, 1 / _ENL, size=sigma.shape).astype(np.float32)
        out[pol] = ((sigma + _NESZ * rng.random(sigma.shape, dtype=np.float32)) * speckle).astype(np.float32)
    return out
