"""Generate (or extend) the demo world on disk: scene archive, samples, parcels, truth.

Layout of ``DIR``::

    world.json               what was generated (spec, counts); no timestamps, so reruns are byte-identical
    aoi.geojson              the area of interest (EPSG:4326) with its name and grid CRS
    scenes/sentinel-2-l2a/<item id>/<item id>.json + B02.tif ... B12.tif, SCL.tif
    scenes/sentinel-1-grd/<item id>/<item id>.json + vv.tif, vh.tif
    samples.csv              LUCAS-2018-style topsoil samples (POINTID, TH_LAT, TH_LONG, Clay, Sand, Silt, SURVEY_DATE)
    parcels.gpkg             parcel polygons (layer "parcels", column parcel_id), EPSG:32633
    truth/clay.tif, truth/parcels_truth.csv   evaluation only: no pipeline stage may read them

Every random draw comes from a generator seeded by (seed, purpose[, scene]), so the output does
not depend on the number of worker processes, and ``add_scenes`` continues the same world.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
from pyproj import Transformer
from tqdm import tqdm

from soilclay.demo import optics, radar, stac
from soilclay.demo.fields import SoilFields, soil_fields
from soilclay.demo.landscape import Landscape, cover_on, make_landscape
from soilclay.demo.spec import CRS, GENERATOR_VERSION, PIXEL_M, WorldSpec, preset
from soilclay.demo.weather import HORIZON_END, HORIZON_START, day_number, moisture_series, pixel_moisture
from soilclay.errors import BadInputError
from soilclay.io.cog import write_cog

MANIFEST = "world.json"
_RNG_SOIL, _RNG_PARCELS, _RNG_CROPS, _RNG_WEATHER, _RNG_SAMPLES, _RNG_S2, _RNG_S1 = range(1, 8)


@dataclass(frozen=True)
class WorldState:
    """Everything static about a world; scenes are rendered from it plus the date."""

    spec: WorldSpec
    soil: SoilFields
    land: Landscape
    dry_soil: np.ndarray
    moisture: np.ndarray

    @classmethod
    def build(cls, spec: WorldSpec) -> WorldState:
        if spec.start < HORIZON_START + timedelta(days=400) or spec.end > HORIZON_END:
            raise BadInputError(f"world dates must lie in {HORIZON_START.year + 1}..{HORIZON_END.year}, "
                                f"found {spec.start}..{spec.end}")
        rng = lambda purpose: np.random.default_rng([spec.seed, purpose])  # noqa: E731
        soil = soil_fields(rng(_RNG_SOIL), (spec.height, spec.width))
        land = make_landscape(spec, rng(_RNG_PARCELS), rng(_RNG_CROPS))
        return cls(spec, soil, land, optics.dry_soil_reflectance(soil), moisture_series(rng(_RNG_WEATHER)))

    def surface(self, d: date) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-pixel moisture, green cover, dry matter and roughness on a date."""
        day = day_number(d)
        green, dry, rough = cover_on(self.land, day)
        labels = self.land.labels
        theta = pixel_moisture(float(self.moisture[day]), self.soil.clay)
        return theta, green[labels], dry[labels], rough[labels]


@dataclass
class Summary:
    out_dir: Path
    spec: WorldSpec
    aoi_name: str
    s2_scenes: int
    s1_scenes: int
    new_s2: int = 0
    new_s1: int = 0
    parcels: int = 0
    grassland: int = 0
    samples: int = 0
    clay_range: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mean_cloud_cover: float | None = None
    seconds: float = 0.0
    skipped: bool = False
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        s = self.spec
        head = (f"Demo world '{self.aoi_name}' (size {s.size}, seed {s.seed}) in {self.out_dir}: "
                f"{s.width}x{s.height} px at {PIXEL_M:g} m ({CRS}), {s.start}..{s.end}")
        if self.skipped:
            return head + "\n  already generated with these parameters: nothing to do"
        lines = [head,
                 f"  scenes: {self.s2_scenes} Sentinel-2 L2A, {self.s1_scenes} Sentinel-1 GRD"
                 + (f" (new: {self.new_s2} S2, {self.new_s1} S1)" if self.new_s2 or self.new_s1 else "")]
        if self.mean_cloud_cover is not None:
            lines.append(f"  mean cloud cover of the Sentinel-2 scenes rendered: {self.mean_cloud_cover:.0f} %")
        if self.parcels:
            lines.append(f"  parcels: {self.parcels:,} ({self.grassland} permanent grassland) -> parcels.gpkg")
            lo, med, hi = self.clay_range
            lines.append(f"  soil samples: {self.samples:,} (clay {lo:.0f}..{hi:.0f} %, median {med:.0f} %)"
                         " -> samples.csv")
            lines.append("  truth (evaluation only): truth/clay.tif, truth/parcels_truth.csv")
        lines += [f"  {n}" for n in self.notes]
        lines.append(f"  took {self.seconds:.1f} s")
        return "\n".join(lines)


def aoi_name(spec: WorldSpec) -> str:
    return "demo" if spec.size == "demo" else f"demo-{spec.size}"


def generate(out_dir: str | Path, *, size: str = "demo", seed: int = 42, n_samples: int | None = None,
             workers: int | None = None, progress: bool = False) -> Summary:
    """Generate the world into ``out_dir``; a complete world with the same parameters is left alone."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    spec = preset(size, seed, n_samples)
    manifest = out_dir / MANIFEST
    if manifest.exists():
        existing = WorldSpec.from_json(json.loads(manifest.read_text())["spec"])
        same = (existing.size, existing.seed, existing.n_samples, existing.start)
        if same == (size, seed, spec.n_samples, spec.start):
            return Summary(out_dir, existing, aoi_name(existing), 0, 0, skipped=True)
        raise BadInputError(f"{out_dir} holds another world (size {existing.size}, seed {existing.seed}, "
                            f"{existing.n_samples} samples): remove it or choose another --out")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BadInputError(f"{out_dir} exists, is not empty and has no {MANIFEST}: refusing to write into it")

    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "truth").mkdir(parents=True)
    state = WorldState.build(spec)
    summary = Summary(out_dir, spec, aoi_name(spec), 0, 0)
    _write_static(partial, state, summary)
    s2 = list(enumerate(spec.s2_dates()))
    s1 = spec.s1_passes()
    clouds = _render_all(partial, state, s2, s1, workers, progress)
    summary.s2_scenes, summary.s1_scenes = len(s2), len(s1)
    summary.new_s2, summary.new_s1 = 0, 0
    summary.mean_cloud_cover = float(np.mean(clouds)) if clouds else None
    _write_manifest(partial, state, len(s2), len(s1))
    if out_dir.exists():
        out_dir.rmdir()
    partial.rename(out_dir)
    summary.seconds = time.monotonic() - started
    return summary


def add_scenes(out_dir: str | Path, n: int, *, workers: int | None = None, progress: bool = False) -> Summary:
    """Extend an existing world by ``n`` Sentinel-2 revisits (and the Sentinel-1 passes among them)."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    manifest = out_dir / MANIFEST
    if not manifest.exists():
        raise BadInputError(f"{out_dir} has no {MANIFEST}: generate a world there first")
    meta = json.loads(manifest.read_text())
    old = WorldSpec.from_json(meta["spec"])
    new = old.extended(n)
    state = WorldState.build(new)
    old_s2 = len(old.s2_dates())
    s2 = list(enumerate(new.s2_dates()))[old_s2:]
    s1 = [(d, orbit) for d, orbit in new.s1_passes() if d > old.end]
    clouds = _render_all(out_dir, state, s2, s1, workers, progress)
    total_s2, total_s1 = len(new.s2_dates()), len(new.s1_passes())
    _write_manifest(out_dir, state, total_s2, total_s1)
    summary = Summary(out_dir, new, aoi_name(new), total_s2, total_s1, new_s2=len(s2), new_s1=len(s1),
                      mean_cloud_cover=float(np.mean(clouds)) if clouds else None)
    summary.seconds = time.monotonic() - started
    return summary


# --- static files --------------------------------------------------------------------------------

def _write_static(root: Path, state: WorldState, summary: Summary) -> None:
    spec, land = state.spec, state.land
    parcels = land.parcels.copy()
    parcels["area_ha"] = (parcels.geometry.area / 10_000).round(4)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2000-01-01T00:00:00.000Z"})
    try:
        pyogrio.write_dataframe(parcels[["parcel_id", "land_use", "area_ha", "geometry"]],
                                root / "parcels.gpkg", layer="parcels", driver="GPKG")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
    summary.parcels, summary.grassland = len(parcels), int((parcels["land_use"] == "grassland").sum())

    write_cog(root / "truth" / "clay.tif", state.soil.clay, transform=spec.transform, crs=CRS, nodata=None,
              descriptions=["clay_percent"])
    labels = land.labels.ravel()
    counts = np.bincount(labels, minlength=len(parcels) + 1)
    sums = np.bincount(labels, weights=state.soil.clay.ravel().astype(np.float64), minlength=len(parcels) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    truth = pd.DataFrame({"parcel_id": parcels["parcel_id"], "clay_true_mean": np.round(means[1:], 3),
                          "n_pixels": counts[1:]})
    truth.to_csv(root / "truth" / "parcels_truth.csv", index=False)
    (root / "truth" / "README.txt").write_text(
        "Ground truth of the synthetic world, for evaluation only.\n"
        "No pipeline stage may read these files.\n")

    samples = make_samples(state)
    samples.to_csv(root / "samples.csv", index=False)
    summary.samples = len(samples)
    summary.clay_range = (float(samples["Clay"].min()), float(samples["Clay"].median()),
                          float(samples["Clay"].max()))

    geom, bbox = stac.footprint(spec.bounds, CRS)
    aoi = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "bbox": bbox, "geometry": geom,
        "properties": {"name": aoi_name(spec), "grid_crs": CRS,
                       "description": "soilclay demo world (synthetic), Havelland, Brandenburg"}}]}
    (root / "aoi.geojson").write_text(json.dumps(aoi, indent=1) + "\n")


def make_samples(state: WorldState) -> pd.DataFrame:
    """LUCAS-style samples at interior pixels of arable parcels; measured = truth + lab noise."""
    spec, land, soil = state.spec, state.land, state.soil
    rng = np.random.default_rng([spec.seed, _RNG_SAMPLES])
    lab = land.labels
    arable = (lab > 0) & ~land.grassland[lab]
    interior = arable.copy()
    interior[1:-1, 1:-1] &= ((lab[1:-1, 1:-1] == lab[:-2, 1:-1]) & (lab[1:-1, 1:-1] == lab[2:, 1:-1])
                             & (lab[1:-1, 1:-1] == lab[1:-1, :-2]) & (lab[1:-1, 1:-1] == lab[1:-1, 2:]))
    interior[[0, -1], :] = False
    interior[:, [0, -1]] = False
    candidates = np.flatnonzero(interior)
    if spec.n_samples > len(candidates):
        raise BadInputError(f"n_samples={spec.n_samples} exceeds the {len(candidates)} interior arable pixels")
    pick = np.sort(rng.choice(candidates, size=spec.n_samples, replace=False))
    rows, cols = np.divmod(pick, spec.width)
    x0, y0 = spec.transform.c, spec.transform.f
    x = x0 + (cols + 0.5) * PIXEL_M + rng.uniform(-3, 3, len(pick))
    y = y0 - (rows + 0.5) * PIXEL_M + rng.uniform(-3, 3, len(pick))
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    clay = np.clip(np.rint(soil.clay.ravel()[pick] + rng.normal(0, 1.5, len(pick))), 1, 90)
    silt = np.clip(np.rint(soil.silt.ravel()[pick] + rng.normal(0, 2.0, len(pick))), 1, 99 - clay)
    days = (spec.end - spec.start).days
    dates = []
    for offset in rng.integers(0, days, len(pick)):
        d = spec.start + timedelta(days=int(offset))
        while d.month < 4 or d.month > 10:  # field campaigns run April to October
            d -= timedelta(days=120)
            if d < spec.start:
                d = spec.start.replace(month=5, day=15)
        dates.append(d.isoformat())
    ids = 40_000_000 + rng.choice(10_000_000, size=len(pick), replace=False)
    return pd.DataFrame({
        "POINTID": ids, "TH_LAT": np.round(lat, 6), "TH_LONG": np.round(lon, 6),
        "Clay": clay.astype(int), "Sand": (100 - clay - silt).astype(int), "Silt": silt.astype(int),
        "SURVEY_DATE": dates,
    })


def _write_manifest(root: Path, state: WorldState, n_s2: int, n_s1: int) -> None:
    spec = state.spec
    meta = {
        "generator": "soilclay.demo", "generator_version": GENERATOR_VERSION, "aoi": aoi_name(spec),
        "crs": CRS, "transform": list(spec.transform)[:6], "width": spec.width, "height": spec.height,
        "spec": spec.to_json(), "scenes": {stac.S2_COLLECTION: n_s2, stac.S1_COLLECTION: n_s1},
        "parcels": len(state.land.parcels),
    }
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    tmp.replace(root / MANIFEST)


# --- scenes --------------------------------------------------------------------------------------

_STATE: WorldState | None = None  # shared with forked workers (copy-on-write)


def _render_all(root: Path, state: WorldState, s2: list[tuple[int, date]], s1: list[tuple[date, str]],
                workers: int | None, progress: bool) -> list[float]:
    global _STATE
    _STATE = state
    tasks = [("s2", root, i, d) for i, d in s2] + [("s1", root, orbit, d) for d, orbit in s1]
    tasks.sort(key=lambda t: (t[3], t[0]))
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    bar = tqdm(total=len(tasks), desc="rendering scenes", unit="scene", disable=not progress)
    clouds: list[float] = []
    try:
        if workers == 1:
            results = map(_render_task, tasks)
            for r in results:
                clouds += r
                bar.update()
        else:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                for r in pool.map(_render_task, tasks, chunksize=2):
                    clouds += r
                    bar.update()
    finally:
        bar.close()
        _STATE = None
    return clouds


def _render_task(task: tuple) -> list[float]:
    kind, root, key, d = task
    assert _STATE is not None
    return _render_s2(_STATE, root, key, d) if kind == "s2" else _render_s1(_STATE, root, key, d)


def _publish(folder: Path, item: dict) -> None:
    """Write the item JSON into a hidden staging folder's place, then rename it into view."""
    (folder / f"{item['id']}.json").write_text(json.dumps(item, indent=1, sort_keys=True) + "\n")
    final = folder.with_name(item["id"])
    shutil.rmtree(final, ignore_errors=True)
    folder.rename(final)


def _staging(root: Path, collection: str, item_id: str) -> Path:
    folder = root / "scenes" / collection / f".{item_id}.partial"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _render_s2(state: WorldState, root: Path, index: int, d: date) -> list[float]:
    spec = state.spec
    rng = np.random.default_rng([spec.seed, _RNG_S2, day_number(d)])
    theta, green, dry, _ = state.surface(d)
    scene = optics.render_s2(rng, state.dry_soil, theta, green, dry, d.month)
    item_id = stac.s2_item_id(d, index)
    folder = _staging(root, stac.S2_COLLECTION, item_id)
    t10, t20 = spec.transform, spec.transform @ spec.transform.scale(2)
    for name, refl in scene.reflectance.items():
        write_cog(folder / f"{name}.tif", optics.to_dn(refl), transform=t10 if name in optics.BAND_10M else t20,
                  crs=CRS, nodata=0, descriptions=[name])
    write_cog(folder / "SCL.tif", scene.scl, transform=t20, crs=CRS, nodata=0, descriptions=["SCL"],
              categorical=True)
    item = stac.s2_item(item_id, d, index, crs=CRS, bounds=spec.bounds, transform10=t10,
                        shape10=(spec.height, spec.width), cloud_cover=scene.cloud_cover)
    _publish(folder, item)
    return [scene.cloud_cover]


def _render_s1(state: WorldState, root: Path, orbit: str, d: date) -> list[float]:
    spec = state.spec
    rng = np.random.default_rng([spec.seed, _RNG_S1, day_number(d), 0 if orbit == "ascending" else 1])
    theta, green, dry, rough = state.surface(d)
    bands = radar.render_s1(rng, theta, green, dry, rough, orbit)
    item_id = stac.s1_item_id(d, orbit)
    folder = _staging(root, stac.S1_COLLECTION, item_id)
    for pol, arr in bands.items():
        write_cog(folder / f"{pol}.tif", arr, transform=spec.transform, crs=CRS, nodata=0, descriptions=[pol.upper()])
    item = stac.s1_item(item_id, d, orbit, crs=CRS, bounds=spec.bounds, transform10=spec.transform,
                        shape10=(spec.height, spec.width))
    _publish(folder, item)
    return []
