"""Parcels, land use and crop calendars: what covers each parcel's soil on any day.

Parcels are a jittered-grid Voronoi tessellation with 10 m field margins between them. Arable
parcels follow a random rotation of typical Brandenburg crops (winter wheat, barley, rapeseed,
maize, sugar beet, spring barley); each season has sowing, green-up, senescence, harvest and
tillage dates, and sometimes a catch crop. Soil is bare between tillage and the next crop's
canopy closure, so every arable parcel is bare in some periods and covered in others. Permanent
grassland and margins are never bare.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import geopandas as gpd
import numpy as np
import shapely
from rasterio.features import rasterize

from soilclay.demo.spec import CRS, WorldSpec
from soilclay.demo.weather import HORIZON_END, HORIZON_START, day_number

#: name: (sow doy, sow year offset, green-up mid doy, green-up width d, max cover, senescence doy,
#:        harvest doy, autumn cover of winter crops, straw residue after harvest, rotation weight)
CROPS: dict[str, tuple[int, int, int, int, float, int, int, float, float, float]] = {
    "winter_wheat": (282, -1, 105, 13, 0.92, 178, 212, 0.20, 0.60, 0.30),
    "winter_barley": (266, -1, 95, 13, 0.90, 168, 196, 0.25, 0.55, 0.15),
    "winter_rapeseed": (236, -1, 85, 16, 0.95, 172, 202, 0.45, 0.50, 0.14),
    "maize": (118, 0, 190, 11, 0.95, 255, 282, 0.0, 0.35, 0.20),
    "sugar_beet": (96, 0, 168, 11, 0.90, 275, 296, 0.0, 0.08, 0.08),
    "spring_barley": (86, 0, 148, 10, 0.88, 188, 218, 0.0, 0.50, 0.13),
}
CROP_NAMES = list(CROPS)
GRASSLAND_SHARE = 0.12


@dataclass(frozen=True)
class Landscape:
    parcels: gpd.GeoDataFrame  # parcel_id, land_use, geometry (world CRS), index 1..P matches labels
    labels: np.ndarray  # int32 (H, W): 0 = margin, p = parcels.iloc[p - 1]
    grassland: np.ndarray  # bool (P + 1,)
    seasons: dict[str, np.ndarray]  # per (parcel, season) arrays, day numbers; see _seasons()


def make_landscape(spec: WorldSpec, rng_geom: np.random.Generator, rng_crops: np.random.Generator) -> Landscape:
    parcels = _parcel_polygons(spec, rng_geom)
    n = len(parcels)
    grass = rng_geom.random(n) < GRASSLAND_SHARE
    parcels["land_use"] = np.where(grass, "grassland", "arable")
    labels = rasterize(
        ((geom, i + 1) for i, geom in enumerate(parcels.geometry)),
        out_shape=(spec.height, spec.width), transform=spec.transform, fill=0, dtype="int32",
    )
    return Landscape(parcels, labels, np.concatenate([[False], grass]), _seasons(n, rng_crops))


def _parcel_polygons(spec: WorldSpec, rng: np.random.Generator) -> gpd.GeoDataFrame:
    xmin, ymin, xmax, ymax = spec.bounds
    target = spec.n_parcels * 1.06  # a few cells end up too small and are dropped
    cell = np.sqrt((xmax - xmin) * (ymax - ymin) / target)
    xs = np.arange(xmin + cell / 2, xmax, cell)
    ys = np.arange(ymin + cell / 2, ymax, cell)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    pts += rng.uniform(-0.42, 0.42, pts.shape) * cell
    frame = shapely.box(xmin, ymin, xmax, ymax)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
    cells = shapely.intersection(cells, frame)
    fields = shapely.buffer(cells, -5.0, join_style="mitre")  # 10 m margins between fields
    fields = fields[~shapely.is_empty(fields) & (shapely.area(fields) >= 2_000.0)]
    fields = shapely.set_precision(fields, 0.01)
    centroids = shapely.centroid(fields)
    order = np.lexsort((shapely.get_x(centroids), -shapely.get_y(centroids)))  # north to south, west to east
    fields = fields[order]
    ids = [f"DEMO-{i + 1:05d}" for i in range(len(fields))]
    return gpd.GeoDataFrame({"parcel_id": ids}, geometry=list(fields), crs=CRS)


def _seasons(n_parcels: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Crop seasons per parcel over the weather horizon (fixed, so extensions stay consistent)."""
    years = np.arange(HORIZON_START.year, HORIZON_END.year + 1)
    k = len(years)
    weights = np.array([c[9] for c in CROPS.values()])
    crop = rng.choice(len(CROPS), size=(n_parcels, k), p=weights / weights.sum())
    params = np.array([c[:9] for c in CROPS.values()], dtype=float)[crop]  # (P, K, 9)
    jan1 = np.array([day_number(date(int(y), 1, 1)) for y in years], dtype=float)[None, :]
    jit = lambda s: rng.normal(0, s, (n_parcels, k))  # noqa: E731
    sow = jan1 + params[..., 1] * 365 + params[..., 0] + jit(6)
    mid = jan1 + params[..., 2] + jit(6)
    sen = jan1 + params[..., 5] + jit(5)
    harvest = jan1 + params[..., 6] + jit(6)
    # The next crop is sown at least 10 days after this one's harvest.
    sow[:, 1:] = np.maximum(sow[:, 1:], harvest[:, :-1] + 10)
    next_sow = np.concatenate([sow[:, 1:], sow[:, -1:] + 365], axis=1)
    next_is_spring = np.concatenate([params[:, 1:, 1] == 0, np.ones((n_parcels, 1), bool)], axis=1)
    gap = next_sow - harvest
    # Tillage: soon after harvest, or (before spring crops, 40 %) only in spring before sowing.
    spring_till = next_is_spring & (rng.random((n_parcels, k)) < 0.4)
    till = np.where(spring_till, next_sow - rng.uniform(5, 20, (n_parcels, k)),
                    harvest + np.minimum(rng.uniform(3, 40, (n_parcels, k)), gap * 0.6))
    catch = next_is_spring & ~spring_till & (rng.random((n_parcels, k)) < 0.35) & (till < next_sow - 90)
    return {
        "crop": crop, "sow": sow, "mid": mid, "sen": sen, "harvest": harvest, "till": till,
        "next_sow": next_sow, "catch": catch, "width": params[..., 3], "fc_max": params[..., 4],
        "autumn": params[..., 7], "straw": params[..., 8],
    }


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def cover_on(land: Landscape, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Green cover, dry matter (straw, senescent canopy) fractions and surface roughness (dB offset
    for radar) per label (index 0 = margins) on a day number."""
    s = land.seasons
    n = s["sow"].shape[0]
    k = np.clip((s["sow"] <= day).sum(axis=1) - 1, 0, s["sow"].shape[1] - 1)
    row = np.arange(n)
    g = {name: arr[row, k] for name, arr in s.items()}
    t = float(day)
    growing = t < g["harvest"]
    # Growing season: canopy from green-up logistic (+ autumn cover for winter crops), then senescence.
    canopy = g["fc_max"] * _logistic((t - g["mid"]) / g["width"])
    emerged = np.clip((t - g["sow"] - 10) / 25.0, 0, 1)
    canopy = np.maximum(canopy, g["autumn"] * emerged) * (t >= g["sow"] + 10)
    sen_frac = np.clip((t - g["sen"]) / np.maximum(g["harvest"] - g["sen"], 1), 0, 1)
    green_grow = canopy * (1 - 0.9 * sen_frac)
    dry_grow = canopy - green_grow
    # After harvest: straw until tillage, then nearly bare; volunteers; optional catch crop.
    since_h = t - g["harvest"]
    tilled = t >= g["till"]
    straw = np.where(tilled, 0.04, g["straw"] * np.exp(-since_h / 120.0))
    volunteers = np.where(tilled, 0.0, 0.15 * (1 - np.exp(-since_h / 25.0)))
    catch_green = np.where(g["catch"], 0.6 * _logistic((t - g["till"] - 40) / 9.0), 0.0)
    catch_green *= t < g["next_sow"] - 25
    green_post = np.maximum(volunteers, catch_green)
    green = np.where(growing, green_grow, green_post)
    dry = np.where(growing, dry_grow, np.minimum(straw, 1 - green_post))
    rough = np.where(growing, 0.5, np.where(tilled, 1.0 + 2.5 * np.exp(-(t - g["till"]) / 50.0), 0.3))
    # Grassland: mown three times a year, never bare.
    doy = (day + HORIZON_START.timetuple().tm_yday - 1) % 365.25
    season = 0.5 + 0.5 * np.sin(2 * np.pi * (doy - 100) / 365.25)
    mown = sum(np.exp(-np.clip(doy - m, 0, None) / 18.0) * (doy >= m) for m in (140, 190, 250))
    grass_green = np.clip(0.55 + 0.30 * season - 0.30 * np.minimum(mown, 1), 0.3, 0.95)
    grassland = land.grassland[1:]
    green = np.where(grassland, grass_green, green)
    dry = np.where(grassland, 0.10, dry)
    rough = np.where(grassland, 0.0, rough)
    margin_green = 0.45 + 0.30 * season
    out = [np.concatenate([[m], a]).astype(np.float32) for m, a in
           ((margin_green, green), (0.20, dry), (0.0, rough))]
    return out[0], out[1], out[2]
