"""Local backend: the recipe computed with numpy, tile by tile, from a STAC scene archive.

Peak memory depends on the tile size and the number of observations, not on the AOI: a tile
keeps its bare observations only (a pixel index and one value per band each), reduces them, and
is written out before the next tile starts.
Bad scenes (missing asset or file, unreadable or truncated GeoTIFF, unexpected CRS, no clear
pixel over the AOI) are skipped with a reason naming the Item and asset; the composite is built
from the rest. Scenes the recipe rules out by their content (cloud cover, backscatter scale, no clear
pixel) are also listed in :attr:`LocalResult.excluded`: skipping them again would give the same
composite, unlike a missing or unreadable file, which a later build retries.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window, from_bounds
from tqdm import tqdm

from soilclay.composites import maths
from soilclay.composites.grid import TargetGrid
from soilclay.composites.parity import MASK_BANDS
from soilclay.composites.recipe import Recipe, S1Recipe, S2Recipe
from soilclay.composites.scratch import alive
from soilclay.composites.selection import select_s1, select_s2
from soilclay.contract import S1_COMPOSITE_BANDS, S2_BANDS, S2_COMPOSITE_BANDS, SceneRef
from soilclay.errors import BadInputError
from soilclay.io.raster import nodata_to_nan

log = logging.getLogger(__name__)
_TEN_M = ("B02", "B03", "B04", "B08")


Reader = Callable[[str, TargetGrid, Window, str, str], np.ndarray]


class SceneProblem(Exception):
    """A scene cannot be used; the message names the Item and asset. ``excluded``: the recipe rules
    the scene out by its content (as opposed to a file that could not be read)."""

    def __init__(self, scene_id: str, message: str, excluded: bool = False) -> None:
        super().__init__(message)
        self.scene_id = scene_id
        self.excluded = excluded

    def __reduce__(self):  # survives the trip back from a worker process
        return type(self), (self.scene_id, str(self), self.excluded)


@dataclass
class LocalResult:
    path: Path  # the COG, in a local working directory
    used: list[str]  # scene ids that went into the composite
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (scene id, reason)
    excluded: list[str] = field(default_factory=list)  # skipped scenes the recipe rules out by content


def _asset_hrefs(scene: SceneRef, keys: tuple[str, ...]) -> dict[str, str]:
    try:
        item = json.loads(Path(scene.href).read_text())
    except (OSError, ValueError) as exc:
        raise SceneProblem(scene.scene_id, f"Item file {scene.href} unreadable: {exc}") from exc
    assets = item.get("assets", {})
    out = {}
    for key in keys:
        if key not in assets:
            raise SceneProblem(scene.scene_id, f"asset {key} missing from the Item")
        href = assets[key]["href"]
        if "://" not in href and not href.startswith("/"):
            href = str((Path(scene.href).parent / href).resolve())
        out[key] = href
    return out


def _check(scene: SceneRef, key: str, href: str, grid: TargetGrid) -> None:
    if "://" not in href and not Path(href).exists():
        raise SceneProblem(scene.scene_id, f"asset {key}: file missing ({href})")
    try:
        with rasterio.open(href) as src:
            crs = src.crs.to_string() if src.crs else None
    except RasterioError as exc:
        raise SceneProblem(scene.scene_id, f"asset {key}: unreadable GeoTIFF ({exc})") from exc
    if crs != grid.crs:
        raise SceneProblem(scene.scene_id,
                           f"asset {key}: unexpected CRS {crs} (expected {grid.crs})")


def _read_from(src: rasterio.io.DatasetReader, grid: TargetGrid, window: Window) -> np.ndarray:
    h, w = int(window.height), int(window.width)
    out = np.full((h, w), np.nan, np.float32)
    src_win = from_bounds(*grid.bounds(window), transform=src.transform)
    full = Window(0, 0, src.width, src.height)
    if not rasterio.windows.intersect(src_win, full):
        return out
    inter = src_win.intersection(full)
    sy, sx = h / src_win.height, w / src_win.width
    r0 = int(round((inter.row_off - src_win.row_off) * sy))
    c0 = int(round((inter.col_off - src_win.col_off) * sx))
    dh, dw = int(round(inter.height * sy)), int(round(inter.width * sx))
    if dh <= 0 or dw <= 0:
        return out
    data = nodata_to_nan(src.read(1, window=inter, out_shape=(dh, dw), resampling=Resampling.nearest)
                         .astype(np.float32), src.nodata, copy=False)
    out[r0:r0 + dh, c0:c0 + dw] = data
    return out


def read_window(href: str, grid: TargetGrid, window: Window, scene: str = "", key: str = "") -> np.ndarray:
    """The asset's values on ``window`` of the target grid (nearest neighbour), float32, NaN for nodata
    and outside the asset. Files are opened per read: holding thousands of scenes open costs more
    memory (a tile buffer each) than reopening costs time."""
    try:
        with rasterio.open(href) as src:
            return _read_from(src, grid, window)
    except RasterioError as exc:
        raise SceneProblem(scene, f"asset {key}: read failed ({exc})") from exc


class LocalBackend:
    """Computes a recipe's composites from local (or GDAL-readable) scene assets."""

    #: GDAL's block cache (MB) per process; its default, 5 % of RAM, is far more than one tile needs.
    GDAL_CACHE_MB = 256

    def __init__(self, workdir: Path, progress: bool = False, workers: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.progress = progress
        self.workers = max(1, workers or min(2, os.cpu_count() or 1))

    # -- shared scaffolding -----------------------------------------------------------------------
    def _usable(self, scenes: list[SceneRef], keys: tuple[str, ...], grid: TargetGrid,
                extra: Callable[[SceneRef, dict[str, str]], None] | None = None,
                ) -> tuple[list[tuple[SceneRef, dict[str, str]]], list[tuple[str, str]], list[str]]:
        usable, skipped, excluded = [], [], []
        for scene in scenes:
            try:
                hrefs = _asset_hrefs(scene, keys)
                for key, href in hrefs.items():
                    _check(scene, key, href, grid)
                if extra is not None:
                    extra(scene, hrefs)
                usable.append((scene, hrefs))
            except SceneProblem as exc:
                skipped.append((scene.scene_id, str(exc)))
                if exc.excluded:
                    excluded.append(scene.scene_id)
                log.warning("skipped scene %s: %s", scene.scene_id, exc)
        return usable, skipped, excluded

    def _write(self, name: str, grid: TargetGrid, bands: tuple[str, ...],
               fill: Callable[[int, Window], dict[str, np.ndarray]], tile: int) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(self.workdir)
        staging = self.workdir / f".{name}.{os.getpid()}.staging.tif"
        final = self.workdir / f"{name}.tif"
        try:
            return self._write_staged(staging, final, name, grid, bands, fill, tile)
        finally:
            staging.unlink(missing_ok=True)

    def _write_staged(self, staging: Path, final: Path, name: str, grid: TargetGrid, bands: tuple[str, ...],
                      fill: Callable[[int, Window], dict[str, np.ndarray]], tile: int) -> Path:
        profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=len(bands), dtype="float32",
                       crs=grid.crs, transform=grid.transform, nodata=np.nan, tiled=True,
                       blockxsize=256, blockysize=256, compress="ZSTD", predictor=3, BIGTIFF="IF_SAFER")
        windows = list(grid.tiles(tile))
        with rasterio.open(staging, "w", **profile) as dst:
            for i, band in enumerate(bands, start=1):
                dst.set_band_description(i, band)
            results = _map_tiles(fill, windows, self.workers, self.GDAL_CACHE_MB)
            for window, values in tqdm(zip(windows, results, strict=True), total=len(windows),
                                       desc=f"{name}: tiles", unit="tile", disable=not self.progress):
                dst.write(np.stack([values[b] for b in bands]).astype(np.float32), window=window)
        rasterio.shutil.copy(staging, final, driver="COG", compress="ZSTD", predictor="YES", level=6,
                             blocksize=512, overview_resampling="average", num_threads=1)
        return final

    # -- Sentinel-2 ----------------------------------------------------------------------------------
    def s2(self, recipe: Recipe, grid: TargetGrid, scenes: list[SceneRef], name: str) -> LocalResult:
        """Sentinel-2 bare-soil composite of ``scenes`` on ``grid``, written to ``{workdir}/{name}.tif``."""
        with rasterio.Env(GDAL_CACHEMAX=self.GDAL_CACHE_MB, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            return self._s2(recipe, grid, scenes, name)

    def s1(self, recipe: Recipe, grid: TargetGrid, scenes: list[SceneRef], name: str) -> LocalResult:
        """Sentinel-1 median-dB composite of ``scenes`` on ``grid``, written to ``{workdir}/{name}.tif``."""
        with rasterio.Env(GDAL_CACHEMAX=self.GDAL_CACHE_MB, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            return self._s1(recipe, grid, scenes, name)

    def _s2(self, recipe: Recipe, grid: TargetGrid, scenes: list[SceneRef], name: str) -> LocalResult:
        params = recipe.s2
        if params is None:
            raise BadInputError(f"recipe for {recipe.aoi} has no s2 part")
        keys = S2_BANDS + ("SCL",) + (("CLD",) if params.cloud_probability_max is not None else ())
        selection = select_s2(params, scenes)
        candidates, skipped = list(selection.selected), list(selection.ruled_out)
        ruled_out = [sid for sid, _ in selection.ruled_out]
        windows = list(grid.tiles(recipe.tile_size))
        clear_tiles: dict[str, set[int]] = {}

        def any_clear(scene: SceneRef, hrefs: dict[str, str]) -> None:
            # One pass over the AOI's SCL: drops all-cloud scenes and remembers which tiles have clear sky.
            tiles = set()
            try:
                with rasterio.open(hrefs["SCL"]) as src:
                    for i, window in enumerate(windows):
                        if np.isin(_read_from(src, grid, window), params.scl_keep).any():
                            tiles.add(i)
            except RasterioError as exc:
                raise SceneProblem(scene.scene_id, f"asset SCL: read failed ({exc})") from exc
            if not tiles:
                raise SceneProblem(scene.scene_id,
                                   "no clear pixel over the AOI (SCL all cloud, shadow or nodata)", excluded=True)
            clear_tiles[scene.scene_id] = tiles

        while True:
            usable, bad, excluded = self._usable(candidates, keys, grid, any_clear)
            try:
                path = self._write(name, grid, S2_COMPOSITE_BANDS,
                                   lambda i, w, u=usable: _s2_tile(read_window, u, clear_tiles, i, grid, w, params),
                                   recipe.tile_size)
                break
            except SceneProblem as exc:  # a block unreadable deep inside a file: drop the scene, start over
                log.warning("restarting without %s: %s", exc.scene_id, exc)
                candidates = [s for s in candidates if s.scene_id != exc.scene_id]
                skipped.append((exc.scene_id, str(exc)))
        return LocalResult(path, [s.scene_id for s, _ in usable], skipped + bad, ruled_out + excluded)

    # -- Sentinel-1 ----------------------------------------------------------------------------------
    def _s1(self, recipe: Recipe, grid: TargetGrid, scenes: list[SceneRef], name: str) -> LocalResult:
        params = recipe.s1
        if params is None:
            raise BadInputError(f"recipe for {recipe.aoi} has no s1 part")
        selection = select_s1(params, scenes)  # scenes of the other orbit pass are not part of the recipe
        candidates, skipped = [], list(selection.ruled_out)
        ruled_out = [sid for sid, _ in selection.ruled_out]
        for s in selection.selected:  # the local files' own convention: linear backscatter
            if s.properties.get("s1:scale", "linear") != "linear":
                skipped.append((s.scene_id, f"backscatter scale {s.properties['s1:scale']!r}, expected 'linear'"))
                ruled_out.append(s.scene_id)
                continue
            candidates.append(s)
        while True:
            usable, bad, excluded = self._usable(candidates, ("vv", "vh"), grid)
            try:
                path = self._write(name, grid, S1_COMPOSITE_BANDS,
                                   lambda i, w, u=usable: _s1_tile(read_window, u, grid, w, params),
                                   recipe.tile_size)
                break
            except SceneProblem as exc:
                log.warning("restarting without %s: %s", exc.scene_id, exc)
                candidates = [s for s in candidates if s.scene_id != exc.scene_id]
                skipped.append((exc.scene_id, str(exc)))
        return LocalResult(path, [s.scene_id for s, _ in usable], skipped + bad, ruled_out + excluded)


_FILL: Callable[[int, Window], dict[str, np.ndarray]] | None = None  # the tile function, for forked workers


def _fill_in_worker(args: tuple[int, Window, int]) -> dict[str, np.ndarray]:
    index, window, cache_mb = args
    assert _FILL is not None
    with rasterio.Env(GDAL_CACHEMAX=cache_mb, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        return _FILL(index, window)


def _map_tiles(fill: Callable[[int, Window], dict[str, np.ndarray]], windows: list[Window], workers: int,
               cache_mb: int) -> Iterator[dict[str, np.ndarray]]:
    """Tile results in order; tiles are independent, so they run in forked worker processes when
    ``workers`` > 1 (each worker holds one tile at a time: memory stays bounded by the tile size)."""
    global _FILL
    if workers == 1 or len(windows) == 1:
        yield from (fill(i, w) for i, w in enumerate(windows))
        return
    _FILL = fill
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            yield from pool.map(_fill_in_worker, [(i, w, cache_mb) for i, w in enumerate(windows)])
    finally:
        _FILL = None


def _s2_tile(read: Reader, usable: list[tuple[SceneRef, dict[str, str]]], clear_tiles: dict[str, set[int]],
             tile_index: int, grid: TargetGrid, window: Window, params: S2Recipe) -> dict[str, np.ndarray]:
    """One pass over the scenes, every band window decoded at most once: SCL (and CLD) for the clear mask,
    the four rule bands for the valid and bare masks, then, for a scene with bare pixels, the other bands.
    Only the bare observations are kept (flat pixel index and value per band, compact), and each band's
    statistic is taken over them (:func:`maths.reduce_observations`): the work follows the observations,
    not scenes x pixels."""
    h, w = int(window.height), int(window.width)
    valid_count = np.zeros((h, w), np.int32)
    bare_count = np.zeros((h, w), np.int32)
    pixels: list[np.ndarray] = []
    values: dict[str, list[np.ndarray]] = {band: [] for band in S2_BANDS}
    for scene, hrefs in usable:
        if tile_index not in clear_tiles.get(scene.scene_id, ()):
            continue
        sid = scene.scene_id
        scl = read(hrefs["SCL"], grid, window, sid, "SCL")
        cld = read(hrefs["CLD"], grid, window, sid, "CLD") if "CLD" in hrefs else None
        clear = maths.s2_clear(scl, params, cld)
        if not clear.any():
            continue
        b = {k: read(hrefs[k], grid, window, sid, k) for k in MASK_BANDS}
        valid = clear.copy()
        for k in MASK_BANDS:  # valid: clear where every band of the rules holds data
            valid &= ~np.isnan(b[k])
        bare = valid & maths.s2_bare(b["B04"], b["B08"], b["B11"], b["B12"], params)
        valid_count += valid
        bare_count += bare
        if not bare.any():
            continue
        where = np.flatnonzero(bare)
        pixels.append(where)
        for band in S2_BANDS:
            data = b[band] if band in b else read(hrefs[band], grid, window, sid, band)
            values[band].append(data.ravel()[where])
    enough = (bare_count >= params.min_bare_count).ravel()
    at = np.concatenate(pixels) if pixels else np.zeros(0, np.intp)
    out: dict[str, np.ndarray] = {}
    for band in S2_BANDS:
        observed = np.concatenate(values[band]) if pixels else np.zeros(0, np.float32)
        present = ~np.isnan(observed)  # a bare pixel whose band is nodata (a 20 m edge) is no observation of it
        stat, _ = maths.reduce_observations(at[present], observed[present], h * w, params.statistic)
        out[band] = np.where(enough, stat, np.nan).reshape(h, w)
    out["bare_count"] = bare_count.astype(np.float32)
    out["valid_count"] = valid_count.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["bare_frequency"] = np.where(valid_count > 0, bare_count / np.maximum(valid_count, 1), np.nan)
    return out


#: Scenes written to the (pixels, scenes) layout at once: 16 float32 values are one 64-byte cache line.
_CHUNK = 16


def _s1_tile(read: Reader, usable: list[tuple[SceneRef, dict[str, str]]], grid: TargetGrid, window: Window,
             params: S1Recipe) -> dict[str, np.ndarray]:
    """Each scene's VV and VH (dB, optionally speckle-filtered) written straight into (pixels, scenes) rows,
    a cache line of scenes at a time, then the median per row: no (scenes, pixels) stack to transpose."""
    h, w = int(window.height), int(window.width)
    if not usable:
        empty = np.full((h, w), np.nan, np.float32)
        return {"VV": empty, "VH": empty, "VV_VH": empty, "count": np.zeros((h, w), np.float32)}
    halo = params.speckle_size // 2 if params.speckle_filter != "none" else 0
    padded = Window(window.col_off - halo, window.row_off - halo, w + 2 * halo, h + 2 * halo)
    rows = {pol: np.empty((h * w, len(usable)), np.float32) for pol in ("vv", "vh")}
    chunk = {pol: np.empty((_CHUNK, h * w), np.float32) for pol in ("vv", "vh")}
    for k, (scene, hrefs) in enumerate(usable):
        for pol in ("vv", "vh"):
            raw = read(hrefs[pol], grid, padded, scene.scene_id, pol)
            chunk[pol][k % _CHUNK] = maths.s1_prepare(raw, params)[halo:halo + h, halo:halo + w].ravel()
        if k % _CHUNK == _CHUNK - 1 or k == len(usable) - 1:
            first = k - k % _CHUNK
            for pol in ("vv", "vh"):
                rows[pol][:, first:k + 1] = chunk[pol][:k + 1 - first].T
    count = np.count_nonzero(~np.isnan(rows["vv"]), axis=1).reshape(h, w)
    vv = maths.reduce_rows(rows["vv"], "median").reshape(h, w)
    vh = maths.reduce_rows(rows["vh"], "median").reshape(h, w)
    return {"VV": vv, "VH": vh, "VV_VH": vv - vh, "count": count.astype(np.float32)}


def remove_stale_staging(workdir: Path) -> list[Path]:
    """Delete staging files (``.{name}.{pid}.staging.tif``) that no live process is writing: those of a
    killed run, and those of the old pid-less naming. Returns what was removed."""
    removed = []
    for path in sorted(Path(workdir).glob(".*.staging.tif")):
        pid = path.name.removesuffix(".staging.tif").rsplit(".", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or alive(int(pid))):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
        log.warning("removed %s: the staging file of a run that no longer runs", path)
    return removed
