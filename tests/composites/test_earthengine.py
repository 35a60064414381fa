"""The Earth Engine backend of the composites, offline: the serialised expressions the server would
evaluate and what :class:`EarthEngineBackend` starts, reuses, refuses and waits for.
``ee.apitestcase`` installs the algorithm list so that ee objects build and serialise without a
server (the ``ee_api`` fixture)."""

from __future__ import annotations

import functools
from datetime import date
from types import SimpleNamespace

import ee
import pytest

from soilclay.composites import earthengine as eeb
from soilclay.composites.parity import MAX_RAW
from soilclay.composites.recipe import Recipe
from soilclay.contract import S1_COMPOSITE_BANDS, S2_BANDS, S2_COUNT_BANDS
from soilclay.earthengine import operations, session
from soilclay.earthengine.geometry import geometry_from_geojson
from soilclay.errors import BadInputError, FinalExternalError
from tests.earthengine.offline import (
    AOI,
    Expr,
    arg_values,
    calls,
    expression,
    field_filters,
    install_fake_export,
    root_call,
    value,
)


def scene_id_filters(tree: Expr) -> list[list[str]]:
    """The id lists of every ``system:index`` in-list filter (``ee.Filter.inList``) of the expression."""
    return [value(a["leftValue"]) for a in calls(tree, "Filter.listContains")
            if value(a.get("rightField", {})) == "system:index"]

START, END = date(2020, 1, 1), date(2021, 12, 31)
#: The planned scenes' ids (``system:index``) an expression is built for.
SCENE_IDS = ["20200105T101401_20200105T101358_T33UUU", "20200110T101319_20200110T101315_T33UUU"]


def recipe(s2: dict | None = None, s1: dict | None = None) -> Recipe:
    return Recipe.parse({"aoi": "demo", "window": {"years": 2}, "grid": {"crs": "EPSG:32633", "resolution": 10},
                         "s2": s2 or {}, "s1": s1 or {}})


def s2_tree(**params) -> Expr:
    return expression(eeb.s2_composite(recipe(s2=params), geometry_from_geojson(AOI), START, END,
                                       scene_ids=SCENE_IDS))


def s1_tree(**params) -> Expr:
    return expression(eeb.s1_composite(recipe(s1=params), geometry_from_geojson(AOI), START, END,
                                       scene_ids=SCENE_IDS))


# --------------------------------------------------------------------------- Sentinel-2


def test_s2_default_recipe_expression(ee_api):
    tree = s2_tree()
    assert arg_values(tree, "ImageCollection.load", "id") == ["COPERNICUS/S2_SR_HARMONIZED"]
    # inclusive end: filterDate's exclusive bound is the day after
    assert arg_values(tree, "DateRange", "start") == ["2020-01-01"]
    assert arg_values(tree, "DateRange", "end") == ["2022-01-01"]
    assert calls(tree, "Filter.intersects"), "filterBounds on the region"
    assert not any(f == "CLOUDY_PIXEL_PERCENTAGE" for f, _ in field_filters(tree, "Filter.greaterThan"))
    [remap] = calls(tree, "Image.remap")
    assert (value(remap["from"]), value(remap["to"]), value(remap["defaultValue"])) == ([4, 5], [1, 1], 0)
    assert arg_values(tree, "Image.select", "bandSelectors").count(["SCL"]) == 1
    assert sorted(arg_values(tree, "Image.normalizedDifference", "bandNames")) == [["B11", "B12"], ["B8", "B4"]]
    assert sorted(arg_values(tree, "Image.lt", "image2")) == [0.075, 0.25]
    assert not calls(tree, "Image.lte"), "no SCMaP rule unless scmap_max is set"
    assert len(calls(tree, "Reducer.median")) == 1 and not calls(tree, "Reducer.percentile")
    assert arg_values(tree, "Image.gte", "image2") == [3]
    assert scene_id_filters(tree) == [SCENE_IDS], "exactly the planned scenes"
    # spectra stay in L2A DN (reflectance x 10000) like the local backend's; the only division is the frequency,
    # of counts cast to float first (Image.divide of two integer images is an integer division)
    [divide] = calls(tree, "Image.divide")
    for operand in ("image1", "image2"):
        assert divide[operand]["functionInvocationValue"]["functionName"] == "Image.toFloat", operand
    # valid = clear where B4, B8, B11 and B12 hold data: their masks, reduced by min, and-ed with the SCL test
    assert ["B4", "B8", "B11", "B12"] in arg_values(tree, "Image.select", "bandSelectors")
    assert len(calls(tree, "Image.mask")) == 1 and len(calls(tree, "Reducer.min")) == 1
    # exact median up to an explicit maxRaw
    assert arg_values(tree, "Reducer.median", "maxRaw") == [MAX_RAW]
    assert not calls(tree, "Image.clip") and not calls(tree, "Image.clipToCollection"), "no clip: the grid's box"
    # counts are 0 (not nodata) where nothing was observed; the frequency is masked where valid_count is 0
    assert arg_values(tree, "Image.unmask", "value") == [0]
    assert arg_values(tree, "Image.gt", "image2") == [0]
    assert not calls(tree, "Join.saveFirst")


def test_s2_band_names_and_order(ee_api):
    tree = s2_tree()
    select_renames = [(value(a["bandSelectors"]), value(a["newNames"])) for a in calls(tree, "Image.select")
                      if "newNames" in a]
    assert select_renames == [(["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"], list(S2_BANDS))]
    renames = arg_values(tree, "Image.rename", "names")
    assert list(S2_BANDS) in renames, "reducer output renamed back to exactly S2_BANDS"
    for band in S2_COUNT_BANDS:
        assert [band] in renames
    root = root_call(tree)
    assert root["functionName"] == "Image.select"
    assert value(root["arguments"]["bandSelectors"]) == list(S2_BANDS + S2_COUNT_BANDS)
    assert root["arguments"]["input"]["functionInvocationValue"]["functionName"] == "Image.toFloat"


def test_s2_optional_rules_and_statistics(ee_api):
    tree = s2_tree(cloud_probability_max=40, scmap_max=0.1, statistic="p25", max_scene_cloud_cover=60,
                   scl_keep=[5, 4, 7], min_bare_count=5, ndvi_max=0.3)
    assert sorted(arg_values(tree, "ImageCollection.load", "id")) == [
        "COPERNICUS/S2_CLOUD_PROBABILITY", "COPERNICUS/S2_SR_HARMONIZED"]
    assert arg_values(tree, "Join.saveFirst", "matchKey") == ["cloud_probability"]
    [equals] = [a for a in calls(tree, "Filter.equals") if "rightField" in a]
    assert (value(equals["leftField"]), value(equals["rightField"])) == ("system:index", "system:index")
    assert sorted(arg_values(tree, "Image.lt", "image2")) == [0.075, 0.3, 40]
    assert ["B8", "B12"] in arg_values(tree, "Image.normalizedDifference", "bandNames")
    assert arg_values(tree, "Image.lte", "image2") == [0.1]
    assert arg_values(tree, "Reducer.percentile", "percentiles") == [[25]]
    assert arg_values(tree, "Reducer.percentile", "maxRaw") == [MAX_RAW]
    assert not calls(tree, "Reducer.median")
    # the scene cloud-cover limit is applied when the scenes are selected (soilclay.composites.selection),
    # not again in the expression; both collections (scenes and cloud probabilities) hold the planned ids only
    assert not calls(tree, "Filter.greaterThan") and not calls(tree, "Filter.lessThanOrEquals")
    assert scene_id_filters(tree) == [SCENE_IDS]
    filtered = [load for c in calls(tree, "Collection.filter") if calls({"x": c["filter"]}, "Filter.listContains")
                for load in arg_values({"x": c["collection"]}, "ImageCollection.load", "id")]
    assert sorted(filtered) == ["COPERNICUS/S2_CLOUD_PROBABILITY", "COPERNICUS/S2_SR_HARMONIZED"]
    [remap] = calls(tree, "Image.remap")
    assert value(remap["from"]) == [4, 5, 7] and value(remap["to"]) == [1, 1, 1]
    assert arg_values(tree, "Image.gte", "image2") == [5]


def test_s2_mean_statistic(ee_api):
    tree = s2_tree(statistic="mean")
    assert len(calls(tree, "Reducer.mean")) == 1 and not calls(tree, "Reducer.median")


def test_changing_a_threshold_changes_the_expression(ee_api):
    region = geometry_from_geojson(AOI)
    base = eeb.s2_composite(recipe(), region, START, END, scene_ids=SCENE_IDS).serialize()
    assert eeb.s2_composite(recipe(), region, START, END, scene_ids=SCENE_IDS).serialize() == base, "deterministic"
    for change in ({"ndvi_max": 0.2}, {"nbr2_max": 0.05}, {"min_bare_count": 4}, {"scl_keep": [4]},
                   {"statistic": "p50"}):
        assert eeb.s2_composite(recipe(s2=change), region, START, END, scene_ids=SCENE_IDS).serialize() != base, change
    assert eeb.s2_composite(recipe(), region, START, date(2021, 12, 30), scene_ids=SCENE_IDS).serialize() != base


def test_s2_refuses_recipe_without_s2_and_reversed_period(ee_api):
    region = geometry_from_geojson(AOI)
    no_s2 = Recipe.parse({"aoi": "demo", "window": {"years": 1}, "grid": {"crs": "EPSG:32633"}, "s2": None})
    with pytest.raises(BadInputError, match="no sentinel-2"):
        eeb.s2_composite(no_s2, region, START, END, scene_ids=SCENE_IDS)
    with pytest.raises(BadInputError, match="before it starts"):
        eeb.s2_composite(recipe(), region, END, START, scene_ids=SCENE_IDS)


# --------------------------------------------------------------------------- Sentinel-1


def test_s1_default_expression(ee_api):
    tree = s1_tree()
    assert arg_values(tree, "ImageCollection.load", "id") == ["COPERNICUS/S1_GRD"]
    assert arg_values(tree, "DateRange", "end") == ["2022-01-01"]
    equals = field_filters(tree, "Filter.equals")
    assert ("instrumentMode", "IW") in equals and ("resolution_meters", 10) in equals
    assert not any(field == "orbitProperties_pass" for field, _ in equals), "the pass is chosen in the selection"
    assert scene_id_filters(tree) == [SCENE_IDS]
    assert sorted(field_filters(tree, "Filter.listContains")) == [
        ("transmitterReceiverPolarisation", "VH"), ("transmitterReceiverPolarisation", "VV")]
    assert not calls(tree, "Image.focalMean")
    # the median through ImageCollection.reduce with an explicit maxRaw (ImageCollection.median() leaves it
    # to the server); count() serialises as the 'reduce.count' algorithm
    assert arg_values(tree, "Reducer.median", "maxRaw") == [MAX_RAW] and not calls(tree, "reduce.median")
    assert len(calls(tree, "reduce.count")) == 1
    assert not calls(tree, "Image.clip")
    assert arg_values(tree, "Image.unmask", "value") == [0], "count is 0 where no observation"
    assert calls(tree, "Image.subtract")
    assert ["VV_VH"] in arg_values(tree, "Image.rename", "names")
    root = root_call(tree)
    assert root["functionName"] == "Image.select"
    assert value(root["arguments"]["bandSelectors"]) == list(S1_COMPOSITE_BANDS)
    assert root["arguments"]["input"]["functionInvocationValue"]["functionName"] == "Image.toFloat"


@pytest.mark.parametrize("orbit_pass", ["ascending", "descending"])
def test_s1_orbit_pass_is_decided_by_the_scene_selection(ee_api, orbit_pass):
    """The expression composites the ids it is given; the pass was chosen when they were selected."""
    tree = s1_tree(orbit_pass=orbit_pass)
    assert not any(field == "orbitProperties_pass" for field, _ in field_filters(tree, "Filter.equals"))
    assert scene_id_filters(tree) == [SCENE_IDS]


def test_an_expression_needs_scene_ids(ee_api):
    with pytest.raises(BadInputError, match="at least one scene id"):
        eeb.s2_composite(recipe(), geometry_from_geojson(AOI), START, END, scene_ids=[])


def test_s1_boxcar_in_linear_power(ee_api):
    tree = s1_tree(speckle_filter="boxcar", speckle_size=5)
    [focal] = calls(tree, "Image.focalMean")
    [kernel] = calls(focal, "Kernel.square")
    assert (value(kernel["radius"]), value(kernel["units"])) == (2, "pixels")
    # dB -> linear (exp(dB * ln10 / 10)) before the mean, back to dB (10 log10) after it
    assert focal["image"]["functionInvocationValue"]["functionName"] == "Image.exp"
    assert len(calls(tree, "Image.log10")) == 1
    assert pytest.approx(0.2302585, rel=1e-6) in arg_values(tree, "Image.multiply", "image2")
    wider = s1_tree(speckle_filter="boxcar", speckle_size=7)
    assert value(calls(wider, "Kernel.square")[0]["radius"]) == 3


# --------------------------------------------------------------------------- backend


@pytest.fixture
def fake_export(monkeypatch) -> list[dict]:
    return install_fake_export(monkeypatch)


def test_backend_start(ee_api, fake_export):
    backend = eeb.EarthEngineBackend("gs://soil-bucket/", "/composites/demo/")
    operation, uri = backend.start(recipe(), "sentinel-2", AOI, (START, END), "demo/s2.abc123", SCENE_IDS)
    assert operation == "projects/my-project/operations/TASK1"
    assert uri == "gs://soil-bucket/composites/demo/demo/s2.abc123.tif"
    config = fake_export[0]
    # a readable head and a digest of the whole destination (bucket, prefix and name)
    assert config["description"] == eeb.export_description("soil-bucket/composites/demo/demo/s2.abc123")
    assert config["description"].startswith("soil-bucket_composites_demo_demo_s2_abc123_")
    assert config["fileExportOptions"]["cloudStorageDestination"] == {
        "bucket": "soil-bucket", "filenamePrefix": "composites/demo/demo/s2.abc123"}
    tree = expression(config["expression"])
    assert arg_values(tree, "ImageCollection.load", "id") == ["COPERNICUS/S2_SR_HARMONIZED"]
    other_bucket = eeb.EarthEngineBackend("gs://other-bucket/", "/composites/demo/")
    other_bucket.start(recipe(), "sentinel-2", AOI, (START, END), "demo/s2.abc123", SCENE_IDS)
    assert fake_export[1]["description"] != config["description"], "another deployment's export is another"


def test_backend_start_reuses_a_running_export_of_the_same_name(ee_api, fake_export, monkeypatch):
    """A retry (after a trigger timeout or a lost worker) waits for the export already running."""
    here = "https://console.developers.google.com/storage/browser/soil-bucket/composites/demo/"
    elsewhere = "https://console.developers.google.com/storage/browser/soil-bucket/staging/demo/"
    desc = eeb.export_description("soil-bucket/composites/demo/s2.abc123")
    ops = [{"name": "projects/p/operations/OLD", "metadata": {"description": desc, "state": "SUCCEEDED",
                                                              "destinationUris": [here]}},
           {"name": "projects/p/operations/LIVE", "metadata": {"description": desc, "state": "RUNNING",
                                                               "destinationUris": [here]}},
           {"name": "projects/p/operations/STAGING", "metadata": {"description": desc, "state": "RUNNING",
                                                                  "destinationUris": [elsewhere]}},
           {"name": "projects/p/operations/OTHER",
            "metadata": {"description": eeb.export_description("soil-bucket/composites/demo/s1.abc123"),
                         "state": "RUNNING", "destinationUris": [here]}}]
    monkeypatch.setattr(ee.data, "listOperations", lambda *a, **k: ops)
    backend = eeb.EarthEngineBackend("soil-bucket", "composites")
    operation, uri = backend.start(recipe(), "sentinel-2", AOI, (START, END), "demo/s2.abc123", SCENE_IDS)
    assert (operation, uri) == ("projects/p/operations/LIVE", "gs://soil-bucket/composites/demo/s2.abc123.tif")
    assert fake_export == []  # nothing new started
    ops[1]["metadata"]["state"] = "FAILED"  # a failed one is not reused: a new export starts
    assert backend.start(recipe(), "sentinel-2", AOI, (START, END), "demo/s2.abc123", SCENE_IDS)[0].endswith("TASK1")


def test_backend_refuses_bad_requests(ee_api, fake_export):
    backend = eeb.EarthEngineBackend("soil-bucket", "")
    with pytest.raises(BadInputError, match="sensor"):
        backend.start(recipe(), "landsat", AOI, (START, END), "x", SCENE_IDS)
    no_s1 = Recipe.parse({"aoi": "demo", "window": {"years": 1}, "grid": {"crs": "EPSG:32633"}, "s1": None})
    with pytest.raises(BadInputError, match="no sentinel-1"):
        backend.start(no_s1, "sentinel-1", AOI, (START, END), "x", SCENE_IDS)
    huge = {"type": "Polygon", "coordinates": [[[11.0, 52.0], [13.0, 52.0], [13.0, 53.0], [11.0, 53.0], [11.0, 52.0]]]}
    with pytest.raises(BadInputError, match="split the AOI"):
        backend.start(recipe(), "sentinel-2", huge, (START, END), "x", SCENE_IDS)
    with pytest.raises(BadInputError, match="bucket"):
        eeb.EarthEngineBackend("gs://", "p")
    assert fake_export == [], "nothing was started"
    # an empty prefix writes at the bucket root
    assert backend.start(recipe(), "sentinel-1", AOI, (START, END), "s1", SCENE_IDS)[1] == "gs://soil-bucket/s1.tif"


def test_backend_bucket_and_prefix_are_normalised():
    backend = eeb.EarthEngineBackend("gs://soil-bucket/", "/composites/demo/")
    assert (backend.bucket, backend.prefix) == ("soil-bucket", "composites/demo")
    assert eeb.EarthEngineBackend("soil-bucket", "").prefix == ""
    for bad in ("gs://", "", "soil-bucket/sub", "Not_A_Bucket!"):
        with pytest.raises(BadInputError, match="bucket"):
            eeb.EarthEngineBackend(bad, "p")


def test_backend_build_waits_for_the_export(ee_api, fake_export, monkeypatch):
    polled: list[str] = []

    def get_operation(name):
        polled.append(name)
        if len(polled) == 1:
            raise ee.EEException("Service unavailable (503)")  # one transient poll error: retried
        return {"name": name, "done": True, "metadata": {"state": "SUCCEEDED"}}

    monkeypatch.setattr(ee.data, "getOperation", get_operation)
    slept: list[float] = []  # wait_for_export's sleep is bound at definition: pass a recording one
    monkeypatch.setattr(eeb, "wait_for_export", functools.partial(operations.wait_for_export, sleep=slept.append))
    aoi = SimpleNamespace(geometry=AOI)
    uri = eeb.EarthEngineBackend("soil-bucket", "c").build(recipe(), "sentinel-1", aoi, (START, END), "x", SCENE_IDS)
    assert uri == "gs://soil-bucket/c/x.tif"
    assert polled == ["projects/my-project/operations/TASK1"] * 2
    assert slept == [operations.DEFAULT_POLL_INTERVAL_S], "one wait between the failed poll and the good one"


def test_backend_build_raises_the_export_failure(ee_api, fake_export, monkeypatch):
    monkeypatch.setattr(ee.data, "getOperation", lambda name: {
        "name": name, "done": True, "metadata": {"state": "FAILED"}, "error": {"message": "User memory limit"}})
    with pytest.raises(FinalExternalError, match="User memory limit"):
        eeb.EarthEngineBackend("soil-bucket", "c").build(recipe(), "sentinel-1", SimpleNamespace(geometry=AOI),
                                                         (START, END), "x", SCENE_IDS)


def test_from_settings_splits_the_store_url_and_initialises(monkeypatch):
    seen: list[tuple] = []
    monkeypatch.setattr(eeb, "initialize", lambda *args: seen.append(args))
    settings = SimpleNamespace(store_url="gs://soil-bucket/runs/2024/", ee_project="soil-project",
                               ee_service_account="", ee_key_file="")
    backend = eeb.EarthEngineBackend.from_settings(settings)
    assert (backend.bucket, backend.prefix) == ("soil-bucket", "runs/2024")
    assert seen == [("soil-project", None, None)]
    with pytest.raises(BadInputError, match="SOILCLAY_STORE_URL"):
        eeb.EarthEngineBackend.from_settings(SimpleNamespace(**{**vars(settings), "store_url": "/data/store"}))
    assert len(seen) == 1, "refused before initialising Earth Engine"


def test_from_settings_refuses_a_missing_project_as_bad_input(monkeypatch):
    monkeypatch.setattr(ee, "Initialize", lambda *a, **k: pytest.fail("must not initialise"))
    settings = SimpleNamespace(store_url="gs://soil-bucket/p", ee_project="", ee_service_account="",
                               ee_key_file="")
    assert eeb.initialize is session.initialize
    with pytest.raises(BadInputError, match="explicit Google Cloud project"):
        eeb.EarthEngineBackend.from_settings(settings)
