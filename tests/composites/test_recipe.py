from datetime import date

import pytest

from soilclay.composites.recipe import Recipe, TimeWindow, inputs_hash
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
