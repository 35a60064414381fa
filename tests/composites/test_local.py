"""The local backend against the plain-numpy reference, the clay signal, and bad scenes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from rio_cogeo.cogeo import cog_validate

from soilclay.composites.grid import TargetGrid
from soilclay.composites.local import LocalBackend
from soilclay.composites.recipe import Recipe
from soilclay.scenes.local import LocalStacSource
from tests.composites import reference

S2, S1 = "sentinel-2-l2a", "sentinel-1-grd"


def _recipe(**patch) -> Recipe:
    return Recipe.parse({"aoi": "demo-small", "window": {"years": 3}, "grid": {"crs": "EPSG:32633"},
                         "tile_size": 64, **patch})


def _setup(archive: Path, world: Path, collection: str):
    aoi = json.loads((world / "aoi.geojson").read_text())["features"][0]["geometry"]
    grid = TargetGrid.for_aoi(aoi, _recipe().grid)
    scenes = LocalStacSource(archive).list_scenes(aoi, (collection,))
    return grid, scenes


def _bands(path: Path) -> dict[str, np.ndarray]:
    with rasterio.open(path) as src:
        return {name: src.read(i + 1) for i, name in enumerate(src.descriptions)}


@pytest.fixture(scope="module")
def s2_composite(small_world, tmp_path_factory):
    grid, scenes = _setup(small_world / "scenes", small_world, S2)
    result = LocalBackend(tmp_path_factory.mktemp("s2")).s2(_recipe(), grid, scenes, "s2")
    return grid, scenes, result


def test_grid_matches_the_world(s2_composite, small_world):
    grid, _, _ = s2_composite
    with rasterio.open(small_world / "truth" / "clay.tif") as src:
        assert grid.shape == src.shape and grid.transform == src.transform


def test_s2_parity_with_numpy_reference(s2_composite, small_world):
    grid, scenes, result = s2_composite
    assert cog_validate(str(result.path))[0]
    got = _bands(result.path)
    assert list(got) == reference.BANDS + ["bare_count", "valid_count", "bare_frequency"]
    ref = reference.s2_reference(reference.items(small_world / "scenes", S2), grid.shape)
    for band, expected in ref.items():
        np.testing.assert_allclose(got[band], expected, rtol=0, atol=1e-3, equal_nan=True, err_msg=band)
    assert len(result.used) + len(result.skipped) == len(scenes)
    assert all("no clear pixel" in why for _, why in result.skipped)  # all-cloud scenes only


@pytest.mark.parametrize("patch", [{"statistic": "p25", "min_bare_count": 5, "ndvi_max": 0.3},
                                   {"statistic": "mean", "scl_keep": [5], "nbr2_max": 0.05}])
def test_s2_parity_for_other_recipe_parameters(small_world, tmp_path, patch):
    archive = tmp_path / "scenes"
    (archive / S2).mkdir(parents=True)
    for item in reference.items(small_world / "scenes", S2)[40:80]:
        shutil.copytree(item.parent, archive / S2 / item.parent.name)
    grid, scenes = _setup(archive, small_world, S2)
    result = LocalBackend(tmp_path).s2(_recipe(s2=patch), grid, scenes, "s2")
    ref = reference.s2_reference(reference.items(archive, S2), grid.shape,
                                 keep=tuple(patch.get("scl_keep", (4, 5))), ndvi_max=patch.get("ndvi_max", 0.25),
                                 nbr2_max=patch.get("nbr2_max", 0.075), min_count=patch.get("min_bare_count", 3),
                                 statistic=patch["statistic"])
    got = _bands(result.path)
    for band, expected in ref.items():
        np.testing.assert_allclose(got[band], expected, rtol=1e-5, atol=1e-2, equal_nan=True, err_msg=band)


def test_s1_parity_with_numpy_reference(small_world, tmp_path):
    grid, scenes = _setup(small_world / "scenes", small_world, S1)
    result = LocalBackend(tmp_path).s1(_recipe(s1={"orbit_pass": "descending"}), grid, scenes, "s1")
    got = _bands(result.path)
    assert list(got) == ["VV", "VH", "VV_VH", "count"]
    ref = reference.s1_reference(reference.items(small_world / "scenes", S1), grid.shape, "descending")
    for band, expected in ref.items():
        np.testing.assert_allclose(got[band], expected, rtol=0, atol=1e-4, equal_nan=True, err_msg=band)
    assert len(result.used) == int(ref["count"].max())


def test_composite_shows_the_clay_signal_and_rare_bare_parcels(s2_composite, small_world):
    _, _, result = s2_composite
    got = _bands(result.path)
    with rasterio.open(small_world / "truth" / "clay.tif") as src:
        clay, transform = src.read(1), src.transform
    ok = np.isfinite(got["B11"])
    ratio = got["B12"][ok] / got["B11"][ok]
    assert np.corrcoef(ratio, clay[ok])[0, 1] < -0.4
    parcels = gpd.read_file(small_world / "parcels.gpkg")
    grass = rasterize(parcels[parcels.land_use == "grassland"].geometry, out_shape=clay.shape, transform=transform)
    arable = rasterize(parcels[parcels.land_use == "arable"].geometry, out_shape=clay.shape, transform=transform)
    assert np.median(got["bare_count"][grass == 1]) < 1 < 5 < np.median(got["bare_count"][arable == 1])


# --- bad input -------------------------------------------------------------------------------------

@pytest.fixture
def broken_archive(small_world, tmp_path) -> Path:
    """20 Sentinel-2 scenes, five of them broken in different ways."""
    archive = tmp_path / "scenes"
    (archive / S2).mkdir(parents=True)
    picked = reference.items(small_world / "scenes", S2)[60:80]
    for item in picked:
        shutil.copytree(item.parent, archive / S2 / item.parent.name)
    dirs = sorted((archive / S2).iterdir())
    truncated = dirs[0] / "B11.tif"  # truncated GeoTIFF: header fine, tiles cut off
    truncated.write_bytes(truncated.read_bytes()[:2000])
    (dirs[1] / "B05.tif").write_bytes(b"this is not a tiff")  # corrupt file
    item = json.loads((dirs[2] / f"{dirs[2].name}.json").read_text())  # Item without band B08
    del item["assets"]["B08"]
    (dirs[2] / f"{dirs[2].name}.json").write_text(json.dumps(item))
    (dirs[3] / "B12.tif").unlink()  # asset file missing
    with rasterio.open(dirs[4] / "B03.tif") as src:  # unexpected CRS
        data, profile = src.read(), src.profile
    profile.update(crs="EPSG:32632")
    with rasterio.open(dirs[4] / "B03.tif", "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(dirs[5] / "SCL.tif") as src:  # an all-cloud scene
        data, profile = src.read(), src.profile
    with rasterio.open(dirs[5] / "SCL.tif", "w", **profile) as dst:
        dst.write(np.full_like(data, 9))
    return archive


def test_bad_scenes_are_skipped_with_reasons_and_the_rest_composited(broken_archive, small_world, tmp_path):
    grid, scenes = _setup(broken_archive, small_world, S2)
    dirs = sorted(d.name for d in (broken_archive / S2).iterdir())
    result = LocalBackend(tmp_path / "out").s2(_recipe(), grid, scenes, "s2")
    reasons = dict(result.skipped)
    assert "read failed" in reasons[dirs[0]] and "B11" in reasons[dirs[0]]
    assert "unreadable GeoTIFF" in reasons[dirs[1]] and "B05" in reasons[dirs[1]]
    assert reasons[dirs[2]] == "asset B08 missing from the Item"
    assert "B12" in reasons[dirs[3]] and "file missing" in reasons[dirs[3]]
    assert "unexpected CRS EPSG:32632 (expected EPSG:32633)" in reasons[dirs[4]]
    assert "no clear pixel" in reasons[dirs[5]]
    assert set(result.used) == set(dirs) - set(reasons)
    # The composite equals the reference over the good scenes only.
    good = [broken_archive / S2 / d / f"{d}.json" for d in sorted(result.used)]
    ref = reference.s2_reference(good, grid.shape)
    got = _bands(result.path)
    np.testing.assert_allclose(got["B11"], ref["B11"], atol=1e-3, equal_nan=True)
    np.testing.assert_array_equal(got["bare_count"], ref["bare_count"])


def test_unreadable_items_are_skipped_by_the_scene_source(small_world, tmp_path):
    archive = tmp_path / "scenes"
    shutil.copytree(small_world / "scenes" / S1, archive / S1)
    first = sorted((archive / S1).glob("*/*.json"))[0]
    first.write_text("{ not json")
    aoi = json.loads((small_world / "aoi.geojson").read_text())["features"][0]["geometry"]
    source = LocalStacSource(archive)
    listed = source.list_scenes(aoi, (S1,))
    assert len(listed) == len(list(archive.glob(f"{S1}/*/*.json"))) - 1
    assert source.skipped[0][0] == str(first) and "unreadable STAC Item" in source.skipped[0][1]


def test_cloud_probability_mask_and_scenes_without_it(small_world, tmp_path):
    archive = tmp_path / "scenes"
    (archive / S2).mkdir(parents=True)
    items = reference.items(small_world / "scenes", S2)[100:112]
    rng = np.random.default_rng(0)
    for item in items:
        folder = archive / S2 / item.parent.name
        shutil.copytree(item.parent, folder)
        if item == items[-1]:
            continue  # this one has no cloud probability asset
        with rasterio.open(folder / "SCL.tif") as src:
            profile = src.profile
        profile.update(nodata=None)  # probability 0 is a value, not nodata
        with rasterio.open(folder / "CLD.tif", "w", **profile) as dst:
            dst.write(rng.integers(0, 100, (1, profile["height"], profile["width"]), dtype=np.uint8))
        meta = json.loads((folder / item.name).read_text())
        meta["assets"]["CLD"] = {**meta["assets"]["SCL"], "href": "./CLD.tif", "title": "Cloud probability"}
        (folder / item.name).write_text(json.dumps(meta))
    grid, scenes = _setup(archive, small_world, S2)
    result = LocalBackend(tmp_path).s2(_recipe(s2={"cloud_probability_max": 50, "min_bare_count": 1}), grid,
                                       scenes, "s2")
    assert dict(result.skipped)[items[-1].parent.name] == "asset CLD missing from the Item"
    with_cld = [archive / S2 / i.parent.name / i.name for i in items[:-1]]
    ref = reference.s2_reference(with_cld, grid.shape, min_count=1, cloud_probability_max=50)
    got = _bands(result.path)
    np.testing.assert_array_equal(got["valid_count"], ref["valid_count"])
    np.testing.assert_allclose(got["B04"], ref["B04"], atol=1e-3, equal_nan=True)
    assert got["valid_count"].max() < len(with_cld)  # the probability mask removed observations
