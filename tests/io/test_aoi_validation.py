"""Bad inputs of ``soilclay aoi add`` (issue 12): one clear line, a non-zero exit, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from soilclay.cli import main
from soilclay.db.aois import check_aoi_name, check_grid_crs
from soilclay.errors import BadInputError
from soilclay.io.vector import read_aoi_file

SQUARE = [[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]
BOWTIE = [[13.0, 52.0], [13.1, 52.1], [13.1, 52.0], [13.0, 52.1], [13.0, 52.0]]
LINE_LIKE = [[13.0, 52.0], [13.1, 52.0], [13.2, 52.0], [13.0, 52.0]]  # a ring with no area


def _geojson(tmp_path: Path, ring, *, name="field-1", grid_crs="EPSG:32633", crs: str | None = None,
             file="aoi.geojson") -> Path:
    collection: dict = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": name, "grid_crs": grid_crs}}]}
    if crs is not None:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    path = tmp_path / file
    path.write_text(json.dumps(collection))
    return path


@pytest.fixture
def cli(migrated_url, engine, monkeypatch):
    """Run ``soilclay`` against the test database; returns (invoke, count of rows in soilclay.aois)."""
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", migrated_url)

    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM soilclay.aois")).scalar_one()

    def invoke(*args: str):
        return CliRunner().invoke(main, ["aoi", "add", *args])

    return invoke, count


def _refused(cli, *args: str) -> str:
    """The single line ``aoi add`` refuses ``args`` with, after checking nothing was written."""
    invoke, count = cli
    before = count()
    result = invoke(*args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert count() == before
    return lines[0]


# --- 1. AOI names the database's check aois_name_format would refuse -------------------------------------

@pytest.mark.parametrize("name", ["x'; drop table aois", "a" * 10_000, "feld-größe", "Field", "-lead", "",
                                  "a\nb", "b" * 64])
def test_a_bad_name_is_refused_before_the_database(name):
    with pytest.raises(BadInputError) as refused:
        check_aoi_name(name, where="--name")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("--name: ")
    assert "lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters" \
        in message
    assert len(message) < 300  # the name is cut, not echoed whole


def test_good_names_pass():
    assert check_aoi_name("a") == "a"
    assert check_aoi_name("demo-small_2") == "demo-small_2"
    assert check_aoi_name("z" * 63) == "z" * 63


@pytest.mark.parametrize("name", ["x'; drop table aois", "a" * 10_000, "ñandú"])
def test_cli_refuses_a_bad_name(cli, tmp_path, name):
    line = _refused(cli, str(_geojson(tmp_path, SQUARE)), "--name", name)
    assert line.startswith("Error: --name: ") and "not a valid AOI name" in line
    assert repr(name[:40]) in line
    if len(name) > 40:
        assert f"({len(name)} characters)" in line


def test_cli_refuses_a_bad_name_from_the_file(cli, tmp_path):
    path = _geojson(tmp_path, SQUARE, name="My Field")
    line = _refused(cli, str(path))
    assert f"{path}: property 'name': 'My Field' is not a valid AOI name" in line


# --- 2. coordinates outside the longitude/latitude range ------------------------------------------------

def test_projected_metres_without_a_crs_member_are_refused(cli, tmp_path):
    metres = [[390000.0, 5800000.0], [391000.0, 5800000.0], [391000.0, 5801000.0], [390000.0, 5801000.0],
              [390000.0, 5800000.0]]
    path = _geojson(tmp_path, metres)
    line = _refused(cli, str(path))
    assert str(path) in line and "coordinates outside longitude/latitude range" in line
    assert "the file probably holds projected coordinates; declare its CRS" in line
    assert "390000" in line  # the bounds found are shown


def test_the_same_metres_with_their_crs_declared_are_read(tmp_path):
    metres = [[390000.0, 5800000.0], [391000.0, 5800000.0], [391000.0, 5801000.0], [390000.0, 5801000.0],
              [390000.0, 5800000.0]]
    geometry, props = read_aoi_file(_geojson(tmp_path, metres, crs="urn:ogc:def:crs:EPSG::32633"))
    lon, lat = geometry["coordinates"][0][0]
    assert 13 < lon < 14 and 52 < lat < 53 and props["name"] == "field-1"


# --- 3. the grid CRS --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "says"), [
    ("EPSG:999999", "not a CRS pyproj knows"),
    ("EPSG:4326", "geographic (degrees)"),
    ("nonsense", "not a CRS pyproj knows"),
    ("EPSG:2263", "not metres"),  # NY Long Island, US survey feet
])
def test_a_bad_grid_crs_is_refused(value, says):
    with pytest.raises(BadInputError) as refused:
        check_grid_crs(value, where="--grid-crs")
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"--grid-crs: {value!r}")
    assert says in message and "expected a metric projected CRS, e.g. a UTM zone EPSG:326xx" in message


def test_a_good_grid_crs_is_normalised():
    assert check_grid_crs("EPSG:32633") == "EPSG:32633"
    assert check_grid_crs("epsg:25832") == "EPSG:25832"


@pytest.mark.parametrize("value", ["EPSG:999999", "EPSG:4326"])
def test_cli_refuses_a_bad_grid_crs(cli, tmp_path, value):
    line = _refused(cli, str(_geojson(tmp_path, SQUARE)), "--grid-crs", value)
    assert line.startswith(f"Error: --grid-crs: {value!r}") and "EPSG:326xx" in line


def test_cli_refuses_a_bad_grid_crs_from_the_file(cli, tmp_path):
    path = _geojson(tmp_path, SQUARE, grid_crs="EPSG:4326")
    line = _refused(cli, str(path))
    assert f"{path}: property 'grid_crs': 'EPSG:4326'" in line and "geographic" in line


# --- 4. invalid (self-intersecting) polygons ---------------------------------------------------------------

def test_a_bowtie_is_repaired_with_a_warning(cli, tmp_path, engine):
    invoke, count = cli
    before = count()
    result = invoke(str(_geojson(tmp_path, BOWTIE, name="bowtie-test")))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert "invalid polygon" in warnings[0] and "repaired it to a MultiPolygon" in warnings[0]
    assert "km2 as drawn ->" in warnings[0]
    assert "AOI bowtie-test registered" in result.output and "grid EPSG:32633" in result.output
    assert count() == before + 1
    with engine.connect() as conn:
        parts, valid = conn.execute(text(
            "SELECT ST_NumGeometries(geom), ST_IsValid(geom) FROM soilclay.aois WHERE name = 'bowtie-test'")).one()
    assert parts == 2 and valid


def test_a_valid_polygon_gives_no_warning(cli, tmp_path):
    invoke, _ = cli
    result = invoke(str(_geojson(tmp_path, SQUARE, name="square-test")))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output and "AOI square-test registered" in result.output


def test_a_polygon_whose_repair_is_not_areal_is_refused(cli, tmp_path):
    path = _geojson(tmp_path, LINE_LIKE, name="flat-test")
    line = _refused(cli, str(path))
    assert str(path) in line and "invalid polygon" in line
    assert "expected a Polygon or MultiPolygon" in line


def test_read_aoi_file_reports_the_repair_through_warn(tmp_path):
    said: list[str] = []
    geometry, _ = read_aoi_file(_geojson(tmp_path, BOWTIE), warn=said.append)
    assert geometry["type"] == "MultiPolygon" and len(said) == 1


def test_an_unreadable_file_is_one_line(cli, tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text("{not json")
    line = _refused(cli, str(path))
    assert str(path) in line and "not a readable vector file" in line
