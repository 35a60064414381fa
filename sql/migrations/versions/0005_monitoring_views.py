"""Monitoring: what soilclay's Prometheus exporter reads, readable by ``soilclay_reader``.

The reader reads views only, never the tables (tests/db/test_roles_and_view.py). The exporter
(``soilclay metrics serve``, :mod:`soilclay.db.monitoring`) runs as that role, so these views expose the
columns it aggregates and nothing else: no error texts, run parameters, URIs, attributes or estimates'
numbers. Each view reads one table, so the planner inlines it and the tables' indexes serve it. Views run
with their owner's rights (the migrating role), which is how the reader sees these columns and no others.

One index helps the scrape: the newest composites per (AOI, sensor) are found by
``composites_version_unique``; the scene statistics per (AOI, collection) by
``scenes_aoi_collection_acquired_idx``; estimates by ``parcel_predictions_model_composite_idx``; runs per stage
and status by the new ``pipeline_runs_stage_status_idx``.

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
         "monitoring_parcels", "monitoring_parcel_estimates", "monitoring_pipeline_runs")

UPGRADE = r"""
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
       coalesce(training_data->'gate', metrics->'data'->'gate', '{}'::jsonb) AS gate
FROM soilclay.model_versions;

CREATE VIEW soilclay.monitoring_parcels AS
SELECT parcel_key, geom_hash, geom FROM soilclay.parcels;

CREATE VIEW soilclay.monitoring_parcel_estimates AS
SELECT parcel_key, geom_hash, model_version, s2_composite_id, s1_composite_id, flags, predicted_at
FROM soilclay.parcel_predictions;

CREATE VIEW soilclay.monitoring_pipeline_runs AS
SELECT stage, aoi_id, status, started_at, finished_at FROM soilclay.pipeline_runs;

CREATE INDEX pipeline_runs_stage_status_idx ON soilclay.pipeline_runs (stage, status);

GRANT SELECT ON soilclay.monitoring_aois, soilclay.monitoring_scenes, soilclay.monitoring_composites,
                soilclay.monitoring_model_versions, soilclay.monitoring_parcels,
                soilclay.monitoring_parcel_estimates, soilclay.monitoring_pipeline_runs
      TO soilclay_reader, soilclay_writer;
"""

DOWNGRADE = r"""
DROP INDEX soilclay.pipeline_runs_stage_status_idx;
DROP VIEW soilclay.monitoring_pipeline_runs, soilclay.monitoring_parcel_estimates, soilclay.monitoring_parcels,
          soilclay.monitoring_model_versions, soilclay.monitoring_composites, soilclay.monitoring_scenes,
          soilclay.monitoring_aois;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
