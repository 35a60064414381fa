"""How two computations of a composite are judged (:mod:`soilclay.composites.parity`): which pixels hold a
statistic on one observation, and the tolerances on and between ranks."""

from __future__ import annotations

import numpy as np
import pytest

from soilclay.composites.parity import BETWEEN_RANKS, TOLERANCES, compare, compare_band, on_one_rank


def test_a_statistic_on_one_observation():
    counts = np.array([0, 1, 2, 3, 4, 5, 9, np.nan])
    assert on_one_rank("median", counts).tolist() == [True, True, False, True, False, True, True, True]
    # p25 over n observations lands on rank 0.25 (n - 1): whole for n = 1, 5, 9
    assert on_one_rank("p25", counts).tolist() == [True, True, False, False, False, True, True, True]
    assert on_one_rank("mean", counts).all()


def test_counts_must_agree_exactly_and_nodata_must_match():
    a = np.array([[1.0, 2.0], [3.0, np.nan]])
    assert compare_band("count", a, a.copy()).ok
    assert not compare_band("count", a, a + np.array([[0, 0], [1, 0]])).ok, "one count off fails"
    assert not compare_band("bare_frequency", a, np.where(np.isnan(a), 0.5, a)).ok, "nodata where the other has data"
    with pytest.raises(ValueError, match="shapes differ"):
        compare_band("count", a, a[:1])


def test_spectra_are_strict_on_one_rank_and_bounded_between_ranks():
    bare_count = np.array([3.0, 3.0, 4.0, 4.0])
    local = {"B04": np.array([1000.0, 1200.0, 1500.0, 1700.0]), "bare_count": bare_count}
    # Earth Engine picked the lower middle value where the count is even: 100 DN below the interpolation
    remote = {"B04": np.array([1000.0, 1200.0, 1400.0, 1600.0]), "bare_count": bare_count}
    rows = {d.band: d for d in compare(local, remote)}
    assert rows["B04"].ok and rows["B04"].compared == 2
    assert rows["B04 between ranks"].ok and rows["B04 between ranks"].max_abs == 100.0
    assert BETWEEN_RANKS["B04"].atol > 100 > TOLERANCES["B04"].atol
    # the same 100 DN on an odd count is a real difference
    off = {"B04": remote["B04"] - np.array([100.0, 0, 0, 0]), "bare_count": bare_count}
    assert not {d.band: d for d in compare(local, off)}["B04"].ok
    # and between ranks, beyond the worst a rank rule can do
    far = {"B04": remote["B04"] - np.array([0, 0, 0, 700.0]), "bare_count": bare_count}
    assert not {d.band: d for d in compare(local, far)}["B04 between ranks"].ok


def test_a_band_missing_from_the_other_side_is_refused():
    with pytest.raises(ValueError, match="bands missing from the other computation: VV"):
        compare({"VV": np.zeros(2)}, {"VH": np.zeros(2)})
