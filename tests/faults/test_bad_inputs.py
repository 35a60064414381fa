"""Bad inputs through the CLI, against a world with a champion, composites, samples and parcels: each is
refused with exit 1 and exactly one ``Error:`` line naming the file, field or value, no traceback, and
nothing written (every table's row count unchanged, no run left 'running')."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from soilclay.cli import main
from soilclay.testing import World
from tests.faults.conftest import cli_for, no_run_left_running

GARBLED = "\u00e9\u00e8;\u00ff\n\x01\x02;\x03\n"  # control characters and accents, no header anyone would write
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@dataclass
class Case:
    id: str
    args: Callable[[World, Path], list[str]]  # the command line, given the world and a scratch directory
    says: Callable[[World, Path], list[str]]  # what the error line must name
    setup: Callable[[World, Path], object] | None = None  # a context manager (or None) around the run
    role: str | None = None  # run as this database role (SET ROLE at connect)


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def _geojson(features: list[dict], crs: str | None = None) -> str:
    collection: dict = {"type": "FeatureCollection", "features": features}
    if crs:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(collection)


def _feature(geometry: dict, **props) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": props}


SQUARE = {"type": "Polygon", "coordinates": [[[13.0, 52.0], [13.01, 52.0], [13.01, 52.01], [13.0, 52.01],
                                              [13.0, 52.0]]]}
METRES = {"type": "Polygon", "coordinates": [[[500_000, 5_800_000], [501_000, 5_800_000], [501_000, 5_801_000],
                                              [500_000, 5_800_000]]]}
LINE = {"type": "LineString", "coordinates": [[13.0, 52.0], [13.01, 52.01]]}


@contextmanager
def _swapped(engine: Engine, table: str, column: str, where: str, value: str) -> Iterator[None]:
    """``column`` of the row ``where`` set to ``value`` while the block runs (a file swapped under the
    system's feet), then restored."""
    with engine.begin() as conn:
        old = conn.execute(text(f"SELECT {column} FROM soilclay.{table} WHERE {where}")).scalar_one()
        conn.execute(text(f"UPDATE soilclay.{table} SET {column} = :v WHERE {where}"), {"v": value})
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE soilclay.{table} SET {column} = :v WHERE {where}"), {"v": old})


def _champion_dir(world: World) -> Path:
    with world.engine.connect() as conn:
        return Path(conn.execute(text("SELECT artefact_uri FROM soilclay.model_versions "
                                      "WHERE status = 'champion'")).scalar_one())


def _corrupt_savedmodel(world: World, tmp: Path):
    """The champion's SavedModel copied, its graph overwritten with garbage, the registry pointed at it."""
    copy = tmp / "models" / "1"
    shutil.copytree(_champion_dir(world), copy)
    (copy / "saved_model.pb").write_bytes(b"\x08\x01garbage, not a SavedModel" * 100)
    return _swapped(world.engine, "model_versions", "artefact_uri", "status = 'champion'", str(copy))


def _emptied_savedmodel(world: World, tmp: Path):
    """The champion's SavedModel directory with its variables gone (a half-copied model)."""
    copy = tmp / "models-half" / "1"
    shutil.copytree(_champion_dir(world), copy)
    shutil.rmtree(copy / "variables")
    return _swapped(world.engine, "model_versions", "artefact_uri", "status = 'champion'", str(copy))


def _newest_s2(world: World) -> tuple[int, Path]:
    with world.engine.connect() as conn:
        row = conn.execute(text("SELECT composite_id, uri FROM soilclay.composites WHERE sensor = 'sentinel-2' "
                                "ORDER BY version DESC LIMIT 1")).one()
    return row.composite_id, Path(row.uri)


def _truncated_composite(world: World, tmp: Path):
    """The newest Sentinel-2 composite's COG cut in half (a download that stopped), registered in its place."""
    cid, uri = _newest_s2(world)
    cut = tmp / "cut" / uri.name
    cut.parent.mkdir(parents=True)
    data = uri.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return _swapped(world.engine, "composites", "uri", f"composite_id = {cid}", str(cut))


def _missing_composite(world: World, tmp: Path):
    cid, uri = _newest_s2(world)
    return _swapped(world.engine, "composites", "uri", f"composite_id = {cid}", str(tmp / "gone" / uri.name))


def _shapefile_without_prj(world: World, tmp: Path) -> Path:
    """The world's parcels as a Shapefile whose .prj was not copied along."""
    import geopandas as gpd

    out = tmp / "shp" / "parcels.shp"
    out.parent.mkdir(parents=True)
    gpd.read_file(world.source / "parcels.gpkg").to_file(out)
    out.with_suffix(".prj").unlink()
    return out


def _samples(tmp: Path, body: str, name: str = "samples.csv") -> Path:
    return _write(tmp / name, body)


CASES = [
    # --- soil samples ----------------------------------------------------------------------------------
    Case("samples-png", lambda w, t: ["samples", "load", str(_write(t / "lucas.csv", PNG)), "--source", "x"],
         lambda w, t: [str(t / "lucas.csv"), "PNG image"]),
    Case("samples-xlsx", lambda w, t: ["samples", "load", str(_write(t / "lucas.csv", b"PK\x03\x04" + PNG)),
                                       "--source", "x"],
         lambda w, t: [str(t / "lucas.csv"), "ZIP archive"]),
    Case("samples-nul-bytes", lambda w, t: ["samples", "load", str(_write(t / "s.csv", b"POINTID,Clay\n1\x00\x00,2\n")),
                                            "--source", "x"],
         lambda w, t: [str(t / "s.csv"), "NUL bytes"]),
    Case("samples-empty", lambda w, t: ["samples", "load", str(_write(t / "s.csv", "")), "--source", "x"],
         lambda w, t: [str(t / "s.csv"), "empty"]),
    Case("samples-garbled-text", lambda w, t: ["samples", "load", str(_write(t / "s.csv", GARBLED)), "--source", "x"],
         lambda w, t: [str(t / "s.csv"), "missing required columns"]),
    Case("samples-missing-clay-column",
         lambda w, t: ["samples", "load", str(_samples(t, "POINTID,TH_LAT,TH_LONG,Sand\n1,52.61,12.95,40\n")),
                       "--source", "x"],
         lambda w, t: [str(t / "samples.csv"), "clay (one of Clay", "found columns: POINTID, TH_LAT, TH_LONG, Sand"]),
    Case("samples-clay-out-of-range",
         lambda w, t: ["samples", "load", str(_samples(t, "POINTID,TH_LAT,TH_LONG,Clay\n1,52.61,12.95,150\n"
                                                          "2,52.61,12.951,-3\n")), "--source", "x"],
         lambda w, t: [str(t / "samples.csv"), "none of its 2 rows", "row 2", "150"]),
    Case("samples-latitude-out-of-range",
         lambda w, t: ["samples", "load", str(_samples(t, "POINTID,TH_LAT,TH_LONG,Clay\n1,152.61,12.95,20\n")),
                       "--source", "x"],
         lambda w, t: [str(t / "samples.csv"), "152.61"]),
    Case("samples-unknown-crs",
         lambda w, t: ["samples", "load", str(_samples(t, "POINTID,X,Y,Clay\n1,500000,5800000,20\n")), "--source", "x",
                       "--x-col", "X", "--y-col", "Y", "--crs", "EPSG:999999"],
         lambda w, t: ["EPSG:999999"]),
    # --- AOIs ------------------------------------------------------------------------------------------
    Case("aoi-bad-name", lambda w, t: ["aoi", "add", str(_write(t / "a.geojson", _geojson([_feature(SQUARE)]))),
                                       "--name", "x'; drop table aois", "--grid-crs", "EPSG:32633"],
         lambda w, t: ["x'; drop table aois"]),
    Case("aoi-line-geometry", lambda w, t: ["aoi", "add", str(_write(t / "a.geojson", _geojson([_feature(LINE)]))),
                                            "--name", "line", "--grid-crs", "EPSG:32633"],
         lambda w, t: [str(t / "a.geojson"), "LineString"]),
    Case("aoi-metres-without-crs", lambda w, t: ["aoi", "add",
                                                 str(_write(t / "a.geojson", _geojson([_feature(METRES)]))),
                                                 "--name", "metres", "--grid-crs", "EPSG:32633"],
         lambda w, t: [str(t / "a.geojson")]),
    Case("aoi-not-a-vector-file", lambda w, t: ["aoi", "add", str(_write(t / "a.geojson", PNG)), "--name", "png",
                                                "--grid-crs", "EPSG:32633"],
         lambda w, t: [str(t / "a.geojson")]),
    Case("aoi-geographic-grid", lambda w, t: ["aoi", "add", str(_write(t / "a.geojson", _geojson([_feature(SQUARE)]))),
                                              "--name", "geo", "--grid-crs", "EPSG:4326"],
         lambda w, t: ["EPSG:4326"]),
    # --- parcels ---------------------------------------------------------------------------------------
    Case("parcels-not-a-vector-file", lambda w, t: ["parcels", "load", str(_write(t / "p.gpkg", PNG))],
         lambda w, t: [str(t / "p.gpkg")]),
    Case("parcels-text-as-geojson", lambda w, t: ["parcels", "load", str(_write(t / "p.geojson", "{not json at all"))],
         lambda w, t: [str(t / "p.geojson")]),
    Case("parcels-metres-in-geojson", lambda w, t: ["parcels", "load", str(_write(t / "p.geojson", _geojson(
        [_feature(METRES, parcel_id="M1")])))],
         lambda w, t: [str(t / "p.geojson"), "none of its 1 features", "outside longitude", "need their CRS"]),
    Case("parcels-shapefile-without-prj", lambda w, t: ["parcels", "load", str(_shapefile_without_prj(w, t))],
         lambda w, t: [str(t / "shp" / "parcels.shp")]),
    Case("parcels-unknown-id-column", lambda w, t: ["parcels", "load", str(w.source / "parcels.gpkg"),
                                                    "--id-column", "flurstueck"],
         lambda w, t: ["flurstueck", "parcel_id"]),
    Case("parcels-unknown-layer", lambda w, t: ["parcels", "load", str(w.source / "parcels.gpkg"), "--layer", "nope"],
         lambda w, t: [str(w.source / "parcels.gpkg"), "nope"]),
    # --- model config, composite recipe ----------------------------------------------------------------
    Case("model-config-not-json", lambda w, t: ["model", "retrain", "--aoi", "demo-small", "--config",
                                                str(_write(t / "m.json", "{folds: 3"))],
         lambda w, t: [str(t / "m.json"), "not valid JSON"]),
    Case("model-config-bad-value", lambda w, t: ["model", "retrain", "--aoi", "demo-small", "--config",
                                                 str(_write(t / "m.json", '{"folds": 0}'))],
         lambda w, t: [str(t / "m.json"), "folds"]),
    Case("model-config-binary", lambda w, t: ["model", "retrain", "--aoi", "demo-small", "--config",
                                              str(_write(t / "m.json", PNG))],
         lambda w, t: [str(t / "m.json")]),
    Case("recipe-not-json", lambda w, t: ["composites", "build", "--aoi", "demo-small", "--recipe",
                                          str(_write(t / "r.json", "{s2: "))],
         lambda w, t: ["recipe file", str(t / "r.json"), "not valid JSON"]),
    Case("recipe-missing-file", lambda w, t: ["composites", "build", "--aoi", "demo-small", "--recipe",
                                              str(t / "nowhere.json")],
         lambda w, t: [str(t / "nowhere.json"), "does not exist"]),
    Case("recipe-unknown-aoi", lambda w, t: ["composites", "build", "--aoi", "atlantis"],
         lambda w, t: ["atlantis"]),
    # --- predict: what it reads is broken --------------------------------------------------------------
    Case("predict-corrupt-savedmodel", lambda w, t: ["predict", "--aoi", "demo-small"],
         lambda w, t: [str(t / "models" / "1")], setup=_corrupt_savedmodel),
    Case("predict-savedmodel-without-variables", lambda w, t: ["predict", "--aoi", "demo-small"],
         lambda w, t: [str(t / "models-half" / "1")], setup=_emptied_savedmodel),
    Case("predict-truncated-composite", lambda w, t: ["predict", "--aoi", "demo-small"],
         lambda w, t: ["Sentinel-2 composite version 1", str(t / "cut"), "corrupt or truncated"],
         setup=_truncated_composite),
    Case("predict-missing-composite", lambda w, t: ["predict", "--aoi", "demo-small"],
         lambda w, t: [str(t / "gone")], setup=_missing_composite),
    Case("predict-unknown-aoi", lambda w, t: ["predict", "--aoi", "atlantis"], lambda w, t: ["atlantis"]),
    # --- the read-only role tries to write -------------------------------------------------------------
    Case("reader-loads-parcels", lambda w, t: ["parcels", "load", str(w.source / "parcels.gpkg"), "--id-prefix", "r:"],
         lambda w, t: ["permission denied"], role="soilclay_reader"),
    Case("reader-loads-samples", lambda w, t: ["samples", "load", str(w.source / "samples.csv"), "--source", "r"],
         lambda w, t: ["permission denied"], role="soilclay_reader"),
    Case("reader-adds-an-aoi", lambda w, t: ["aoi", "add", str(w.source / "aoi.geojson"), "--name", "reader-aoi"],
         lambda w, t: ["permission denied"], role="soilclay_reader"),
    Case("writer-migrates-the-schema", lambda w, t: ["db", "downgrade", "base"],
         lambda w, t: ["permission denied"], role="soilclay_writer"),
]

@pytest.fixture(scope="module")
def world(world_states, tmp_path_factory) -> World:
    """One world for every case (each must leave it as it found it, which is what is checked)."""
    return world_states.fresh("champion", tmp_path_factory.mktemp("bad-inputs"))


def _counts(engine: Engine) -> dict[str, int]:
    """Rows per table of the soilclay schema, pipeline_runs aside (a refused run is recorded there)."""
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'soilclay' "
                                   "AND table_type = 'BASE TABLE' AND table_name <> 'pipeline_runs' "
                                   "ORDER BY table_name")).scalars().all()
        return {t: conn.execute(text(f'SELECT count(*) FROM soilclay."{t}"')).scalar() for t in tables}


@pytest.fixture(scope="module")
def logins(world) -> Iterator[dict[str, str]]:
    """A login role in each of soilclay's group roles (cluster-wide: unique names, dropped afterwards)."""
    token = uuid.uuid4().hex[:8]
    names = {group: f"fault_{group.removeprefix('soilclay_')}_{token}"
             for group in ("soilclay_reader", "soilclay_writer")}
    with world.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for group, name in names.items():
            conn.execute(text(f'CREATE ROLE "{name}" LOGIN IN ROLE {group}'))
    yield names
    with world.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in names.values():
            conn.execute(text(f'DROP OWNED BY "{name}"'))
            conn.execute(text(f'DROP ROLE "{name}"'))


def _as(url: str, login: str) -> str:
    return make_url(url).set(username=login).render_as_string(hide_password=False)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_a_bad_input_is_one_line_and_writes_nothing(case, world, logins, tmp_path, monkeypatch, tally):
    env = cli_for(_as(world.url, logins[case.role]) if case.role else world.url, world.root, world.source).env
    for key, value in env.items():
        if key.startswith("SOILCLAY_"):
            monkeypatch.setenv(key, value)
    with tally.bad_input(case.id):
        args = case.args(world, tmp_path)
        before = _counts(world.engine)
        setup = case.setup(world, tmp_path) if case.setup else None
        if setup is not None:
            with setup:
                result = CliRunner().invoke(main, args)
        else:
            result = CliRunner().invoke(main, args)
        output = result.output
        assert result.exit_code == 1, f"exit {result.exit_code}, {result.exception!r}:\n{output}"
        assert isinstance(result.exception, SystemExit), f"not a clear error but {result.exception!r}:\n{output}"
        assert "Traceback" not in output, output
        errors = [line for line in output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, output
        for needle in case.says(world, tmp_path):
            assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
        assert _counts(world.engine) == before
        no_run_left_running(world.engine)
