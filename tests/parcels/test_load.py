"""Loading parcel files: formats, CRSs, geometry checks, id detection, idempotent upserts; the demo world's
parcels and real national registers.

Parcel ids are global, so every test that writes gets a database of its own (``fresh_engine``)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from pyproj import Geod
from shapely.geometry import LineString, Polygon, box
from sqlalchemy import Engine, text

from soilclay.cli.parcels import parcels as parcels_cli
from soilclay.db import migrate
from soilclay.db.engine import make_engine
from soilclay.errors import BadInputError
from soilclay.parcels.geometry import check_geometries
from soilclay.parcels.ids import choose_id, derived_id, id_text
from soilclay.parcels.load import default_source, load_parcels
from soilclay.parcels.read import json_safe, read_parcels
from soilclay.settings import Settings

REGISTERS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "parcels"
#: file -> (id columns, first id, lon/lat box of the country: west, south, east, north)
REAL_FILES = {
    "nl_brp_2023_100.gpkg": (("id",), "1", (3.2, 50.7, 7.3, 53.6)),
    "dk_marker_2026_100.shp.zip": (("Journalnr", "Marknr"), "26-0023282/1-0", (8.0, 54.5, 15.3, 57.8)),
    "de_sh_feldbloecke_2026_100.gpkg.zip": (("FLIK",), "DESHLIL080100007", (7.8, 53.3, 11.4, 55.1)),
    "at_schlaege_2025_100.gpkg.zip": (("GEO_ID",), "106806035", (9.5, 46.3, 17.2, 49.1)),
    "fi_gsaa_2023_100.gpkg": (("TUNNUS",), "1", (19.0, 59.7, 31.6, 70.1)),
}


@pytest.fixture
def fresh_engine(db_factory) -> Iterator[Engine]:
    """A migrated database of this test's own."""
    url = db_factory("soilclay_parcels")
    migrate.upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def demo(small_world) -> gpd.GeoDataFrame:
    return gpd.read_file(small_world / "parcels.gpkg", layer="parcels")


def _stored(engine: Engine) -> gpd.GeoDataFrame:
    with engine.connect() as conn:
        return gpd.read_postgis(text("SELECT parcel_id, geom, source_file, attributes, loaded_at, updated_at "
                                     "FROM soilclay.parcels ORDER BY parcel_id"), conn, geom_col="geom")


def _max_distance(a: gpd.GeoSeries, b: gpd.GeoSeries) -> float:
    return float(np.max(shapely.hausdorff_distance(a.to_numpy(), b.to_numpy())))


def _write_zipped_shapefile(frame: gpd.GeoDataFrame, folder: Path, name: str, *, keep_prj: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_file(folder / f"{name}.shp", engine="pyogrio")
    target = folder / f"{name}.shp.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for part in sorted(folder.glob(f"{name}.*")):
            if part.suffix in {".shp", ".shx", ".dbf", ".cpg"} or (keep_prj and part.suffix == ".prj"):
                zf.write(part, part.name)
    return target


# --------------------------------------------------------------------------- the demo world


def test_demo_parcels_load_reload_and_one_changed_geometry(fresh_engine, small_world, demo, tmp_path):
    path = small_world / "parcels.gpkg"
    first = load_parcels(fresh_engine, path)
    n = len(demo)
    assert (first.read, first.valid, first.inserted, first.updated, first.unchanged) == (n, n, n, 0, 0)
    assert first.rejected == [] and first.repaired == 0
    assert first.id_choice.columns == ("parcel_id",) and first.id_choice.how == "detected"
    assert f"{n} read, {n} valid" in first.render() and "ids from column parcel_id" in first.render()

    stored = _stored(fresh_engine)
    assert len(stored) == n and stored.crs.to_epsg() == 4326
    assert set(stored.geom.geom_type) == {"MultiPolygon"} and stored.geom.is_valid.all()
    assert (stored.source_file == "parcels.gpkg").all()
    columns = demo.sort_values("parcel_id").drop(columns=["parcel_id", "geometry"])
    assert stored.attributes.tolist() == columns.to_dict("records")
    expected = demo.to_crs(4326).set_index("parcel_id").loc[stored.parcel_id].geometry
    assert _max_distance(stored.geom, expected) < 1e-9
    aoi = gpd.read_file(small_world / "aoi.geojson").to_crs(4326).union_all()
    assert stored.geom.within(aoi.buffer(1e-5)).all()

    again = load_parcels(fresh_engine, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, n)
    assert _stored(fresh_engine).updated_at.tolist() == stored.updated_at.tolist()

    changed = demo.copy()
    target = changed.parcel_id.iloc[3]
    changed.loc[changed.index[3], "geometry"] = shapely.affinity.translate(changed.geometry.iloc[3], 3.0, -2.0)
    (tmp_path / "copy").mkdir()
    changed.to_file(tmp_path / "copy" / "parcels.gpkg", layer="parcels", engine="pyogrio")  # same file name
    third = load_parcels(fresh_engine, tmp_path / "copy" / "parcels.gpkg")
    assert (third.inserted, third.updated, third.unchanged, third.taken_over) == (0, 1, n - 1, 0)
    after = _stored(fresh_engine).set_index("parcel_id")
    moved = after.updated_at != stored.set_index("parcel_id").updated_at
    assert moved[moved].index.tolist() == [target]
    assert (after.loaded_at == stored.set_index("parcel_id").loaded_at).all()


def test_other_formats_and_crss_read_to_the_same_geometries(small_world, demo, tmp_path):
    reference, _ = read_parcels(small_world / "parcels.gpkg")
    files = {}
    files["geojson 3035"] = tmp_path / "parcels_3035.geojson"
    demo.to_crs(3035).to_file(files["geojson 3035"], driver="GeoJSON", engine="pyogrio")
    files["geoparquet 25833"] = tmp_path / "parcels_25833.parquet"
    demo.to_crs(25833).to_parquet(files["geoparquet 25833"])
    files["zipped shapefile 25833"] = _write_zipped_shapefile(demo.to_crs(25833), tmp_path / "shp", "parcels")
    files["geojson 4326"] = tmp_path / "parcels.geojson"
    demo.to_crs(4326).to_file(files["geojson 4326"], driver="GeoJSON", engine="pyogrio")
    for label, path in files.items():
        got, report = read_parcels(path)
        assert report.valid == len(demo) and report.rejected == [], label
        assert got.crs.to_epsg() == 4326 and report.id_choice.columns == ("parcel_id",), label
        assert got.parcel_id.tolist() == reference.parcel_id.tolist(), label
        assert _max_distance(got.geometry, reference.geometry) < 1e-6, label
        assert set(got.geometry.geom_type) == {"MultiPolygon"}, label
        assert got.attributes.tolist() == reference.attributes.tolist(), label


def test_a_fiboa_geoparquet_file_loads_with_its_id_column(fresh_engine, demo, tmp_path):
    fiboa = demo.rename(columns={"parcel_id": "id"}).to_crs(4326)
    fiboa["id"] = "fiboa-" + fiboa["id"]
    fiboa["determination_datetime"] = pd.Timestamp("2024-06-01T00:00:00Z")
    fiboa["area"] = demo.area / 10_000
    fiboa["bbox"] = [{"xmin": b[0], "ymin": b[1], "xmax": b[2], "ymax": b[3]} for b in fiboa.bounds.to_numpy()]
    path = tmp_path / "fields.parquet"
    fiboa.to_parquet(path)
    report = load_parcels(fresh_engine, path)
    assert report.id_choice.columns == ("id",) and report.inserted == len(demo)
    row = _stored(fresh_engine).iloc[0]
    assert row.parcel_id.startswith("fiboa-DEMO-")
    assert row.attributes["determination_datetime"] == "2024-06-01T00:00:00+00:00"
    assert set(row.attributes["bbox"]) == {"xmin", "ymin", "xmax", "ymax"} and row.attributes["area"] > 0.2
    assert load_parcels(fresh_engine, path).unchanged == len(demo)


def test_a_failing_write_leaves_nothing(fresh_engine, small_world, monkeypatch):
    from soilclay.parcels import load as parcel_load

    real = parcel_load._json_rows
    calls = []

    def second_chunk_breaks(chunk):
        calls.append(len(chunk))
        rows = real(chunk)
        return rows if len(calls) == 1 else rows.replace('"wkb": "', '"wkb": "!', 1)

    monkeypatch.setattr(parcel_load, "CHUNK", 10)
    monkeypatch.setattr(parcel_load, "_json_rows", second_chunk_breaks)
    with pytest.raises(BadInputError, match=r"loading parcels from .*parcels\.gpkg: the database (refused|could not)"):
        load_parcels(fresh_engine, small_world / "parcels.gpkg")
    assert len(calls) == 2 and _stored(fresh_engine).empty


# --------------------------------------------------------------------------- bad features


def _square(x: float, y: float, size: float = 100.0) -> Polygon:
    return box(x, y, x + size, y + size)


def test_invalid_geometries_are_repaired_and_bad_features_rejected(fresh_engine, tmp_path):
    x0, y0 = 366_000.0, 5_830_000.0
    features = gpd.GeoDataFrame({
        "parcel_id": ["good", "bowtie", "empty", "line", "good", "null", "  ", None, " x9 "],
        "crop": ["wheat", "rye", "oats", "none", "maize", "x", "y", "z", "beet"]},
        geometry=[_square(x0, y0), Polygon([(x0, y0 + 200), (x0 + 100, y0 + 300), (x0 + 100, y0 + 200),
                                            (x0, y0 + 300), (x0, y0 + 200)]),
                  Polygon(), LineString([(x0, y0), (x0 + 50, y0 + 50)]), _square(x0 + 500, y0), None,
                  _square(x0 + 1000, y0), _square(x0 + 1500, y0), _square(x0 + 2000, y0)],
        crs="EPSG:25833")
    path = tmp_path / "mixed.gpkg"
    features.to_file(path, layer="fields", engine="pyogrio", geometry_type="Unknown")

    frame, report = read_parcels(path)
    assert frame.parcel_id.tolist() == ["good", "bowtie", "x9"]
    assert (report.read, report.valid, report.repaired) == (9, 3, 1)
    assert report.repairs[0].parcel_id == "bowtie" and "Self-intersection" in report.repairs[0].reason
    bowtie = frame.set_index("parcel_id").geometry["bowtie"]
    assert bowtie.geom_type == "MultiPolygon" and len(bowtie.geoms) == 2 and bowtie.is_valid
    rejected = {(p.feature, p.parcel_id): p.reason for p in report.rejected}
    assert rejected[(3, "empty")].startswith("empty geometry")
    assert rejected[(4, "line")] == "LineString geometry, expected Polygon or MultiPolygon"
    assert rejected[(5, "good")] == "duplicate id good: feature 1 has the same id and is kept"
    assert rejected[(6, "null")] == "no geometry (null)"
    assert rejected[(7, "")] == rejected[(8, "")] == "blank id (parcel_id)"
    text_report = report.render()
    assert "1 repaired, 6 rejected" in text_report and "feature 4 (parcel line): LineString" in text_report
    assert "feature 7 (no id): blank id" in text_report

    loaded = load_parcels(fresh_engine, path)
    assert (loaded.inserted, loaded.repaired, len(loaded.rejected)) == (3, 1, 6)
    stored = _stored(fresh_engine).set_index("parcel_id")
    assert stored.geom.is_valid.all() and stored.attributes["bowtie"] == {"crop": "rye"}
    assert stored.geom["bowtie"].equals_exact(bowtie, tolerance=0)


def test_an_invalid_polygon_with_no_area_left_after_repair_is_rejected():
    spike = Polygon([(0, 0), (10, 0), (10, 0), (0, 0)])
    geoms, reasons, repairs = check_geometries(np.array([spike, _square(0, 0)], dtype=object))
    assert "no area left after repair" in reasons[0][0] and reasons[1] == [] and repairs == {}
    assert geoms[1].geom_type == "MultiPolygon"


def test_a_file_without_crs_is_refused_naming_the_file(demo, tmp_path):
    shp = _write_zipped_shapefile(demo, tmp_path / "nocrs", "fields", keep_prj=False)
    with pytest.raises(BadInputError, match=r"fields\.shp\.zip.*has no coordinate reference system"):
        read_parcels(shp)
    parquet = tmp_path / "nocrs.parquet"
    demo.set_crs(None, allow_override=True).to_parquet(parquet)
    with pytest.raises(BadInputError, match=r"nocrs\.parquet has no coordinate reference system"):
        read_parcels(parquet)


def test_missing_or_unknown_id_column_names_the_columns(small_world, demo, tmp_path):
    with pytest.raises(BadInputError, match=r"parcels\.gpkg: id column nope not found; available columns: "
                                            r"parcel_id, land_use, area_ha"):
        read_parcels(small_world / "parcels.gpkg", id_column="nope")
    frame, report = read_parcels(small_world / "parcels.gpkg", id_column="LAND_USE+parcel_id")
    assert report.id_choice.columns == ("land_use", "parcel_id") and report.id_choice.how == "given"
    assert frame.parcel_id.iloc[0] == f"{demo.land_use.iloc[0]}/{demo.parcel_id.iloc[0]}"
    assert frame.attributes.iloc[0] == {"area_ha": demo.area_ha.iloc[0]}
    with pytest.raises(BadInputError, match=r"missing\.gpkg"):
        read_parcels(tmp_path / "missing.gpkg")


def test_without_an_id_column_ids_are_derived_from_the_geometry_and_stable(demo, tmp_path):
    anonymous = demo.drop(columns="parcel_id")
    path = tmp_path / "anonymous.geojson"
    anonymous.to_file(path, driver="GeoJSON", engine="pyogrio")
    copy = tmp_path / "anonymous.gpkg"
    anonymous.to_file(copy, engine="pyogrio")
    first, report = read_parcels(path)
    second, _ = read_parcels(path)
    third, _ = read_parcels(copy)
    assert report.id_choice.how == "derived" and report.id_choice.columns == ()
    assert "ids derived from the geometry" in report.render() and "no id column found" in report.render()
    assert first.parcel_id.tolist() == second.parcel_id.tolist() == third.parcel_id.tolist()
    assert first.parcel_id.is_unique and first.parcel_id.str.fullmatch(r"geom-[0-9a-f]{16}").all()
    assert first.attributes.iloc[0] == {"land_use": demo.land_use.iloc[0], "area_ha": demo.area_ha.iloc[0]}
    # Sub-centimetre noise does not change the id; a moved vertex does.
    g = demo.geometry.iloc[0]
    crs = demo.crs
    nudged = shapely.transform(g, lambda c: c + 0.0004)
    moved = shapely.affinity.translate(g, 0.5)
    ids = derived_id(np.array([g, nudged, moved], dtype=object), crs)
    assert ids[0] == ids[1] != ids[2]


def test_layers_are_chosen_or_must_be_named(demo, tmp_path):
    path = tmp_path / "two.gpkg"
    demo.to_file(path, layer="fields_a", engine="pyogrio")
    demo.iloc[:3].to_file(path, layer="fields_b", engine="pyogrio")
    with pytest.raises(BadInputError, match=r"two\.gpkg has 2 layers \(2 with polygons\).*--layer.*"
                                            r"fields_a \(Polygon\), fields_b \(Polygon\)"):
        read_parcels(path)
    assert read_parcels(path, layer="fields_b")[1].valid == 3
    with pytest.raises(BadInputError, match=r"no layer 'nope'; layers: fields_a"):
        read_parcels(path, layer="nope")
    mixed = tmp_path / "mixed.gpkg"
    demo.iloc[:2].to_file(mixed, layer="fields", engine="pyogrio")
    gpd.GeoDataFrame({"name": ["ditch"]}, geometry=[LineString([(366_000, 5_830_000), (366_100, 5_830_000)])],
                     crs=demo.crs).to_file(mixed, layer="ditches", engine="pyogrio")
    _, report = read_parcels(mixed)
    assert report.layer == "fields" and report.valid == 2


def test_id_and_attribute_values_become_text_and_json():
    assert [id_text(v) for v in (106806035.0, np.int64(7), " A-1 ", None, float("nan"), 2.5)] == \
           ["106806035", "7", "A-1", "", "", "2.5"]
    assert json_safe({"d": pd.Timestamp("2024-05-27T07:59:23Z"), "n": float("nan"), "b": b"\x01\xff",
                      "i": np.int32(3), "a": np.array([1.5, np.inf]), "s": "a\x00b", "t": pd.NaT}) == \
           {"d": "2024-05-27T07:59:23+00:00", "n": None, "b": "01ff", "i": 3, "a": [1.5, None], "s": "ab",
            "t": None}
    assert choose_id(["Marknr", "JOURNALNR", "CVR"], None).columns == ("JOURNALNR", "Marknr")
    assert choose_id(["PARCEL_ID", "id"], None).columns == ("PARCEL_ID",)


# --------------------------------------------------------------------------- the command line


def test_cli_load_prints_the_report_and_records_the_run(fresh_engine, small_world):
    settings = Settings(database_url=fresh_engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(parcels_cli, ["load", str(small_world / "parcels.gpkg")], obj=settings)
    assert result.exit_code == 0, result.output
    assert "ids from column parcel_id (detected" in result.output and "unchanged 0" in result.output
    with fresh_engine.connect() as conn:
        run = conn.execute(text("SELECT status, summary, params FROM soilclay.pipeline_runs "
                                "WHERE stage = 'parcel_load'")).one()
    assert run.status == "success" and run.summary["inserted"] == run.summary["read"] > 0
    assert run.params["file"].endswith("parcels.gpkg")
    bad = CliRunner().invoke(parcels_cli, ["load", str(small_world / "parcels.gpkg"), "--id-column", "x"],
                             obj=settings)
    assert bad.exit_code != 0 and "id column x not found" in str(bad.exception)


# --------------------------------------------------------------------------- real registers


def _registers() -> Path:
    if not REGISTERS.is_dir():
        pytest.skip(f"real parcel registers not available at {REGISTERS}")
    return REGISTERS


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_register_loads_reprojected_with_detected_ids(name, fresh_engine):
    path = _registers() / name
    columns, first_id, (west, south, east, north) = REAL_FILES[name]
    report = load_parcels(fresh_engine, path)
    print(report.render())
    assert report.read == 100 and report.loaded == report.inserted == report.valid > 0
    assert report.id_choice.columns == columns and report.id_choice.how == "detected"
    stored = _stored(fresh_engine)
    assert first_id in set(stored.parcel_id) and stored.parcel_id.is_unique
    xmin, ymin, xmax, ymax = stored.total_bounds
    assert west < xmin < xmax < east and south < ymin < ymax < north, stored.total_bounds
    assert stored.geom.is_valid.all() and (stored.source_file == name).all()
    # Reprojection kept the shapes: geodesic areas match the planar areas in the national CRS (< 1 %).
    source = gpd.read_file(path)
    geod = Geod(ellps="WGS84")
    by_id = dict(zip(stored.parcel_id, stored.geom, strict=True))
    frame, _ = read_parcels(path)
    geodesic = np.array([abs(geod.geometry_area_perimeter(by_id[p])[0]) for p in frame.parcel_id])
    planar = source.loc[frame.index - 1].area.to_numpy()
    assert np.allclose(geodesic, planar, rtol=0.01)
    assert load_parcels(fresh_engine, path).unchanged == report.valid


def test_five_registers_loaded_one_after_another_keep_every_parcel(fresh_engine):
    """Issue 12 item 1: the Finnish ids 1..100 used to replace 88 Dutch parcels. Each register is its own
    source now: all 500 parcels stay, reloading updates in place, and taking over another register's
    parcels is the explicit --source."""
    folder = _registers()
    names = sorted(REAL_FILES)
    reports = [load_parcels(fresh_engine, folder / name) for name in names]
    assert [r.source for r in reports] == [default_source(n) for n in names]
    assert all(r.taken_over == 0 and r.updated == 0 for r in reports)
    with fresh_engine.connect() as conn:
        per_source = dict(conn.execute(text("SELECT source, count(*) FROM soilclay.parcels GROUP BY source")).all())
        shared = conn.execute(text("SELECT count(*) FROM (SELECT parcel_id FROM soilclay.parcels GROUP BY parcel_id "
                                   "HAVING count(*) > 1) t")).scalar()
    assert per_source == {r.source: r.valid for r in reports} and sum(per_source.values()) == 500
    assert shared >= 80  # the Dutch and Finnish ids still overlap, as ids; as parcels they do not
    again = load_parcels(fresh_engine, folder / "fi_gsaa_2023_100.gpkg")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, again.valid)
    # The Finnish file loaded into the Dutch source on purpose: its ids replace the Dutch parcels of those ids.
    replaced = load_parcels(fresh_engine, folder / "fi_gsaa_2023_100.gpkg", source="nl_brp_2023_100")
    assert replaced.taken_over == replaced.updated > 80 and replaced.reshaped == replaced.updated
    assert "were last loaded from another file" in replaced.render()
    # ... and the Finnish parcels now exist in both sources with the same shapes: reported.
    assert "fi_gsaa_2023_100" in replaced.same_shapes and "--source fi_gsaa_2023_100" in replaced.render()
    with pytest.raises(BadInputError, match=r"parcel source 'x; drop' is not allowed: .* letters, digits"):
        load_parcels(fresh_engine, folder / "fi_gsaa_2023_100.gpkg", source="x; drop")
    # With a prefix per register the ids themselves do not collide either.
    prefixed = load_parcels(fresh_engine, folder / "fi_gsaa_2023_100.gpkg", id_prefix="fi-gsaa-2023:")
    assert (prefixed.inserted, prefixed.taken_over) == (100, 0)
    with fresh_engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM soilclay.parcels WHERE parcel_id LIKE 'fi-gsaa-2023:%'")).scalar()
    assert n == 100
    with pytest.raises(BadInputError, match="id-prefix"):
        load_parcels(fresh_engine, folder / "fi_gsaa_2023_100.gpkg", id_prefix=" x")


def test_default_source_agrees_with_the_migration(fresh_engine):
    from importlib import util

    names = ["brp_2023.gpkg", "lohkot.shp.zip", "Feld blöcke (SH).GeoJSON", "x.parquet", ".hidden.gpkg", "a.b.fgb"]
    spec = util.spec_from_file_location("m0004", Path(__file__).parents[2] / "sql/migrations/versions/"
                                        "0004_parcel_identity.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with fresh_engine.connect() as conn:
        in_sql = [conn.execute(text(f"SELECT {module.SOURCE_OF_FILE} FROM (SELECT :n AS source_file) t"),
                               {"n": n}).scalar() for n in names]
    assert [default_source(n) for n in names] == in_sql == ["brp_2023", "lohkot", "Feld-bl-cke-SH-", "x", "unnamed",
                                                            "a.b"]
