"""The schema keeps bad data out: each case is one bad row, and the error names the rule."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, InternalError, ProgrammingError

from tests.db import builders as b

BAD = (IntegrityError, InternalError, ProgrammingError, DataError)


def _fails(conn, sql: str, params: dict | None = None, match: str = "") -> None:
    sp = conn.begin_nested()
    with pytest.raises(BAD, match=match):
        conn.execute(text(sql), params or {})
    sp.rollback()


@pytest.mark.parametrize(("clay", "sand", "silt", "rule"), [
    (101, None, None, "samples_clay_range"),
    (-1, None, None, "samples_clay_range"),
    (30, 120, 10, "samples_sand_range"),
    (30, 50, 50, "samples_texture_sum"),
])
def test_samples_reject_out_of_range_texture(conn, clay, sand, silt, rule):
    _fails(conn, "INSERT INTO soilclay.samples (source, point_id, geom, clay, sand, silt) VALUES "
                 "('t', 'p', ST_SetSRID(ST_MakePoint(13, 52), 4326), :c, :s, :t)",
           {"c": clay, "s": sand, "t": silt}, match=rule)


def test_samples_accept_valid_row_and_dedupe_on_reload(conn):
    sql = ("INSERT INTO soilclay.samples (source, point_id, geom, clay, sand, silt) VALUES "
           "('t', 'p1', ST_SetSRID(ST_MakePoint(13, 52), 4326), 20, 50, 30)")
    conn.execute(text(sql))
    _fails(conn, sql, match="samples_point_unique")  # same point, no survey date: still one row


def test_samples_reject_wrong_srid_and_bad_coordinates(conn):
    _fails(conn, "INSERT INTO soilclay.samples (source, point_id, geom, clay) VALUES "
                 "('t', 'p', ST_SetSRID(ST_MakePoint(361000, 5832000), 32633), 20)", match="SRID")
    _fails(conn, "INSERT INTO soilclay.samples (source, point_id, geom, clay) VALUES "
                 "('t', 'p', ST_SetSRID(ST_MakePoint(200, 52), 4326), 20)", match="samples_geom_valid")


@pytest.mark.parametrize(("geom", "match"), [
    ("SRID=4326;MULTIPOLYGON(((0 0,1 1,1 0,0 1,0 0)))", "parcels_geom_valid"),  # self-intersecting bow-tie
    ("SRID=4326;MULTIPOLYGON EMPTY", "parcels_geom_valid"),
    ("SRID=3857;MULTIPOLYGON(((0 0,1 0,1 1,0 0)))", "SRID"),
    ("SRID=4326;LINESTRING(0 0,1 1)", "type"),  # not areal
])
def test_parcels_reject_bad_geometries(conn, geom, match):
    _fails(conn, "INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file) "
                 "VALUES ('x', 'bad', ST_GeomFromEWKT(:g), 'x.gpkg')", {"g": geom}, match=match)


def test_only_one_champion(conn):
    b.model(conn, 1, "champion")
    _fails(conn, "INSERT INTO soilclay.model_versions (version, status, artefact_uri, promoted_at) "
                 "VALUES (2, 'champion', 'file:///m/2', now())", match="model_versions_one_champion")
    _fails(conn, "INSERT INTO soilclay.model_versions (version, status, artefact_uri) "
                 "VALUES (3, 'deployed', 'file:///m/3')", match="model_versions_status_known")


def test_prediction_rules_and_idempotency_key(conn):
    a = b.aoi(conn)
    s2 = b.composite(conn, a)
    s1 = b.composite(conn, a, sensor="sentinel-1")
    r = b.run(conn)
    p = b.parcel(conn)
    m = b.model(conn, 1, "champion")
    b.prediction(conn, p, m, s2, r)
    # Same (parcel, model, S2, no S1) again: rejected, even though s1 is NULL in both.
    sp = conn.begin_nested()
    with pytest.raises(IntegrityError, match="parcel_predictions_unique"):
        b.prediction(conn, p, m, s2, r)
    sp.rollback()
    b.prediction(conn, p, m, s2, r, s1=s1)  # a different composite combination is a new row
    for kwargs, rule in [
        (dict(clay=101.0, upper=101.0), "parcel_predictions_mean_range"),
        (dict(clay=30.0, lower=35.0, upper=25.0), "parcel_predictions_interval_order"),
        (dict(clay=None, lower=None, upper=None), "parcel_predictions_missing_flagged"),
        (dict(pixels=-1), "parcel_predictions_pixels_nonneg"),
    ]:
        sp = conn.begin_nested()
        with pytest.raises(IntegrityError, match=rule):
            b.prediction(conn, b.parcel(conn, f"P-{rule}"), m, s2, r, **kwargs)
        sp.rollback()
    # No estimate, but the reason is given: accepted.
    b.prediction(conn, b.parcel(conn, "P-small"), m, s2, r, clay=None, lower=None, upper=None,
                 flags=["too_few_pixels"], pixels=1)


def test_foreign_keys(conn):
    _fails(conn, "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, "
                 "recipe_hash, recipe, inputs_hash, scene_count, backend, uri) VALUES (999999, 'sentinel-2', 1,"
                 " '2022-01-01', '2022-12-31', '0123456789abcdef', '{}', '0123456789abcdef', 1, 'local', 'x')",
           match="foreign key")


def test_failed_run_needs_a_reason(conn):
    _fails(conn, "INSERT INTO soilclay.pipeline_runs (run_id, stage, status) VALUES ('r', 'predict', 'failed')",
           match="pipeline_runs_failure_has_reason")
    conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage, status, error) "
                      "VALUES ('r', 'predict', 'failed', 'TF Serving unreachable')"))


def test_composite_versions_are_unique_per_recipe_and_inputs(conn):
    a = b.aoi(conn)
    b.composite(conn, a, version=1)
    _fails(conn, "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, "
                 "recipe_hash, recipe, inputs_hash, scene_count, backend, uri) VALUES (:a, 'sentinel-2', 2,"
                 " '2022-01-01', '2024-12-31', '0000000000000001', '{}', '0000000000000065', 10, 'local', 'y')",
           {"a": a}, match="composites_inputs_unique")


def test_parcel_identity_is_source_and_id_and_estimates_belong_to_a_geometry(conn):
    a, r, m = b.aoi(conn), b.run(conn), b.model(conn, 1, "champion")
    s2 = b.composite(conn, a)
    b.parcel(conn, "1", source="nl-brp")
    b.parcel(conn, "1", source="fi-gsaa")  # the same id in another register is another parcel
    _fails(conn, "INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file) "
                 "VALUES ('nl-brp', '1', ST_GeomFromEWKT(:g), 'x.gpkg')", {"g": b.SQUARE},
           match="parcels_source_parcel")
    _fails(conn, "INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file) "
                 "VALUES ('x''; drop', '2', ST_GeomFromEWKT(:g), 'x.gpkg')", {"g": b.SQUARE},
           match="parcels_source_format")
    b.prediction(conn, "1", m, s2, r, source="nl-brp")
    # A new shape: the generated hash follows, the trigger keeps the old geometry, the old estimate stays
    # (history) and the same model on the same composites may now estimate the new shape.
    conn.execute(text("UPDATE soilclay.parcels SET geom = ST_Multi(ST_Buffer(geom, 0.0001)) "
                      "WHERE source = 'nl-brp'"))
    b.prediction(conn, "1", m, s2, r, source="nl-brp")
    rows = conn.execute(text(
        "SELECT g.geom_hash = p.geom_hash AS current, count(pp.prediction_id) AS estimates "
        "FROM soilclay.parcel_geometries g JOIN soilclay.parcels p USING (parcel_key) "
        "LEFT JOIN soilclay.parcel_predictions pp ON pp.parcel_key = g.parcel_key AND pp.geom_hash = g.geom_hash "
        "WHERE p.source = 'nl-brp' "
        "GROUP BY 1 ORDER BY 1")).all()
    assert [tuple(x) for x in rows] == [(False, 1), (True, 1)]
    # An estimate must name a geometry the parcel has had.
    _fails(conn, "INSERT INTO soilclay.parcel_predictions (parcel_key, geom_hash, model_version, s2_composite_id, "
                 "run_id, clay_mean, clay_median, clay_lower, clay_upper, pixel_count, bare_fraction) "
                 "SELECT parcel_key, repeat('0', 32), :m, :s2, :r, 30, 30, 25, 35, 10, 0.5 FROM soilclay.parcels "
                 "WHERE source = 'fi-gsaa'", {"m": m, "s2": s2, "r": r}, match="parcel_predictions_geometry_fkey")
