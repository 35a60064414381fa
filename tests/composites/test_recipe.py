from datetime import date

import pytest

from soilclay.composites.recipe import Recipe, TimeWindow, inputs_hash, method_of
from soilclay.errors import BadInputError

BASE = {"aoi": "demo", "window": {"years": 3}, "grid": {"crs": "EPSG:32633"}}


@pytest.mark.parametrize(("patch", "field"), [
    ({"s2": {"ndvi_max": 1.5}}, "s2.ndvi_max"),
    ({"s2": {"min_bare_count": 0}}, "s2.min_bare_count"),
    ({"s2": {"scl_keep": [4, 15]}}, "s2.scl_keep"),
    ({"s2": {"statistic": "mode"}}, "s2.statistic"),
    ({"s1": {"speckle_size": 4}}, "s1.speckle_size"),
    ({"s1": {"orbit_pass": "sideways"}}, "s1.orbit_pass"),
    ({"window": {"start": "2024-01-01", "end": "2023-01-01"}}, "window"),
    ({"window": {"years": 3, "start": "2024-01-01", "end": "2025-01-01"}}, "window"),
    ({"grid": {"crs": "UTM33"}}, "grid.crs"),
    ({"tile_size": 255}, "tile_size"),
    ({"s2": None, "s1": None}, "recipe"),
    ({"s2": {"ndvi": 0.2}}, "s2.ndvi"),  # unknown field: a typo is not silently ignored
])
def test_impossible_values_are_refused_naming_the_field(patch, field):
    with pytest.raises(BadInputError, match=f"invalid composite recipe: .*{field}"):
        Recipe.parse({**BASE, **patch})


def test_hash_is_stable_and_follows_what_changes_the_result():
    a = Recipe.parse(BASE)
    assert a.hash("sentinel-2") == Recipe.parse(dict(BASE)).hash("sentinel-2")
    assert len(a.hash("sentinel-2")) == 32
    assert a.hash("sentinel-2") != Recipe.parse({**BASE, "s2": {"nbr2_max": 0.1}}).hash("sentinel-2")
    # S1 parameters do not change the S2 composite's identity, nor does the local tile size.
    assert a.hash("sentinel-2") == Recipe.parse({**BASE, "s1": {"orbit_pass": "ascending"}}).hash("sentinel-2")
    assert a.hash("sentinel-2") == Recipe.parse({**BASE, "tile_size": 128}).hash("sentinel-2")
    assert a.hash("sentinel-1") != Recipe.parse({**BASE, "s1": {"orbit_pass": "ascending"}}).hash("sentinel-1")


def test_windows_resolve_to_dates():
    assert TimeWindow(years=3).resolve(date(2025, 3, 31)) == (date(2022, 4, 1), date(2025, 3, 31))
    assert TimeWindow(years=1).resolve(date(2024, 2, 29)) == (date(2023, 3, 1), date(2024, 2, 29))
    explicit = TimeWindow(start=date(2023, 1, 1), end=date(2023, 12, 31))
    assert explicit.resolve(date(2030, 1, 1)) == (date(2023, 1, 1), date(2023, 12, 31))


def test_inputs_hash_ignores_order_and_duplicates():
    assert inputs_hash(["b", "a"]) == inputs_hash(["a", "b", "a"]) != inputs_hash(["a"])


def test_method_names_what_the_values_mean_not_where_or_when():
    a = Recipe.parse(BASE)
    for sensor in ("sentinel-2", "sentinel-1"):
        method = a.method(sensor)
        assert len(method.hash) == 32 and method.hash != a.hash(sensor)
        # Another AOI, grid, tile size or window (a refresh moves it forward) is the same method.
        for patch in ({"aoi": "elsewhere"}, {"grid": {"crs": "EPSG:32632", "resolution": 20}}, {"tile_size": 128},
                      {"window": {"years": 5}}, {"window": {"start": "2023-01-01", "end": "2025-12-31"}}):
            other = Recipe.parse({**BASE, **patch})
            assert other.method(sensor) == method, patch
            assert other.hash(sensor) != a.hash(sensor) or patch == {"tile_size": 128}
    # The statistic, masks and filters are the method; the other sensor's parameters are not.
    s2 = a.method("sentinel-2").hash
    for patch in ({"statistic": "mean"}, {"statistic": "p25"}, {"ndvi_max": 0.3}, {"scl_keep": [4, 5, 7]},
                  {"cloud_probability_max": 40}, {"scmap_max": 0.1}, {"min_bare_count": 5}):
        assert Recipe.parse({**BASE, "s2": patch}).method("sentinel-2").hash != s2, patch
    assert Recipe.parse({**BASE, "s2": {"scl_keep": [5, 4]}}).method("sentinel-2").hash == s2  # same classes
    assert Recipe.parse({**BASE, "s1": {"orbit_pass": "ascending"}}).method("sentinel-2").hash == s2
    s1 = a.method("sentinel-1").hash
    assert Recipe.parse({**BASE, "s1": {"speckle_filter": "boxcar"}}).method("sentinel-1").hash != s1
    assert Recipe.parse({**BASE, "s2": {"statistic": "p25"}}).method("sentinel-1").hash == s1


def test_method_descriptions_are_short_and_human():
    def s2(**params):
        return str(Recipe.parse({**BASE, "s2": params}).method("sentinel-2"))

    assert s2().startswith("median of bare-soil observations (NDVI < 0.25, NBR2 < 0.075) (method ")
    assert s2(statistic="p25").startswith("25th percentile of bare-soil observations")
    assert [s2(statistic=f"p{n}").split()[0] for n in (1, 2, 3, 11, 12, 13, 21, 92)] == [
        "1st", "2nd", "3rd", "11th", "12th", "13th", "21st", "92nd"]
    assert s2(statistic="mean", scmap_max=0.1).startswith("mean of bare-soil observations (NDVI < 0.25, NBR2 < "
                                                            "0.075, NDVI+NBR <= 0.1)")
    method = Recipe.parse({**BASE, "s1": {"speckle_filter": "boxcar", "speckle_size": 5}}).method("sentinel-1")
    assert str(method) == f"median dB backscatter (both passes, boxcar 5x5 speckle filter) (method {method.hash[:8]})"


def test_method_of_a_stored_recipe():
    recipe = Recipe.parse({**BASE, "s2": {"statistic": "p25"}, "s1": None})
    assert method_of(recipe.model_dump_json(), "sentinel-2") == recipe.method("sentinel-2")
    assert method_of(recipe.model_dump(mode="json"), "sentinel-2") == recipe.method("sentinel-2")  # jsonb: a dict
    # Unreadable or without that sensor: unknown, never an error.
    assert method_of({}, "sentinel-2") is None and method_of(None, "sentinel-2") is None
    assert method_of(recipe.model_dump(mode="json"), "sentinel-1") is None
    assert method_of("not json", "sentinel-2") is None
    # An optional mask left off (None) is not part of the method: adding one leaves old methods alone.
    stored = recipe.model_dump(mode="json")
    del stored["s2"]["scmap_max"]
    assert method_of(stored, "sentinel-2") == recipe.method("sentinel-2")
