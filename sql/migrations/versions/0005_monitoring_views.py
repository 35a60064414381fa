"""Monitoring: what soilclay's Prometheus exporter reads, readable by ``soilclay_reader``.

The reader reads views only, never the tables (tests/db/test_roles_and_view.py). The exporter
(``soilclay metrics serve``, :mod:`soilclay.db.monitoring`) runs as that role, so these views expose the
columns it aggregates and nothing else: no error texts, run parameters, URIs, attributes or estimates'
numbers. Each view reads one table, so the planner inlines it and the tables' indexes serve it. Views run
with their owner's rights (the migrating role), which is how the reader sees these columns and no others.

Which parcels belong to which AOI is kept by the database, not recomputed per scrape: ``parcel_aois`` holds
one row per (AOI, parcel) whose stored geometries intersect (``ST_Intersects(parcels.geom, aois.geom)``, both
EPSG:4326 by their typmods: the predicate of ``soilclay.db.parcels``), with the parcel's current
``geom_hash``. Statement-level triggers keep it: inserted parcels and AOIs get their rows; a parcel whose
geometry changed (``geom_hash``) or an AOI whose geometry changed (``ST_OrderingEquals``) has its rows
recomputed; deleting either cascades. The trigger functions run with their owner's rights, so the writer
cannot write the table itself and it cannot disagree with the geometries. Existing rows are filled here.

Indexes for the scrape: the newest composites per (AOI, sensor) are found by ``composites_version_unique``;
the scene statistics per (AOI, collection) by ``scenes_aoi_collection_acquired_idx``; an AOI's parcels by
``parcel_aois_pkey`` (``(aoi_id, parcel_key)`` including ``geom_hash``: index-only); the champion's estimates
on an S2 composite by ``parcel_predictions_current_idx`` (``(model_version, s2_composite_id, parcel_key,
s1_composite_id)`` including what the scrape reads: index-only, in parcel order, so the estimates of an AOI's
current geometries are a merge join of two index scans). It replaces ``parcel_predictions_model_composite_idx``
(its prefix); runs per stage and status by ``pipeline_runs_stage_status_idx``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

VIEWS = ("monitoring_aois", "monitoring_scenes", "monitoring_composites", "monitoring_model_versions",
         "monitoring_parcels", "monitoring_parcel_aois", "monitoring_parcel_estimates", "monitoring_pipeline_runs")
TABLES = ("parcel_aois",)

#: The trigger functions' search path: PostGIS lives in ``public``; pg_temp last, so nothing shadows them.
_PATH = "SET search_path = pg_catalog, public, pg_temp"

UPGRADE = rf"""
CREATE VIEW soilclay.monitoring_aois AS
SELECT aoi_id, name, geom FROM soilclay.aois;

CREATE VIEW soilclay.monitoring_scenes AS
SELECT aoi_id, collection, source, acquired_at, first_seen_at FROM soilclay.scenes;

-- A composite's lineage: its window (period_start..period_end, as planned from the scenes recorded then)
-- and its backend (which scene sources it reads); the scene ids themselves are only hashed (inputs_hash).
CREATE VIEW soilclay.monitoring_composites AS
SELECT composite_id, aoi_id, sensor, version, period_start, period_end, scene_count, skipped_count, backend,
       created_at
FROM soilclay.composites;

-- The gate's scores of a version (soilclay.model.gate: training_data->'gate', also in the report under data).
CREATE VIEW soilclay.monitoring_model_versions AS
SELECT version, status, created_at, promoted_at,
       coalesce(training_data->'gate', metrics->'data'->'gate', '{{}}'::jsonb) AS gate
FROM soilclay.model_versions;

CREATE VIEW soilclay.monitoring_parcels AS
SELECT parcel_key, geom_hash, geom FROM soilclay.parcels;

CREATE VIEW soilclay.monitoring_parcel_estimates AS
SELECT parcel_key, geom_hash, model_version, s2_composite_id, s1_composite_id, flags, predicted_at
FROM soilclay.parcel_predictions;

CREATE VIEW soilclay.monitoring_pipeline_runs AS
SELECT stage, aoi_id, status, started_at, finished_at FROM soilclay.pipeline_runs;

CREATE INDEX pipeline_runs_stage_status_idx ON soilclay.pipeline_runs (stage, status);

-- The AOIs each parcel's current geometry intersects, kept by the triggers below. A parcel written while an AOI
-- is added or reshaped would see neither the other's uncommitted row: the AOI triggers first lock the parcels
-- against writes (SHARE), so they wait for running parcel writes and later ones wait for them (at READ
-- COMMITTED every statement of the functions reads what is committed by then).
CREATE TABLE soilclay.parcel_aois (
    aoi_id     integer NOT NULL REFERENCES soilclay.aois ON DELETE CASCADE ON UPDATE CASCADE,
    parcel_key bigint NOT NULL REFERENCES soilclay.parcels ON DELETE CASCADE ON UPDATE CASCADE,
    geom_hash  text NOT NULL,
    CONSTRAINT parcel_aois_pkey PRIMARY KEY (aoi_id, parcel_key) INCLUDE (geom_hash)
);
CREATE INDEX parcel_aois_parcel_key_idx ON soilclay.parcel_aois (parcel_key);
INSERT INTO soilclay.parcel_aois (aoi_id, parcel_key, geom_hash)
SELECT a.aoi_id, p.parcel_key, p.geom_hash
FROM soilclay.parcels AS p JOIN soilclay.aois AS a ON ST_Intersects(p.geom, a.geom);
ANALYZE soilclay.parcel_aois;

CREATE FUNCTION soilclay.parcel_aois_parcels_inserted() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
{_PATH} AS $$
BEGIN
    INSERT INTO soilclay.parcel_aois (aoi_id, parcel_key, geom_hash)
    SELECT a.aoi_id, n.parcel_key, n.geom_hash
    FROM new_parcels AS n JOIN soilclay.aois AS a ON ST_Intersects(n.geom, a.geom);
    RETURN NULL;
END
$$;

-- Only parcels whose geometry changed (parcel_key is an identity that parcel_geometries' key pins).
CREATE FUNCTION soilclay.parcel_aois_parcels_updated() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
{_PATH} AS $$
BEGIN
    DELETE FROM soilclay.parcel_aois AS m
    USING old_parcels AS o JOIN new_parcels AS n USING (parcel_key)
    WHERE m.parcel_key = n.parcel_key AND o.geom_hash IS DISTINCT FROM n.geom_hash;
    INSERT INTO soilclay.parcel_aois (aoi_id, parcel_key, geom_hash)
    SELECT a.aoi_id, n.parcel_key, n.geom_hash
    FROM old_parcels AS o JOIN new_parcels AS n USING (parcel_key)
    JOIN soilclay.aois AS a ON ST_Intersects(n.geom, a.geom)
    WHERE o.geom_hash IS DISTINCT FROM n.geom_hash;
    RETURN NULL;
END
$$;

CREATE FUNCTION soilclay.parcel_aois_aois_inserted() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
{_PATH} AS $$
BEGIN
    LOCK TABLE soilclay.parcels IN SHARE MODE;
    INSERT INTO soilclay.parcel_aois (aoi_id, parcel_key, geom_hash)
    SELECT n.aoi_id, p.parcel_key, p.geom_hash
    FROM new_aois AS n JOIN soilclay.parcels AS p ON ST_Intersects(p.geom, n.geom);
    RETURN NULL;
END
$$;

-- AOIs whose geometry changed (a changed aoi_id is followed by ON UPDATE CASCADE, and recomputed too).
CREATE FUNCTION soilclay.parcel_aois_aois_updated() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
{_PATH} AS $$
BEGIN
    LOCK TABLE soilclay.parcels IN SHARE MODE;
    DELETE FROM soilclay.parcel_aois AS m
    USING new_aois AS n
    WHERE m.aoi_id = n.aoi_id
      AND NOT EXISTS (SELECT FROM old_aois AS o WHERE o.aoi_id = n.aoi_id AND ST_OrderingEquals(o.geom, n.geom));
    INSERT INTO soilclay.parcel_aois (aoi_id, parcel_key, geom_hash)
    SELECT n.aoi_id, p.parcel_key, p.geom_hash
    FROM new_aois AS n JOIN soilclay.parcels AS p ON ST_Intersects(p.geom, n.geom)
    WHERE NOT EXISTS (SELECT FROM old_aois AS o WHERE o.aoi_id = n.aoi_id AND ST_OrderingEquals(o.geom, n.geom));
    RETURN NULL;
END
$$;

CREATE TRIGGER parcel_aois_parcels_inserted AFTER INSERT ON soilclay.parcels
REFERENCING NEW TABLE AS new_parcels
FOR EACH STATEMENT EXECUTE FUNCTION soilclay.parcel_aois_parcels_inserted();
CREATE TRIGGER parcel_aois_parcels_updated AFTER UPDATE ON soilclay.parcels
REFERENCING OLD TABLE AS old_parcels NEW TABLE AS new_parcels
FOR EACH STATEMENT EXECUTE FUNCTION soilclay.parcel_aois_parcels_updated();
CREATE TRIGGER parcel_aois_aois_inserted AFTER INSERT ON soilclay.aois
REFERENCING NEW TABLE AS new_aois
FOR EACH STATEMENT EXECUTE FUNCTION soilclay.parcel_aois_aois_inserted();
CREATE TRIGGER parcel_aois_aois_updated AFTER UPDATE ON soilclay.aois
REFERENCING OLD TABLE AS old_aois NEW TABLE AS new_aois
FOR EACH STATEMENT EXECUTE FUNCTION soilclay.parcel_aois_aois_updated();

CREATE VIEW soilclay.monitoring_parcel_aois AS
SELECT aoi_id, parcel_key, geom_hash FROM soilclay.parcel_aois;

CREATE INDEX parcel_predictions_current_idx ON soilclay.parcel_predictions
    (model_version, s2_composite_id, parcel_key, s1_composite_id DESC NULLS LAST)
    INCLUDE (geom_hash, flags, predicted_at);
DROP INDEX soilclay.parcel_predictions_model_composite_idx;

GRANT SELECT ON soilclay.parcel_aois TO soilclay_writer;
GRANT SELECT ON soilclay.monitoring_aois, soilclay.monitoring_scenes, soilclay.monitoring_composites,
                soilclay.monitoring_model_versions, soilclay.monitoring_parcels, soilclay.monitoring_parcel_aois,
                soilclay.monitoring_parcel_estimates, soilclay.monitoring_pipeline_runs
      TO soilclay_reader, soilclay_writer;
"""

DOWNGRADE = r"""
CREATE INDEX parcel_predictions_model_composite_idx ON soilclay.parcel_predictions (model_version, s2_composite_id);
DROP INDEX soilclay.parcel_predictions_current_idx;
DROP VIEW soilclay.monitoring_parcel_aois;
DROP TRIGGER parcel_aois_aois_updated ON soilclay.aois;
DROP TRIGGER parcel_aois_aois_inserted ON soilclay.aois;
DROP TRIGGER parcel_aois_parcels_updated ON soilclay.parcels;
DROP TRIGGER parcel_aois_parcels_inserted ON soilclay.parcels;
DROP FUNCTION soilclay.parcel_aois_aois_updated(), soilclay.parcel_aois_aois_inserted(),
              soilclay.parcel_aois_parcels_updated(), soilclay.parcel_aois_parcels_inserted();
DROP TABLE soilclay.parcel_aois;
DROP INDEX soilclay.pipeline_runs_stage_status_idx;
DROP VIEW soilclay.monitoring_pipeline_runs, soilclay.monitoring_parcel_estimates, soilclay.monitoring_parcels,
          soilclay.monitoring_model_versions, soilclay.monitoring_composites, soilclay.monitoring_scenes,
          soilclay.monitoring_aois;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
