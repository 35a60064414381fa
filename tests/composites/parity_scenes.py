"""Synthetic scenes as both composite backends see them (the parity harness's test data): the local
reads (float32, NaN for nodata) and the same scenes as an Earth Engine catalogue for
:mod:`tests.earthengine.evaluator` (integer Sentinel-2 bands and SCL with masks; Sentinel-1 in dB)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from soilclay.composites.earthengine import EE_NAME
from soilclay.contract import S2_BANDS
from soilclay.earthengine.assets import S1_ASSET, S2_ASSET, S2_CLOUD_PROBABILITY_ASSET
from tests.earthengine.evaluator import FLOAT32, INT, SyntheticImage

START, END = date(2020, 1, 1), date(2021, 12, 31)
H = W = 40
TWENTY_M = ("B05", "B06", "B07", "B8A", "B11", "B12")


def ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 10, 30, tzinfo=UTC).timestamp() * 1000)


@dataclass
class Scenes:
    """The same scenes as both backends see them: ``local[scene_id][key]`` float32 with NaN for nodata
    (on a grid ``margin`` pixels larger on every side than the composite's window), ``catalogue`` for the
    evaluator, ``ids`` the planned scenes (the catalogue also holds an unplanned one)."""

    local: dict[str, dict[str, np.ndarray]]
    catalogue: dict[str, list[SyntheticImage]]
    ids: list[str]
    extra: str
    margin: int = 0


def _edge_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """True inside the scene: some scenes end along a slanted edge (a swath or tile border)."""
    h, w = shape
    if rng.random() < 0.5:
        return np.ones(shape, bool)
    rows, cols = np.mgrid[0:h, 0:w]
    slope, offset = rng.uniform(-1, 1), rng.uniform(0.3, 0.9) * w
    side = rng.choice([-1, 1])
    return side * (cols - (offset + slope * (rows - h / 2))) > 0


def s2_scenes(seed: int = 7, n: int = 12, cloud_probability: bool = True) -> Scenes:
    """``n`` Sentinel-2 scenes of H x W pixels (and one more, not planned): random SCL classes (nodata 0,
    clouds, shadows, the clear 4/5/7), DN 1..5000 with mostly bare-ish spectra, slanted scene edges
    (every band nodata), 20 m bands ending a pixel earlier, and nodata patches in single bands."""
    rng = np.random.default_rng(seed)
    local, images, probabilities, ids = {}, [], [], []
    classes = np.arange(12)
    weights = np.array([4, 1, 1, 5, 20, 30, 3, 8, 6, 6, 3, 1], float)
    for k in range(n + 1):
        sid = f"20200{k // 9 + 1}{k % 9 + 1:02d}T101031_20200101T101500_T33UUU"
        inside = _edge_mask(rng, (H, W))
        scl = rng.choice(classes, size=(H, W), p=weights / weights.sum()).astype(np.float64)
        soil = rng.random((H, W)) < 0.7
        b04 = rng.uniform(400, 3000, (H, W))
        b08 = b04 * np.where(soil, rng.uniform(0.85, 1.6, (H, W)), rng.uniform(1.5, 3.0, (H, W)))
        b11 = rng.uniform(1200, 4000, (H, W))
        b12 = b11 * rng.uniform(0.78, 1.1, (H, W))
        values = {"B04": b04, "B08": b08, "B11": b11, "B12": b12}
        for band in ("B02", "B03", "B05", "B06", "B07", "B8A"):
            values[band] = rng.uniform(200, 4500, (H, W))
        bands = {}
        # a 20 m band's edge: its pixels end one 10 m pixel inside the scene's edge
        shrunk = inside.copy()
        for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
            shrunk &= np.roll(inside, shift, axis)
        for band in S2_BANDS:
            dn = np.clip(np.rint(values[band]), 1, 5000)
            has = (shrunk if band in TWENTY_M else inside).copy()
            if rng.random() < 0.3:  # a patch of nodata in this band only
                r, c = rng.integers(0, H - 6), rng.integers(0, W - 6)
                has[r:r + 6, c:c + 6] = False
            bands[band] = np.where(has, dn, np.nan)
        bands["SCL"] = np.where(inside, scl, np.nan)
        prob = np.where(inside, rng.integers(0, 101, (H, W)).astype(np.float64), np.nan)
        if cloud_probability:
            bands["CLD"] = prob
        local[sid] = {key: arr.astype(np.float32) for key, arr in bands.items()}
        props = {"system:index": sid, "system:time_start": ms(START + timedelta(days=20 * k + 3)),
                 "CLOUDY_PIXEL_PERCENTAGE": float(rng.uniform(0, 90))}
        images.append(SyntheticImage(props, {EE_NAME.get(key, key): arr for key, arr in bands.items() if key != "CLD"},
                                     default_type=INT))
        probabilities.append(SyntheticImage(dict(props), {"probability": prob}, default_type=INT))
        ids.append(sid)
    extra = ids.pop()  # in the catalogue, inside the period and the region, but not planned
    catalogue = {S2_ASSET: images}
    if cloud_probability:
        catalogue[S2_CLOUD_PROBABILITY_ASSET] = probabilities
    return Scenes(local, catalogue, ids, extra)


def s1_scenes(seed: int = 11, n: int = 25, margin: int = 3) -> Scenes:
    """``n`` Sentinel-1 scenes (and one unplanned) of linear sigma0 on a grid ``margin`` pixels larger than
    the composite on every side (so the boxcar sees real neighbours at the window's edge), with slanted
    nodata edges, some zero (invalid) pixels; Earth Engine's copy is 10 log10 in float32, masked there."""
    rng = np.random.default_rng(seed)
    shape = (H + 2 * margin, W + 2 * margin)
    local, images, ids = {}, [], []
    for k in range(n + 1):
        sid = f"S1A_IW_GRDH_1SDV_2020{k // 20 + 1:02d}{k % 20 + 1:02d}T052000_{k:04d}"
        inside = _edge_mask(rng, shape)
        inside[:margin + 4, :margin + 5] = False  # a corner no scene covers: nodata, count 0
        field_vv = rng.lognormal(np.log(0.06), 0.3, shape) * rng.gamma(4.0, 0.25, shape)
        field_vh = rng.lognormal(np.log(0.012), 0.3, shape) * rng.gamma(4.0, 0.25, shape)
        zeros = rng.random(shape) < 0.01
        bands = {}
        for pol, linear in (("vv", field_vv), ("vh", field_vh)):
            linear = np.where(zeros, 0.0, linear)
            bands[pol] = np.where(inside, linear, np.nan).astype(np.float32)
        local[sid] = bands
        with np.errstate(divide="ignore", invalid="ignore"):
            db = {pol.upper(): np.where(bands[pol] > 0, 10 * np.log10(bands[pol].astype(np.float64)), np.nan)
                  .astype(np.float32) for pol in ("vv", "vh")}
        props = {"system:index": sid, "system:time_start": ms(START + timedelta(days=12 * k + 1)),
                 "instrumentMode": "IW", "transmitterReceiverPolarisation": ["VV", "VH"], "resolution_meters": 10,
                 "orbitProperties_pass": "ASCENDING"}
        images.append(SyntheticImage(props, db, default_type=FLOAT32))
        ids.append(sid)
    extra = ids.pop()
    return Scenes(local, {S1_ASSET: images}, ids, extra, margin)
