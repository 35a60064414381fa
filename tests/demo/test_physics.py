"""Pure parts of the demo world's physics, without files."""

from datetime import date

import numpy as np
import pytest

from soilclay.demo.fields import soil_fields
from soilclay.demo.optics import I_B11, b12_b11_ratio, dry_soil_reflectance
from soilclay.demo.spec import WorldSpec, preset
from soilclay.demo.weather import pixel_moisture
from soilclay.errors import BadInputError


def test_soil_fields_are_in_physical_ranges():
    soil = soil_fields(np.random.default_rng(0), (200, 200))
    assert 3 <= soil.clay.min() and soil.clay.max() <= 65
    assert 12 < np.median(soil.clay) < 26
    assert np.allclose(soil.clay + soil.silt + soil.sand, 100, atol=1e-3)
    assert (soil.sand >= 0).all()


def test_clay_darkens_soil_and_deepens_the_swir2_absorption():
    soil = soil_fields(np.random.default_rng(1), (100, 100))
    refl = dry_soil_reflectance(soil)
    assert np.corrcoef(refl[I_B11].ravel(), soil.clay.ravel())[0, 1] < -0.5
    assert b12_b11_ratio(np.array([5.0]))[0] > b12_b11_ratio(np.array([60.0]))[0]
    assert ((refl > 0) & (refl < 1)).all()


def test_clay_rich_soils_hold_more_water():
    wet = pixel_moisture(0.3, np.array([5.0, 20.0, 60.0]))
    assert wet[0] < wet[1] < wet[2] <= 0.5


@pytest.mark.parametrize(("field", "value", "message"), [
    ("width", 33, "width/height must be even"),
    ("n_parcels", 0, "n_parcels must be"),
    ("end", date(2022, 1, 10), "end must be at least 60 days after start"),
    ("seed", -1, "seed must be >= 0"),
])
def test_world_spec_names_the_bad_field(field, value, message):
    values = {**preset("small").__dict__, field: value}
    with pytest.raises(BadInputError, match=message):
        WorldSpec(**values)


def test_unknown_size_is_refused():
    with pytest.raises(BadInputError, match="size must be one of"):
        preset("huge")
