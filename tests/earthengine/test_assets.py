"""Export names: descriptions, object names and URIs (pure)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import pytest

from soilclay.earthengine import assets
from soilclay.errors import BadInputError


def sha16(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def key(aoi: str, sensor: str, recipe_hash: str, inputs_hash: str) -> str:
    """An export name as the composites backend builds it (CompositePlan.key without ``.tif``)."""
    return f"composites/{aoi}/{sensor}/{aoi}-{sensor}-{recipe_hash}-{inputs_hash}"


def test_export_description_is_stable_and_earth_engine_safe():
    # a name that is a valid description is its own; any other gets a readable head + a digest
    assert assets.export_description("demo_s2-abc123") == "demo_s2-abc123"
    assert assets.export_description("demo/s2.abc123") == "demo_s2_abc123_89748f96fce4d1e5"
    assert assets.export_description("demo/s2.abc123") == "demo_s2_abc123_" + sha16("demo/s2.abc123")
    # surrounding slashes are dropped before anything else, as object_name drops them
    assert assets.export_description("/demo-ee/sentinel-1 x/") == "demo-ee_sentinel-1_x_" + sha16(
        "demo-ee/sentinel-1 x")
    long = "a" * 150
    assert assets.export_description(long) == "a" * 83 + "_" + sha16(long)
    assert len(assets.export_description(long)) == assets.MAX_DESCRIPTION
    assert assets.export_description("a" * 100) == "a" * 100  # exactly at the limit: unchanged
    with pytest.raises(BadInputError, match="non-empty name"):
        assets.export_description("//")


def test_export_descriptions_do_not_collide_after_sanitising_or_cutting():
    # sanitising alone must not merge names
    assert len({assets.export_description(n) for n in ("a/b", "a_b", "a.b", "a b")}) == 4
    # a name cut at the limit keeps the digest of all of it
    assert assets.export_description("a" * 101) != assets.export_description("a" * 102)
    assert assets.export_description("a" * 101) != assets.export_description("a" * 100)


@pytest.mark.parametrize("aoi_length", [1, 19, 20, 40, 63])
def test_long_aoi_names_keep_their_inputs_hash(aoi_length):
    aoi = ("field-" + "x" * 63)[:aoi_length]
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", aoi)
    names = [key(aoi, sensor, "0123456789ab", inputs)
             for sensor in ("sentinel-1", "sentinel-2") for inputs in ("aaaaaaaaaaaa", "aaaaaaaaaaab", "baaaaaaaaaaa")]
    descriptions = [assets.export_description(name) for name in names]
    assert len(set(descriptions)) == len(names), "names differing only in the inputs hash must not collide"
    for name, description in zip(names, descriptions, strict=True):
        assert len(description) <= assets.MAX_DESCRIPTION
        assert re.fullmatch(r"[A-Za-z0-9_-]+", description)
        assert description.endswith("_" + sha16(name))
        assert description.startswith(f"composites_{aoi}_"[:assets.MAX_DESCRIPTION - 17])
        assert assets.export_description(name) == description  # deterministic


def test_export_description_is_deterministic_across_processes():
    """The description must not depend on the process (no salted ``hash()``): a retry runs elsewhere."""
    name = key("a" * 63, "sentinel-2", "0123456789ab", "fedcba987654")
    code = f"from soilclay.earthengine.assets import export_description; print(export_description({name!r}))"
    runs = {subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert runs == {assets.export_description(name)}


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
