"""Regional weather as a daily topsoil moisture series (a simple bucket model).

Rain days and amounts are drawn once per seed over a fixed horizon, so any date's moisture is
the same whether a world is generated in one go or extended later with ``--add-scenes``.
"""

from __future__ import annotations

from datetime import date

import numpy as np

HORIZON_START = date(2015, 1, 1)
HORIZON_END = date(2040, 12, 31)
_BUCKET_MM = 24.0  # water the top ~5 cm can hold


def day_number(d: date) -> int:
    """Days since the horizon start (the index into daily series)."""
    return (d - HORIZON_START).days


def moisture_series(rng: np.random.Generator) -> np.ndarray:
    """Volumetric topsoil moisture (m3/m3) of a medium loam, one value per day of the horizon."""
    n = (HORIZON_END - HORIZON_START).days + 1
    doy = (np.arange(n) + HORIZON_START.timetuple().tm_yday - 1) % 365.25
    p_wet = 0.31 + 0.04 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    rain = np.where(rng.random(n) < p_wet, rng.exponential(4.5, n), 0.0)
    pet = 0.4 + 3.8 * np.clip(np.sin(2 * np.pi * (doy - 80) / 365.25), 0, None)  # mm/day
    water = np.empty(n)
    w = _BUCKET_MM / 2
    for i in range(n):
        w = min(_BUCKET_MM, w + rain[i])
        w = max(1.5, w - pet[i] * (w / _BUCKET_MM) ** 0.7)
        water[i] = w
    return (0.03 + 0.40 * water / _BUCKET_MM).astype(np.float32)


def pixel_moisture(theta_regional: float, clay: np.ndarray) -> np.ndarray:
    """Topsoil moisture per pixel: clay-rich soils hold more water than sandy ones."""
    retention = 0.55 + 0.016 * clay
    return np.minimum(theta_regional * retention + 0.01, 0.5).astype(np.float32)
