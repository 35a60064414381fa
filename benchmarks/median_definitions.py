"""Benchmark: how far apart plausible median/percentile definitions are on the demo world's stacks.

    .venv/bin/python benchmarks/median_definitions.py [--world var/demo] [--tiles 2] [--tile-size 256]

The local backend's temporal statistic (soilclay.composites.maths.reduce_time) interpolates linearly
between closest ranks, as numpy.nanmedian/nanpercentile do. Earth Engine's Reducer.median()/percentile()
do not document which order statistic they return below maxRaw, and above maxRaw they estimate from a
histogram (see docs/parity-median.md). This script builds the per-pixel observation stacks the local
backend reduces, with the backend's own tile code (soilclay.composites.local._s2_tile/_s1_tile, whose
calls to maths.reduce_observations and maths.reduce_rows are intercepted; so masks, bare-soil rules,
nodata and the dB conversion are the library's), on ``--tiles`` tiles spread over the demo AOI, and
compares, per sensor and band group, the median, p25 and p75 under:

  lower      the lower of the two closest ranks, sorted[floor(q*(n-1))]     (numpy method='lower')
  upper      the upper of the two closest ranks, sorted[ceil(q*(n-1))]      (numpy method='higher')
  nearest    nearest rank, sorted[ceil(q*n) - 1]                            (numpy 'inverted_cdf')
  hist256    a histogram estimate: <= 256 buckets of a power-of-two width aligned to multiples of the
             width (the smallest such width that spans the pixel's range), quantile interpolated
             linearly inside the bucket where the cumulative count reaches q*n. A model of Earth
             Engine's histogram mode (bucket count and interpolation are assumptions, not documented)
  hist256/b  the same histogram, value = the centre of that bucket (no interpolation inside it)

against numpy's linear interpolation; it prints the 99th percentile and the maximum absolute
difference over the pixels (S2 L2A DN = reflectance x 10000, S1 dB). The midpoint of lower and upper
is numpy's median exactly, so it is not listed. Pixels as the composite keeps them: S2 with at least
``min_bare_count`` bare observations, S1 with at least one observation.

Needs the demo world; if ``--world`` holds none it is generated first (``soilclay demo-world``, as
`make demo` does, same size and seed: a couple of minutes, once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np

QUANTILES = (("median", 0.5), ("p25", 0.25), ("p75", 0.75))
DEFINITIONS = ("lower", "upper", "nearest", "hist256", "hist256/b")
HIST_BUCKETS = 256
S2_GROUPS = {"S2 10 m (B02 B03 B04 B08)": ("B02", "B03", "B04", "B08"),
             "S2 20 m (B05-B07 B8A B11 B12)": ("B05", "B06", "B07", "B8A", "B11", "B12")}
S1_GROUPS = {"S1 VV": ("vv",), "S1 VH": ("vh",)}


# ----------------------------------------------------------------------------------- definitions
def _ordered(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, T) sorted observations (NaN last) and the per-pixel count."""
    flat = stack.reshape(stack.shape[0], -1).T.astype(np.float64)
    count = np.count_nonzero(~np.isnan(flat), axis=1)
    flat.sort(axis=1)
    return flat, count


def _pick(ordered: np.ndarray, index: np.ndarray) -> np.ndarray:
    return ordered[np.arange(ordered.shape[0]), index]


def bucket_width(ordered: np.ndarray, count: np.ndarray, buckets: int = HIST_BUCKETS) -> np.ndarray:
    """Per pixel: the smallest power of two w with floor(max/w) - floor(min/w) + 1 <= buckets."""
    lo, hi = ordered[:, 0], ordered[np.arange(ordered.shape[0]), count - 1]
    span = np.maximum(hi - lo, 1e-12)
    k = np.maximum(np.ceil(np.log2(span / buckets)), -20).astype(np.int64)  # one-value pixels: any width is exact
    for _ in range(2):
        width = np.exp2(k.astype(np.float64))
        too_many = np.floor(hi / width) - np.floor(lo / width) + 1 > buckets
        k = np.where(too_many, k + 1, k)
    return np.exp2(k.astype(np.float64))


def _histogram(ordered: np.ndarray, count: np.ndarray, q: float, buckets: int,
               centre: bool) -> np.ndarray:
    """Quantile ``q`` from a histogram of at most ``buckets`` aligned power-of-two-wide buckets."""
    rows = np.arange(ordered.shape[0])
    width = bucket_width(ordered, count, buckets)[:, None]
    with np.errstate(invalid="ignore"):
        bucket = np.floor(ordered / width)  # NaN stays NaN (compares False below)
    target = q * count
    at = np.clip(np.ceil(target).astype(np.int64) - 1, 0, count - 1)  # element where the cumulative reaches q*n
    b_star = bucket[rows, at][:, None]
    before = np.sum(bucket < b_star, axis=1)
    inside = np.sum(bucket == b_star, axis=1)
    edge = b_star[:, 0] * width[:, 0]
    if centre:
        return edge + width[:, 0] / 2
    return edge + width[:, 0] * np.clip((target - before) / inside, 0.0, 1.0)


def definitions(stack: np.ndarray, keep: np.ndarray, quantiles: tuple[tuple[str, float], ...] = QUANTILES
                ) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per statistic label: numpy's value (the local backend's maths.reduce_time) and the other
    definitions' values, on the pixels ``keep`` (flat mask); plus ``"_"``: (counts, bucket widths)."""
    from soilclay.composites import maths

    ordered, n = _ordered(stack)  # sorted once for every statistic
    ordered, n = ordered[keep], n[keep]
    flat = stack.reshape(stack.shape[0], -1)
    probe = np.flatnonzero(keep)[:: max(1, int(keep.sum()) // 2000)]  # nanpercentile is slow: check a sample
    out: dict = {"_": (n, bucket_width(ordered, n))}
    for label, q in quantiles:
        reference, count = maths.reduce_time(stack, label)  # the local backend's own statistic
        reference = reference.reshape(-1)[keep].astype(np.float64)
        assert np.array_equal(n, count.reshape(-1)[keep])
        with warnings.catch_warnings():  # cross-check: reduce_time is nanpercentile's linear interpolation
            warnings.simplefilter("ignore", RuntimeWarning)
            check = np.nanpercentile(flat[:, probe].astype(np.float64), q * 100, axis=0)
        assert np.allclose(check, reduce_probe(stack, label, probe), rtol=1e-6, atol=1e-3), \
            "reduce_time is not numpy's linear interpolation"
        pos = q * (n - 1)
        out[label] = (reference, {
            "lower": _pick(ordered, np.floor(pos).astype(np.int64)),
            "upper": _pick(ordered, np.ceil(pos).astype(np.int64)),
            "nearest": _pick(ordered, np.clip(np.ceil(q * n).astype(np.int64) - 1, 0, n - 1)),
            "hist256": _histogram(ordered, n, q, HIST_BUCKETS, centre=False),
            "hist256/b": _histogram(ordered, n, q, HIST_BUCKETS, centre=True)})
    return out


def reduce_probe(stack: np.ndarray, label: str, probe: np.ndarray) -> np.ndarray:
    from soilclay.composites import maths

    return maths.reduce_time(stack.reshape(stack.shape[0], -1)[:, probe], label)[0].astype(np.float64)


# ----------------------------------------------------------------------------------- the stacks
def dense_stack(pixel: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """The (k, size) NaN-padded stack of observations given sparsely (as maths.reduce_observations gets them)."""
    order = np.argsort(pixel, kind="stable")
    at = pixel[order]
    counts = np.bincount(at, minlength=size)
    rank = np.arange(at.size) - (np.cumsum(counts) - counts)[at]
    stack = np.full((max(int(counts.max(initial=0)), 1), size), np.nan, np.float32)
    stack[rank, at] = values[order]
    return stack


@contextmanager
def captured_stacks() -> Iterator[list[np.ndarray]]:
    """Record every stack the local backend's tile code reduces, as a dense (T, pixels) stack: the
    (pixels, T) rows it hands to maths.reduce_rows (Sentinel-1) and the sparse observations it hands to
    maths.reduce_observations (Sentinel-2)."""
    from soilclay.composites import maths

    rows_of, sparse = maths.reduce_rows, maths.reduce_observations
    seen: list[np.ndarray] = []

    def recording_rows(ordered: np.ndarray, statistic: str):
        seen.append(np.ascontiguousarray(ordered.T))  # before reduce_rows sorts the rows in place
        return rows_of(ordered, statistic)

    def recording_sparse(pixel: np.ndarray, values: np.ndarray, size: int, statistic: str):
        seen.append(dense_stack(pixel, values, size))
        return sparse(pixel, values, size, statistic)

    maths.reduce_rows, maths.reduce_observations = recording_rows, recording_sparse
    try:
        yield seen
    finally:
        maths.reduce_rows, maths.reduce_observations = rows_of, sparse


def world_setup(world: Path, tile_size: int):
    from soilclay.composites.grid import TargetGrid
    from soilclay.composites.recipe import Grid, Recipe, TimeWindow
    from soilclay.contract import S1_COLLECTION, S2_COLLECTION
    from soilclay.scenes.local import LocalStacSource

    aoi = json.loads((world / "aoi.geojson").read_text())
    feature = aoi["features"][0] if aoi.get("type") == "FeatureCollection" else aoi
    geometry, crs = feature["geometry"], feature["properties"]["grid_crs"]
    # The default recipe (soilclay.composites.build.default_recipe): 3-year window up to the newest scene.
    recipe = Recipe(aoi="bench", window=TimeWindow(years=3), grid=Grid(crs=crs), tile_size=tile_size)
    grid = TargetGrid.for_aoi(geometry, recipe.grid)
    scenes = LocalStacSource(world / "scenes").list_scenes(geometry, (S2_COLLECTION, S1_COLLECTION))
    refresh = max(s.acquired_at for s in scenes).date()
    start, end = recipe.window.resolve(refresh)
    scenes = [s for s in scenes if start <= s.acquired_at.date() < end + timedelta(days=1)]
    return recipe, grid, scenes, (start, end)


def spread(n_tiles: int, total: int) -> list[int]:
    """``n_tiles`` tile indices spread evenly over ``total`` tiles."""
    n_tiles = max(1, min(n_tiles, total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, n_tiles)})


def collect(world: Path, n_tiles: int, tile_size: int) -> dict:
    from soilclay.composites import local
    from soilclay.composites.selection import select_s1, select_s2
    from soilclay.contract import S1_COLLECTION, S2_BANDS, S2_COLLECTION

    recipe, grid, scenes, period = world_setup(world, tile_size)
    backend = local.LocalBackend(Path("/nonexistent"), workers=1)
    windows = list(grid.tiles(recipe.tile_size))
    picked = spread(n_tiles, len(windows))
    s2_params, s1_params = recipe.s2, recipe.s1
    s2_scenes = list(select_s2(s2_params, [s for s in scenes if s.collection == S2_COLLECTION]).selected)
    s1_scenes = [s for s in select_s1(s1_params, [s for s in scenes if s.collection == S1_COLLECTION]).selected
                 if s.properties.get("s1:scale", "linear") == "linear"]  # as LocalBackend.s1
    keys = S2_BANDS + ("SCL",)
    s2_usable, _, _ = backend._usable(s2_scenes, keys, grid)
    s1_usable, _, _ = backend._usable(s1_scenes, ("vv", "vh"), grid)
    all_tiles = {s.scene_id: set(range(len(windows))) for s, _ in s2_usable}  # no shortcut: read every scene
    stacks: dict[str, list[np.ndarray]] = {b: [] for b in S2_BANDS + ("vv", "vh")}
    for i in picked:
        with captured_stacks() as seen:
            local._s2_tile(local.read_window, s2_usable, all_tiles, i, grid, windows[i], s2_params)
        for band, stack in zip(S2_BANDS, seen, strict=True):
            stacks[band].append(stack)
        with captured_stacks() as seen:
            local._s1_tile(local.read_window, s1_usable, grid, windows[i], s1_params)
        for band, stack in zip(("vv", "vh"), seen, strict=True):
            stacks[band].append(stack)
    return {"stacks": stacks, "tiles": picked, "n_windows": len(windows), "period": period,
            "s2_scenes": len(s2_usable), "s1_scenes": len(s1_usable), "min_bare": s2_params.min_bare_count}


# ----------------------------------------------------------------------------------- the table
def compare(stacks: list[np.ndarray], min_count: int, quantiles: tuple[tuple[str, float], ...] = QUANTILES
            ) -> dict:
    """Per statistic label: |definition - numpy| over all pixels of ``stacks``; ``"n"`` and ``"width"``."""
    parts = []
    for stack in stacks:
        keep = np.count_nonzero(~np.isnan(stack.reshape(stack.shape[0], -1)), axis=0) >= min_count
        if keep.any():
            parts.append(definitions(stack, keep, quantiles))
    res: dict = {"n": np.concatenate([p["_"][0] for p in parts]),
                 "width": np.concatenate([p["_"][1] for p in parts])}
    for label, _ in quantiles:
        ref = np.concatenate([p[label][0] for p in parts])
        res[label] = {d: np.abs(np.concatenate([p[label][1][d] for p in parts]) - ref) for d in DEFINITIONS}
    return res


def _w(width: float) -> str:
    return f"{width:g}"


def fmt(value: float, unit: str) -> str:
    return f"{value:.0f}" if unit == "DN" else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("var/demo"))
    parser.add_argument("--tiles", type=int, default=2, help="tiles (spread over the AOI) to build stacks for")
    parser.add_argument("--tile-size", type=int, default=256)
    args = parser.parse_args()
    if not (args.world / "world.json").exists():
        print(f"[bench] no demo world in {args.world}: generating it (soilclay demo-world --size demo --seed 42)")
        subprocess.run([sys.executable, "-m", "soilclay.cli", "demo-world", "--out", str(args.world),
                        "--size", "demo", "--seed", "42"], check=True, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    data = collect(args.world, args.tiles, args.tile_size)
    read_s = time.perf_counter() - started
    stacks = data["stacks"]
    median_only = QUANTILES[:1]
    groups = [(name, [s for b in bands for s in stacks[b]], "DN", data["min_bare"], QUANTILES)
              for name, bands in S2_GROUPS.items()]
    groups += [(name, [s for b in bands for s in stacks[b]], "dB", 1, QUANTILES) for name, bands in S1_GROUPS.items()]
    # The demo's S1 stacks have the same (odd) count everywhere; drop each pixel stack's last scene to
    # see the even-count median too (real stacks vary: orbit overlaps, border noise, masked scenes).
    groups += [(f"{name}, last scene dropped", [s[:-1] for b in bands for s in stacks[b]], "dB", 1, median_only)
               for name, bands in S1_GROUPS.items()]

    start, end = data["period"]
    print(f"Median/percentile definitions vs numpy linear interpolation (the local backend): demo world "
          f"{args.world}, window {start}..{end} (default recipe),\ntiles {data['tiles']} of "
          f"{data['n_windows']} ({args.tile_size} px), {data['s2_scenes']} S2 and {data['s1_scenes']} S1 scenes")
    print("Cells: |definition - numpy| over the pixels, 99th percentile / maximum; S2 in L2A DN "
          "(reflectance x 10000), S1 in dB.\n'pixels' counts pixel-bands; obs = observations per pixel; "
          "'even' = share of pixels with an even count;\n'bucket w' = the histogram model's bucket width, "
          "median/max over the pixels.")
    head = (f"{'sensor / band group':<35}{'stat':<7}{'pixels':>8}{'obs mean':>9}{'max':>5}{'even':>6}"
            + "".join(f"{d:>14}" for d in DEFINITIONS) + f"{'bucket w':>16}")
    print(head)
    print("-" * len(head))
    worst: dict[tuple[str, str, bool], float] = {}  # (unit, median or all, exact?) -> worst p99
    max_obs = {"DN": 0, "dB": 0}
    for name, group, unit, min_count, quantiles in groups:
        res = compare(group, min_count, quantiles)
        n, width = res["n"], res["width"]
        max_obs[unit] = max(max_obs[unit], int(n.max()))
        for label, _ in quantiles:
            cells = []
            for d in DEFINITIONS:
                diff = res[label][d]
                p99, mx = float(np.percentile(diff, 99)), float(diff.max())
                cells.append(f"{fmt(p99, unit)} / {fmt(mx, unit)}")
                exact = d in ("lower", "upper", "nearest")
                for scope in {"all", "median" if label == "median" else "all"}:
                    worst[unit, scope, exact] = max(worst.get((unit, scope, exact), 0.0), p99)
            even = f"{np.mean(n % 2 == 0) * 100:.0f}%"
            print(f"{name:<35}{label:<7}{n.size:>8}{n.mean():>9.1f}{n.max():>5}{even:>6}"
                  + "".join(f"{c:>14}" for c in cells)
                  + f"{_w(float(np.median(width))) + ' / ' + _w(float(width.max())):>16}")
    print(f"(stacks built in {read_s:.0f} s, all in {time.perf_counter() - started:.0f} s)")

    def w(unit: str, scope: str, exact: bool) -> str:
        return fmt(worst[unit, scope, exact], unit)

    print(f"Conclusion: at the 99th percentile of pixels, any exact definition (lower, upper, nearest rank) is "
          f"within {w('DN', 'median', True)} DN (S2) / {w('dB', 'median', True)} dB (S1) of numpy's median and "
          f"within {w('DN', 'all', True)} DN / {w('dB', 'all', True)} dB over median, p25 and p75;\n"
          f"the 256-bucket histogram model within {w('DN', 'median', False)} DN / "
          f"{w('dB', 'median', False)} dB "
          f"(median), {w('DN', 'all', False)} DN / {w('dB', 'all', False)} dB (all); at most {max_obs['DN']} S2 and "
          f"{max_obs['dB']} S1 observations per pixel here.")

if __name__ == "__main__":
    main()
