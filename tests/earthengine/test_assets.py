"""Export names: descriptions, object names and URIs (pure)."""

from __future__ import annotations

import pytest

from soilclay.earthengine import assets
from soilclay.errors import BadInputError


def test_export_description_is_stable_and_earth_engine_safe():
    assert assets.export_description("demo/s2.abc123") == "demo_s2_abc123"
    assert assets.export_description("/demo-ee/sentinel-1 x/") == "demo-ee_sentinel-1_x"
    long = "a" * 150
    assert assets.export_description(long) == "a" * assets.MAX_DESCRIPTION
    assert assets.export_description("demo/s2.abc123") == assets.export_description("demo/s2.abc123")
    with pytest.raises(BadInputError, match="non-empty name"):
        assets.export_description("//")


def test_object_name_and_cog_uri():
    assert assets.object_name("/composites/demo/", "/demo/s2.abc/") == "composites/demo/demo/s2.abc"
    assert assets.object_name("", "s1") == "s1"
    assert assets.cog_uri("soil-bucket", "composites/s1") == "gs://soil-bucket/composites/s1.tif"
    with pytest.raises(BadInputError, match="non-empty name"):
        assets.object_name("p", "")
    for bucket, name in (("", "x"), ("a/b", "x"), ("b", "")):
        with pytest.raises(BadInputError, match="COG URI"):
            assets.cog_uri(bucket, name)


def test_image_id():
    assert assets.image_id(assets.S1_ASSET, "S1A_IW_X") == "COPERNICUS/S1_GRD/S1A_IW_X"
    assert assets.image_id(assets.S2_ASSET + "/", "T33") == "COPERNICUS/S2_SR_HARMONIZED/T33"
    with pytest.raises(BadInputError, match="image id"):
        assets.image_id(assets.S2_ASSET, "")


def test_band_names_follow_soilclay_order():
    from soilclay.contract import S2_BANDS

    assert len(assets.EE_S2_BANDS) == len(S2_BANDS)
    assert [b.replace("B0", "B") for b in S2_BANDS] == list(assets.EE_S2_BANDS)
