"""The two backends compute the same composite (issue 17): the local numpy tile functions and the Earth
Engine expression, evaluated offline by ``tests.earthengine.evaluator`` on the same synthetic scenes, must
agree band by band (counts and frequency exactly, spectra and backscatter to float32 rounding, the same
nodata pixels). A change on one side without the other fails here; the last tests show that the harness
does catch such changes (an integer division, a threshold changed on one side only).

The meaning both compute is stated in :mod:`soilclay.composites.parity`. The synthetic scenes mimic what
each backend reads: Earth Engine's Sentinel-2 bands and SCL are integers with masks (scene edges, 20 m
band edges, patches of nodata), the local reads are float32 with NaN there; Sentinel-1 is linear sigma0
locally and dB (float) in Earth Engine's S1_GRD.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from rasterio.transform import from_origin
from rasterio.windows import Window

from soilclay.composites import earthengine as eeb
from soilclay.composites.grid import TargetGrid
from soilclay.composites.local import _s1_tile, _s2_tile
from soilclay.composites.parity import compare, compare_band
from soilclay.composites.recipe import Recipe
from soilclay.contract import S1_COMPOSITE_BANDS, S2_BANDS, S2_COMPOSITE_BANDS, SceneRef
from soilclay.earthengine.assets import S2_ASSET
from soilclay.earthengine.geometry import geometry_from_geojson
from tests.composites.parity_scenes import END, START, H, Scenes, W, s1_scenes, s2_scenes
from tests.earthengine.evaluator import FLOAT32, INT, as_arrays, evaluator_for, pixel_types
from tests.earthengine.offline import AOI

COUNTS = ("bare_count", "valid_count", "bare_frequency", "count")


def recipe(s2: dict | None = None, s1: dict | None = None) -> Recipe:
    return Recipe.parse({"aoi": "demo", "window": {"years": 2}, "grid": {"crs": "EPSG:32633", "resolution": 10},
                         "s2": s2 or {}, "s1": s1 or {}})


# --------------------------------------------------------------------------- the two backends


def _grid(margin: int) -> TargetGrid:
    return TargetGrid("EPSG:32633", from_origin(400_000 + 10 * margin, 5_800_000 - 10 * margin, 10, 10), W, H)


def _reader(scenes: Scenes):
    def read(href: str, grid: TargetGrid, window: Window, scene_id: str, key: str) -> np.ndarray:
        sid, band = href.split("|")
        array = scenes.local[sid][band]
        out = np.full((int(window.height), int(window.width)), np.nan, np.float32)
        r0, c0 = int(window.row_off) + scenes.margin, int(window.col_off) + scenes.margin
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + out.shape[0], array.shape[0]), min(c0 + out.shape[1], array.shape[1])
        if re > rs and ce > cs:
            out[rs - r0:re - r0, cs - c0:ce - c0] = array[rs:re, cs:ce]
        return out
    return read


def _ref(sid: str, collection: str) -> SceneRef:
    return SceneRef(sid, collection, "sentinel", datetime(2020, 1, 1, tzinfo=UTC), "local", f"/{sid}.json")


def local_s2(scenes: Scenes, rec: Recipe) -> dict[str, np.ndarray]:
    params = rec.s2
    keys = S2_BANDS + ("SCL",) + (("CLD",) if params.cloud_probability_max is not None else ())
    usable = [(_ref(sid, "sentinel-2-l2a"), {k: f"{sid}|{k}" for k in keys}) for sid in scenes.ids]
    clear_tiles = {sid: {0} for sid in scenes.ids}
    out = _s2_tile(_reader(scenes), usable, clear_tiles, 0, _grid(0), Window(0, 0, W, H), params)
    return _as_written(out)


def local_s1(scenes: Scenes, rec: Recipe) -> dict[str, np.ndarray]:
    usable = [(_ref(sid, "sentinel-1-grd"), {"vv": f"{sid}|vv", "vh": f"{sid}|vh"}) for sid in scenes.ids]
    out = _s1_tile(_reader(scenes), usable, _grid(scenes.margin), Window(0, 0, W, H), rec.s1)
    return _as_written(out)


def _as_written(bands: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the local COG holds: every band float32 (nodata NaN); compared as float64."""
    return {b: np.asarray(v, np.float32).astype(np.float64) for b, v in bands.items()}


def ee_eval(expression, scenes: Scenes):
    """Evaluate an Earth Engine expression over the synthetic catalogue: (bands cropped to the composite's
    window, pixel types, the evaluator)."""
    image, evaluator = evaluator_for(expression, scenes.catalogue)
    m = scenes.margin
    arrays = {b: a[m:m + H, m:m + W] for b, a in as_arrays(image).items()}
    return arrays, pixel_types(image), evaluator


def ee_s2(scenes: Scenes, rec: Recipe):
    return ee_eval(eeb.s2_composite(rec, geometry_from_geojson(AOI), START, END, scene_ids=scenes.ids), scenes)


def ee_s1(scenes: Scenes, rec: Recipe):
    return ee_eval(eeb.s1_composite(rec, geometry_from_geojson(AOI), START, END, scene_ids=scenes.ids), scenes)


def assert_same(local: dict[str, np.ndarray], remote: dict[str, np.ndarray], bands) -> None:
    """Counts and frequency exactly, the others to float32 rounding; the same nodata pixels; and within
    :data:`soilclay.composites.parity.TOLERANCES`."""
    assert list(remote) == list(bands)
    problems = []
    for band in bands:
        a, b = local[band], remote[band]
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if (nan_a != nan_b).any():
            where = np.argwhere(nan_a != nan_b)
            problems.append(f"{band}: nodata differs at {len(where)} pixels, first {where[:5].tolist()} "
                            f"(local {a[tuple(where[0])]}, earth engine {b[tuple(where[0])]})")
            continue
        both = ~nan_a
        if band in COUNTS:
            ok = np.array_equal(a[both], b[both])
        else:  # dB near 0 (VV - VH) needs an absolute floor: float32 rounding of values of a few dB
            ok = np.allclose(a[both], b[both], rtol=1e-6, atol=1e-5 if band in ("VV", "VH", "VV_VH") else 0)
        if not ok:
            diff = np.abs(a - b)
            where = np.argwhere(both & (diff > 1e-6 * np.abs(a) + (1e-5 if band in ("VV", "VH", "VV_VH") else 0)))
            first = tuple(where[0])
            problems.append(f"{band}: values differ at {len(where)} pixels, first {first}: "
                            f"local {a[first]!r}, earth engine {b[first]!r}")
    assert not problems, "\n".join(problems)
    report = compare({b: local[b] for b in bands}, remote)
    assert all(d.ok for d in report), "\n".join(d.render() for d in report)


# --------------------------------------------------------------------------- Sentinel-2

S2_RECIPES = {
    "default": {},
    "scl_keep_4_5_7": {"scl_keep": [4, 5, 7]},
    "min_bare_count_1": {"min_bare_count": 1},
    "min_bare_count_5": {"min_bare_count": 5},
    "p25": {"statistic": "p25"},
    "mean": {"statistic": "mean"},
    "ndvi_max_0.3": {"ndvi_max": 0.3},
    "scmap_max_0.1": {"scmap_max": 0.1},
    "cloud_probability_40": {"cloud_probability_max": 40},
    "all_rules": {"cloud_probability_max": 60, "scmap_max": 0.15, "statistic": "p75", "scl_keep": [4, 5, 7],
                  "min_bare_count": 2, "ndvi_max": 0.3, "nbr2_max": 0.1},
}


@pytest.fixture(scope="module")
def s2() -> Scenes:
    return s2_scenes()


@pytest.fixture(scope="module")
def s1() -> Scenes:
    return s1_scenes()


@pytest.mark.parametrize("name", list(S2_RECIPES))
def test_s2_backends_agree(ee_api, s2, name):
    rec = recipe(s2=S2_RECIPES[name])
    local = local_s2(s2, rec)
    remote, types, evaluator = ee_s2(s2, rec)
    assert set(types.values()) == {FLOAT32}, "every band of the export is float32"
    assert_same(local, remote, S2_COMPOSITE_BANDS)
    # the scenes are exercised: bare and valid observations vary, some pixels are nodata, some not
    assert 0 < np.nanmax(remote["bare_count"]) <= len(s2.ids)
    assert np.isnan(remote["B02"]).any() and not np.isnan(remote["B02"]).all()
    assert len(set(evaluator.called) & {"Image.divide", "ImageCollection.reduce", "reduce.sum"}) == 3


def test_s2_unplanned_scene_is_not_used(ee_api, s2):
    rec = recipe(s2={"min_bare_count": 1})
    with_extra, _, _ = ee_s2(s2, rec)
    planned = Scenes(s2.local, {asset: [i for i in images if i.properties["system:index"] != s2.extra]
                                for asset, images in s2.catalogue.items()}, s2.ids, s2.extra)
    without, _, _ = ee_s2(planned, rec)
    for band in S2_COMPOSITE_BANDS:
        np.testing.assert_array_equal(with_extra[band], without[band])
    # and it would have made a difference: planning it changes the counts
    everything = Scenes(s2.local, s2.catalogue, s2.ids + [s2.extra], s2.extra)
    more, _, _ = ee_s2(everything, rec)
    assert not np.array_equal(more["valid_count"], with_extra["valid_count"])


# --------------------------------------------------------------------------- Sentinel-1


@pytest.mark.parametrize("speckle", [{}, {"speckle_filter": "boxcar"}, {"speckle_filter": "boxcar", "speckle_size": 5}],
                         ids=["none", "boxcar3", "boxcar5"])
def test_s1_backends_agree(ee_api, s1, speckle):
    rec = recipe(s1=speckle)
    local = local_s1(s1, rec)
    remote, types, _ = ee_s1(s1, rec)
    assert set(types.values()) == {FLOAT32}
    assert_same(local, remote, S1_COMPOSITE_BANDS)
    assert np.nanmax(remote["count"]) <= len(s1.ids)
    nodata = np.isnan(remote["VV"])
    assert nodata[:4, :5].all() and not nodata[4:, 5:].any() and (remote["count"][:4, :5] == 0).all()


def test_s1_unplanned_scene_is_not_used(ee_api, s1):
    rec = recipe()
    remote, _, _ = ee_s1(s1, rec)
    everything = Scenes(s1.local, s1.catalogue, s1.ids + [s1.extra], s1.extra, s1.margin)
    more, _, _ = ee_s1(everything, rec)
    assert np.nanmax(more["count"] - remote["count"]) == 1


# --------------------------------------------------------------------------- the harness catches divergences


def _strip_float_casts_of_divide(expression) -> dict:
    """The serialised expression with the ``toFloat()`` casts before ``Image.divide`` removed: the counts'
    ratio as someone would write it without knowing Earth Engine's integer division."""
    encoded = json.loads(expression.serialize())

    def strip(node):
        if isinstance(node, dict):
            invocation = node.get("functionInvocationValue")
            if invocation and invocation.get("functionName") == "Image.divide":
                for key in ("image1", "image2"):
                    arg = invocation["arguments"][key]
                    inner = arg.get("functionInvocationValue", {})
                    if inner.get("functionName") == "Image.toFloat":
                        invocation["arguments"][key] = inner["arguments"]["value"]
                stripped[0] += 1
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for item in node:
                strip(item)

    stripped = [0]
    strip(encoded["values"])
    assert stripped[0] == 1
    return encoded


def test_integer_division_of_the_counts_is_caught(ee_api, s2):
    rec = recipe()
    region = geometry_from_geojson(AOI)
    variant = _strip_float_casts_of_divide(eeb.s2_composite(rec, region, START, END, scene_ids=s2.ids))
    remote, _, _ = ee_eval(variant, s2)
    local = local_s2(s2, rec)
    frequency = remote["bare_frequency"]
    assert set(np.unique(frequency[~np.isnan(frequency)])) <= {0.0, 1.0}, "an integer quotient"
    difference = compare_band("bare_frequency", local["bare_frequency"], frequency)
    assert not difference.ok and difference.outside > 0
    with pytest.raises(AssertionError, match="bare_frequency: values differ"):
        assert_same(local, remote, S2_COMPOSITE_BANDS)


def test_integer_division_on_integer_images_directly(ee_api, s2):
    """bare_count.divide(valid_count) written on the integer sums, next to the expression's own ratio."""
    import ee

    ids = ee.Filter.inList("system:index", s2.ids)
    masked = ee.ImageCollection(S2_ASSET).filter(ids).map(
        lambda image: ee.Image(image).select("SCL").remap([4, 5], [1, 1], 0).rename("valid"))
    valid = masked.sum().unmask(0)
    bare = masked.map(lambda image: ee.Image(image).multiply(0).add(1).rename("valid")).sum().unmask(0)
    remote, types, _ = ee_eval(valid.divide(bare).rename("ratio").addBands(
        valid.toFloat().divide(bare.toFloat()).rename("float_ratio")), s2)
    assert types == {"ratio": INT, "float_ratio": FLOAT32}
    assert set(np.unique(remote["ratio"])) <= {0.0, 1.0}
    assert (remote["float_ratio"] % 1 != 0).any()


@pytest.mark.parametrize("change", [{"ndvi_max": 0.3}, {"min_bare_count": 4}, {"scl_keep": [4]},
                                    {"statistic": "mean"}, {"nbr2_max": 0.05}])
def test_a_change_on_one_side_only_is_caught(ee_api, s2, change):
    local = local_s2(s2, recipe())
    remote, _, _ = ee_s2(s2, recipe(s2=change))
    report = compare(local, remote)
    assert not all(d.ok for d in report), "\n".join(d.render() for d in report)


def test_a_speckle_filter_on_one_side_only_is_caught(ee_api, s1):
    local = local_s1(s1, recipe(s1={"speckle_filter": "boxcar"}))
    remote, _, _ = ee_s1(s1, recipe())
    with pytest.raises(AssertionError):
        assert_same(local, remote, S1_COMPOSITE_BANDS)


def test_boxcar_parity_rests_on_the_focal_mean_mask_rule(ee_api, s1):
    """Earth Engine does not document focalMean's output mask; the evaluator follows reduceNeighborhood's
    default (skipMasked: masked where the centre is), which is the local backend's rule. Were the server
    to fill masked centres with their neighbours' mean, the boxcar composites would differ at every pixel
    next to a scene edge or an invalid pixel (count first of all): the live parity test must confirm it."""
    rec = recipe(s1={"speckle_filter": "boxcar"})
    expression = eeb.s1_composite(rec, geometry_from_geojson(AOI), START, END, scene_ids=s1.ids)
    image, _ = evaluator_for(expression, s1.catalogue, focal_skip_masked=False)
    m = s1.margin
    remote = {b: a[m:m + H, m:m + W] for b, a in as_arrays(image).items()}
    report = {d.band: d for d in compare(local_s1(s1, rec), remote)}
    assert not report["count"].ok and report["count"].max_abs > 0
