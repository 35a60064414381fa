"""Loading LUCAS-style sample files: validation by row number, idempotent upserts, one transaction.

The session database is shared, so every test loads under its own ``source``."""

from __future__ import annotations

import shutil
import uuid
from datetime import date

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from pyproj import Transformer
from sqlalchemy import text

from soilclay.cli.samples import samples as samples_cli
from soilclay.errors import BadInputError
from soilclay.samples import load as sl
from soilclay.samples.load import RowProblem, load_samples, parse_date, parse_samples
from soilclay.settings import Settings

HEADER_2018 = "POINTID,TH_LAT,TH_LONG,Clay,Sand,Silt,SURVEY_DATE,OC"


def _source(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _stored(engine, source: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(text(
            "SELECT point_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, clay, sand, silt, survey_date, attributes "
            "FROM soilclay.samples WHERE source = :s ORDER BY point_id, survey_date"), {"s": source}).mappings().all())


def _write(path, *lines: str):
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- the demo world's file


def test_demo_samples_load_and_reload_inserts_nothing(engine, small_world):
    source = _source("demo")
    first = load_samples(engine, small_world / "samples.csv", source=source)
    assert (first.rows, first.valid, first.inserted, first.updated, first.unchanged) == (120, 120, 120, 0, 0)
    assert first.problems == []
    stored = _stored(engine, source)
    csv = pd.read_csv(small_world / "samples.csv", dtype={"POINTID": str})
    merged = stored.merge(csv, left_on="point_id", right_on="POINTID", validate="one_to_one")
    assert len(merged) == 120
    assert (merged.lon == merged.TH_LONG).all() and (merged.lat == merged.TH_LAT).all()
    assert (merged.clay == merged.Clay).all() and (merged.sand == merged.Sand).all()
    assert (merged.survey_date.astype(str) == merged.SURVEY_DATE).all()

    again = load_samples(engine, small_world / "samples.csv", source=source)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 120)
    assert len(_stored(engine, source)) == 120
    assert "inserted 0, updated 0, unchanged 120" in again.render()


def test_a_corrected_value_updates_its_row(engine, small_world, tmp_path):
    source = _source("corrected")
    path = tmp_path / "samples.csv"
    shutil.copy(small_world / "samples.csv", path)
    load_samples(engine, path, source=source)
    frame = pd.read_csv(path, dtype=str)
    frame.loc[4, ["Clay", "Sand"]] = [str(int(frame.Clay[4]) + 2), str(int(frame.Sand[4]) - 2)]
    frame.to_csv(path, index=False)
    report = load_samples(engine, path, source=source)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 119)
    stored = _stored(engine, source).set_index("point_id")
    assert stored.loc[frame.POINTID[4], "clay"] == float(frame.Clay[4])
    assert len(stored) == 120


# --------------------------------------------------------------------------- bad rows


BAD_FILE = (
    HEADER_2018,
    "1001,52.61,12.95,20,40,40,15-06-18,1.2",        # row 2: good (LUCAS 2018 date)
    "1002,52.61,12.95,120,0,0,15-06-18,",            # row 3: clay 120
    "1003,52.61,12.95,50,50,50,2018-06-15,",         # row 4: sum 150
    "1004,95,12.95,20,40,40,2018-06-15,",            # row 5: latitude 95
    "1005,52.61,12.95,20,40,40,31-02-18,",           # row 6: no 31 February
    "1006,52.61,12.95,,40,40,2018-06-15,",           # row 7: clay missing
    "1001,52.62,12.96,25,35,40,15-06-18,",           # row 8: duplicate of row 2
    "1007,52.61,abc,20,40,40,2018-06-15,",           # row 9: longitude not a number
    "1008,52.615,12.955,30,30,40,2018-07-01,",       # row 10: good
    "",                                              # row 11: blank line, ignored
    "1001,52.61,12.95,21,40,39,2015-06-15,",         # row 12: good (same point, another survey)
)


def test_bad_rows_are_reported_by_row_number_and_never_inserted(engine, tmp_path):
    source = _source("bad")
    report = load_samples(engine, _write(tmp_path / "bad.csv", *BAD_FILE), source=source)
    assert report.problems == [
        RowProblem(3, "Clay 120 outside 0-100"),
        RowProblem(4, "Clay+Sand+Silt = 150 (50 + 50 + 50), expected 100 +- 5"),
        RowProblem(5, "TH_LAT 95 outside -90..90"),
        RowProblem(6, "SURVEY_DATE '31-02-18' is not a date (expected dd-mm-yy as in LUCAS 2018, or YYYY-MM-DD)"),
        RowProblem(7, "Clay missing"),
        RowProblem(8, "duplicate of row 2: POINTID 1001 2018-06-15 again; the first is kept"),
        RowProblem(9, "TH_LONG 'abc' is not a number"),
    ]
    assert (report.rows, report.valid, report.inserted, report.skipped, report.duplicates) == (10, 3, 3, 7, 1)
    stored = _stored(engine, source)
    assert list(zip(stored.point_id, stored.survey_date.astype(str), strict=True)) == [
        ("1001", "2015-06-15"), ("1001", "2018-06-15"), ("1008", "2018-07-01")]
    kept = stored[stored.survey_date == date(2018, 6, 15)].iloc[0]
    assert (kept.clay, kept.lat, kept.attributes) == (20.0, 52.61, {"OC": "1.2"})  # the first row, extras kept
    rendered = report.render(max_problems=2)
    assert "row 3: Clay 120 outside 0-100" in rendered and "... and 5 more" in rendered


def test_other_problems_and_multiple_reasons_per_row():
    frame = pd.DataFrame({
        "point_id": ["a", "", "c", "d", "e"],
        "lat": [52.6, 52.6, None, 52.6, 52.6],
        "lon": [12.9, 200.0, 12.9, 12.9, 12.9],
        "clay": [20, 20, 20, -1, 20],
        "sand": [None, 101, None, None, None],
        "date": ["2018-06-15", None, "2018-06-15T10:00:00", "2018-06-15", "02-06-45"],
    })
    parsed, problems = parse_samples(frame, today=date(2026, 1, 1))
    assert problems == [
        RowProblem(3, "point_id missing"),
        RowProblem(3, "lon 200 outside -180..180"),
        RowProblem(3, "sand 101 outside 0-100"),
        RowProblem(4, "lat missing"),
        RowProblem(5, "clay -1 outside 0-100"),
        RowProblem(6, "date '02-06-45' is in the future (2045-06-02)"),
    ]
    assert parsed.row.tolist() == [2]
    assert parsed.iloc[0][["point_id", "clay", "sand", "survey_date"]].tolist() == ["a", 20.0, None, date(2018, 6, 15)]


def test_a_failing_write_leaves_nothing(engine, small_world, monkeypatch):
    source = _source("atomic")
    real = sl._json_rows

    def poisoned(samples: pd.DataFrame) -> str:
        rows = real(samples)
        return rows.replace('"clay": 23.0', '"clay": 500.0', 1)  # one row the database refuses

    monkeypatch.setattr(sl, "_json_rows", poisoned)
    with pytest.raises(BadInputError, match=r"loading samples from .*samples\.csv .*: the database refused the data"):
        load_samples(engine, small_world / "samples.csv", source=source)
    assert _stored(engine, source).empty


# --------------------------------------------------------------------------- columns and coordinates


def test_lucas_2015_style_columns(engine, tmp_path):
    path = _write(tmp_path / "lucas2015.csv",
                  "Point_ID;GPS_LAT;GPS_LONG;Coarse;Clay;Sand;Silt;Date",
                  "26581838;52.61;12.95;3;18;55;27;2015-06-02",
                  "26581840;52.62;12.96;1;31;30;39;24/07/15")
    parsed, problems = parse_samples(path)
    assert problems == []
    assert parsed.point_id.tolist() == ["26581838", "26581840"]
    assert parsed.survey_date.tolist() == [date(2015, 6, 2), date(2015, 7, 24)]
    assert parsed.attributes.tolist() == [{"Coarse": "3"}, {"Coarse": "1"}]
    source = _source("lucas2015")
    assert load_samples(engine, path, source=source).inserted == 2
    assert _stored(engine, source).lat.tolist() == [52.61, 52.62]


def test_missing_columns_name_the_alternatives_and_what_was_found(tmp_path):
    path = _write(tmp_path / "few.csv", "POINTID,Clay,latitude", "1,20,52.6")
    with pytest.raises(BadInputError) as info:
        parse_samples(path)
    message = str(info.value)
    assert "longitude (one of TH_LONG, GPS_LONG, LON, longitude)" in message
    assert "latitude" not in message.split("missing required columns:")[1].split(";")[0]
    assert message.endswith("found columns: POINTID, Clay, latitude")
    with pytest.raises(BadInputError, match="samples file not found"):
        parse_samples(tmp_path / "absent.csv")
    with pytest.raises(BadInputError, match="is empty"):
        parse_samples(_write(tmp_path / "empty.csv", ""))


def test_projected_coordinates_are_reprojected(tmp_path):
    lon, lat = [12.95, 12.96], [52.61, 52.62]
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:25833", always_xy=True).transform(lon, lat)
    frame = pd.DataFrame({"POINTID": [1, 2], "X": x, "Y": y, "Clay": [20, 30]})
    parsed, problems = parse_samples(frame, x_col="x", y_col="y", crs="EPSG:25833")
    assert problems == []
    assert parsed.lon.tolist() == pytest.approx(lon, abs=1e-9) and parsed.lat.tolist() == pytest.approx(lat, abs=1e-9)
    frame.loc[1, "X"] = 1e12
    _, problems = parse_samples(frame, x_col="X", y_col="Y", crs="EPSG:25833")
    assert [p.row for p in problems] == [3] and "not a valid position in EPSG:25833" in problems[0].reason
    with pytest.raises(BadInputError, match="unknown coordinate reference system 'EPSG:0'"):
        parse_samples(frame, x_col="X", y_col="Y", crs="EPSG:0")
    with pytest.raises(BadInputError, match="give both x_col and y_col"):
        parse_samples(frame, x_col="X")


@pytest.mark.parametrize(("raw", "expected"), [
    ("06-07-18", date(2018, 7, 6)), ("2018-07-06", date(2018, 7, 6)), ("06-07-2018", date(2018, 7, 6)),
    ("06/07/18", date(2018, 7, 6)), ("06.07.2018", date(2018, 7, 6)), ("2018-07-06 00:00:00", date(2018, 7, 6)),
    ("", None), ("NA", None),
])
def test_parse_date(raw, expected):
    assert parse_date(raw) == expected


def test_parse_date_refuses_other_text():
    for raw in ("July 2018", "2018-13-01", "2018-02-30T00:00"):
        with pytest.raises(ValueError):
            parse_date(raw)


def test_file_forms_and_odd_values(engine, tmp_path, caplog):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("POINT_ID,LAT,LON,clay,Bemerkung\n1,52.6,12.9,20,Lehm über Sand\n".encode("latin-1"))
    parsed, problems = parse_samples(latin)
    assert problems == [] and parsed.attributes[0] == {"Bemerkung": "Lehm über Sand"}
    with pytest.raises(BadInputError, match="cannot read .* as CSV"):
        parse_samples(_write(tmp_path / "ragged.csv", "id,lat,lon,clay", "1,52.6,12.9,20", "2,52.6,12.9,20,5,6,7"))
    trailing, _ = parse_samples(_write(tmp_path / "trailing.csv", "id,lat,lon,clay,", "1,52.6,12.9,20,"))
    assert trailing[["point_id", "lat", "lon", "clay"]].iloc[0].tolist() == ["1", 52.6, 12.9, 20.0]
    frame = pd.DataFrame({"id": ["a", "b"], "lat": [52.6, 52.6], "lon": [12.9, 12.9], "clay": [20.0, np.inf],
                          "date": [pd.Timestamp("2018-06-15 10:00"), date(2018, 6, 16)]})
    parsed, problems = parse_samples(frame)
    assert problems == [RowProblem(3, "clay 'inf' is not a finite number")]
    assert parsed.survey_date.tolist() == [date(2018, 6, 15)]
    many = [f"{i},52.6,12.9,{101 + i}" for i in range(25)]
    with pytest.raises(BadInputError, match=r"all-bad\.csv: none of its 25 rows is a valid sample \(row 2: clay "
                                            r"101 outside 0-100; row 3: clay 102 outside 0-100; row 4: .*; …\); "
                                            r"nothing loaded"):
        load_samples(engine, _write(tmp_path / "all-bad.csv", "id,lat,lon,clay", *many), source=_source("x"))
    assert "5 more problems" in caplog.text


def test_a_source_name_is_required(engine, small_world):
    with pytest.raises(BadInputError, match="source name is required"):
        load_samples(engine, small_world / "samples.csv", source=" ")


# --------------------------------------------------------------------------- command line


def test_cli_load_prints_the_report_and_records_the_run(engine, tmp_path):
    path = _write(tmp_path / "field-campaign.csv", *BAD_FILE)
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    first = runner.invoke(samples_cli, ["load", str(path), "--show", "3"], obj=settings)
    assert first.exit_code == 0, first.output
    assert "(source 'field-campaign'): 10 rows read, 3 valid; inserted 3, updated 0, unchanged 0" in first.output
    assert "row 3: Clay 120 outside 0-100" in first.output and "... and 4 more" in first.output
    source = _source("cli")
    again = runner.invoke(samples_cli, ["load", str(path), "--source", source], obj=settings)
    assert again.exit_code == 0 and "inserted 3" in again.output
    with engine.connect() as conn:
        summary = conn.execute(text(
            "SELECT summary FROM soilclay.pipeline_runs WHERE stage = 'sample_load' AND params->>'source' = :s "
            "AND status = 'success'"), {"s": source}).scalar_one()
    assert summary["inserted"] == 3 and summary["skipped"] == 7
    few = _write(tmp_path / "few.csv", "POINTID,Clay", "1,20")
    refused = runner.invoke(samples_cli, ["load", str(few), "--source", source], obj=settings)
    assert isinstance(refused.exception, BadInputError) and "missing required columns" in str(refused.exception)
    with engine.connect() as conn:
        error = conn.execute(text(
            "SELECT error FROM soilclay.pipeline_runs WHERE stage = 'sample_load' AND params->>'file' = :f "
            "AND status = 'failed'"), {"f": str(few)}).scalar_one()
    assert "missing required columns" in error
