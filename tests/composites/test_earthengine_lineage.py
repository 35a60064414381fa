"""The Earth Engine backend exports exactly what its lineage says: the target grid's box (the local
backend's extent) and exactly the planned scenes the recipe selects, and counts what it used the way
the local backend does. Offline, on the serialised export request (``ee_api`` fixture)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from soilclay.composites import earthengine as eeb
from soilclay.composites.backend import CompositePlan
from soilclay.composites.grid import TargetGrid
from soilclay.composites.recipe import Recipe, inputs_hash
from soilclay.contract import S1_COLLECTION, S2_COLLECTION, SceneRef
from soilclay.db.aois import Aoi
from soilclay.errors import BadInputError
from tests.earthengine.offline import AOI, arg_values, calls, expression, install_fake_export, root_call, value

PERIOD = (date(2020, 1, 1), date(2021, 12, 31))


def recipe(s2: dict | None = None, s1: dict | None = None) -> Recipe:
    return Recipe.parse({"aoi": "demo", "window": {"years": 2}, "grid": {"crs": "EPSG:32633", "resolution": 10},
                         "s2": s2 or {}, "s1": s1 or {}})


def scene(scene_id: str, collection: str, **kwargs) -> SceneRef:
    return SceneRef(scene_id, collection, "sentinel", datetime(2020, 6, 1, tzinfo=UTC), "earthengine",
                    f"COPERNICUS/X/{scene_id}", **kwargs)


def plan(sensor: str, scenes: list[SceneRef], the_recipe: Recipe) -> CompositePlan:
    aoi = Aoi(1, "demo", AOI, "EPSG:32633")
    return CompositePlan(aoi, sensor, the_recipe, "todo", PERIOD, tuple(scenes),
                         inputs_hash([s.scene_id for s in scenes]))


@pytest.fixture
def exports(ee_api, monkeypatch) -> list[dict]:
    requests = install_fake_export(monkeypatch)
    monkeypatch.setattr(eeb, "wait_for_export", lambda operation: None)
    return requests


def ids_exported(request: dict) -> list[list[str]]:
    tree = expression(request["expression"])
    return [value(a["leftValue"]) for a in calls(tree, "Filter.listContains")
            if value(a.get("rightField", {})) == "system:index"]


def test_the_export_covers_the_target_grid_box_not_the_aoi_polygon(exports):
    backend = eeb.EarthEngineBackend("soil-bucket", "c")
    backend.start(recipe(), "sentinel-2", AOI, PERIOD, "demo-s2", ["a"])
    [request] = exports
    tree = expression(request["expression"])
    # the export request clips to its region: that region is the grid's rectangle, in the grid's CRS
    root = root_call(tree)
    assert root["functionName"] == "Image.clip"
    rectangle = root["arguments"]["geometry"]["functionInvocationValue"]
    assert rectangle["functionName"] == "GeometryConstructors.Rectangle"
    grid = TargetGrid.for_aoi(AOI, recipe().grid)
    x0, y1 = grid.transform.c, grid.transform.f
    assert value(rectangle["arguments"]["coordinates"]) == [x0, y1 - 10 * grid.height, x0 + 10 * grid.width, y1]
    assert value(rectangle["arguments"]["geodesic"]) is False
    assert arg_values({"x": rectangle}, "Projection", "crs") == ["EPSG:32633"]
    # its corners are pixel corners of the export lattice: whole pixels, no partial edge masks
    assert all(v % 10 == 0 for v in value(rectangle["arguments"]["coordinates"]))
    assert len(calls(tree, "Image.clip")) == 1, "clipped once, to the box; never to the AOI polygon"


def test_an_aoi_too_large_for_one_file_is_refused_by_the_grids_own_size(exports):
    # 81.93 km wide at 10 m: one pixel beyond the 8192 a file holds (by the target grid's rule)
    wide = {"type": "Polygon", "coordinates": [[[12.0, 52.5], [13.21, 52.5], [13.21, 52.52], [12.0, 52.52],
                                                [12.0, 52.5]]]}
    grid = TargetGrid.for_aoi(wide, recipe().grid)
    assert grid.width > 8192
    with pytest.raises(BadInputError, match=f"{grid.width} x {grid.height} pixels"):
        eeb.EarthEngineBackend("soil-bucket", "c").start(recipe(), "sentinel-2", wide, PERIOD, "x", ["a"])
    assert exports == []


def test_sentinel1_exports_only_the_recipes_pass_and_counts_what_it_used(exports):
    scenes = [scene("A1", S1_COLLECTION, orbit_state="ascending"),
              scene("D1", S1_COLLECTION, orbit_state="descending"),
              scene("A2", S1_COLLECTION, orbit_state="ascending"),
              scene("A3", S1_COLLECTION, orbit_state="ascending", properties={"sar:instrument_mode": "EW"})]
    ascending = recipe(s1={"orbit_pass": "ascending"})
    computed = eeb.EarthEngineBackend("soil-bucket", "c").compute(plan("sentinel-1", scenes, ascending))
    [request] = exports
    assert ids_exported(request) == [["A1", "A2"]], "not the descending pass, not the EW scene"
    assert computed.used == 2
    assert computed.skipped == [("A3", "instrument mode 'EW', expected 'IW'")]
    assert computed.inputs_hash == "", "every planned scene is an input: the plan's own hash"


def test_sentinel2_leaves_out_cloudy_scenes_before_the_export(exports):
    scenes = [scene("S1", S2_COLLECTION, cloud_cover=10.0), scene("S2", S2_COLLECTION, cloud_cover=80.0),
              scene("S3", S2_COLLECTION, cloud_cover=None)]
    computed = eeb.EarthEngineBackend("soil-bucket", "c").compute(
        plan("sentinel-2", scenes, recipe(s2={"max_scene_cloud_cover": 60})))
    [request] = exports
    assert ids_exported(request) == [["S1", "S3"]]
    assert computed.used == 2 and [sid for sid, _ in computed.skipped] == ["S2"]


def test_nothing_is_exported_when_the_recipe_selects_no_scene(exports):
    scenes = [scene("D1", S1_COLLECTION, orbit_state="descending")]
    with pytest.raises(BadInputError, match=r"no usable sentinel-1 scenes for demo \(1 listed\)"):
        eeb.EarthEngineBackend("soil-bucket", "c").compute(
            plan("sentinel-1", scenes, recipe(s1={"orbit_pass": "ascending"})))
    assert exports == []


def test_max_raw_covers_every_scene_so_the_median_is_never_a_histogram_estimate(ee_api):
    from soilclay.composites.parity import MAX_RAW
    from soilclay.earthengine.geometry import geometry_from_geojson

    region = geometry_from_geojson(AOI)
    few, many = ["a", "b"], [f"s{i:05d}" for i in range(MAX_RAW + 250)]
    for ids, expected in ((few, MAX_RAW), (many, MAX_RAW + 250)):
        s2 = expression(eeb.s2_composite(recipe(s2={"statistic": "p75"}), region, *PERIOD, scene_ids=ids))
        s1 = expression(eeb.s1_composite(recipe(), region, *PERIOD, scene_ids=ids))
        assert arg_values(s2, "Reducer.percentile", "maxRaw") == [expected]
        assert arg_values(s1, "Reducer.median", "maxRaw") == [expected]
