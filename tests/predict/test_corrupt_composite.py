"""A composite that cannot be read during predict is one line naming the file and the composite version."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from rasterio.transform import from_origin
from shapely.geometry import box

from soilclay.contract import S2_BANDS
from soilclay.errors import BadInputError
from soilclay.io.cog import write_cog
from soilclay.predict.pixels import parcel_pixels

LABEL = "Sentinel-2 composite version 3 (id 12, store://c.tif) at"


def _composite(path, size=1024):
    rng = np.random.default_rng(0)
    data = rng.uniform(0.05, 0.4, (len(S2_BANDS), size, size)).astype("float32")
    return write_cog(path, data, transform=from_origin(500_000, 5_800_000, 10, 10), crs="EPSG:32633",
                     nodata=np.nan, descriptions=S2_BANDS, blocksize=256)


def _parcels():
    parcel = box(500_000 + 2000, 5_800_000 - 9000, 500_000 + 9000, 5_800_000 - 2000)  # well inside, many tiles
    return gpd.GeoDataFrame({"parcel_id": ["P1"]}, geometry=[parcel], crs="EPSG:32633")


def test_a_sound_composite_gives_pixels(tmp_path):
    path = str(_composite(tmp_path / "ok.tif"))
    pixels = parcel_pixels(_parcels(), path, None, ("optical", "coords"), labels={path: LABEL}, tile=256)
    assert pixels.usable_pixels[0] == 700 * 700 and len(pixels.parcel) == 200


@pytest.mark.parametrize("keep", [0.5, 0.001])
def test_a_truncated_composite_is_one_line_naming_file_and_version(tmp_path, keep):
    path = _composite(tmp_path / "c.tif")
    data = path.read_bytes()
    path.write_bytes(data[: max(16, int(len(data) * keep))])  # a half-copied or cut-off download
    with pytest.raises(BadInputError) as caught:
        parcel_pixels(_parcels(), str(path), None, ("optical", "coords"), labels={str(path): LABEL}, tile=256)
    message = str(caught.value)
    assert message.startswith(f"{LABEL} {path} cannot be read (")
    assert "corrupt or truncated" in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
