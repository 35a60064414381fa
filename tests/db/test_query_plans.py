"""The two typical questions use indexes, on a database with realistic row counts."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from soilclay.db import migrate
from soilclay.db.engine import make_engine

FILL = """
INSERT INTO soilclay.aois (name, geom, grid_crs)
VALUES ('plans', ST_Multi(ST_MakeEnvelope(12.0, 52.0, 13.0, 53.0, 4326)), 'EPSG:32633');
INSERT INTO soilclay.pipeline_runs (run_id, stage) VALUES ('r', 'predict');
INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, recipe, inputs_hash,
                                 scene_count, backend, uri)
SELECT 1, 'sentinel-2', v, '2022-01-01', '2024-12-31', lpad(to_hex(v), 16, '0'), '{}', lpad(to_hex(v + 99), 16, '0'),
       10, 'local', 'file:///c/' || v FROM generate_series(1, 2) AS v;
INSERT INTO soilclay.model_versions (version, status, artefact_uri, promoted_at)
VALUES (1, 'retired', 'file:///m/1', now()), (2, 'champion', 'file:///m/2', now());
INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file)
SELECT 'f', 'P' || i, ST_Multi(ST_MakeEnvelope(12 + (i % 200) * 0.005, 52 + (i / 200) * 0.005,
                                         12.004 + (i % 200) * 0.005, 52.004 + (i / 200) * 0.005, 4326)), 'f'
FROM generate_series(0, 39999) AS i;
INSERT INTO soilclay.parcel_predictions (parcel_key, geom_hash, model_version, s2_composite_id, run_id, clay_mean,
                                         clay_median, clay_lower, clay_upper, pixel_count)
SELECT p.parcel_key, p.geom_hash, m, c, 'r', 10 + (p.parcel_key % 40), 10 + (p.parcel_key % 40),
       5 + (p.parcel_key % 40), 15 + (p.parcel_key % 40), 40
FROM soilclay.parcels AS p, (VALUES (1), (2)) AS mv(m), (VALUES (1), (2)) AS cv(c);
ANALYZE;
"""


@pytest.fixture(scope="module")
def filled(db_factory):
    url = db_factory()
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(FILL))
    yield engine
    engine.dispose()


def _plan(engine, sql: str, params: dict) -> str:
    with engine.connect() as conn:
        return "\n".join(conn.execute(text("EXPLAIN " + sql), params).scalars())


def test_clay_of_one_parcel_uses_indexes(filled):
    plan = _plan(filled, "SELECT clay, clay_lower, clay_upper FROM soilclay.parcel_clay_latest WHERE parcel_id = :p",
                 {"p": "P12345"})
    assert "Seq Scan on parcel_predictions" not in plan and "Seq Scan on parcels" not in plan, plan
    assert "parcels_parcel_id_idx" in plan and "parcel_predictions_unique" in plan, plan
    plan = _plan(filled, "SELECT clay FROM soilclay.parcel_clay_latest WHERE source = :s AND parcel_id = :p",
                 {"s": "f", "p": "P12345"})
    assert "Seq Scan on parcels" not in plan and "Seq Scan on parcel_predictions" not in plan, plan
    with filled.connect() as conn:
        row = conn.execute(text("SELECT clay, model_version, s2_composite_version FROM soilclay.parcel_clay_latest "
                                "WHERE parcel_id = 'P12345'")).one()
    assert (row.model_version, row.s2_composite_version) == (2, 2)


def test_parcels_above_a_threshold_in_a_polygon_use_the_spatial_index(filled):
    sql = ("SELECT parcel_id, clay FROM soilclay.parcel_clay_latest "
           "WHERE clay > 35 AND ST_Intersects(geom, ST_MakeEnvelope(12.1, 52.1, 12.15, 52.15, 4326))")
    plan = _plan(filled, sql, {})
    assert "parcels_geom_gix" in plan and "Seq Scan on parcels" not in plan, plan
    assert "Seq Scan on parcel_predictions" not in plan, plan
