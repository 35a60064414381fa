"""The data contract: groups are cut by column name, the version rule, nodata to NaN, and one source for bands."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilclay import contract
from soilclay.contract import (
    COORD_COLUMNS,
    INPUT_FEATURES,
    S1_BANDS,
    S2_BANDS,
    check_inputs,
    check_model_version,
    input_columns,
    split_array,
    split_frame,
)
from soilclay.errors import BadInputError
from soilclay.io.raster import nodata_to_nan

ROOT = Path(__file__).resolve().parents[1]


def _table(n: int = 4) -> pd.DataFrame:
    """Every feature column holds a value that says which column it is: 100 * column number + row."""
    names = list(input_columns(("optical", "sar", "coords")))
    return pd.DataFrame({c: 100.0 * i + np.arange(n) for i, c in enumerate(names)})


def _expected(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[list(INPUT_FEATURES[name])].to_numpy(np.float32)


# --- layout ---------------------------------------------------------------------------------------------------


def test_the_layout_is_the_bands_in_spectral_order():
    assert S2_BANDS == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    assert dict(INPUT_FEATURES) == {"optical": S2_BANDS, "sar": ("VV", "VH", "VV_VH"), "coords": ("lon", "lat")}
    assert contract.S2_COMPOSITE_BANDS == (*S2_BANDS, "bare_count", "valid_count", "bare_frequency")
    assert contract.S1_COMPOSITE_BANDS == (*S1_BANDS, "count")
    assert input_columns(("optical", "coords")) == (*S2_BANDS, *COORD_COLUMNS)


def test_split_frame_takes_columns_by_name_whatever_else_or_in_which_order():
    frame = _table()
    shuffled = frame[list(reversed(frame.columns))].assign(clay=1.0, bare_count=3, sample_id="s")
    got = split_frame(shuffled, ("optical", "sar", "coords"))
    assert list(got) == ["optical", "sar", "coords"]
    for name, values in got.items():
        assert values.dtype == np.float32 and values.flags.c_contiguous
        np.testing.assert_array_equal(values, _expected(frame, name))
    assert list(split_frame(shuffled, ("optical", "coords"))) == ["optical", "coords"]


def test_split_array_takes_columns_by_name():
    frame = _table()
    order = [*COORD_COLUMNS, "bare_count", *reversed(S1_BANDS), *S2_BANDS]  # extra column, reordered groups
    values = frame.assign(bare_count=-1.0)[order].to_numpy(np.float64)
    got = split_array(values, order, ("optical", "sar", "coords"))
    for name in ("optical", "sar", "coords"):
        assert got[name].dtype == np.float32
        np.testing.assert_array_equal(got[name], _expected(frame, name))
    assert split_array(np.empty((0, len(order))), order, ("optical",))["optical"].shape == (0, 10)


def test_splits_name_what_is_missing_or_wrong():
    frame = _table().drop(columns=["VH"])
    with pytest.raises(BadInputError, match=r"samples: input 'sar' needs columns \['VV', 'VH', 'VV_VH'\], "
                                            r"missing \['VH'\]"):
        split_frame(frame, ("optical", "sar"), source="samples")
    assert set(split_frame(frame, ("optical", "coords"))) == {"optical", "coords"}  # sar not asked for
    with pytest.raises(BadInputError, match="missing"):
        split_array(np.zeros((2, 10)), list(S2_BANDS), ("optical", "coords"))
    with pytest.raises(BadInputError, match="11 columns"):
        split_array(np.zeros((2, 10)), [*S2_BANDS, "lon"], ("optical",))
    with pytest.raises(BadInputError, match=r"\['B02'\] more than once"):
        split_array(np.zeros((2, 11)), [*S2_BANDS, "B02"], ("optical",))


@pytest.mark.parametrize("inputs", [(), ("sar", "optical"), ("optical", "ndvi"), ["optical", "optical"]])
def test_check_inputs_wants_a_subset_in_contract_order(inputs):
    with pytest.raises(BadInputError, match="non-empty subset of"):
        check_inputs(inputs)


def test_check_inputs_returns_a_tuple():
    assert check_inputs(["optical", "coords"]) == ("optical", "coords")
    assert check_inputs("optical") == ("optical",)


# --- model versions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, True, False, 1.0, "1", None, np.bool_(True)])
def test_check_model_version_refuses_what_is_not_a_positive_integer(value):
    with pytest.raises(BadInputError, match=rf"^model version must be an integer >= 1 .*found {value!r}$"):
        check_model_version(value)


def test_check_model_version_returns_a_plain_int_and_names_what_it_checks():
    assert check_model_version(1) == 1 and type(check_model_version(np.int64(7))) is int
    with pytest.raises(BadInputError, match=r"^champion version must be .* found 0$"):
        check_model_version(0, "champion version")


# --- nodata ---------------------------------------------------------------------------------------------------


def test_nodata_to_nan_marks_the_nodata_value_only():
    data = np.array([[0, 5], [0, 65535]], np.uint16)
    got = nodata_to_nan(data, 0)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[np.nan, 5], [np.nan, 65535]])
    assert data[0, 0] == 0  # the input is left alone
    assert nodata_to_nan(np.array([2**31 - 1], np.int32), -1).dtype == np.float64  # exact for 32-bit integers


@pytest.mark.parametrize("nodata", [None, float("nan")])
def test_nodata_to_nan_without_a_nodata_number_changes_nothing(nodata):
    data = np.array([0.0, np.nan, -9999.0], np.float32)
    np.testing.assert_array_equal(nodata_to_nan(data, nodata), data)


def test_nodata_to_nan_in_place_on_request():
    data = np.array([1.0, -9999.0, 3.0], np.float64)
    same = nodata_to_nan(data, -9999, copy=False)
    assert same is data and np.isnan(data[1]) and data.dtype == np.float64
    copied = nodata_to_nan(np.array([-9999.0, 2.0]), -9999.0)
    np.testing.assert_array_equal(copied, [np.nan, 2.0])


# --- one source of truth --------------------------------------------------------------------------------------


def _soilclay_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    found |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {m for m in found if m == "soilclay" or m.startswith("soilclay.")}


def test_the_contract_depends_on_errors_only_and_serving_not_on_the_model():
    assert _soilclay_imports(ROOT / "soilclay" / "contract.py") == {"soilclay.errors"}
    serving = {m for p in (ROOT / "soilclay" / "serving").glob("*.py") for m in _soilclay_imports(p)}
    assert not {m for m in serving if m.startswith("soilclay.model")}


def test_no_module_types_the_band_list_again():
    spelled = '"B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"'
    found = [str(p.relative_to(ROOT)) for p in (ROOT / "soilclay").rglob("*.py") if spelled in p.read_text()]
    assert found == ["soilclay/contract.py"]
