"""Minimal valid rows for the soilclay tables, so each test changes only what it is about."""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

SQUARE = "SRID=4326;MULTIPOLYGON(((12.9 52.6,12.901 52.6,12.901 52.601,12.9 52.601,12.9 52.6)))"


def aoi(conn: Connection, name: str = "t-aoi") -> int:
    return conn.execute(text(
        "INSERT INTO soilclay.aois (name, geom, grid_crs) VALUES (:n, ST_GeomFromEWKT(:g), 'EPSG:32633') "
        "RETURNING aoi_id"), {"n": name, "g": SQUARE}).scalar_one()


def run(conn: Connection, run_id: str = "run-1", stage: str = "predict") -> str:
    conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage) VALUES (:r, :s)"),
                 {"r": run_id, "s": stage})
    return run_id


def composite(conn: Connection, aoi_id: int, version: int = 1, sensor: str = "sentinel-2") -> int:
    return conn.execute(text(
        "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, recipe,"
        " inputs_hash, scene_count, backend, uri) VALUES (:a, :s, :v, '2022-01-01', '2024-12-31', :h,"
        " '{}', :i, 10, 'local', :u) RETURNING composite_id"),
        {"a": aoi_id, "s": sensor, "v": version, "h": f"{version:016x}", "i": f"{version + 100:016x}",
         "u": f"file:///c/{sensor}/{aoi_id}/{version}.tif"}).scalar_one()


def parcel(conn: Connection, parcel_id: str = "P1", geom: str = SQUARE, source: str = "test") -> str:
    conn.execute(text("INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file) "
                      "VALUES (:s, :p, ST_GeomFromEWKT(:g), 'test.gpkg')"), {"s": source, "p": parcel_id, "g": geom})
    return parcel_id


def model(conn: Connection, version: int = 1, status: str = "candidate") -> int:
    conn.execute(text(
        "INSERT INTO soilclay.model_versions (version, status, artefact_uri, metrics, promoted_at) "
        "VALUES (:v, :s, :u, :m, CASE WHEN :s = 'champion' THEN now() END)"),
        {"v": version, "s": status, "u": f"file:///models/clay/{version}", "m": json.dumps({"rmse": 5.0})})
    return version


def prediction(conn: Connection, parcel_id: str, model_version: int, s2: int, run_id: str, *,
               clay: float | None = 30.0, lower: float | None = 25.0, upper: float | None = 35.0,
               s1: int | None = None, flags: list[str] | None = None, pixels: int = 50, source: str = "test") -> int:
    """An estimate of the parcel's current geometry."""
    return conn.execute(text(
        "INSERT INTO soilclay.parcel_predictions (parcel_key, geom_hash, model_version, s2_composite_id,"
        " s1_composite_id, run_id, clay_mean, clay_median, clay_lower, clay_upper, pixel_count, bare_fraction,"
        " flags) SELECT p.parcel_key, p.geom_hash, :m, :s2, :s1, :r, :c, :c, :lo, :hi, :n, 0.8, :f"
        " FROM soilclay.parcels p WHERE p.source = :src AND p.parcel_id = :p RETURNING prediction_id"),
        {"p": parcel_id, "src": source, "m": model_version, "s2": s2, "s1": s1, "r": run_id, "c": clay,
         "lo": lower, "hi": upper, "n": pixels, "f": flags or []}).scalar_one()
