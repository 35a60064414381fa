"""The Earth Engine scene source: the pure rows -> SceneRef conversion, the serialised catalogue
query, and one getInfo() per listing (answered offline by a patched ``ee.data.computeValue``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import ee
import pytest

from soilclay.contract import S1_COLLECTION, S2_COLLECTION, SceneRef
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from soilclay.scenes import earthengine as ees
from soilclay.scenes.types import SceneSource
from tests.earthengine.offline import AOI, arg_values, calls, expression, field_filters

S2_INDEX = "20200105T102421_20200105T102423_T33UUU"
S1_INDEX = "S1B_IW_GRDH_1SDV_20200106T165021_20200106T165046_019690_0253A6_5D2C"
S2_ROW = [S2_INDEX, 1578219861000, "Sentinel-2A", 12.5, None]
S1_ROW = [S1_INDEX, 1578329421000, "B", None, "ASCENDING"]


def test_s2_row_to_scene_ref():
    ref = ees.scene_ref_from_row(S2_COLLECTION, S2_ROW)
    assert ref == SceneRef(
        scene_id=S2_INDEX, collection=S2_COLLECTION, platform="Sentinel-2A",
        acquired_at=datetime(2020, 1, 5, 10, 24, 21, tzinfo=UTC), source="earthengine",
        href=f"COPERNICUS/S2_SR_HARMONIZED/{S2_INDEX}", cloud_cover=12.5, orbit_state=None)
    assert ref.acquired_at.utcoffset() == timedelta(0)


def test_s1_row_to_scene_ref():
    ref = ees.scene_ref_from_row(S1_COLLECTION, S1_ROW)
    assert (ref.scene_id, ref.platform, ref.orbit_state, ref.cloud_cover) == (S1_INDEX, "sentinel-1b", "ascending",
                                                                              None)
    assert ref.href == f"COPERNICUS/S1_GRD/{S1_INDEX}"
    assert ref.acquired_at == datetime(2020, 1, 6, 16, 50, 21, tzinfo=UTC)
    assert ees.scene_ref_from_row(S1_COLLECTION, [S1_INDEX, 1578329421000, None, None, None]).platform == "unknown"


def test_rows_sorted_by_acquisition():
    refs = ees.scene_refs_from_rows({S1_COLLECTION: [S1_ROW], S2_COLLECTION: [S2_ROW], "sentinel-2-l2a": [S2_ROW]})
    assert [r.scene_id for r in refs] == [S2_INDEX, S1_INDEX]
    later = [S2_INDEX.replace("0105", "0110"), S2_ROW[1] + 5 * 86_400_000, "Sentinel-2B", 3.0, None]
    refs = ees.scene_refs_from_rows({S2_COLLECTION: [later, S2_ROW]})
    assert [r.platform for r in refs] == ["Sentinel-2A", "Sentinel-2B"]
    assert ees.scene_refs_from_rows({S2_COLLECTION: []}) == []


@pytest.mark.parametrize(("collection", "row", "match"), [
    ("landsat", S2_ROW, "collection must be"),
    (S2_COLLECTION, S2_ROW[:4], "row of 5 values"),
    (S2_COLLECTION, [None, 1578219861000, "Sentinel-2A", 1.0, None], "system:index"),
    (S2_COLLECTION, [S2_INDEX, None, "Sentinel-2A", 1.0, None], "numeric system:time_start"),
])
def test_bad_rows(collection, row, match):
    with pytest.raises(BadInputError, match=match):
        ees.scene_ref_from_row(collection, row)


def test_query_expression(ee_api):
    since = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    tree = expression(ees.rows_query(AOI, (S2_COLLECTION, S1_COLLECTION), since))
    assert sorted(arg_values(tree, "ImageCollection.load", "id")) == ["COPERNICUS/S1_GRD",
                                                                     "COPERNICUS/S2_SR_HARMONIZED"]
    watermark = int(datetime(2024, 3, 1, 11, 0, tzinfo=UTC).timestamp() * 1000)
    assert field_filters(tree, "Filter.greaterThan") == [("system:time_start", watermark)]
    # the serialiser shares the identical filter; the expanded tree shows both collections use it
    assert field_filters(tree.resolve(tree.root), "Filter.greaterThan") == [("system:time_start", watermark)] * 2
    assert calls(tree, "Filter.intersects"), "filterBounds on the AOI"
    equals = field_filters(tree, "Filter.equals")
    assert ("instrumentMode", "IW") in equals
    assert sorted(field_filters(tree, "Filter.listContains")) == [
        ("transmitterReceiverPolarisation", "VH"), ("transmitterReceiverPolarisation", "VV")]
    assert arg_values(tree, "AggregateFeatureCollection.array", "property") == ["soilclay_row"] * 2
    properties = set(arg_values(tree, "Element.get", "property"))
    assert {"system:index", "system:time_start", "SPACECRAFT_NAME", "platform_number", "CLOUDY_PIXEL_PERCENTAGE",
            "orbitProperties_pass"} <= properties
    # one dictionary {collection: rows}: one getInfo() answers for all collections
    assert sorted(tree.root["dictionaryValue"]["values"]) == [S1_COLLECTION, S2_COLLECTION]


def test_query_without_watermark_and_s2_only(ee_api):
    tree = expression(ees.rows_query(AOI, (S2_COLLECTION,), None))
    assert arg_values(tree, "ImageCollection.load", "id") == ["COPERNICUS/S2_SR_HARMONIZED"]
    assert not calls(tree, "Filter.greaterThan")
    assert not calls(tree, "Filter.listContains")


def test_query_refuses_bad_input(ee_api):
    with pytest.raises(BadInputError, match="timezone-aware"):
        ees.rows_query(AOI, (S2_COLLECTION,), datetime(2024, 1, 1))
    with pytest.raises(BadInputError, match="collections must be among"):
        ees.rows_query(AOI, ("sentinel-3",), None)
    with pytest.raises(BadInputError, match="GeoJSON geometry"):
        ees.rows_query({"type": "Polygon"}, (S2_COLLECTION,), None)


def test_list_scenes_one_getinfo(ee_api, monkeypatch):
    asked = []

    def compute_value(obj):
        asked.append(obj)
        return {S2_COLLECTION: [S2_ROW], S1_COLLECTION: [S1_ROW]}

    monkeypatch.setattr(ee.data, "computeValue", compute_value)
    source: SceneSource = ees.EarthEngineSceneSource()
    assert source.source == "earthengine"
    refs = source.list_scenes(AOI, (S2_COLLECTION, S1_COLLECTION), since=datetime(2020, 1, 1, tzinfo=UTC))
    assert [(r.collection, r.scene_id) for r in refs] == [(S2_COLLECTION, S2_INDEX), (S1_COLLECTION, S1_INDEX)]
    assert len(asked) == 1


@pytest.mark.parametrize(("answer", "expected"), [
    (ee.EEException("Computation timed out."), TransientExternalError),
    (ee.EEException("Permission denied"), FinalExternalError),
    ("not a dict", FinalExternalError),
])
def test_list_scenes_errors(ee_api, monkeypatch, answer, expected):
    def compute_value(obj):
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(ee.data, "computeValue", compute_value)
    with pytest.raises(expected):
        ees.EarthEngineSceneSource().list_scenes(AOI, (S2_COLLECTION,))
