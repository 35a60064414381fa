"""The pure compositing maths against plain numpy."""

import warnings

import numpy as np
import pytest

from soilclay.composites import maths
from soilclay.composites.recipe import S1Recipe, S2Recipe


@pytest.fixture
def stack():
    rng = np.random.default_rng(3)
    data = rng.normal(1000, 200, (37, 20, 30)).astype(np.float32)
    data[rng.random(data.shape) < 0.6] = np.nan
    data[:, 0, 0] = np.nan  # a pixel never observed
    data[:, 0, 1] = np.nan
    data[5, 0, 1] = 42.0  # a pixel observed once
    return data


@pytest.mark.parametrize("statistic", ["median", "p10", "p25", "p90", "mean"])
def test_reduce_time_equals_numpy(stack, statistic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if statistic == "median":
            expected = np.nanmedian(stack, axis=0)
        elif statistic == "mean":
            expected = np.nanmean(stack, axis=0)
        else:
            expected = np.nanpercentile(stack, int(statistic[1:]), axis=0)
    value, count = maths.reduce_time(stack, statistic)
    np.testing.assert_allclose(value, expected, rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(count, np.sum(~np.isnan(stack), axis=0))
    assert np.isnan(value[0, 0]) and count[0, 0] == 0
    assert value[0, 1] == 42.0 and count[0, 1] == 1


def test_bare_rule_thresholds_and_scmap():
    b04 = np.array([1000, 1000, 1000, 500], np.float32)
    b08 = np.array([1400, 1800, 1400, 3000], np.float32)  # NDVI 0.167, 0.286, 0.167, 0.714
    b11 = np.array([3000, 3000, 3000, 3000], np.float32)
    b12 = np.array([2700, 2700, 2000, 2700], np.float32)  # NBR2 0.053, 0.053, 0.2, 0.053
    assert maths.s2_bare(b04, b08, b11, b12, S2Recipe()).tolist() == [True, False, False, False]
    loose = S2Recipe(ndvi_max=0.3, nbr2_max=0.25)
    assert maths.s2_bare(b04, b08, b11, b12, loose).tolist() == [True, True, True, False]
    strict = S2Recipe(scmap_max=-0.1)  # NDVI + NBR of the first pixel is 0.167 - 0.317 = -0.15
    assert maths.s2_bare(b04, b08, b11, b12, strict).tolist() == [True, False, False, False]
    assert maths.s2_bare(b04, b08, b11, b12, S2Recipe(scmap_max=-0.2)).tolist() == [False] * 4


def test_clear_mask_uses_scl_classes_and_cloud_probability():
    scl = np.array([0, 3, 4, 5, 8, 9, 10, 4])
    assert maths.s2_clear(scl, S2Recipe()).tolist() == [False, False, True, True, False, False, False, True]
    prob = np.array([0, 0, 10, 80, 0, 0, 0, 40])
    assert maths.s2_clear(scl, S2Recipe(cloud_probability_max=50), prob).tolist() == [
        False, False, True, False, False, False, False, True]
    with pytest.raises(ValueError, match="no cloud probability"):
        maths.s2_clear(scl, S2Recipe(cloud_probability_max=50))


def test_s1_to_db_and_nan_aware_boxcar():
    linear = np.full((5, 5), 0.01, np.float32)
    linear[2, 2] = 0.04
    linear[0, 0] = 0.0  # nodata
    db = maths.s1_prepare(linear, S1Recipe())
    assert np.isnan(db[0, 0]) and db[1, 1] == pytest.approx(-20.0) and db[2, 2] == pytest.approx(-13.979, abs=1e-3)
    filtered = maths.s1_prepare(linear, S1Recipe(speckle_filter="boxcar", speckle_size=3))
    assert filtered[2, 2] == pytest.approx(10 * np.log10((8 * 0.01 + 0.04) / 9), abs=1e-4)
    assert filtered[1, 1] == pytest.approx(10 * np.log10((7 * 0.01 + 0.04) / 8), abs=1e-4)  # nodata not counted
    assert np.isnan(filtered[0, 0])


@pytest.mark.parametrize("statistic", ["median", "p10", "p25", "p90", "mean"])
@pytest.mark.parametrize("kind", ["whole", "bright", "fractional", "negative"])
def test_sparse_observations_reduce_to_exactly_the_dense_statistic(stack, statistic, kind):
    """reduce_observations over (pixel, value) pairs in any order gives reduce_time's numbers bit for bit, for
    whole DN (the 32-bit key sort), bright ones (the 64-bit key), and for fractions or negative values (the
    lexsort path)."""
    dense = {"whole": np.round(stack), "bright": np.round(stack) * 10000,  # too many bits for 32: the 64-bit key
             "fractional": stack + np.float32(0.25), "negative": np.round(stack) - 1500}[kind]
    t, h, w = dense.shape
    scene, row, col = np.nonzero(~np.isnan(dense))
    order = np.random.default_rng(5).permutation(scene.size)  # the order observations come in does not matter
    pixel = (row * w + col)[order]
    values = dense[scene, row, col][order].astype(np.float32)
    value, count = maths.reduce_observations(pixel, values, h * w, statistic)
    expected, expected_count = maths.reduce_time(dense, statistic)
    np.testing.assert_array_equal(value.reshape(h, w), expected)
    np.testing.assert_array_equal(count.reshape(h, w), expected_count)


def test_sparse_reduction_of_nothing():
    value, count = maths.reduce_observations(np.zeros(0, np.intp), np.zeros(0, np.float32), 4, "median")
    assert np.isnan(value).all() and count.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("statistic", ["median", "p25", "mean"])
def test_rows_reduce_as_the_stack_does(stack, statistic):
    """reduce_rows over (pixels, T) rows, as the Sentinel-1 tile lays them out, is reduce_time of the stack."""
    t, h, w = stack.shape
    rows = np.ascontiguousarray(stack.reshape(t, -1).T)
    expected, _ = maths.reduce_time(stack, statistic)
    np.testing.assert_array_equal(maths.reduce_rows(rows, statistic).reshape(h, w), expected)
