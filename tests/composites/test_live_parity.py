"""The live parity check (:mod:`soilclay.composites.live_parity`): offline, its whole path (fetch the
scenes, write a local archive, run the real local backend on it, compute the Earth Engine composite,
compare) with :mod:`tests.earthengine.evaluator` standing in for ``computePixels``; live, against Earth
Engine itself, only where credentials are configured (marked ``ee_live``; see the README)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np
import pytest
from pyproj import Transformer

from soilclay.composites import live_parity
from soilclay.composites.grid import TargetGrid
from soilclay.composites.recipe import Recipe
from soilclay.contract import S1_COLLECTION, S2_COLLECTION, SceneRef
from soilclay.earthengine.assets import S1_ASSET, S2_ASSET
from soilclay.settings import Settings
from tests.composites.parity_scenes import END, START, H, Scenes, W, s1_scenes, s2_scenes
from tests.earthengine.evaluator import as_arrays, evaluate

X0, Y1, RES = 400_000.0, 5_800_000.0, 10.0  # the synthetic scenes' grid: W x H pixels from (X0, Y1)


def aoi_of_grid() -> dict:
    """An AOI (EPSG:4326) whose target grid is the synthetic scenes' W x H pixels."""
    to_wgs = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    corners = [(X0, Y1 - H * RES), (X0 + W * RES, Y1 - H * RES), (X0 + W * RES, Y1), (X0, Y1)]
    ring = [list(to_wgs.transform(x, y)) for x, y in corners]
    return {"type": "Polygon", "coordinates": [ring + ring[:1]]}


def recipe(**s2) -> Recipe:
    return Recipe.parse({"aoi": "demo", "window": {"years": 2}, "grid": {"crs": "EPSG:32633"}, "s2": s2,
                         "s1": {"speckle_filter": "boxcar", "speckle_size": 7}})


def evaluator_fetch(scenes: Scenes):
    """``computePixels`` offline: evaluate the image over the synthetic catalogue, cut to the requested grid."""
    def fetch(image, grid: TargetGrid) -> dict[str, np.ndarray]:
        arrays = as_arrays(evaluate(image, scenes.catalogue))
        col = int(round((grid.transform.c - (X0 - scenes.margin * RES)) / RES))
        row = int(round(((Y1 + scenes.margin * RES) - grid.transform.f) / RES))
        return {b: a[row:row + grid.height, col:col + grid.width].astype(np.float32) for b, a in arrays.items()}
    return fetch


def listed(scenes: Scenes, asset: str, collection: str) -> list[SceneRef]:
    """The scenes as Earth Engine's listing gives them (every catalogue image, planned or not)."""
    refs = []
    for image in scenes.catalogue[asset]:
        p = image.properties
        refs.append(SceneRef(p["system:index"], collection, "sentinel",
                             datetime.fromtimestamp(p["system:time_start"] / 1000, tz=UTC), "earthengine",
                             f"{asset}/{p['system:index']}", cloud_cover=p.get("CLOUDY_PIXEL_PERCENTAGE"),
                             orbit_state="ascending" if collection == S1_COLLECTION else None))
    return refs


@pytest.mark.parametrize("s2", [{}, {"max_scene_cloud_cover": 60, "statistic": "p25"}])
def test_sentinel2_parity_path_offline(ee_api, tmp_path, s2):
    scenes = s2_scenes(cloud_probability=False)
    rec = recipe(**s2)
    report = live_parity.run_parity(rec, "sentinel-2", aoi_of_grid(), (START, END), tmp_path,
                                    scenes=listed(scenes, S2_ASSET, S2_COLLECTION), fetch=evaluator_fetch(scenes))
    assert report.ok, report.render()
    assert (report.grid.width, report.grid.height) == (W, H)
    expected = [s for s in listed(scenes, S2_ASSET, S2_COLLECTION)
                if s.cloud_cover <= rec.s2.max_scene_cloud_cover]
    assert report.scenes == len(expected) > 0
    by_band = {b.band: b for b in report.bands}
    assert by_band["valid_count"].compared == W * H and by_band["valid_count"].max_abs == 0
    between = by_band.get("B04 between ranks")
    assert by_band["B04"].compared + (between.compared if between else 0) > 0, "the spectra were compared"
    assert "parity holds" in report.render()


def test_sentinel1_parity_path_offline_with_a_speckle_filter(ee_api, tmp_path):
    scenes = s1_scenes(margin=3)
    report = live_parity.run_parity(recipe(), "sentinel-1", aoi_of_grid(), (START, END), tmp_path,
                                    scenes=listed(scenes, S1_ASSET, S1_COLLECTION), fetch=evaluator_fetch(scenes))
    assert report.ok, report.render()
    assert report.scenes == len(scenes.ids) + 1, "every listed scene of the pass (the listing is the plan here)"
    assert {b.band for b in report.bands} >= {"VV", "VH", "VV_VH", "count"}


def test_a_broken_backend_breaks_parity(ee_api, tmp_path, monkeypatch):
    """The path compares for real: a local backend that counts one observation too many is reported."""
    scenes = s2_scenes(cloud_probability=False)
    real = live_parity.compare

    def off_by_one(local, remote, **kwargs):
        return real({**local, "valid_count": local["valid_count"] + 1}, remote, **kwargs)

    monkeypatch.setattr(live_parity, "compare", off_by_one)
    report = live_parity.run_parity(recipe(), "sentinel-2", aoi_of_grid(), (START, END), tmp_path,
                                    scenes=listed(scenes, S2_ASSET, S2_COLLECTION), fetch=evaluator_fetch(scenes))
    assert not report.ok and "PARITY BROKEN" in report.render()
    assert [b.band for b in report.bands if not b.ok] == ["valid_count"]


def test_pixel_grid_and_fetched_arrays():
    grid = TargetGrid("EPSG:32633", live_parity.from_origin(X0, Y1, RES, RES), W, H)
    assert live_parity.pixel_grid(grid) == {
        "dimensions": {"width": W, "height": H},
        "affineTransform": {"scaleX": 10.0, "shearX": 0.0, "translateX": X0, "shearY": 0.0, "scaleY": -10.0,
                            "translateY": Y1},
        "crsCode": "EPSG:32633"}
    grown = live_parity.padded(grid, 3)
    assert (grown.width, grown.height, grown.transform.c, grown.transform.f) == (W + 6, H + 6, X0 - 30, Y1 + 30)
    answer = np.zeros((2, 2), dtype=[("VV", "<f4"), ("count", "<f4")])
    answer["VV"] = [[-12.5, live_parity.NODATA], [-9.0, -10.0]]
    answer["count"] = [[3, 0], [1, 2]]
    bands = live_parity.bands_of(answer)
    assert np.isnan(bands["VV"][0, 1]) and bands["VV"][0, 0] == -12.5 and bands["count"].tolist() == [[3, 0], [1, 2]]


# --------------------------------------------------------------------------- live


#: A small field area in Brandenburg (about 1.4 x 1.1 km), one spring of scenes.
LIVE_BBOX = "13.300,52.380,13.320,52.390"
LIVE_PERIOD = ("2023-03-01", "2023-05-31")


@pytest.mark.ee_live
@pytest.mark.parametrize("sensor", ["sentinel-2", "sentinel-1"])
def test_live_parity_on_earth_engine(sensor):
    """Both backends on Earth Engine's own pixels, every band within its tolerance, through the command an
    operator runs. Only where Earth Engine is configured (SOILCLAY_EE_PROJECT and credentials, and
    SOILCLAY_EE_LIVE=1): ``make test-ee-live``."""
    if not Settings().ee_project or os.environ.get("SOILCLAY_EE_LIVE") != "1":
        pytest.skip("not run: Earth Engine is not configured here (set SOILCLAY_EE_PROJECT, credentials and "
                    "SOILCLAY_EE_LIVE=1; see the README's parity section)")
    from click.testing import CliRunner

    from soilclay.cli import main

    result = CliRunner().invoke(main, ["composites", "parity", "--bbox", LIVE_BBOX, "--sensor", sensor,
                                       "--start", LIVE_PERIOD[0], "--end", LIVE_PERIOD[1]])
    print(result.output)
    assert result.exit_code == 0 and "parity holds" in result.output, result.output

def test_parity_cli_refuses_a_bad_box_before_calling_earth_engine():
    from click.testing import CliRunner

    from soilclay.cli import main

    result = CliRunner().invoke(main, ["composites", "parity", "--bbox", "13.3,52.4,13.2,52.5", "--start",
                                       "2023-03-01", "--end", "2023-05-31"])
    assert result.exit_code == 2 and "expected west < east" in result.output
