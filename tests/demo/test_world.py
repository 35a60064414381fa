"""The demo world: deterministic, in real formats, and physically sensible."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from soilclay.demo import world
from soilclay.demo.optics import BANDS
from soilclay.errors import BadInputError

S2 = "sentinel-2-l2a"
S1 = "sentinel-1-grd"


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _items(root: Path, collection: str) -> list[pystac.Item]:
    return [pystac.Item.from_file(str(p)) for p in sorted((root / "scenes" / collection).glob("*/*.json"))]


def _read(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        return src.read(1)


def test_same_seed_gives_byte_identical_files(small_world, tmp_path):
    again = tmp_path / "again"
    world.generate(again, size="small", seed=42, workers=1)  # one process vs the fixture's pool
    first, second = _digest(small_world), _digest(again)
    assert len(first) > 2000
    assert first == second


def test_other_seed_gives_another_world(small_world, tmp_path):
    from soilclay.demo.spec import preset

    state = world.WorldState.build(preset("small", seed=7))
    other = world.make_samples(state)
    assert not other.equals(pd.read_csv(small_world / "samples.csv"))


def test_scene_archive_follows_stac_and_cog_conventions(small_world):
    s2, s1 = _items(small_world, S2), _items(small_world, S1)
    assert len(s2) == 146 and 100 <= len(s1) <= 130  # 2 years: 5-day S2, 6-day S1
    item = s2[10]
    assert set(item.assets) == set(BANDS) | {"SCL"}
    assert item.properties["platform"] in {"Sentinel-2A", "Sentinel-2B"}
    assert 0 <= item.properties["eo:cloud_cover"] <= 100
    assert item.properties["proj:code"] == "EPSG:32633"
    for key, res, dtype in (("B04", 10, "uint16"), ("B11", 20, "uint16"), ("SCL", 20, "uint8")):
        path = item.assets[key].get_absolute_href()
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 32633 and src.res == (res, res)
            assert src.dtypes[0] == dtype and src.nodata == 0
            assert list(src.shape) == item.assets[key].extra_fields["proj:shape"]
        assert cog_validate(path)[0], path
    b04 = _read(item, "B04")
    assert b04.min() >= 1 and 200 < np.median(b04) < 5000  # DN = reflectance x 10000
    radar = s1[5]
    assert radar.properties["sar:polarizations"] == ["VV", "VH"]
    assert radar.properties["s1:scale"] == "linear"
    assert radar.properties["sat:orbit_state"] in {"ascending", "descending"}
    vv = _read(radar, "vv")
    assert vv.dtype == np.float32 and -25 < np.median(10 * np.log10(vv)) < -5


def test_vector_and_table_files(small_world):
    parcels = gpd.read_file(small_world / "parcels.gpkg", layer="parcels")
    assert parcels.crs.to_epsg() == 32633
    assert parcels["parcel_id"].is_unique and len(parcels) >= 30
    assert parcels.geometry.is_valid.all() and (parcels.geometry.area > 2000).all()
    samples = pd.read_csv(small_world / "samples.csv")
    assert list(samples.columns) == ["POINTID", "TH_LAT", "TH_LONG", "Clay", "Sand", "Silt", "SURVEY_DATE"]
    assert len(samples) == 120 and samples["POINTID"].is_unique
    assert ((samples[["Clay", "Sand", "Silt"]].sum(axis=1)) == 100).all()
    assert samples["Clay"].between(0, 100).all()
    aoi = json.loads((small_world / "aoi.geojson").read_text())["features"][0]
    lon0, lat0, lon1, lat1 = aoi["bbox"]
    assert samples["TH_LONG"].between(lon0, lon1).all() and samples["TH_LAT"].between(lat0, lat1).all()
    assert pd.to_datetime(samples["SURVEY_DATE"]).dt.month.between(4, 10).all()
    truth = pd.read_csv(small_world / "truth" / "parcels_truth.csv")
    assert set(truth["parcel_id"]) == set(parcels["parcel_id"])
    assert truth["clay_true_mean"].between(2, 70).all()


def _bare_stack(root: Path):
    """Reference bare-soil selection: SCL 4/5, NDVI < 0.25, NBR2 < 0.075, per scene (10 m grid)."""
    up = lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1)  # noqa: E731
    b11s, b12s, bare, clear = [], [], [], []
    for item in _items(root, S2):
        b04, b08 = _read(item, "B04") / 1e4, _read(item, "B08") / 1e4
        b11, b12 = up(_read(item, "B11")) / 1e4, up(_read(item, "B12")) / 1e4
        ok = np.isin(up(_read(item, "SCL")), (4, 5))
        is_bare = ok & ((b08 - b04) / (b08 + b04) < 0.25) & ((b11 - b12) / (b11 + b12) < 0.075)
        b11s.append(np.where(is_bare, b11, np.nan))
        b12s.append(np.where(is_bare, b12, np.nan))
        bare.append(is_bare)
        clear.append(ok)
    return np.array(b11s), np.array(b12s), np.array(bare), np.array(clear)


@pytest.fixture(scope="module")
def bare_stack(small_world):
    return _bare_stack(small_world)


def test_bare_soil_swir_carries_the_clay_signal(small_world, bare_stack):
    b11, b12, bare, _ = bare_stack
    with rasterio.open(small_world / "truth" / "clay.tif") as src:
        clay = src.read(1)
    enough = bare.sum(axis=0) >= 3
    assert enough.mean() > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (never bare) are expected
        ratio = np.nanmedian(b12, axis=0) / np.nanmedian(b11, axis=0)
    r = np.corrcoef(ratio[enough], clay[enough])[0, 1]
    assert r < -0.4, f"bare-soil B12/B11 should fall with clay, correlation {r:.2f}"


def test_parcels_are_bare_only_some_of_the_time_and_clouds_occur(small_world, bare_stack):
    _, _, bare, clear = bare_stack
    with rasterio.open(small_world / "truth" / "clay.tif") as src:
        transform, shape = src.transform, src.shape
    parcels = gpd.read_file(small_world / "parcels.gpkg")
    labels = rasterio.features.rasterize(((g, i + 1) for i, g in enumerate(parcels.geometry)),
                                         out_shape=shape, transform=transform)
    share = bare.sum(axis=0) / np.maximum(clear.sum(axis=0), 1)  # bare share of clear observations
    per_parcel = pd.Series(share.ravel()).groupby(labels.ravel()).mean().drop(index=0)
    arable = per_parcel[(parcels["land_use"] == "arable").to_numpy()]
    grass = per_parcel[(parcels["land_use"] == "grassland").to_numpy()]
    assert (arable.between(0.03, 0.8)).mean() > 0.9, arable.describe()
    assert (grass < 0.02).all(), grass.describe()
    covers = [i.properties["eo:cloud_cover"] for i in _items(small_world, S2)]
    assert min(covers) == 0 and max(covers) > 95
    assert 0.2 < np.mean(np.array(covers) > 50) < 0.7


def test_scene_classification_misses_some_clouds(small_world):
    """As with Sen2Cor, thin cloud edges pass as clear: bright pixels labelled 4/5 exist."""
    missed, flagged = 0, 0
    for item in _items(small_world, S2)[:60]:
        b02 = _read(item, "B02").reshape(64, 2, 64, 2).mean(axis=(1, 3)) / 1e4
        scl = _read(item, "SCL")
        missed += int(((b02 > 0.15) & np.isin(scl, (4, 5))).sum())
        flagged += int(np.isin(scl, (8, 9)).sum())
    assert flagged > 1000 and 0 < missed < flagged


def test_radar_backscatter_follows_moisture(small_world):
    from soilclay.demo.spec import preset

    state = world.WorldState.build(preset("small", seed=42))
    bare_arable = (state.land.labels > 0) & ~state.land.grassland[state.land.labels]
    vv_db, theta = [], []
    for item in _items(small_world, S1):
        d = item.datetime.date()
        m, green, dry, _ = state.surface(d)
        sel = bare_arable & (green + dry < 0.1)
        if sel.sum() < 500:
            continue
        vv_db.append(10 * np.log10(np.mean(_read(item, "vv")[sel])))
        theta.append(float(m[sel].mean()))
    assert len(vv_db) > 10
    assert np.corrcoef(vv_db, theta)[0, 1] > 0.6


def test_add_scenes_extends_the_same_world(small_world, tmp_path):
    copy = tmp_path / "w"
    shutil.copytree(small_world, copy)
    before = _digest(copy)
    summary = world.add_scenes(copy, 3, workers=1)
    assert (summary.new_s2, summary.s2_scenes) == (3, 149)
    assert 1 <= summary.new_s1 <= 3
    after = _digest(copy)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {"world.json"}
    new_items = sorted(set(after) - set(before))
    assert len([p for p in new_items if p.endswith(".json")]) == 3 + summary.new_s1
    last = max(i.datetime for i in _items(copy, S2))
    assert last.date().isoformat() == json.loads((copy / "world.json").read_text())["spec"]["end"]
    # Generating with the original parameters recognises the (extended) world and does nothing.
    assert world.generate(copy, size="small", seed=42).skipped


def test_generate_refuses_foreign_folders(small_world, tmp_path):
    with pytest.raises(BadInputError, match="another world"):
        world.generate(small_world, size="small", seed=1)
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty"):
        world.generate(tmp_path / "stuff", size="small")
    with pytest.raises(BadInputError, match="no world.json"):
        world.add_scenes(tmp_path / "stuff", 2)
