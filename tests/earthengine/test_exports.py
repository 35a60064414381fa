"""Export requests, found and started offline (``ee.data``'s export endpoints faked)."""

from __future__ import annotations

from types import SimpleNamespace

import ee
import pytest

from soilclay.earthengine import exports
from soilclay.earthengine.geometry import geometry_from_geojson
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from tests.earthengine.offline import AOI, calls, expression, install_fake_export, root_call, value

GRID = SimpleNamespace(crs="EPSG:32633", resolution=10.0)


@pytest.fixture
def fake_export(monkeypatch) -> list[dict]:
    return install_fake_export(monkeypatch)


def task(**kwargs) -> ee.batch.Task:
    region = geometry_from_geojson(AOI)
    arguments = {"bucket": "soil-bucket", "prefix": "composites/demo/s1_x", "description": "demo_s1_x",
                 "region": region, "grid": GRID, **kwargs}
    return exports.export_to_gcs(ee.Image.constant(1).toFloat(), **arguments)


def test_export_config_without_starting(ee_api):
    unstarted = task()
    assert (unstarted.state, unstarted.id, unstarted.name) == ("UNSUBMITTED", None, None)
    config = dict(unstarted.config)
    tree = expression(config.pop("expression"))
    assert config == {
        "description": "demo_s1_x",
        "fileExportOptions": {
            "fileFormat": "GEO_TIFF",
            "cloudStorageDestination": {"bucket": "soil-bucket", "filenamePrefix": "composites/demo/s1_x"},
            "geoTiffOptions": {"cloudOptimized": True, "noData": {"floatValue": exports.NODATA},
                               "tileDimensions": {"width": 8192, "height": 8192}},
        },
        "maxPixels": {"value": str(10**13)},
    }
    # the pixel grid is folded into the expression: reproject onto crs + transform, clip to region
    root = root_call(tree)
    assert root["functionName"] == "Image.clip"
    [reproject] = calls(tree, "Image.reproject")
    assert value(reproject["crs"]["functionInvocationValue"]["arguments"]["crs"]) == "EPSG:32633"
    assert value(reproject["crsTransform"]) == [10.0, 0, 0, 0, -10.0, 0]
    clip_geometry = root["arguments"]["geometry"]
    assert calls({"g": clip_geometry}, "GeometryConstructors.Polygon")
    assert value(calls(clip_geometry, "Projection")[0]["crs"]) == "EPSG:4326"


def test_export_file_dimensions(ee_api):
    options = task(file_dimensions=1024).config["fileExportOptions"]
    assert options["geoTiffOptions"]["tileDimensions"] == {"width": 1024, "height": 1024}
    options = task(file_dimensions=None).config["fileExportOptions"]
    assert "tileDimensions" not in options["geoTiffOptions"]
    with pytest.raises(BadInputError, match="multiple of 256"):
        task(file_dimensions=1000)
    with pytest.raises(BadInputError, match="bucket"):
        task(bucket="")


def test_start_export_returns_operation_name(ee_api, fake_export):
    assert exports.start_export(task(description="d")) == "projects/my-project/operations/TASK1"
    assert len(fake_export) == 1 and fake_export[0]["description"] == "d"


@pytest.mark.parametrize(("message", "expected"), [
    ("Quota exceeded: too many concurrent exports", TransientExternalError),
    ("Permission denied on bucket b", FinalExternalError),
])
def test_start_export_maps_ee_errors(ee_api, monkeypatch, message, expected):
    def refuse(request_id, config):
        raise ee.EEException(message)

    monkeypatch.setattr(ee.data, "newTaskId", lambda count=1: ["TASK1"])
    monkeypatch.setattr(ee.data, "exportImage", refuse)
    with pytest.raises(expected, match=f"refused to start export 'demo_s1_x': {message}"):
        exports.start_export(task())


def test_start_export_without_an_operation_name_is_transient():
    started: list[bool] = []
    nameless = SimpleNamespace(config={"description": "d"}, name=None, start=lambda: started.append(True))
    with pytest.raises(TransientExternalError, match="started export 'd' without an operation name"):
        exports.start_export(nameless)  # type: ignore[arg-type]
    assert started == [True]


def test_find_active_export(ee_api, monkeypatch):
    uri = "gs://soil-bucket/composites/demo/s1_x.tif"
    here = "https://console.developers.google.com/storage/browser/soil-bucket/composites/demo/"
    elsewhere = "https://console.developers.google.com/storage/browser/soil-bucket/staging/demo/"
    listed = [{"name": "projects/p/operations/STAGING",
               "metadata": {"description": "d", "state": "RUNNING", "destinationUris": [elsewhere]}},
              {"name": "projects/p/operations/LIVE",
               "metadata": {"description": "d", "state": "RUNNING", "destinationUris": [here]}}]
    monkeypatch.setattr(ee.data, "listOperations", lambda *a, **k: listed)
    assert exports.find_active_export("d", uri) == "projects/p/operations/LIVE"
    assert exports.find_active_export("other", uri) is None
    # only the one writing elsewhere is running: it is not adopted
    assert exports.find_active_export("d", "gs://soil-bucket/composites/other/s1_x.tif") is None
    del listed[1]
    assert exports.find_active_export("d", uri) is None

    def broken(*a, **k):
        raise ee.EEException("Internal error")

    monkeypatch.setattr(ee.data, "listOperations", broken)
    with pytest.raises(TransientExternalError, match="cannot list Earth Engine operations: Internal error"):
        exports.find_active_export("d", uri)
