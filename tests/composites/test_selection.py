"""Which scenes a recipe composites (:mod:`soilclay.composites.selection`): one rule for both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from soilclay.composites.recipe import Recipe
from soilclay.composites.selection import select_for
from soilclay.contract import S1_COLLECTION, S2_COLLECTION, SceneRef
from soilclay.errors import BadInputError


def scene(scene_id: str, collection: str, **kwargs) -> SceneRef:
    return SceneRef(scene_id, collection, "sentinel", datetime(2024, 5, 1, tzinfo=UTC), "local", f"/{scene_id}.json",
                    **kwargs)


def recipe(**parts) -> Recipe:
    return Recipe.parse({"aoi": "demo", "window": {"years": 1}, "grid": {"crs": "EPSG:32633"}, **parts})


def test_sentinel2_rules_out_cloudy_scenes_and_keeps_those_without_a_cloud_cover():
    scenes = [scene("a", S2_COLLECTION, cloud_cover=20.0), scene("b", S2_COLLECTION, cloud_cover=70.5),
              scene("c", S2_COLLECTION)]
    chosen = select_for(recipe(s2={"max_scene_cloud_cover": 60}), "sentinel-2", scenes)
    assert chosen.ids == ["a", "c"]
    assert chosen.ruled_out == (("b", "cloud cover 70 % above the recipe's 60 %"),)
    assert select_for(recipe(), "sentinel-2", scenes).ids == ["a", "b", "c"], "no limit by default"


def test_sentinel1_keeps_the_recipes_pass_and_iw_dual_polarisation_scenes():
    scenes = [scene("asc", S1_COLLECTION, orbit_state="ascending"),
              scene("desc", S1_COLLECTION, orbit_state="descending"),
              scene("ew", S1_COLLECTION, orbit_state="ascending", properties={"sar:instrument_mode": "EW"}),
              scene("vv", S1_COLLECTION, orbit_state="ascending", properties={"sar:polarizations": ["VV"]}),
              scene("iw", S1_COLLECTION, orbit_state="ascending",
                    properties={"sar:instrument_mode": "iw", "sar:polarizations": ["vh", "vv"]})]
    chosen = select_for(recipe(s1={"orbit_pass": "ascending"}), "sentinel-1", scenes)
    assert chosen.ids == ["asc", "iw"]
    assert chosen.outside == ("desc",), "another pass is not part of the recipe (not an input it rules out)"
    assert dict(chosen.ruled_out) == {"ew": "instrument mode 'EW', expected 'IW'",
                                      "vv": "polarisations ['VV'], expected VV and VH"}
    both = select_for(recipe(), "sentinel-1", scenes)
    assert both.ids == ["asc", "desc", "iw"] and both.outside == ()


def test_a_recipe_without_the_sensor_is_refused():
    with pytest.raises(BadInputError, match="no sentinel-1 part"):
        select_for(recipe(s1=None), "sentinel-1", [])
    with pytest.raises(BadInputError, match="no landsat part"):
        select_for(recipe(), "landsat", [])
