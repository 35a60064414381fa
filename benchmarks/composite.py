"""Benchmark: the local Sentinel-2 composite backend against the full-stack numpy.nanmedian baseline.

    .venv/bin/python benchmarks/composite.py [--world var/demo] [--tile-size 256] [--window 512]

Prints pixel-observations per second (scenes x pixels / wall time) and peak RSS (main process and
largest tile worker; the local backend runs 2 tile workers on 2 cores) of
  (1) the local backend on a window of the demo world,
  (2) the baseline on the same window: every scene read whole, masks applied, numpy.nanmedian per band,
  (3) the local backend on the whole demo AOI (peak memory should match (1): bounded by the tile, not the AOI).
Target: (1) faster than (2), and (3)'s peak RSS close to (1)'s. Each run is a separate process and
reports its own peak RSS.
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


def _aoi(world: Path, window: int | None) -> dict:
    from soilclay.demo.stac import footprint

    meta = json.loads((world / "world.json").read_text())
    x0, _, _, _, _, y0 = meta["transform"][2], 0, 0, 0, 0, meta["transform"][5]
    size_x = meta["width"] if window is None else window
    size_y = meta["height"] if window is None else window
    geom, _ = footprint((x0, y0 - size_y * 10, x0 + size_x * 10, y0), meta["crs"])
    return geom


def _scenes(world: Path, aoi: dict):
    from soilclay.scenes.local import LocalStacSource

    return LocalStacSource(world / "scenes").list_scenes(aoi, ("sentinel-2-l2a",))


def run_local(world: Path, window: int | None, tile: int) -> dict:
    from soilclay.composites.grid import TargetGrid
    from soilclay.composites.local import LocalBackend
    from soilclay.composites.recipe import Recipe

    aoi = _aoi(world, window)
    recipe = Recipe.parse({"aoi": "bench", "window": {"years": 5}, "grid": {"crs": "EPSG:32633"}, "tile_size": tile})
    grid = TargetGrid.for_aoi(aoi, recipe.grid)
    scenes = _scenes(world, aoi)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        LocalBackend(Path(tmp)).s2(recipe, grid, scenes, "bench")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "obs": len(scenes) * grid.width * grid.height, "scenes": len(scenes),
            "pixels": grid.width * grid.height}


def run_baseline(world: Path, window: int) -> dict:
    import rasterio
    from rasterio.windows import Window

    from soilclay.contract import S2_BANDS

    aoi = _aoi(world, window)
    scenes = _scenes(world, aoi)
    started = time.perf_counter()
    stacks = {b: np.full((len(scenes), window, window), np.nan, np.float32) for b in S2_BANDS}
    for t, scene in enumerate(scenes):
        folder = Path(scene.href).parent

        def read(name: str, folder: Path = folder) -> np.ndarray:
            with rasterio.open(folder / f"{name}.tif") as src:
                step = 2 if src.res[0] == 20 else 1
                a = src.read(1, window=Window(0, 0, window // step, window // step)).astype(np.float32)
            return np.repeat(np.repeat(a, step, 0), step, 1) if step == 2 else a

        scl = read("SCL")
        d = {b: read(b) for b in S2_BANDS}
        with np.errstate(all="ignore"):
            bare = (np.isin(scl, (4, 5)) & ((d["B08"] - d["B04"]) / (d["B08"] + d["B04"]) < 0.25)
                    & ((d["B11"] - d["B12"]) / (d["B11"] + d["B12"]) < 0.075))
        for b in S2_BANDS:
            stacks[b][t][bare] = d[b][bare]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in S2_BANDS:
            np.nanmedian(stacks[b], axis=0)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "obs": len(scenes) * window * window, "scenes": len(scenes), "pixels": window * window}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("var/demo"))
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--child", choices=["local", "baseline", "local-full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        window = None if args.child == "local-full" else args.window
        res = (run_baseline(args.world, args.window) if args.child == "baseline"
               else run_local(args.world, window, args.tile_size))
        res["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["worker_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(res))
        return
    if not (args.world / "world.json").exists():
        sys.exit(f"no demo world in {args.world}: run `make demo` (or soilclay demo-world --out {args.world})")
    common = ["--world", str(args.world), "--tile-size", str(args.tile_size), "--window", str(args.window)]
    local = _child([*common, "--child", "local"])
    base = _child([*common, "--child", "baseline"])
    full = _child([*common, "--child", "local-full"])
    for label, r in ((f"local backend, {args.window}x{args.window} window, tile {args.tile_size}", local),
                     (f"baseline nanmedian, {args.window}x{args.window} window", base),
                     (f"local backend, whole AOI ({r_px(full)}), tile {args.tile_size}", full)):
        print(f"{label:<55} {r['seconds']:7.1f} s  {r['obs'] / r['seconds'] / 1e6:7.2f} M pixel-obs/s  "
              f"({r['scenes']} scenes)  peak RSS {r['peak_mb']:.0f} MB"
              + (f" + workers {r['worker_peak_mb']:.0f} MB each" if r.get("worker_peak_mb") else ""))
    ratio = (local["obs"] / local["seconds"]) / (base["obs"] / base["seconds"])
    print(f"speed vs baseline: {ratio:.2f}x ({'MET' if ratio > 1 else 'MISSED'}: target > 1)")
    print(f"peak RSS, whole AOI ({full['pixels'] / local['pixels']:.1f}x the pixels) vs window: "
          f"{full['peak_mb']:.0f} MB vs {local['peak_mb']:.0f} MB (main), "
          f"{full['worker_peak_mb']:.0f} MB vs {local['worker_peak_mb']:.0f} MB (largest worker)")


def r_px(r: dict) -> str:
    side = int(round(r["pixels"] ** 0.5))
    return f"{side}x{side}"


if __name__ == "__main__":
    main()
