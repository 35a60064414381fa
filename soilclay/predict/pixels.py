"""Composite pixels inside parcels, as model inputs.

Parcels are burned onto the composite grid (a pixel belongs to a parcel when its centre lies inside
the parcel, optionally after an inward buffer against edge mixing with neighbouring fields and
tracks). A pixel is usable when every feature the model needs is present (the composite is nodata
where a pixel had too few bare observations). Per parcel at most ``max_pixels`` usable pixels are
kept, by a deterministic sample (seeded by the parcel id), so huge parcels do not dominate cost.
Bands are read by name and the pixels cut into the model's inputs by column name (:mod:`soilclay.contract`).
Work goes tile by tile over the grid, so memory follows the tile, not the AOI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from soilclay.contract import COORD_COLUMNS, S1_BANDS, S2_BANDS, check_inputs, split_array
from soilclay.errors import BadInputError
from soilclay.io.raster import nodata_to_nan


@dataclass
class ParcelPixels:
    """Usable pixels of all parcels, flat: ``parcel`` indexes into ``parcel_ids``."""

    parcel_ids: list[str]
    parcel: np.ndarray  # int32 (n_pixels,)
    arrays: dict[str, np.ndarray]  # model inputs per pixel (soilclay.contract.INPUT_FEATURES), float32
    total_pixels: np.ndarray  # per parcel: pixels inside (usable or not)
    usable_pixels: np.ndarray  # per parcel: usable pixels before the cap


def _band_index(src: rasterio.io.DatasetReader, names: tuple[str, ...], path: str) -> list[int]:
    found = list(src.descriptions)
    missing = [n for n in names if n not in found]
    if missing:
        raise BadInputError(f"composite {path} lacks bands {missing} (has {found})")
    return [found.index(n) + 1 for n in names]


@contextmanager
def _reading(path: str, labels: Mapping[str, str]) -> Iterator[None]:
    """A raster read that fails (truncated or corrupt file) becomes one line naming the composite."""
    try:
        yield
    except rasterio.errors.RasterioError as exc:
        what = labels.get(path, "composite")
        detail = " ".join(str(exc).split())[:300]
        raise BadInputError(f"{what} {path} cannot be read ({type(exc).__name__}: {detail}): the file is "
                            "corrupt or truncated; rebuild the composite (soilclay composites build --force) "
                            "or restore the file") from None


def _open(path: str, labels: Mapping[str, str]):
    with _reading(path, labels):
        return rasterio.open(path)


def _read(src, indexes: list[int], window: Window, labels: Mapping[str, str]) -> np.ndarray:
    with _reading(src.name, labels):
        data = src.read(indexes, window=window, out_dtype="float32")
    return nodata_to_nan(data, src.nodata, copy=False)


def _keep(n: int, cap: int, parcel_id: str) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    seed = int(hashlib.sha256(parcel_id.encode()).hexdigest()[:8], 16)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def parcel_pixels(parcels: gpd.GeoDataFrame, s2_path: str, s1_path: str | None, inputs: tuple[str, ...], *,
                  inward_buffer_m: float = 0.0, max_pixels: int = 200, tile: int = 1024,
                  labels: Mapping[str, str] | None = None) -> ParcelPixels:
    """Usable pixels per parcel (``parcels``: columns parcel_id, geometry in any CRS). ``labels`` names
    each path for messages (e.g. "Sentinel-2 composite version 3 (id 12)"); an unreadable raster is a
    :class:`BadInputError` naming it."""
    names = labels or {}
    inputs = check_inputs(inputs)
    if "sar" in inputs and s1_path is None:
        raise BadInputError("the model needs SAR inputs but no Sentinel-1 composite was given")
    ids = parcels["parcel_id"].astype(str).tolist()
    n_parcels = len(ids)
    total = np.zeros(n_parcels, np.int64)
    chunks: dict[int, list[np.ndarray]] = {}
    with _open(s2_path, names) as s2:
        s1 = _open(s1_path, names) if "sar" in inputs and s1_path else None
        try:
            if s1 is not None and (s1.crs != s2.crs or s1.transform != s2.transform or s1.shape != s2.shape):
                raise BadInputError(f"composites {s2_path} and {s1_path} are not on the same grid")
            geoms = parcels.to_crs(s2.crs).geometry
            if inward_buffer_m > 0:
                geoms = geoms.buffer(-inward_buffer_m)
            s2_idx = _band_index(s2, S2_BANDS, s2_path)
            s1_idx = _band_index(s1, S1_BANDS, str(s1_path)) if s1 is not None else None
            columns = [*S2_BANDS, *(S1_BANDS if s1 is not None else ()), *COORD_COLUMNS]  # of ``values`` below
            to_wgs = Transformer.from_crs(s2.crs, "EPSG:4326", always_xy=True)
            shapes = [(g, i + 1) for i, g in enumerate(geoms) if g is not None and not g.is_empty]
            for row in range(0, s2.height, tile):
                for col in range(0, s2.width, tile):
                    window = Window(col, row, min(tile, s2.width - col), min(tile, s2.height - row))
                    wt = window_transform(window, s2.transform)
                    labels = rasterize(shapes, out_shape=(int(window.height), int(window.width)), transform=wt,
                                       fill=0, dtype="int32") if shapes else None
                    if labels is None or not labels.any():
                        continue
                    inside = labels > 0
                    total += np.bincount(labels[inside] - 1, minlength=n_parcels)
                    feats = [_read(s2, s2_idx, window, names)[:, inside].T]
                    if s1_idx is not None:
                        feats.append(_read(s1, s1_idx, window, names)[:, inside].T)
                    rows, cols = np.nonzero(inside)
                    xs, ys = rasterio.transform.xy(wt, rows, cols)
                    lon, lat = to_wgs.transform(np.asarray(xs), np.asarray(ys))
                    values = np.concatenate([*feats, np.column_stack([lon, lat]).astype(np.float32)], axis=1)
                    ok = np.isfinite(values).all(axis=1)
                    owner = labels[inside][ok] - 1
                    if owner.size == 0:
                        continue
                    order = np.argsort(owner, kind="stable")
                    owner, values = owner[order], values[ok][order]
                    found, starts = np.unique(owner, return_index=True)
                    for p, block in zip(found, np.split(values, starts[1:]), strict=True):
                        chunks.setdefault(int(p), []).append(block)
        finally:
            if s1 is not None:
                s1.close()
    usable = np.zeros(n_parcels, np.int64)
    parts, owners = [], []
    for p, blocks in chunks.items():
        values = np.concatenate(blocks)
        usable[p] = len(values)
        values = values[_keep(len(values), max_pixels, ids[p])]
        parts.append(values)
        owners.append(np.full(len(values), p, np.int32))
    flat = np.concatenate(parts) if parts else np.empty((0, len(columns)), np.float32)
    parcel = np.concatenate(owners) if owners else np.empty(0, np.int32)
    arrays = split_array(flat, columns, inputs, source=f"pixels of {s2_path}")
    return ParcelPixels(ids, parcel, arrays, total, usable)
