"""A plain-numpy reference of the composite recipe, written independently of the library:
full scenes read whole, 20 m bands repeated to 10 m, masks by the recipe, numpy's nan-reducers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import rasterio

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


def _read(item_dir: Path, name: str, shape: tuple[int, int]) -> np.ndarray:
    with rasterio.open(item_dir / f"{name}.tif") as src:
        a = src.read(1).astype(np.float64)
    if a.shape != shape:
        a = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)
    return a


def items(archive: Path, collection: str) -> list[Path]:
    return sorted((archive / collection).glob("*/*.json"))


def s2_reference(item_files: list[Path], shape, keep=(4, 5), ndvi_max=0.25, nbr2_max=0.075, min_count=3,
                 statistic="median", cloud_probability_max=None) -> dict[str, np.ndarray]:
    stacks = {b: [] for b in BANDS}
    valid = np.zeros(shape, int)
    bare = np.zeros(shape, int)
    for item in item_files:
        folder = item.parent
        scl = _read(folder, "SCL", shape)
        d = {b: _read(folder, b, shape) for b in BANDS}
        clear = np.isin(scl, keep) & (d["B04"] > 0) & (d["B08"] > 0) & (d["B11"] > 0) & (d["B12"] > 0)
        if cloud_probability_max is not None:
            clear &= _read(folder, "CLD", shape) < cloud_probability_max
        with np.errstate(all="ignore"):
            ndvi = (d["B08"] - d["B04"]) / (d["B08"] + d["B04"])
            nbr2 = (d["B11"] - d["B12"]) / (d["B11"] + d["B12"])
        is_bare = clear & (ndvi < ndvi_max) & (nbr2 < nbr2_max)
        valid += clear
        bare += is_bare
        for b in BANDS:
            stacks[b].append(np.where(is_bare, d[b], np.nan))
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in BANDS:
            s = np.array(stacks[b])
            if statistic == "median":
                v = np.nanmedian(s, axis=0)
            elif statistic == "mean":
                v = np.nanmean(s, axis=0)
            else:
                v = np.nanpercentile(s, int(statistic[1:]), axis=0)
            out[b] = np.where(bare >= min_count, v, np.nan)
        out["bare_count"] = bare.astype(float)
        out["valid_count"] = valid.astype(float)
        out["bare_frequency"] = np.where(valid > 0, bare / np.maximum(valid, 1), np.nan)
    return out


def s1_reference(item_files: list[Path], shape, orbit_pass="both") -> dict[str, np.ndarray]:
    vv, vh = [], []
    for item in item_files:
        props = json.loads(item.read_text())["properties"]
        if orbit_pass != "both" and props["sat:orbit_state"] != orbit_pass:
            continue
        for pol, stack in (("vv", vv), ("vh", vh)):
            a = _read(item.parent, pol, shape)
            with np.errstate(all="ignore"):
                stack.append(np.where(a > 0, 10 * np.log10(a), np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v, h = np.nanmedian(np.array(vv), axis=0), np.nanmedian(np.array(vh), axis=0)
    return {"VV": v, "VH": h, "VV_VH": v - h, "count": np.sum(~np.isnan(np.array(vv)), axis=0).astype(float)}
