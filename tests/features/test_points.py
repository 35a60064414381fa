"""Features at sample points: values equal the composite pixels under the samples, nodata and outside
samples are excluded and counted, the table joins back to the samples, and the Earth Engine flavour
(sampleRegions, offline) gives the same layout."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace

import ee
import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import Affine, rowcol, xy
from sqlalchemy import text

from soilclay.composites.backend import CompositeRequest
from soilclay.composites.build import build_composites
from soilclay.composites.recipe import Recipe
from soilclay.contract import S2_BANDS
from soilclay.db.aois import register_aoi
from soilclay.errors import BadInputError
from soilclay.features import rasters
from soilclay.features.earthengine import ee_feature_image, ee_rows_to_table, ee_sample_points
from soilclay.features.points import features_for_aoi
from soilclay.features.rasters import sample_composites
from soilclay.features.table import S1_FEATURES, S2_FEATURES, table_columns
from soilclay.io.cog import write_cog
from soilclay.io.store import LocalStore, local_copy
from soilclay.io.vector import read_aoi_file
from soilclay.samples.load import load_samples
from soilclay.scenes.local import LocalStacSource
from soilclay.scenes.sync import sync_scenes

AOI = "features-test"


@pytest.fixture(scope="module")
def built(engine, small_world, tmp_path_factory) -> SimpleNamespace:
    """The small world's AOI with its Sentinel-2 and Sentinel-1 composites and its samples (own source)."""
    geometry, props = read_aoi_file(small_world / "aoi.geojson")
    register_aoi(engine, AOI, geometry, props["grid_crs"])
    sync_scenes(engine, AOI, LocalStacSource(small_world / "scenes"))
    recipe = Recipe.parse({"aoi": AOI, "window": {"years": 3}, "grid": {"crs": props["grid_crs"]}, "tile_size": 128})
    s2, s1 = build_composites(engine, CompositeRequest(AOI, recipe), store=LocalStore(tmp_path_factory.mktemp("store")))
    source = f"features-{uuid.uuid4().hex[:8]}"
    load_samples(engine, small_world / "samples.csv", source=source)
    return SimpleNamespace(s2=s2, s1=s1, source=source, crs=props["grid_crs"])


def _pixel(path: str, band: str, lon: float, lat: float) -> float:
    """The band's value at the pixel containing (lon, lat), read straight from the file."""
    with rasterio.open(path) as src:
        x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(lon, lat)
        row, col = rowcol(src.transform, x, y)  # floor of the inverse transform
        return float(src.read(src.descriptions.index(band) + 1)[row, col])


def _load_points(engine, tmp_path: Path, lonlat: list[tuple[float, float]], source: str) -> None:
    rows = [f"{9000 + i},{float(lat)!r},{float(lon)!r},25,40,35,2024-06-01" for i, (lon, lat) in enumerate(lonlat)]
    path = tmp_path / "points.csv"
    path.write_text("\n".join(["POINTID,TH_LAT,TH_LONG,Clay,Sand,Silt,SURVEY_DATE", *rows]) + "\n")
    assert load_samples(engine, path, source=source).inserted == len(lonlat)


# --------------------------------------------------------------------------- local flavour


def test_values_equal_the_composite_pixels(engine, built):
    table = features_for_aoi(engine, AOI, sources=[built.source])
    data = table.data
    assert list(data.columns) == table_columns(with_s1=True)
    assert table.lineage["s2_composite_id"] == built.s2.composite_id
    assert table.lineage["s1_composite_id"] == built.s1.composite_id
    assert data.attrs["lineage"] == table.lineage and table.lineage["s2_uri"] == built.s2.uri
    assert table.requested == 120 and table.excluded_outside == 0
    assert len(data) + table.excluded_nodata == 120 and len(data) > 100
    for sample in data.iloc[[0, 17, 58, len(data) - 1]].itertuples(index=False):
        for band in S2_FEATURES:
            assert getattr(sample, band) == _pixel(built.s2.uri, band, sample.lon, sample.lat), band
        for band in S1_FEATURES:
            assert getattr(sample, band) == _pixel(built.s1.uri, band, sample.lon, sample.lat), band
    assert not data[list(S2_BANDS + S1_FEATURES)].isna().any().any()
    assert f"{len(data)} of 120 samples" in table.render()
    everything = features_for_aoi(engine, AOI)  # every source: other tests' samples lie here too
    assert everything.requested >= 120 and everything.lineage["sources"] is None


def test_the_table_joins_back_to_the_samples(engine, built, small_world):
    table = features_for_aoi(engine, AOI, s2_composite_id=built.s2.composite_id,
                             s1_composite_id=built.s1.composite_id, sources=[built.source])
    with engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(text(
            "SELECT sample_id, point_id FROM soilclay.samples WHERE source = :s"), {"s": built.source}).all())
    joined = table.data.merge(stored, on="sample_id", suffixes=("", "_db"), validate="one_to_one")
    assert len(joined) == len(table.data) and (joined.point_id == joined.point_id_db).all()
    csv = pd.read_csv(small_world / "samples.csv", dtype={"POINTID": str})
    with_csv = table.data.merge(csv, left_on="point_id", right_on="POINTID", validate="one_to_one")
    assert (with_csv.clay == with_csv.Clay).all() and (with_csv.lon == with_csv.TH_LONG).all()


def test_samples_on_nodata_pixels_are_excluded_and_counted(engine, built, tmp_path):
    with rasterio.open(built.s2.uri) as src:
        b02 = src.read(src.descriptions.index("B02") + 1)
        transform, crs = src.transform, src.crs
    inner = np.zeros_like(b02, dtype=bool)
    inner[2:-2, 2:-2] = True
    nodata_rows, nodata_cols = np.nonzero(np.isnan(b02) & inner)
    valid_rows, valid_cols = np.nonzero(~np.isnan(b02) & inner)
    rows = np.concatenate([nodata_rows[:3], valid_rows[:2]])
    cols = np.concatenate([nodata_cols[:3], valid_cols[:2]])
    x, y = xy(transform, rows, cols, offset="center")
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    source = f"nodata-{uuid.uuid4().hex[:8]}"
    _load_points(engine, tmp_path, list(zip(lon, lat, strict=True)), source)

    table = features_for_aoi(engine, AOI, sources=[source])
    assert (table.requested, table.excluded_nodata, table.excluded_outside) == (5, 3, 0)
    assert sorted(table.data.point_id) == ["9003", "9004"]
    assert table.data.B02.tolist() == [float(b02[r, c]) for r, c in zip(rows[3:], cols[3:], strict=True)]
    assert "excluded 3 on nodata pixels" in table.render()


def test_points_off_the_raster_are_outside(built):
    points = pd.DataFrame({"sample_id": [1, 2], "lon": [12.955, 13.5], "lat": [52.615, 52.0]})
    sampled = sample_composites(points, built.s2.uri, built.s1.uri)
    assert sampled.status.tolist()[1] == "outside" and sampled.loc[1, list(S2_FEATURES)].isna().all()
    assert list(sampled.columns[:3]) == ["sample_id", "lon", "lat"]
    with pytest.raises(BadInputError, match="points need columns lon and lat"):
        sample_composites(points.rename(columns={"lon": "x"}), built.s2.uri)
    empty = sample_composites(points.iloc[:0], built.s2.uri)
    assert empty.empty and "B12" in empty.columns


def test_bands_are_found_by_description_and_nodata_values_are_missing(tmp_path):
    """An Earth Engine style export: other band order, an extra band, nodata -9999."""
    transform = Affine(10, 0, 361000, 0, -10, 5832000)
    names = ["bare_frequency", *reversed(S2_FEATURES)]
    data = np.stack([np.full((4, 4), 100.0 * i, np.float32) for i in range(len(names))])
    data[names.index("B04"), 1, 1] = -9999
    path = write_cog(tmp_path / "ee.tif", data, transform=transform, crs="EPSG:32633", nodata=-9999,
                     descriptions=names)
    to_lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform([361005.0, 361015.0], [5831995.0, 5831985.0])  # pixels (0, 0) and (1, 1)
    sampled = sample_composites(pd.DataFrame({"lon": lon, "lat": lat}), str(path))
    assert sampled.status.tolist() == ["ok", "nodata"]
    assert [sampled.loc[0, band] for band in S2_FEATURES] == [100.0 * names.index(b) for b in S2_FEATURES]
    assert np.isnan(sampled.loc[1, "B04"]) and sampled.loc[1, "B03"] == 100.0 * names.index("B03")

    partial = write_cog(tmp_path / "partial.tif", data[:5], transform=transform, crs="EPSG:32633", nodata=-9999,
                        descriptions=names[:5])
    with pytest.raises(BadInputError, match=r"partial.tif has no band 'B02'"):
        sample_composites(pd.DataFrame({"lon": lon, "lat": lat}), str(partial))


def test_composite_choice_is_checked(engine, built):
    with pytest.raises(BadInputError, match="is a sentinel-1 composite of AOI 'features-test'; expected a sentinel-2"):
        features_for_aoi(engine, AOI, s2_composite_id=built.s1.composite_id)
    with pytest.raises(BadInputError, match="no composite with id 987654"):
        features_for_aoi(engine, AOI, s1_composite_id=987654)
    register_aoi(engine, "features-bare", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                 "EPSG:32631")
    with pytest.raises(BadInputError, match="AOI 'features-bare' has no sentinel-2 composite yet"):
        features_for_aoi(engine, "features-bare")


def test_an_aoi_without_sentinel1_gives_a_table_without_sar_columns(engine, built, small_world, tmp_path):
    name = "features-s2-only"
    geometry, props = read_aoi_file(small_world / "aoi.geojson")
    aoi = register_aoi(engine, name, geometry, props["grid_crs"])
    copy = shutil.copy(built.s2.uri, tmp_path / "s2.tif")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, recipe, "
            "inputs_hash, scene_count, backend, uri) SELECT :a, sensor, 1, period_start, period_end, recipe_hash, "
            "recipe, inputs_hash, scene_count, backend, :u FROM soilclay.composites WHERE composite_id = :i"),
            {"a": aoi.aoi_id, "u": str(copy), "i": built.s2.composite_id})
    table = features_for_aoi(engine, name, sources=[built.source])
    assert list(table.data.columns) == table_columns(with_s1=False)
    assert table.lineage["s1_composite_id"] is None and table.excluded == table.excluded_nodata


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_raster_without_crs_is_refused(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32") as dst:
        dst.write(np.zeros((1, 2, 2), np.float32))
        dst.set_band_description(1, "VV")
    with pytest.raises(BadInputError, match="declares no CRS"):
        rasters.read_at_points(str(path), np.array([12.9]), np.array([52.6]), ["VV"])


class _BucketStore:
    """A stand-in for a GcsStore: ``gs://bucket/prefix`` served from a local directory."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.local = url, LocalStore(root)
        self.downloads: list[str] = []

    def download(self, key: str, local_path: Path) -> Path:
        self.downloads.append(key)
        return self.local.download(key, local_path)


def test_composite_uris_local_file_and_gs(built, tmp_path, engine, monkeypatch):
    store_root = tmp_path / "bucket"
    (store_root / "composites").mkdir(parents=True)
    shutil.copy(built.s2.uri, store_root / "composites" / "s2.tif")
    store = _BucketStore("gs://soil-bucket/prefix", store_root)
    fetched = local_copy.local_path("gs://soil-bucket/prefix/composites/s2.tif", store, tmp_path)  # type: ignore[arg-type]
    assert store.downloads == ["composites/s2.tif"] and Path(fetched).read_bytes() == Path(built.s2.uri).read_bytes()
    assert local_copy.local_path(f"file://{built.s2.uri}", None, tmp_path) == built.s2.uri
    assert local_copy.local_path(built.s2.uri, None, tmp_path) == built.s2.uri
    opened: list[str] = []

    def open_bucket(url: str) -> _BucketStore:
        opened.append(url)
        return _BucketStore(url, store_root)

    monkeypatch.setattr("soilclay.io.store.open_store", open_bucket)
    other = local_copy.local_path("gs://other-bucket/composites/s2.tif", store, tmp_path / "other")  # type: ignore[arg-type]
    assert opened == ["gs://other-bucket"] and Path(other).is_file(), "a URI outside the store: its bucket's store"
    with pytest.raises(BadInputError, match="composite file /nowhere.tif not found"):
        local_copy.local_path("/nowhere.tif", None, tmp_path)
    with pytest.raises(BadInputError, match="unsupported composite URI 's3://b/x.tif'"):
        local_copy.local_path("s3://b/x.tif", None, tmp_path)

    # a gs:// composite row is fetched through the store into a temporary file, then sampled
    with engine.begin() as conn:
        conn.execute(text("UPDATE soilclay.composites SET uri = :u WHERE composite_id = :i"),
                     {"u": "gs://soil-bucket/prefix/composites/s2.tif", "i": built.s2.composite_id})
    try:
        remote = features_for_aoi(engine, AOI, store=store, workdir=tmp_path / "work",  # type: ignore[arg-type]
                                  sources=[built.source])
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE soilclay.composites SET uri = :u WHERE composite_id = :i"),
                         {"u": built.s2.uri, "i": built.s2.composite_id})
    local = features_for_aoi(engine, AOI, sources=[built.source])
    pd.testing.assert_frame_equal(remote.data, local.data)
    assert list((tmp_path / "work").iterdir()) == [], "the download is removed"


# --------------------------------------------------------------------------- Earth Engine flavour


def _resolve(values: dict, node):
    """A serialised expression node with value references replaced by their values."""
    if isinstance(node, dict):
        if set(node) == {"valueReference"}:
            return _resolve(values, values[node["valueReference"]])
        return {key: _resolve(values, item) for key, item in node.items()}
    if isinstance(node, list):
        return [_resolve(values, item) for item in node]
    return node


def _call(node) -> tuple[str, dict]:
    invocation = node["functionInvocationValue"]
    return invocation["functionName"], invocation["arguments"]


POINTS = pd.DataFrame({"sample_id": np.array([11, 12]), "point_id": ["4711", "4712"], "lon": [12.95, 12.96],
                       "lat": [52.61, 52.615], "clay": np.array([20.0, 31.5], np.float32)})


def test_ee_sample_regions_expression(ee_api):
    image = ee_feature_image(ee.Image("users/x/s2"), ee.Image("users/x/s1"))
    encoded = json.loads(ee_sample_points(image, POINTS, 10, crs="EPSG:32633").serialize())
    name, args = _call(_resolve(encoded["values"], encoded["values"][encoded["result"]]))
    assert name == "Image.sampleRegions"
    assert args["scale"] == {"constantValue": 10} and args["geometries"] == {"constantValue": True}
    assert args["properties"] == {"constantValue": ["sample_id", "point_id", "lon", "lat", "clay"]}
    assert _call(args["projection"]) == ("Projection", {"crs": {"constantValue": "EPSG:32633"},
                                                        "transform": {"constantValue": [10, 0, 0, 0, -10, 0]}})
    add_name, add_args = _call(args["image"])
    assert add_name == "Image.addBands"
    assert _call(add_args["dstImg"])[1]["bandSelectors"] == {"constantValue": list(S2_FEATURES)}
    assert _call(add_args["srcImg"])[1]["bandSelectors"] == {"constantValue": list(S1_FEATURES)}
    features = _call(args["collection"])[1]["features"]["arrayValue"]["values"]
    first_name, first = _call(features[0])
    assert first_name == "Feature"
    assert _call(first["geometry"]) == ("GeometryConstructors.Point",
                                        {"coordinates": {"constantValue": [12.95, 52.61]}})
    assert first["metadata"] == {"constantValue": {"sample_id": 11, "point_id": "4711", "lon": 12.95, "lat": 52.61,
                                                   "clay": 20.0}}
    assert len(features) == 2


def test_ee_sample_points_always_on_the_grid(ee_api):
    """Without S1 the image is the S2 selection; the sampling projection is never left out (Earth Engine
    would otherwise sample on another lattice): a missing CRS is refused."""
    encoded = json.loads(ee_sample_points(ee_feature_image(ee.Image("users/x/s2")), POINTS, 20,
                                          crs="EPSG:32633").serialize())
    _, args = _call(_resolve(encoded["values"], encoded["values"][encoded["result"]]))
    assert _call(args["image"])[0] == "Image.select"
    assert _call(args["projection"])[1]["transform"] == {"constantValue": [20, 0, 0, 0, -20, 0]}
    for crs in ("", None):
        with pytest.raises(BadInputError, match="a grid needs a CRS"):
            ee_sample_points(ee.Image("users/x/s2"), POINTS, 10, crs=crs)
    with pytest.raises(BadInputError, match="missing clay"):
        ee_sample_points(ee.Image("users/x/s2"), POINTS.drop(columns="clay"), 10, crs="EPSG:32633")
    with pytest.raises(BadInputError, match="scale must be a positive"):
        ee_sample_points(ee.Image("users/x/s2"), POINTS, 0, crs="EPSG:32633")


def _ee_feature(sample_id: int, with_s1: bool = True) -> dict:
    """A feature as ``getInfo()`` returns it: the geometry snapped to the pixel centre."""
    props = {"sample_id": sample_id, "point_id": str(4700 + sample_id), "lon": 12.95, "lat": 52.61, "clay": 20.5,
             **{band: 1000.0 + i for i, band in enumerate(S2_FEATURES)}}
    if with_s1:
        props |= {"VV": -11.5, "VH": -18.25, "VV_VH": 6.75}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [12.95004, 52.61003]},
            "id": f"{sample_id}_0", "properties": props}


def test_ee_rows_become_the_local_table_layout(engine, built):
    local = features_for_aoi(engine, AOI, sources=[built.source]).data
    table = ee_rows_to_table([_ee_feature(2), _ee_feature(1)])
    assert list(table.columns) == list(local.columns)
    assert table.dtypes.to_dict() == local.dtypes.to_dict()
    assert table.sample_id.tolist() == [2, 1] and table.point_id.tolist() == ["4702", "4701"]
    assert (table.lon.iloc[0], table.lat.iloc[0]) == (12.95, 52.61), "the sample's position, not the pixel centre"
    assert table.loc[0, "B02"] == 1000.0 and table.loc[0, "VV_VH"] == 6.75


def test_ee_rows_without_s1_and_from_a_collection():
    table = ee_rows_to_table({"type": "FeatureCollection", "features": [_ee_feature(5, with_s1=False)]})
    assert list(table.columns) == table_columns(with_s1=False)
    feature = _ee_feature(6, with_s1=False)
    del feature["properties"]["lon"], feature["properties"]["lat"]
    assert ee_rows_to_table([feature])[["lon", "lat"]].iloc[0].tolist() == [12.95004, 52.61003]
    assert ee_rows_to_table([]).columns.tolist() == table_columns(with_s1=False)
    with pytest.raises(BadInputError, match="feature 0 has no sample_id"):
        ee_rows_to_table([{"properties": {"clay": 1.0}}])
