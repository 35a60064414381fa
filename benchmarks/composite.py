"""Benchmark: the local composite backend against the decode limit and the numpy.nanmedian baseline.

    .venv/bin/python benchmarks/composite.py [--world var/demo] [--tile-size 512] [--window 512]
                                             [--sensor sentinel-2|sentinel-1|both] [--no-full]

Per sensor, on a window of the demo world, each run a separate process (its own peak RSS):
  decode      every band window the composite needs read and decoded once (tile by tile), nothing else:
              the floor for any backend that reads these files;
  baseline    every scene read whole, masks applied, numpy.nanmedian per band over the full stack;
  backend x1  the local backend with one worker (one core).
Then the local backend on the whole demo AOI (several tiles) with one and with two tile workers: what the
second core adds, and peak memory bounded by the tile, not the AOI (it should match the window's).
The scene files are read once first, so that every run sees a warm page cache. Printed side by side:
seconds, pixel-observations per second (scenes x pixels / time), peak RSS, and the targets of issue 16
per core: backend x1 at least 4x faster than the baseline, and at most 1.5x the decode time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

COLLECTION = {"sentinel-2": "sentinel-2-l2a", "sentinel-1": "sentinel-1-grd"}


def _aoi(world: Path, window: int | None) -> dict:
    from soilclay.demo.stac import footprint

    meta = json.loads((world / "world.json").read_text())
    x0, y0 = meta["transform"][2], meta["transform"][5]
    size_x = meta["width"] if window is None else window
    size_y = meta["height"] if window is None else window
    geom, _ = footprint((x0, y0 - size_y * 10, x0 + size_x * 10, y0), meta["crs"])
    return geom


def _setup(world: Path, window: int | None, tile: int, sensor: str):
    from soilclay.composites.grid import TargetGrid
    from soilclay.composites.recipe import Recipe
    from soilclay.scenes.local import LocalStacSource

    aoi = _aoi(world, window)
    recipe = Recipe.parse({"aoi": "bench", "window": {"years": 5}, "grid": {"crs": "EPSG:32633"}, "tile_size": tile})
    grid = TargetGrid.for_aoi(aoi, recipe.grid)
    scenes = LocalStacSource(world / "scenes").list_scenes(aoi, (COLLECTION[sensor],))
    return recipe, grid, scenes


def _figures(seconds: float, scenes: int, pixels: int) -> dict:
    return {"seconds": seconds, "obs": scenes * pixels, "scenes": scenes, "pixels": pixels}


def run_decode(world: Path, window: int, tile: int, sensor: str) -> dict:
    """Read every band window the composite needs once, tile by tile, as the backend's reader does."""
    import rasterio

    from soilclay.composites.local import _asset_hrefs, read_window
    from soilclay.contract import S2_BANDS

    recipe, grid, scenes = _setup(world, window, tile, sensor)
    keys = S2_BANDS + ("SCL",) if sensor == "sentinel-2" else ("vv", "vh")
    hrefs = [_asset_hrefs(s, keys) for s in scenes]
    started = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=256, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        for window_ in grid.tiles(recipe.tile_size):
            for scene_hrefs in hrefs:
                for key in keys:
                    read_window(scene_hrefs[key], grid, window_)
    return _figures(time.perf_counter() - started, len(scenes), grid.width * grid.height)


def run_local(world: Path, window: int | None, tile: int, sensor: str, workers: int) -> dict:
    from soilclay.composites.local import LocalBackend

    recipe, grid, scenes = _setup(world, window, tile, sensor)
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Path(tmp), workers=workers)
        started = time.perf_counter()
        (backend.s2 if sensor == "sentinel-2" else backend.s1)(recipe, grid, scenes, "bench")
        seconds = time.perf_counter() - started
    return _figures(seconds, len(scenes), grid.width * grid.height)


def _read_whole(path: Path, window: int) -> np.ndarray:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        step = int(round(src.res[0] / 10))
        a = src.read(1, window=Window(0, 0, window // step, window // step)).astype(np.float32)
    return np.repeat(np.repeat(a, step, 0), step, 1) if step > 1 else a


def run_baseline(world: Path, window: int, tile: int, sensor: str) -> dict:
    """The naive composite: full stacks in memory, numpy.nanmedian over time."""
    from soilclay.contract import S2_BANDS

    _, _, scenes = _setup(world, window, tile, sensor)
    started = time.perf_counter()
    bands = S2_BANDS if sensor == "sentinel-2" else ("vv", "vh")
    stacks = {b: np.full((len(scenes), window, window), np.nan, np.float32) for b in bands}
    for t, scene in enumerate(scenes):
        folder = Path(scene.href).parent
        d = {b: _read_whole(folder / f"{b}.tif", window) for b in bands}
        if sensor == "sentinel-2":
            scl = _read_whole(folder / "SCL.tif", window)
            with np.errstate(all="ignore"):
                keep = (np.isin(scl, (4, 5)) & ((d["B08"] - d["B04"]) / (d["B08"] + d["B04"]) < 0.25)
                        & ((d["B11"] - d["B12"]) / (d["B11"] + d["B12"]) < 0.075))
        else:
            keep = np.ones((window, window), bool)
        for b in bands:
            with np.errstate(all="ignore"):
                values = d[b] if sensor == "sentinel-2" else np.where(d[b] > 0, 10 * np.log10(d[b]), np.nan)
            stacks[b][t][keep] = values[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in bands:
            np.nanmedian(stacks[b], axis=0)
    return _figures(time.perf_counter() - started, len(scenes), window * window)


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _line(label: str, r: dict) -> str:
    workers = f" + workers {r['worker_peak_mb']:.0f} MB each" if r.get("worker_peak_mb") else ""
    return (f"  {label:<34} {r['seconds']:7.1f} s  {r['obs'] / r['seconds'] / 1e6:7.2f} M pixel-obs/s  "
            f"peak RSS {r['peak_mb']:5.0f} MB{workers}")


def _warm(world: Path, sensor: str) -> None:
    """Read every scene file once, so that no run pays for a cold page cache the others do not."""
    for path in (world / "scenes" / COLLECTION[sensor]).rglob("*.tif"):
        with path.open("rb") as f:
            while f.read(1 << 24):
                pass


def _sensor(common: list[str], sensor: str, window: int, world: Path) -> None:
    _warm(world, sensor)
    runs = {name: _child([*common, "--sensor", sensor, "--child", name]) for name in ("decode", "baseline", "local1")}
    print(f"{sensor}, {window}x{window} window, {runs['decode']['scenes']} scenes:")
    for label, name in (("decode only (one process)", "decode"), ("baseline numpy.nanmedian", "baseline"),
                        ("backend, 1 worker", "local1")):
        print(_line(label, runs[name]))
    one, base, decode = runs["local1"]["seconds"], runs["baseline"]["seconds"], runs["decode"]["seconds"]
    print(f"  per core: {base / one:.2f}x faster than the baseline "
          f"({'MET' if base / one >= 4 else 'MISSED'}: target >= 4x); {one / decode:.2f}x the decode time "
          f"({'MET' if one / decode <= 1.5 else 'MISSED'}: target <= 1.5x)")
    return runs["local1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("var/demo"))
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--sensor", choices=["sentinel-2", "sentinel-1", "both"], default="both")
    parser.add_argument("--no-full", action="store_true", help="skip the whole-AOI memory run")
    parser.add_argument("--child", choices=["decode", "baseline", "local1", "full1", "full2"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sensor = "sentinel-2" if args.sensor == "both" else args.sensor
        if args.child == "decode":
            res = run_decode(args.world, args.window, args.tile_size, sensor)
        elif args.child == "baseline":
            res = run_baseline(args.world, args.window, args.tile_size, sensor)
        else:
            window = args.window if args.child == "local1" else None
            res = run_local(args.world, window, args.tile_size, sensor, 2 if args.child == "full2" else 1)
        res["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["worker_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(res))
        return
    if not (args.world / "world.json").exists():
        sys.exit(f"no demo world in {args.world}: run `make demo` (or soilclay demo-world --out {args.world})")
    common = ["--world", str(args.world), "--tile-size", str(args.tile_size), "--window", str(args.window)]
    sensors = ["sentinel-2", "sentinel-1"] if args.sensor == "both" else [args.sensor]
    windows = {sensor: _sensor(common, sensor, args.window, args.world) for sensor in sensors}
    if args.no_full:
        return
    for sensor in sensors:
        one, two = (_child([*common, "--sensor", sensor, "--child", name]) for name in ("full1", "full2"))
        side = int(round(one["pixels"] ** 0.5))
        print(f"{sensor}, whole AOI ({side}x{side}, {one['pixels'] / windows[sensor]['pixels']:.1f}x the window's "
              f"pixels, tile {args.tile_size}):")
        print(_line("backend, 1 worker", one))
        print(_line("backend, 2 workers", two))
        print(f"  two workers {one['seconds'] / two['seconds']:.2f}x one; peak RSS {one['peak_mb']:.0f} MB (1 worker, "
              f"whole AOI) vs {windows[sensor]['peak_mb']:.0f} MB (window): bounded by the tile, not the AOI")


if __name__ == "__main__":
    main()
