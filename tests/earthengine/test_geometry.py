"""GeoJSON -> ee.Geometry, points and the pixel lattice, checked on the serialised expressions."""

from __future__ import annotations

import pytest

from soilclay.earthengine import geometry
from soilclay.errors import BadInputError
from tests.earthengine.offline import AOI, calls, expression, root_call, value


def test_polygons_have_planar_edges_in_epsg_4326(ee_api):
    root = root_call(expression(geometry.geometry_from_geojson(AOI)))
    assert root["functionName"] == "GeometryConstructors.Polygon"
    assert value(root["arguments"]["geodesic"]) is False
    assert value(calls({"g": root}, "Projection")[0]["crs"]) == "EPSG:4326"


def test_points_take_no_geodesic_flag(ee_api):
    root = root_call(expression(geometry.geometry_from_geojson({"type": "Point", "coordinates": [12.6, 52.5]})))
    assert root["functionName"] == "GeometryConstructors.Point" and "geodesic" not in root["arguments"]


@pytest.mark.parametrize("bad", [{"type": "Polygon"}, {"coordinates": []}, "POLYGON((0 0))",
                                 {"type": "Polygon", "coordinates": "x"}])
def test_unusable_geojson_is_bad_input(ee_api, bad):
    with pytest.raises(BadInputError, match="GeoJSON geometry"):
        geometry.geometry_from_geojson(bad)


def test_point_validates_its_coordinates(ee_api):
    root = root_call(expression(geometry.point("12.5", 52)))
    assert value(root["arguments"]["coordinates"]) == [12.5, 52.0]
    for lon, lat in ((200, 0), (0, -91), (float("nan"), 0), ("east", 0), (None, 1)):
        with pytest.raises(BadInputError, match="point needs"):
            geometry.point(lon, lat)


def test_point_features_carry_the_whole_record(ee_api):
    records = [{"sample_id": 1, "point_id": "a", "lon": 12.6, "lat": 52.5, "clay": 21.5},
               {"sample_id": 2, "point_id": "b", "lon": 12.7, "lat": 52.55, "clay": None}]
    tree = expression(geometry.point_features(records))
    features = calls(tree.resolve(tree.root), "Feature")
    assert [value(f["metadata"]) for f in features] == records
    assert [value(f["geometry"]["functionInvocationValue"]["arguments"]["coordinates"]) for f in features] == [
        [12.6, 52.5], [12.7, 52.55]]
    with pytest.raises(BadInputError, match="record 1 needs fields 'x' and 'y'"):
        geometry.point_features([{"x": 1, "y": 2}, {"lon": 1}], lon="x", lat="y")


def test_the_pixel_lattice(ee_api):
    assert geometry.crs_transform(10) == [10.0, 0, 0, 0, -10.0, 0]
    for bad in (0, -5, float("inf")):
        with pytest.raises(BadInputError, match="resolution"):
            geometry.crs_transform(bad)
    root = root_call(expression(geometry.grid_projection("EPSG:32633", 20)))
    assert root["functionName"] == "Projection"
    assert value(root["arguments"]["crs"]) == "EPSG:32633"
    assert value(root["arguments"]["transform"]) == [20.0, 0, 0, 0, -20.0, 0]
    with pytest.raises(BadInputError, match="CRS"):
        geometry.grid_projection("", 10)
