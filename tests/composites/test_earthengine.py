"""The Earth Engine backend, offline: the serialised expressions the server would evaluate, the
export request, the export-state decision and the error mapping. ``ee.apitestcase`` installs the
algorithm list so that ee objects build and serialise without a server."""

from __future__ import annotations

import json
from datetime import date

import ee
import pytest

from soilclay.composites import earthengine as eeb
from soilclay.composites.recipe import S1_BANDS, S2_BANDS, S2_COUNT_BANDS, Recipe
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError

AOI = {"type": "Polygon", "coordinates": [[[12.60, 52.50], [12.75, 52.50], [12.75, 52.60], [12.60, 52.60],
                                           [12.60, 52.50]]]}
START, END = date(2020, 1, 1), date(2021, 12, 31)


# --------------------------------------------------------------------------- helpers


class Expr:
    """A serialised Cloud API expression: ``values`` (shared sub-expressions, by id) and ``result``."""

    def __init__(self, obj) -> None:
        encoded = json.loads(obj.serialize())
        self.values: dict = encoded["values"]
        self.root: dict = self.values[encoded["result"]]

    def resolve(self, node):
        """``node`` with value references (and mapped function bodies) replaced by their values."""
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return self.resolve(self.values[node["valueReference"]])
            if "functionDefinitionValue" in node:
                definition = dict(node["functionDefinitionValue"])
                definition["body"] = self.resolve(self.values[definition["body"]])
                return {"functionDefinitionValue": definition}
            return {key: self.resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        return node


def expression(obj) -> Expr:
    return Expr(obj)


def calls(tree, function_name: str) -> list[dict]:
    """Arguments (references resolved) of every invocation of ``function_name``. On an
    :class:`Expr` each shared value is visited once, so counts are those of the expression graph
    rather than of its fully expanded tree; on a plain (resolved) dict, every occurrence counts."""
    found = []
    seen: set[str] = set()
    expr = tree if isinstance(tree, Expr) else None

    def follow(reference: str):
        if reference not in seen:
            seen.add(reference)
            walk(expr.values[reference])

    def walk(node):
        if isinstance(node, dict):
            if expr is not None and set(node) == {"valueReference"}:
                return follow(node["valueReference"])
            if expr is not None and "functionDefinitionValue" in node:
                return follow(node["functionDefinitionValue"]["body"])
            invocation = node.get("functionInvocationValue")
            if isinstance(invocation, dict) and invocation.get("functionName") == function_name:
                arguments = invocation.get("arguments", {})
                found.append(expr.resolve(arguments) if expr is not None else arguments)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree.root if expr is not None else tree)
    return found


def root_call(tree: Expr) -> dict:
    """The outermost invocation, references resolved."""
    return tree.resolve(tree.root)["functionInvocationValue"]


def value(node):
    """A constant node as a Python value; ``Image.constant(x)`` as x; anything else unchanged."""
    if "constantValue" in node:
        return node["constantValue"]
    if "arrayValue" in node:
        return [value(item) for item in node["arrayValue"]["values"]]
    if "dictionaryValue" in node:
        return {key: value(item) for key, item in node["dictionaryValue"]["values"].items()}
    invocation = node.get("functionInvocationValue", {})
    if invocation.get("functionName") == "Image.constant":
        return value(invocation["arguments"]["value"])
    return node


def arg_values(tree, function_name: str, argument: str) -> list:
    """The constant values passed as ``argument`` to every call of ``function_name``."""
    return [value(args[argument]) for args in calls(tree, function_name) if argument in args]


def field_filters(tree, function_name: str) -> list[tuple]:
    """(leftField, rightValue) of every metadata filter ``function_name``."""
    return [(value(a["leftField"]), value(a["rightValue"])) for a in calls(tree, function_name)
            if "leftField" in a and "rightValue" in a]


def recipe(s2: dict | None = None, s1: dict | None = None) -> Recipe:
    return Recipe.parse({"aoi": "demo", "window": {"years": 2}, "grid": {"crs": "EPSG:32633", "resolution": 10},
                         "s2": s2 or {}, "s1": s1 or {}})


def s2_tree(**params) -> Expr:
    return expression(eeb.s2_composite(recipe(s2=params), eeb.geometry_from_geojson(AOI), START, END))


def s1_tree(**params) -> Expr:
    return expression(eeb.s1_composite(recipe(s1=params), eeb.geometry_from_geojson(AOI), START, END))


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
    # spectra stay in L2A DN (reflectance x 10000) like the local backend's; the only division is the frequency
    assert len(calls(tree, "Image.divide")) == 1
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
    assert not calls(tree, "Reducer.median")
    [cloud] = [a for a in calls(tree, "Filter.not")
               if calls({"x": a["filter"]}, "Filter.greaterThan")]
    assert field_filters({"x": cloud["filter"]}, "Filter.greaterThan") == [("CLOUDY_PIXEL_PERCENTAGE", 60)]
    [remap] = calls(tree, "Image.remap")
    assert value(remap["from"]) == [4, 5, 7] and value(remap["to"]) == [1, 1, 1]
    assert arg_values(tree, "Image.gte", "image2") == [5]


def test_s2_mean_statistic(ee_api):
    tree = s2_tree(statistic="mean")
    assert len(calls(tree, "Reducer.mean")) == 1 and not calls(tree, "Reducer.median")


def test_changing_a_threshold_changes_the_expression(ee_api):
    region = eeb.geometry_from_geojson(AOI)
    base = eeb.s2_composite(recipe(), region, START, END).serialize()
    assert eeb.s2_composite(recipe(), region, START, END).serialize() == base, "deterministic"
    for change in ({"ndvi_max": 0.2}, {"nbr2_max": 0.05}, {"min_bare_count": 4}, {"scl_keep": [4]},
                   {"statistic": "p50"}):
        assert eeb.s2_composite(recipe(s2=change), region, START, END).serialize() != base, change
    assert eeb.s2_composite(recipe(), region, START, date(2021, 12, 30)).serialize() != base


def test_s2_refuses_recipe_without_s2_and_reversed_period(ee_api):
    region = eeb.geometry_from_geojson(AOI)
    no_s2 = Recipe.parse({"aoi": "demo", "window": {"years": 1}, "grid": {"crs": "EPSG:32633"}, "s2": None})
    with pytest.raises(BadInputError, match="no sentinel-2"):
        eeb.s2_composite(no_s2, region, START, END)
    with pytest.raises(BadInputError, match="before it starts"):
        eeb.s2_composite(recipe(), region, END, START)


# --------------------------------------------------------------------------- Sentinel-1


def test_s1_default_expression(ee_api):
    tree = s1_tree()
    assert arg_values(tree, "ImageCollection.load", "id") == ["COPERNICUS/S1_GRD"]
    assert arg_values(tree, "DateRange", "end") == ["2022-01-01"]
    equals = field_filters(tree, "Filter.equals")
    assert ("instrumentMode", "IW") in equals and ("resolution_meters", 10) in equals
    assert not any(field == "orbitProperties_pass" for field, _ in equals), "both passes by default"
    assert sorted(field_filters(tree, "Filter.listContains")) == [
        ("transmitterReceiverPolarisation", "VH"), ("transmitterReceiverPolarisation", "VV")]
    assert not calls(tree, "Image.focalMean")
    # ImageCollection.median()/count() serialise as the 'reduce.median'/'reduce.count' algorithms
    assert len(calls(tree, "reduce.median")) == 1 and not calls(tree, "Reducer.mean")
    assert len(calls(tree, "reduce.count")) == 1
    assert arg_values(tree, "Image.unmask", "value") == [0], "count is 0 where no observation"
    assert calls(tree, "Image.subtract")
    assert ["VV_VH"] in arg_values(tree, "Image.rename", "names")
    root = root_call(tree)
    assert root["functionName"] == "Image.select"
    assert value(root["arguments"]["bandSelectors"]) == list(S1_BANDS)
    assert root["arguments"]["input"]["functionInvocationValue"]["functionName"] == "Image.toFloat"


@pytest.mark.parametrize("orbit_pass", ["ascending", "descending"])
def test_s1_orbit_pass_filter(ee_api, orbit_pass):
    equals = field_filters(s1_tree(orbit_pass=orbit_pass), "Filter.equals")
    assert ("orbitProperties_pass", orbit_pass.upper()) in equals


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


# --------------------------------------------------------------------------- export


def test_export_config_without_starting(ee_api):
    r = recipe()
    region = eeb.geometry_from_geojson(AOI)
    task = eeb.export_to_gcs(eeb.s1_composite(r, region, START, END), bucket="soil-bucket",
                             prefix="composites/demo/s1_x", description="demo_s1_x", region=region, grid=r.grid)
    assert (task.state, task.id, task.name) == ("UNSUBMITTED", None, None)
    config = dict(task.config)
    tree = expression(config.pop("expression"))
    assert config == {
        "description": "demo_s1_x",
        "fileExportOptions": {
            "fileFormat": "GEO_TIFF",
            "cloudStorageDestination": {"bucket": "soil-bucket", "filenamePrefix": "composites/demo/s1_x"},
            "geoTiffOptions": {"cloudOptimized": True, "noData": {"floatValue": eeb.NODATA},
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
    r = recipe()
    region = eeb.geometry_from_geojson(AOI)
    image = eeb.s1_composite(r, region, START, END)
    kwargs = {"bucket": "b", "prefix": "p", "description": "d", "region": region, "grid": r.grid}
    options = eeb.export_to_gcs(image, file_dimensions=1024, **kwargs).config["fileExportOptions"]
    assert options["geoTiffOptions"]["tileDimensions"] == {"width": 1024, "height": 1024}
    options = eeb.export_to_gcs(image, file_dimensions=None, **kwargs).config["fileExportOptions"]
    assert "tileDimensions" not in options["geoTiffOptions"]
    with pytest.raises(BadInputError, match="multiple of 256"):
        eeb.export_to_gcs(image, file_dimensions=1000, **kwargs)
    with pytest.raises(BadInputError, match="bucket"):
        eeb.export_to_gcs(image, **{**kwargs, "bucket": ""})


@pytest.fixture
def fake_export(monkeypatch) -> list[dict]:
    """ee.data's export calls replaced: records the requests, answers with an operation."""
    requests: list[dict] = []

    def export_image(request_id, config):
        requests.append(config)
        return {"name": f"projects/my-project/operations/{request_id}"}

    monkeypatch.setattr(ee.data, "newTaskId", lambda count=1: ["TASK1"])
    monkeypatch.setattr(ee.data, "exportImage", export_image)
    monkeypatch.setattr(ee.data, "listOperations", lambda *a, **k: [])
    return requests


def test_start_export_returns_operation_name(ee_api, fake_export):
    r = recipe()
    region = eeb.geometry_from_geojson(AOI)
    task = eeb.export_to_gcs(eeb.s1_composite(r, region, START, END), bucket="b", prefix="p", description="d",
                             region=region, grid=r.grid)
    assert eeb.start_export(task) == "projects/my-project/operations/TASK1"
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
    r = recipe()
    region = eeb.geometry_from_geojson(AOI)
    task = eeb.export_to_gcs(eeb.s1_composite(r, region, START, END), bucket="b", prefix="p", description="d",
                             region=region, grid=r.grid)
    with pytest.raises(expected, match=message):
        eeb.start_export(task)


def test_backend_start(ee_api, fake_export):
    backend = eeb.EarthEngineBackend("gs://soil-bucket/", "/composites/demo/")
    operation, uri = backend.start(recipe(), "sentinel-2", AOI, (START, END), "demo/s2.abc123")
    assert operation == "projects/my-project/operations/TASK1"
    assert uri == "gs://soil-bucket/composites/demo/demo/s2.abc123.tif"
    [config] = fake_export
    assert config["description"] == "demo_s2_abc123"
    assert config["fileExportOptions"]["cloudStorageDestination"] == {
        "bucket": "soil-bucket", "filenamePrefix": "composites/demo/demo/s2.abc123"}
    tree = expression(config["expression"])
    assert arg_values(tree, "ImageCollection.load", "id") == ["COPERNICUS/S2_SR_HARMONIZED"]


def test_backend_start_reuses_a_running_export_of_the_same_name(ee_api, fake_export, monkeypatch):
    """A retry (after a trigger timeout or a lost worker) waits for the export already running."""
    ops = [{"name": "projects/p/operations/OLD", "metadata": {"description": "demo_s2_abc123", "state": "SUCCEEDED"}},
           {"name": "projects/p/operations/LIVE", "metadata": {"description": "demo_s2_abc123", "state": "RUNNING"}},
           {"name": "projects/p/operations/OTHER", "metadata": {"description": "demo_s1_abc123", "state": "RUNNING"}}]
    monkeypatch.setattr(ee.data, "listOperations", lambda *a, **k: ops)
    backend = eeb.EarthEngineBackend("soil-bucket", "composites")
    operation, uri = backend.start(recipe(), "sentinel-2", AOI, (START, END), "demo/s2.abc123")
    assert (operation, uri) == ("projects/p/operations/LIVE", "gs://soil-bucket/composites/demo/s2.abc123.tif")
    assert fake_export == []  # nothing new started
    ops[1]["metadata"]["state"] = "FAILED"  # a failed one is not reused: a new export starts
    assert backend.start(recipe(), "sentinel-2", AOI, (START, END), "demo/s2.abc123")[0].endswith("TASK1")


def test_backend_refuses_bad_requests(ee_api, fake_export):
    backend = eeb.EarthEngineBackend("soil-bucket", "")
    with pytest.raises(BadInputError, match="sensor"):
        backend.start(recipe(), "landsat", AOI, (START, END), "x")
    no_s1 = Recipe.parse({"aoi": "demo", "window": {"years": 1}, "grid": {"crs": "EPSG:32633"}, "s1": None})
    with pytest.raises(BadInputError, match="no sentinel-1"):
        backend.start(no_s1, "sentinel-1", AOI, (START, END), "x")
    huge = {"type": "Polygon", "coordinates": [[[11.0, 52.0], [13.0, 52.0], [13.0, 53.0], [11.0, 53.0], [11.0, 52.0]]]}
    with pytest.raises(BadInputError, match="split the AOI"):
        backend.start(recipe(), "sentinel-2", huge, (START, END), "x")
    with pytest.raises(BadInputError, match="bucket"):
        eeb.EarthEngineBackend("gs://", "p")
    assert fake_export == [], "nothing was started"
    # an empty prefix writes at the bucket root
    assert backend.start(recipe(), "sentinel-1", AOI, (START, END), "s1")[1] == "gs://soil-bucket/s1.tif"


# --------------------------------------------------------------------------- export state


def operation(state: str | None, *, done: bool = False, error: dict | None = None, uris=None, progress=None) -> dict:
    op: dict = {"name": "projects/p/operations/OP1", "done": done}
    if state is not None:
        op["metadata"] = {"state": state, "type": "EXPORT_IMAGE"}
        if uris is not None:
            op["metadata"]["destinationUris"] = uris
        if progress is not None:
            op["metadata"]["progress"] = progress
    if error is not None:
        op["error"] = error
    return op


def test_export_outcome_states():
    assert eeb.export_outcome(operation("PENDING")).state == "running"
    running = eeb.export_outcome(operation("RUNNING", progress=0.42))
    assert running.state == "running" and "42%" in running.message
    assert eeb.export_outcome(operation("CANCELLING")).state == "running"
    uris = ["https://console.developers.google.com/storage/browser/b/p/"]
    # Earth Engine may report SUCCEEDED before done is set
    succeeded = eeb.export_outcome(operation("SUCCEEDED", uris=uris))
    assert succeeded == eeb.ExportOutcome("succeeded", "export projects/p/operations/OP1 succeeded", tuple(uris))
    failed = eeb.export_outcome(operation("FAILED", done=True, error={"code": 3, "message": "Too many pixels"}))
    assert failed.state == "failed" and "Too many pixels" in failed.message
    cancelled = eeb.export_outcome(operation("CANCELLED", done=True, error={"code": 1, "message": "Cancelled."}))
    assert cancelled.state == "failed" and "cancelled" in cancelled.message
    assert eeb.export_outcome(operation(None, done=True)).state == "succeeded"
    assert eeb.export_outcome(operation(None, done=True, error={"code": 13})).message.endswith("error code 13")
    assert eeb.export_outcome(operation("UNKNOWN", done=True)).state == "failed"
    assert eeb.export_outcome(operation(None)).state == "running"
    with pytest.raises(BadInputError, match="operation dict"):
        eeb.export_outcome(["not", "a", "dict"])  # type: ignore[arg-type]


class FakeTime:
    """A clock that only moves when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*operations: dict):
    answers = iter(operations)
    asked: list[str] = []

    def get_operation(name: str) -> dict:
        asked.append(name)
        return next(answers)

    get_operation.asked = asked  # type: ignore[attr-defined]
    return get_operation


def test_wait_for_export_success():
    fake = FakeTime()
    get = scripted(operation("PENDING"), operation("RUNNING"), operation("SUCCEEDED", done=True, uris=["gs://b/x"]))
    outcome = eeb.wait_for_export("OP1", get_operation=get, poll_seconds=30, sleep=fake.sleep, clock=fake.clock)
    assert outcome.state == "succeeded" and outcome.destination_uris == ("gs://b/x",)
    assert fake.sleeps == [30, 30] and get.asked == ["OP1"] * 3


def test_wait_for_export_failure():
    fake = FakeTime()
    get = scripted(operation("RUNNING"), operation("FAILED", done=True, error={"code": 7, "message": "No access"}))
    with pytest.raises(FinalExternalError, match="No access"):
        eeb.wait_for_export("OP1", get_operation=get, sleep=fake.sleep, clock=fake.clock)


def test_wait_for_export_timeout():
    fake = FakeTime()
    get = scripted(*[operation("RUNNING")] * 10)
    with pytest.raises(TransientExternalError, match="still running after 100 s"):
        eeb.wait_for_export("OP1", get_operation=get, poll_seconds=30, timeout_seconds=100,
                            sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == [30, 30, 30, 10]


def test_wait_for_export_maps_polling_errors():
    def broken(name: str) -> dict:
        raise ee.EEException("Internal error")

    with pytest.raises(TransientExternalError, match="cannot read Earth Engine operation OP1"):
        eeb.wait_for_export("OP1", get_operation=broken, sleep=lambda s: None)


@pytest.mark.parametrize(("message", "expected"), [
    ("Quota exceeded for quota metric 'Concurrent exports'", TransientExternalError),
    ("Too many tasks already in the queue (3000). Please wait for some of them to complete.", TransientExternalError),
    ("Internal error.", TransientExternalError),
    ("Computation timed out.", TransientExternalError),
    ("<HttpError 503 when requesting ... returned 'The service is currently unavailable.'>", TransientExternalError),
    ("Permission denied on resource project foo.", FinalExternalError),
    ("Caller does not have required permission to use project x", FinalExternalError),
    ("Invalid argument: maxPixels", FinalExternalError),
    ("Image.load: Image asset 'COPERNICUS/NOPE' not found.", FinalExternalError),
    ("Export too large: specified 2000000000 pixels (max: 100000000). Too many pixels", FinalExternalError),
    ("User memory limit exceeded.", FinalExternalError),
    ("Permission denied; try again later", FinalExternalError),
    ("something nobody has seen before", FinalExternalError),
])
def test_classify_ee_error(message, expected):
    assert eeb.classify_ee_error(message) is expected


# --------------------------------------------------------------------------- initialize


@pytest.fixture
def fake_initialize(monkeypatch) -> list[tuple]:
    seen: list[tuple] = []
    monkeypatch.setattr(ee, "Initialize", lambda credentials=None, **kw: seen.append((credentials, kw)))
    monkeypatch.setattr(ee, "ServiceAccountCredentials", lambda email, key_file: ("sa-credentials", email, key_file))
    return seen


@pytest.mark.parametrize("project", ["", "   "])
def test_initialize_refuses_empty_project(fake_initialize, project):
    with pytest.raises(FinalExternalError, match="explicit Google Cloud project"):
        eeb.initialize(project)
    assert fake_initialize == []


def test_initialize_passes_project_and_credentials(fake_initialize):
    eeb.initialize("soil-project")
    eeb.initialize("soil-project", service_account="sa@p.iam.gserviceaccount.com", key_file="/keys/sa.json")
    assert fake_initialize == [
        ("persistent", {"project": "soil-project"}),
        (("sa-credentials", "sa@p.iam.gserviceaccount.com", "/keys/sa.json"), {"project": "soil-project"}),
    ]
    with pytest.raises(FinalExternalError, match="both service_account and key_file"):
        eeb.initialize("soil-project", service_account="sa@p.iam.gserviceaccount.com")


def test_initialize_maps_ee_errors(monkeypatch):
    def refuse(credentials=None, **kw):
        raise ee.EEException("Permission denied: project soil-project is not registered")

    monkeypatch.setattr(ee, "Initialize", refuse)
    with pytest.raises(FinalExternalError, match="soil-project"):
        eeb.initialize("soil-project")
