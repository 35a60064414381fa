"""Files that are not sample CSVs are one line; coordinates that miss every AOI are a warning."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from soilclay.cli import main
from soilclay.db.aois import register_aoi
from soilclay.errors import BadInputError
from soilclay.samples.load import load_samples

# A square around lon 12.8..13.0, lat 52.5..52.7 (Brandenburg): its swap lies in the Sahel, inside no AOI.
SQUARE = {"type": "Polygon", "coordinates": [[[12.8, 52.5], [13.0, 52.5], [13.0, 52.7], [12.8, 52.7], [12.8, 52.5]]]}


@pytest.mark.parametrize(("head", "kind"), [
    (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
    (b"SQLite format 3\x00\x10\x00", "an SQLite database"),
    (b"POINTID,TH_LAT\x00\x00\x01\x02\xff\xfe", "binary data (it contains NUL bytes)"),
])
def test_a_binary_file_is_refused_without_echoing_its_bytes(engine, tmp_path, head, kind):
    path = tmp_path / "samples.csv"
    path.write_bytes(head + bytes(range(256)) * 4)
    source = f"bin-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BadInputError, match=f"is not a CSV text file: it looks like {kind.split(' (')[0]}"):
        load_samples(engine, path, source=source)
    result = CliRunner().invoke(main, ["samples", "load", str(path), "--source", source],
                                env={"SOILCLAY_DATABASE_URL": engine.url.render_as_string(hide_password=False)})
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and str(path) in result.output
    assert "\\x" not in result.output and "\x00" not in result.output and "Traceback" not in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM soilclay.samples WHERE source = :s"),
                            {"s": source}).scalar_one() == 0


def test_swapped_coordinates_inside_no_aoi_are_loaded_with_a_warning(engine, tmp_path, caplog):
    register_aoi(engine, f"square-{uuid.uuid4().hex[:6]}", SQUARE, "EPSG:32633")
    path = tmp_path / "swapped.csv"
    path.write_text("POINTID,TH_LAT,TH_LONG,Clay,Sand,Silt\n"
                    "in1,52.6,12.9,20,40,40\n"           # inside the square
                    "sw1,12.9,52.6,20,40,40\n"           # lat and lon swapped
                    "sw2,12.95,52.65,25,35,40\n")
    source = f"swap-{uuid.uuid4().hex[:8]}"
    report = load_samples(engine, path, source=source)
    assert (report.valid, report.inserted) == (3, 3)
    assert (report.outside_aois, report.swapped_inside) == (2, 2)
    assert report.outside_examples == ("sw1 at lon 52.6000, lat 12.9000", "sw2 at lon 52.6500, lat 12.9500")
    warning = report.outside_warning()
    assert "2 of 3 samples" in warning and "longitude and latitude swapped" in warning
    assert warning in report.render() and any(warning in r.getMessage() for r in caplog.records)
    assert report.summary()["outside_aois"] == 2
