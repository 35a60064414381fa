"""Foundation: the soilclay schema, its tables, the latest-estimate view and the two roles.

Geometries are stored in EPSG:4326 (``soilclay.settings.STORAGE_SRID``) with typmods, so the
SRID and geometry type are declared and enforced; CHECKs keep invalid or empty shapes and
out-of-range soil values out; unique keys make pipeline re-runs idempotent.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS soilclay;
REVOKE ALL ON SCHEMA soilclay FROM PUBLIC;

-- Areas of interest: what scene watch, composites and predictions are run for.
CREATE TABLE soilclay.aois (
    aoi_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CONSTRAINT aois_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    geom        geometry(MultiPolygon, 4326) NOT NULL
                CONSTRAINT aois_geom_valid CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    grid_crs    text NOT NULL CONSTRAINT aois_grid_crs_format CHECK (grid_crs ~ '^EPSG:[0-9]{4,6}$'),
    description text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX aois_geom_gix ON soilclay.aois USING gist (geom);

-- Every run of a pipeline stage; failures keep their reason.
CREATE TABLE soilclay.pipeline_runs (
    run_id      text PRIMARY KEY CONSTRAINT pipeline_runs_run_id_nonempty CHECK (run_id <> ''),
    stage       text NOT NULL CONSTRAINT pipeline_runs_stage_format CHECK (stage ~ '^[a-z][a-z0-9_]*$'),
    aoi_id      integer REFERENCES soilclay.aois ON DELETE SET NULL,
    status      text NOT NULL DEFAULT 'running'
                CONSTRAINT pipeline_runs_status_known
                CHECK (status IN ('running', 'success', 'failed', 'skipped')),
    dag_id      text,
    dag_run_id  text,
    params      jsonb NOT NULL DEFAULT '{}',
    summary     jsonb NOT NULL DEFAULT '{}',
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT pipeline_runs_failure_has_reason CHECK (status <> 'failed' OR error IS NOT NULL),
    CONSTRAINT pipeline_runs_time_order CHECK (finished_at IS NULL OR finished_at >= started_at)
);
CREATE INDEX pipeline_runs_stage_started_idx ON soilclay.pipeline_runs (stage, started_at DESC);

-- Scenes seen per AOI (a scene may cover several AOIs). Re-listing is idempotent by the key.
CREATE TABLE soilclay.scenes (
    aoi_id        integer NOT NULL REFERENCES soilclay.aois ON DELETE CASCADE,
    scene_id      text NOT NULL CONSTRAINT scenes_scene_id_nonempty CHECK (scene_id <> ''),
    collection    text NOT NULL
                  CONSTRAINT scenes_collection_known CHECK (collection IN ('sentinel-2-l2a', 'sentinel-1-grd')),
    platform      text NOT NULL,
    acquired_at   timestamptz NOT NULL,
    published_at  timestamptz,
    source        text NOT NULL
                  CONSTRAINT scenes_source_known CHECK (source IN ('local', 'stac-api', 'earthengine')),
    cloud_cover   real CONSTRAINT scenes_cloud_cover_range CHECK (cloud_cover BETWEEN 0 AND 100),
    footprint     geometry(MultiPolygon, 4326)
                  CONSTRAINT scenes_footprint_valid
                  CHECK (footprint IS NULL OR (ST_IsValid(footprint) AND NOT ST_IsEmpty(footprint))),
    href          text,
    properties    jsonb NOT NULL DEFAULT '{}',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aoi_id, scene_id)
);
CREATE INDEX scenes_aoi_collection_acquired_idx ON soilclay.scenes (aoi_id, collection, acquired_at);
CREATE INDEX scenes_footprint_gix ON soilclay.scenes USING gist (footprint);

-- Composite versions; the same recipe over the same scenes is the same composite.
CREATE TABLE soilclay.composites (
    composite_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aoi_id        integer NOT NULL REFERENCES soilclay.aois,
    sensor        text NOT NULL CONSTRAINT composites_sensor_known CHECK (sensor IN ('sentinel-2', 'sentinel-1')),
    version       integer NOT NULL CONSTRAINT composites_version_positive CHECK (version >= 1),
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    recipe_hash   text NOT NULL CONSTRAINT composites_recipe_hash_hex CHECK (recipe_hash ~ '^[0-9a-f]{16,64}$'),
    recipe        jsonb NOT NULL,
    inputs_hash   text NOT NULL CONSTRAINT composites_inputs_hash_hex CHECK (inputs_hash ~ '^[0-9a-f]{16,64}$'),
    scene_count   integer NOT NULL CONSTRAINT composites_scene_count_nonneg CHECK (scene_count >= 0),
    skipped_count integer NOT NULL DEFAULT 0 CONSTRAINT composites_skipped_nonneg CHECK (skipped_count >= 0),
    backend       text NOT NULL CONSTRAINT composites_backend_known CHECK (backend IN ('local', 'earthengine')),
    uri           text NOT NULL UNIQUE,
    run_id        text REFERENCES soilclay.pipeline_runs,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT composites_period_order CHECK (period_end >= period_start),
    CONSTRAINT composites_version_unique UNIQUE (aoi_id, sensor, version),
    CONSTRAINT composites_inputs_unique UNIQUE (aoi_id, sensor, recipe_hash, inputs_hash)
);

-- Soil samples (LUCAS-style); the same point surveyed twice is two rows, loaded twice is one.
CREATE TABLE soilclay.samples (
    sample_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL CONSTRAINT samples_source_nonempty CHECK (source <> ''),
    point_id    text NOT NULL CONSTRAINT samples_point_id_nonempty CHECK (point_id <> ''),
    geom        geometry(Point, 4326) NOT NULL
                CONSTRAINT samples_geom_valid CHECK (
                    NOT ST_IsEmpty(geom) AND ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90),
    clay        real NOT NULL CONSTRAINT samples_clay_range CHECK (clay BETWEEN 0 AND 100),
    sand        real CONSTRAINT samples_sand_range CHECK (sand BETWEEN 0 AND 100),
    silt        real CONSTRAINT samples_silt_range CHECK (silt BETWEEN 0 AND 100),
    survey_date date,
    attributes  jsonb NOT NULL DEFAULT '{}',
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    -- NULL when a fraction is missing, so the check applies only when all three are given.
    CONSTRAINT samples_texture_sum CHECK (clay + sand + silt BETWEEN 95 AND 105),
    CONSTRAINT samples_point_unique UNIQUE NULLS NOT DISTINCT (source, point_id, survey_date)
);
CREATE INDEX samples_geom_gix ON soilclay.samples USING gist (geom);

-- Parcels keyed by a stable id; reloading a file updates geometry and attributes in place.
CREATE TABLE soilclay.parcels (
    parcel_id   text PRIMARY KEY CONSTRAINT parcels_parcel_id_nonempty CHECK (parcel_id <> ''),
    geom        geometry(MultiPolygon, 4326) NOT NULL
                CONSTRAINT parcels_geom_valid CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    source_file text NOT NULL,
    attributes  jsonb NOT NULL DEFAULT '{}',
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parcels_geom_gix ON soilclay.parcels USING gist (geom);

-- Model versions in the TF Serving sense ({base}/{version}/); at most one champion at a time.
CREATE TABLE soilclay.model_versions (
    version         integer PRIMARY KEY CONSTRAINT model_versions_version_positive CHECK (version >= 1),
    status          text NOT NULL DEFAULT 'candidate'
                    CONSTRAINT model_versions_status_known
                    CHECK (status IN ('candidate', 'champion', 'rejected', 'retired')),
    metrics         jsonb NOT NULL DEFAULT '{}',
    artefact_uri    text NOT NULL UNIQUE,
    config_hash     text,
    training_data   jsonb NOT NULL DEFAULT '{}',
    decision_reason text,
    run_id          text REFERENCES soilclay.pipeline_runs,
    created_at      timestamptz NOT NULL DEFAULT now(),
    promoted_at     timestamptz,
    CONSTRAINT model_versions_champion_promoted CHECK (status <> 'champion' OR promoted_at IS NOT NULL)
);
CREATE UNIQUE INDEX model_versions_one_champion ON soilclay.model_versions ((true)) WHERE status = 'champion';

-- Per-parcel estimates. One row per (parcel, model version, composite versions): re-runs add nothing.
CREATE TABLE soilclay.parcel_predictions (
    prediction_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parcel_id           text NOT NULL REFERENCES soilclay.parcels ON DELETE CASCADE,
    model_version       integer NOT NULL REFERENCES soilclay.model_versions,
    s2_composite_id     bigint NOT NULL REFERENCES soilclay.composites,
    s1_composite_id     bigint REFERENCES soilclay.composites,
    run_id              text NOT NULL REFERENCES soilclay.pipeline_runs,
    clay_mean           real CONSTRAINT parcel_predictions_mean_range CHECK (clay_mean BETWEEN 0 AND 100),
    clay_median         real CONSTRAINT parcel_predictions_median_range CHECK (clay_median BETWEEN 0 AND 100),
    clay_lower          real CONSTRAINT parcel_predictions_lower_range CHECK (clay_lower BETWEEN 0 AND 100),
    clay_upper          real CONSTRAINT parcel_predictions_upper_range CHECK (clay_upper BETWEEN 0 AND 100),
    pixel_count         integer NOT NULL CONSTRAINT parcel_predictions_pixels_nonneg CHECK (pixel_count >= 0),
    bare_fraction       real CONSTRAINT parcel_predictions_bare_fraction_range CHECK (bare_fraction BETWEEN 0 AND 1),
    out_of_domain_share real CONSTRAINT parcel_predictions_ood_range CHECK (out_of_domain_share BETWEEN 0 AND 1),
    flags               text[] NOT NULL DEFAULT '{}',
    predicted_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT parcel_predictions_interval_order CHECK (clay_lower <= clay_mean AND clay_mean <= clay_upper),
    -- A parcel without a number must say why.
    CONSTRAINT parcel_predictions_missing_flagged CHECK (clay_mean IS NOT NULL OR cardinality(flags) > 0),
    CONSTRAINT parcel_predictions_unique
        UNIQUE NULLS NOT DISTINCT (parcel_id, model_version, s2_composite_id, s1_composite_id)
);
CREATE INDEX parcel_predictions_model_composite_idx ON soilclay.parcel_predictions (model_version, s2_composite_id);
CREATE INDEX parcel_predictions_run_idx ON soilclay.parcel_predictions (run_id);

-- One row per parcel: the current champion's estimate on the newest composite it was run on.
CREATE VIEW soilclay.parcel_clay_latest AS
SELECT p.parcel_id,
       p.geom,
       e.clay_mean AS clay,
       e.clay_median,
       e.clay_lower,
       e.clay_upper,
       e.pixel_count,
       e.bare_fraction,
       e.out_of_domain_share,
       e.flags,
       e.model_version,
       e.s2_composite_id,
       e.s2_composite_version,
       e.s1_composite_id,
       e.run_id,
       e.predicted_at
FROM soilclay.parcels AS p
LEFT JOIN LATERAL (
    SELECT pp.*, c.version AS s2_composite_version
    FROM soilclay.parcel_predictions AS pp
    JOIN soilclay.model_versions AS mv ON mv.version = pp.model_version AND mv.status = 'champion'
    JOIN soilclay.composites AS c ON c.composite_id = pp.s2_composite_id
    WHERE pp.parcel_id = p.parcel_id
    ORDER BY pp.s2_composite_id DESC, pp.s1_composite_id DESC NULLS LAST
    LIMIT 1
) AS e ON true;

-- Roles are cluster-wide: create them once, grant per database.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'soilclay_writer') THEN
        CREATE ROLE soilclay_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'soilclay_reader') THEN
        CREATE ROLE soilclay_reader NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA soilclay TO soilclay_writer, soilclay_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA soilclay TO soilclay_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA soilclay TO soilclay_writer;
REVOKE ALL ON soilclay.alembic_version FROM soilclay_writer;
GRANT SELECT ON soilclay.alembic_version TO soilclay_writer;
REVOKE ALL ON soilclay.parcel_clay_latest FROM soilclay_writer;
GRANT SELECT ON soilclay.parcel_clay_latest TO soilclay_writer, soilclay_reader;
"""

DOWNGRADE = r"""
DROP VIEW soilclay.parcel_clay_latest;
DROP TABLE soilclay.parcel_predictions, soilclay.model_versions, soilclay.parcels, soilclay.samples,
           soilclay.composites, soilclay.scenes, soilclay.pipeline_runs, soilclay.aois;
REVOKE ALL ON ALL TABLES IN SCHEMA soilclay FROM soilclay_writer, soilclay_reader;
REVOKE ALL ON SCHEMA soilclay FROM soilclay_writer, soilclay_reader;
-- Other databases of the cluster may still use the roles: drop them only when nothing depends on them.
DO $$
BEGIN
    DROP ROLE IF EXISTS soilclay_reader;
    DROP ROLE IF EXISTS soilclay_writer;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'soilclay roles kept: other databases still grant them privileges';
END
$$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
