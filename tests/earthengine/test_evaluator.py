"""The offline evaluator's own semantics (``tests.earthengine.evaluator``): Earth Engine's type rules
(integer division stays integer), masks, reducers, filters, joins, function definitions, and refusals."""

from __future__ import annotations

import ee
import numpy as np
import pytest

from tests.earthengine.evaluator import (
    FLOAT32,
    FLOAT64,
    INT,
    Refused,
    SyntheticImage,
    Unsupported,
    _nanpercentile,
    as_arrays,
    evaluate,
    evaluator_for,
    pixel_types,
)

SHAPE = (2, 3)
NAN = np.nan


def image(index: str, t: int = 0, **bands) -> SyntheticImage:
    return SyntheticImage({"system:index": index, "system:time_start": t, "kind": "x", "tags": ["a", "b"]},
                          {k: np.asarray(v, float) for k, v in bands.items()})


#: Three integer images: ``B`` with masked pixels (NaN), ``M`` 0/1.
CATALOGUE = {
    "T": [image("a", 1_000, B=[[1, 2, NAN], [4, NAN, NAN]], M=[[1, 0, 1], [1, 1, 1]]),
          image("b", 2_000, B=[[3, 6, NAN], [8, 5, NAN]], M=[[1, 1, 0], [1, 1, 1]]),
          image("c", 3_000, B=[[5, 4, NAN], [6, NAN, NAN]], M=[[0, 1, 1], [1, 1, 1]])],
}


def run(obj):
    result = evaluate(obj, CATALOGUE)
    return as_arrays(result), pixel_types(result)


def col() -> ee.ImageCollection:
    return ee.ImageCollection("T")


def one(index: str) -> ee.Image:
    """One catalogue image, as the sum of a one-image collection (values and masks unchanged)."""
    return col().filter(ee.Filter.eq("system:index", index)).sum()


# --------------------------------------------------------------------------- types and arithmetic


def test_divide_of_integer_images_is_an_integer_division(ee_api):
    values, types = run(ee.Image.constant(7).divide(2).addBands(ee.Image.constant(7).toFloat().divide(2).rename("f")))
    assert types == {"constant": INT, "f": FLOAT32}
    assert (values["constant"] == 3).all() and (values["f"] == 3.5).all()
    counts = col().select("M").sum()
    values, types = run(counts.divide(ee.Image.constant(3)).addBands(counts.divide(3.0).rename("f")))
    assert types == {"M": INT, "f": FLOAT64}
    np.testing.assert_array_equal(values["M"], [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_allclose(values["f"], [[2 / 3, 2 / 3, 2 / 3], [1, 1, 1]])


def test_divide_by_zero_gives_zero(ee_api):
    values, _ = run(ee.Image.constant(5).divide(0).addBands(ee.Image.constant(5.0).divide(0.0).rename("f")))
    assert (values["constant"] == 0).all() and (values["f"] == 0).all()


def test_comparisons_and_and_give_integer_zero_one(ee_api):
    b = one("a").select("B")
    values, types = run(b.gt(1).rename("gt").addBands(b.lte(2).rename("lte")).addBands(
        b.gte(2).And(b.lt(4)).rename("and")))
    assert types == {"gt": INT, "lte": INT, "and": INT}
    np.testing.assert_array_equal(values["gt"], [[0, 1, NAN], [1, NAN, NAN]])
    np.testing.assert_array_equal(values["and"], [[0, 1, NAN], [0, NAN, NAN]])


def test_to_float_rounds_to_float32(ee_api):
    values, types = run(ee.Image.constant(0.1).toFloat())
    assert types == {"constant": FLOAT32}
    assert (values["constant"] == np.float64(np.float32(0.1))).all()


def test_binary_operations_mask_where_either_input_is_masked(ee_api):
    a, b = one("a").select("B"), one("b").select("B")
    values, types = run(a.add(b).rename("sum").addBands(a.multiply(b.mask()).rename("m")))
    np.testing.assert_array_equal(values["sum"], [[4, 8, NAN], [12, NAN, NAN]])
    assert types["m"] == FLOAT32  # int x float mask
    np.testing.assert_array_equal(values["m"], [[1, 2, NAN], [4, NAN, NAN]])


def test_band_matching_of_binary_operations(ee_api):
    pair = one("a").select(["B", "M"])
    values, _ = run(pair.add(1))  # one band against every band, names of the longer
    assert list(values) == ["B", "M"]
    with pytest.raises(ValueError, match="cannot match"):
        run(pair.addBands(ee.Image.constant(0)).add(pair))


# --------------------------------------------------------------------------- masks


def test_mask_returns_the_mask_as_a_float_image_valid_everywhere(ee_api):
    values, types = run(one("a").select("B").mask())
    assert types == {"B": FLOAT32}
    np.testing.assert_array_equal(values["B"], [[1, 1, 0], [1, 0, 0]])


def test_update_mask_and_unmask(ee_api):
    b = one("b").select("B")
    m = one("a").select("M")
    values, _ = run(b.updateMask(m).rename("u").addBands(b.updateMask(one("a").select("B").gt(1)).rename("v"))
                    .addBands(b.unmask(0).rename("z")).addBands(b.unmask(ee.Image.constant(9)).rename("n")))
    np.testing.assert_array_equal(values["u"], [[3, NAN, NAN], [8, 5, NAN]])
    # a mask image masked itself masks the pixel
    np.testing.assert_array_equal(values["v"], [[NAN, 6, NAN], [8, NAN, NAN]])
    np.testing.assert_array_equal(values["z"], [[3, 6, 0], [8, 5, 0]])
    np.testing.assert_array_equal(values["n"], [[3, 6, 9], [8, 5, 9]])


def test_remap_maps_listed_values_others_to_default_masked_stay_masked(ee_api):
    b = one("a").select("B")
    values, types = run(b.remap([1, 4], [10, 40], 0).addBands(b.remap([1, 4], [10, 40]).rename("nodefault")))
    assert types["remapped"] == INT
    np.testing.assert_array_equal(values["remapped"], [[10, 0, NAN], [40, NAN, NAN]])
    np.testing.assert_array_equal(values["nodefault"], [[10, NAN, NAN], [40, NAN, NAN]])


def test_normalized_difference(ee_api):
    a = ee.Image.constant(3).addBands(ee.Image.constant(1)).rename(["x", "y"])
    values, types = run(a.normalizedDifference(["x", "y"]))
    assert types == {"nd": FLOAT32} and (values["nd"] == 0.5).all()
    negative = ee.Image.constant(-3).addBands(ee.Image.constant(1)).rename(["x", "y"])
    assert np.isnan(run(negative.normalizedDifference(["x", "y"]))[0]["nd"]).all(), "negative input: masked"
    zeros = ee.Image.constant(0).addBands(ee.Image.constant(0)).rename(["x", "y"])
    assert (run(zeros.normalizedDifference(["x", "y"]))[0]["nd"] == 0).all(), "0/0: 0 (chosen, see docstring)"
    masked = one("a").select("B").addBands(ee.Image.constant(1)).rename(["x", "y"])
    np.testing.assert_array_equal(np.isnan(run(masked.normalizedDifference(["x", "y"]))[0]["nd"]),
                                  [[False, False, True], [False, True, True]])


def test_focal_mean_of_unmasked_pixels_masked_where_the_centre_is(ee_api):
    catalogue = {"T": [image("a", B=[[1, 2, 3, 4], [5, NAN, 7, 8], [9, 10, 11, 12]])]}
    result = evaluate(ee.ImageCollection("T").sum().toFloat().focalMean(kernel=ee.Kernel.square(1, "pixels")),
                      catalogue)
    values = as_arrays(result)["B"]
    assert np.isnan(values[1, 1])
    assert values[0, 0] == pytest.approx((1 + 2 + 5) / 3)
    assert values[1, 2] == pytest.approx((2 + 3 + 4 + 7 + 8 + 10 + 11 + 12) / 8)


# --------------------------------------------------------------------------- reducers


def test_collection_reducers_ignore_masked_pixels_and_mask_where_none(ee_api):
    b = col().select("B")
    values, types = run(b.sum().rename("sum").addBands(b.count().rename("count"))
                        .addBands(b.reduce(ee.Reducer.mean())).addBands(b.reduce(ee.Reducer.min()))
                        .addBands(b.reduce(ee.Reducer.median(maxRaw=10)))
                        .addBands(b.reduce(ee.Reducer.percentile([25], maxRaw=10))))
    assert list(values) == ["sum", "count", "B_mean", "B_min", "B_median", "B_p25"]
    assert types["sum"] == INT and types["count"] == INT and types["B_min"] == INT
    np.testing.assert_array_equal(values["sum"], [[9, 12, NAN], [18, 5, NAN]])
    np.testing.assert_array_equal(values["count"], [[3, 3, NAN], [3, 1, NAN]])
    np.testing.assert_allclose(values["B_mean"], [[3, 4, NAN], [6, 5, NAN]])
    np.testing.assert_array_equal(values["B_min"], [[1, 2, NAN], [4, 5, NAN]])
    np.testing.assert_allclose(values["B_median"], [[3, 4, NAN], [6, 5, NAN]])
    np.testing.assert_allclose(values["B_p25"], [[2, 3, NAN], [5, 5, NAN]])


def test_image_reduce_across_bands(ee_api):
    values, _ = run(one("a").select(["B", "M"]).reduce(ee.Reducer.min()))
    np.testing.assert_array_equal(values["min"], [[1, 0, 1], [1, 1, 1]])


def test_median_refuses_without_max_raw_or_above_it(ee_api):
    with pytest.raises(Refused, match="without an explicit maxRaw"):
        run(col().select("B").reduce(ee.Reducer.median()))
    with pytest.raises(Refused, match="above maxRaw 2"):
        run(col().select("B").reduce(ee.Reducer.percentile([50], maxRaw=2)))


def test_percentiles_are_numpys_linear_interpolation():
    rng = np.random.default_rng(1)
    data = rng.uniform(0, 100, (9, 7, 5))
    data[rng.random(data.shape) < 0.3] = np.nan
    data[:, 0, 0] = np.nan
    for q in (25, 50, 90):
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            expected = np.nanpercentile(data, q, axis=0)
        got = _nanpercentile(data, q)
        np.testing.assert_allclose(got[~np.isnan(expected)], expected[~np.isnan(expected)])


# --------------------------------------------------------------------------- collections, filters, joins


def test_filters_on_properties(ee_api):
    def loaded(collection):
        _, evaluator = evaluator_for(collection.select("B").sum(), CATALOGUE)
        return evaluator.loaded

    listed = col().filter(ee.Filter.inList("system:index", ["a", "c", "zz"]))
    values, _ = run(listed.select("B").count())
    np.testing.assert_array_equal(values["B"], [[2, 2, NAN], [2, NAN, NAN]])
    contains = col().filter(ee.Filter.listContains("tags", "b")).filter(ee.Filter.eq("kind", "x"))
    assert run(contains.select("B").count())[0]["B"][0, 0] == 3
    dated = col().filter(ee.Filter.date(ee.Date(1_000), ee.Date(3_000)))
    assert run(dated.select("B").count())[0]["B"][0, 0] == 2, "end exclusive"
    not_gt = col().filter(ee.Filter.gt("system:time_start", 1_500).Not())
    assert run(not_gt.select("B").count())[0]["B"][0, 0] == 1
    assert loaded(col()) == ["a", "b", "c"]


def test_map_with_a_function_definition(ee_api):
    doubled = col().map(lambda img: ee.Image(img).select("B").multiply(2))
    values, _ = run(doubled.sum())
    np.testing.assert_array_equal(values["B"], [[18, 24, NAN], [36, 10, NAN]])


def test_join_save_first_drops_unmatched_and_get_reads_the_match(ee_api):
    catalogue = dict(CATALOGUE, P=[image("a", P=[[10, 20, 30], [40, 50, 60]]),
                                   image("c", P=[[1, 2, 3], [4, 5, 6]])])
    joined = ee.ImageCollection(ee.Join.saveFirst("match").apply(
        primary=col(), secondary=ee.ImageCollection("P"),
        condition=ee.Filter.equals(leftField="system:index", rightField="system:index")))
    mapped = joined.map(lambda img: ee.Image(ee.Image(img).get("match")).select("P"))
    values = as_arrays(evaluate(mapped.sum(), catalogue))
    np.testing.assert_array_equal(values["P"], [[11, 22, 33], [44, 55, 66]])


def test_unsupported_algorithms_fail_naming_the_function(ee_api):
    with pytest.raises(Unsupported, match="Image.sqrt"):
        run(ee.Image.constant(4).sqrt())
    with pytest.raises(Unsupported, match="Image.focalMean"):
        run(ee.Image.constant(4).focalMean(2))  # no explicit kernel
    with pytest.raises(Unsupported, match="Image.remap: arguments"):
        evaluate({"values": {"0": {"functionInvocationValue": {"functionName": "Image.remap", "arguments": {
            "image": {"functionInvocationValue": {"functionName": "Image.constant",
                                                  "arguments": {"value": {"constantValue": 1}}}},
            "from": {"constantValue": [1]}, "to": {"constantValue": [2]},
            "colour": {"constantValue": 1}}}}}, "result": "0"}, CATALOGUE)


def test_unknown_asset_fails(ee_api):
    with pytest.raises(KeyError, match="NOPE"):
        run(ee.ImageCollection("NOPE").count())
