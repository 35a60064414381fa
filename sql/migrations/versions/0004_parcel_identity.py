"""Parcel identity: a parcel is (source, parcel_id), and an estimate belongs to the geometry it was computed on.

- ``parcels`` gains ``parcel_key`` (the new primary key, an identity), ``source`` (the register or dataset
  the parcel comes from; ``(source, parcel_id)`` is unique, so two registers using the same ids never
  collide) and ``geom_hash`` (generated from the stored geometry, so it can never disagree with it).
- ``parcel_geometries`` keeps every geometry a parcel has had (a trigger fills it on every insert and
  geometry change, whoever writes), so an estimate names exactly the shape it was computed on.
- ``parcel_predictions`` references ``(parcel_key, geom_hash)`` instead of ``parcel_id``; the unique key
  includes the geometry, so after a change the new shape is estimated and the old estimate is history.
- ``parcel_clay_latest`` shows only estimates of the parcel's current geometry; ``parcel_clay_history``
  shows every estimate with the geometry it was computed on and whether that is still the current one.

Existing parcels get the source of their file name without its extension (``brp_2023.gpkg`` ->
``brp_2023``), the rule ``soilclay parcels load`` uses by default; existing estimates are taken to belong
to the current geometry (nothing older was recorded). Downgrading needs parcel ids that are unique
across sources and keeps, per (parcel, model, composites), the estimate of the current geometry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The default source of a file name (also in soilclay.parcels.load.default_source; tested to agree): the name
#: without its vector extensions, other characters than letters, digits, '.', '_' and '-' as '-', and
#: 'unnamed' when that does not start with a letter or digit.
_STEM = (r"regexp_replace(regexp_replace(source_file, "
         r"'(\.(zip|gpkg|shp|geojson|json|parquet|geoparquet|fgb|gml|kml|sqlite))+$', '', 'i'), "
         r"'[^A-Za-z0-9._-]+', '-', 'g')")
SOURCE_OF_FILE = f"CASE WHEN {_STEM} ~ '^[A-Za-z0-9]' THEN {_STEM} ELSE 'unnamed' END"

LATEST = r"""
CREATE VIEW soilclay.parcel_clay_latest AS
SELECT p.source,
       p.parcel_id,
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
       e.predicted_at,
       e.model_status,
       p.parcel_key,
       p.geom_hash
FROM soilclay.parcels AS p
LEFT JOIN LATERAL (
    SELECT pp.*, c.version AS s2_composite_version, mv.status AS model_status
    FROM soilclay.parcel_predictions AS pp
    JOIN soilclay.model_versions AS mv ON mv.version = pp.model_version AND mv.status IN ('champion', 'retired')
    JOIN soilclay.composites AS c ON c.composite_id = pp.s2_composite_id
    WHERE pp.parcel_key = p.parcel_key AND pp.geom_hash = p.geom_hash
    ORDER BY mv.status = 'champion' DESC, mv.promoted_at DESC NULLS LAST,
             pp.s2_composite_id DESC, pp.s1_composite_id DESC NULLS LAST
    LIMIT 1
) AS e ON true;
GRANT SELECT ON soilclay.parcel_clay_latest TO soilclay_writer, soilclay_reader;
"""

HISTORY = r"""
CREATE VIEW soilclay.parcel_clay_history AS
SELECT p.source,
       p.parcel_id,
       pp.model_version,
       mv.status AS model_status,
       c.version AS s2_composite_version,
       c.period_start AS s2_period_start,
       c.period_end AS s2_period_end,
       pp.s1_composite_id,
       pp.clay_mean AS clay,
       pp.clay_median,
       pp.clay_lower,
       pp.clay_upper,
       pp.pixel_count,
       pp.bare_fraction,
       pp.out_of_domain_share,
       pp.flags,
       pp.run_id,
       pp.predicted_at,
       pp.parcel_key,
       pp.geom_hash,
       pp.geom_hash = p.geom_hash AS geometry_current,
       g.geom
FROM soilclay.parcel_predictions AS pp
JOIN soilclay.parcels AS p ON p.parcel_key = pp.parcel_key
JOIN soilclay.parcel_geometries AS g ON g.parcel_key = pp.parcel_key AND g.geom_hash = pp.geom_hash
JOIN soilclay.model_versions AS mv ON mv.version = pp.model_version
JOIN soilclay.composites AS c ON c.composite_id = pp.s2_composite_id;
GRANT SELECT ON soilclay.parcel_clay_history TO soilclay_reader, soilclay_writer;
"""

UPGRADE = rf"""
DROP VIEW soilclay.parcel_clay_latest;
DROP VIEW soilclay.parcel_clay_history;

ALTER TABLE soilclay.parcels
    ADD COLUMN parcel_key bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN source text,
    ADD COLUMN geom_hash text GENERATED ALWAYS AS (left(encode(sha256(ST_AsBinary(geom)), 'hex'), 32)) STORED;
UPDATE soilclay.parcels SET source = {SOURCE_OF_FILE};
ALTER TABLE soilclay.parcels
    ALTER COLUMN source SET NOT NULL,
    ADD CONSTRAINT parcels_source_format CHECK (source ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}$');

ALTER TABLE soilclay.parcel_predictions
    DROP CONSTRAINT parcel_predictions_parcel_id_fkey,
    DROP CONSTRAINT parcel_predictions_unique,
    ADD COLUMN parcel_key bigint,
    ADD COLUMN geom_hash text;
ALTER TABLE soilclay.parcels DROP CONSTRAINT parcels_pkey;
ALTER TABLE soilclay.parcels
    ADD CONSTRAINT parcels_pkey PRIMARY KEY (parcel_key),
    ADD CONSTRAINT parcels_source_parcel_id_unique UNIQUE (source, parcel_id);
CREATE INDEX parcels_geom_hash_idx ON soilclay.parcels (geom_hash);
-- Readers often ask for an id without its source.
CREATE INDEX parcels_parcel_id_idx ON soilclay.parcels (parcel_id);

-- Every geometry a parcel has had; estimates reference the one they were computed on.
CREATE TABLE soilclay.parcel_geometries (
    parcel_key bigint NOT NULL REFERENCES soilclay.parcels ON DELETE CASCADE,
    geom_hash  text NOT NULL,
    geom       geometry(MultiPolygon, 4326) NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (parcel_key, geom_hash)
);
INSERT INTO soilclay.parcel_geometries (parcel_key, geom_hash, geom, first_seen)
SELECT parcel_key, geom_hash, geom, loaded_at FROM soilclay.parcels;

CREATE FUNCTION soilclay.parcels_keep_geometry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soilclay.parcel_geometries (parcel_key, geom_hash, geom)
    VALUES (NEW.parcel_key, NEW.geom_hash, NEW.geom) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER parcels_keep_geometry AFTER INSERT OR UPDATE OF geom ON soilclay.parcels
FOR EACH ROW EXECUTE FUNCTION soilclay.parcels_keep_geometry();

UPDATE soilclay.parcel_predictions AS pp SET parcel_key = p.parcel_key, geom_hash = p.geom_hash
FROM soilclay.parcels AS p WHERE p.parcel_id = pp.parcel_id;
ALTER TABLE soilclay.parcel_predictions
    DROP COLUMN parcel_id,
    ALTER COLUMN parcel_key SET NOT NULL,
    ALTER COLUMN geom_hash SET NOT NULL,
    ADD CONSTRAINT parcel_predictions_geometry_fkey FOREIGN KEY (parcel_key, geom_hash)
        REFERENCES soilclay.parcel_geometries ON DELETE CASCADE,
    ADD CONSTRAINT parcel_predictions_unique
        UNIQUE NULLS NOT DISTINCT (parcel_key, geom_hash, model_version, s2_composite_id, s1_composite_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON soilclay.parcel_geometries TO soilclay_writer;
{LATEST}
{HISTORY}
"""

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM soilclay.parcels GROUP BY parcel_id HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'cannot downgrade below 0004: some parcel ids are used by several sources';
    END IF;
END
$$;
DROP VIEW soilclay.parcel_clay_latest;
DROP VIEW soilclay.parcel_clay_history;
DELETE FROM soilclay.parcel_predictions WHERE prediction_id NOT IN (
    SELECT DISTINCT ON (pp.parcel_key, pp.model_version, pp.s2_composite_id, pp.s1_composite_id) pp.prediction_id
    FROM soilclay.parcel_predictions AS pp JOIN soilclay.parcels AS p USING (parcel_key)
    ORDER BY pp.parcel_key, pp.model_version, pp.s2_composite_id, pp.s1_composite_id,
             pp.geom_hash = p.geom_hash DESC, pp.prediction_id DESC);
ALTER TABLE soilclay.parcel_predictions
    DROP CONSTRAINT parcel_predictions_unique,
    DROP CONSTRAINT parcel_predictions_geometry_fkey,
    ADD COLUMN parcel_id text;
UPDATE soilclay.parcel_predictions AS pp SET parcel_id = p.parcel_id
FROM soilclay.parcels AS p WHERE p.parcel_key = pp.parcel_key;
DROP TRIGGER parcels_keep_geometry ON soilclay.parcels;
DROP FUNCTION soilclay.parcels_keep_geometry();
DROP TABLE soilclay.parcel_geometries;
ALTER TABLE soilclay.parcels DROP CONSTRAINT parcels_pkey, DROP CONSTRAINT parcels_source_parcel_id_unique;
ALTER TABLE soilclay.parcels ADD CONSTRAINT parcels_pkey PRIMARY KEY (parcel_id);
ALTER TABLE soilclay.parcel_predictions
    DROP COLUMN parcel_key,
    DROP COLUMN geom_hash,
    ALTER COLUMN parcel_id SET NOT NULL,
    ADD CONSTRAINT parcel_predictions_parcel_id_fkey FOREIGN KEY (parcel_id)
        REFERENCES soilclay.parcels ON DELETE CASCADE,
    ADD CONSTRAINT parcel_predictions_unique
        UNIQUE NULLS NOT DISTINCT (parcel_id, model_version, s2_composite_id, s1_composite_id);
DROP INDEX soilclay.parcels_geom_hash_idx, soilclay.parcels_parcel_id_idx;
ALTER TABLE soilclay.parcels DROP COLUMN geom_hash, DROP COLUMN source, DROP COLUMN parcel_key;
-- The views of 0002 and 0003, with their grants.
CREATE VIEW soilclay.parcel_clay_history AS
SELECT pp.parcel_id, pp.model_version, mv.status AS model_status, c.version AS s2_composite_version,
       c.period_start AS s2_period_start, c.period_end AS s2_period_end, pp.s1_composite_id,
       pp.clay_mean AS clay, pp.clay_median, pp.clay_lower, pp.clay_upper, pp.pixel_count, pp.bare_fraction,
       pp.out_of_domain_share, pp.flags, pp.run_id, pp.predicted_at
FROM soilclay.parcel_predictions AS pp
JOIN soilclay.model_versions AS mv ON mv.version = pp.model_version
JOIN soilclay.composites AS c ON c.composite_id = pp.s2_composite_id;
GRANT SELECT ON soilclay.parcel_clay_history TO soilclay_reader, soilclay_writer;
CREATE VIEW soilclay.parcel_clay_latest AS
SELECT p.parcel_id, p.geom, e.clay_mean AS clay, e.clay_median, e.clay_lower, e.clay_upper, e.pixel_count,
       e.bare_fraction, e.out_of_domain_share, e.flags, e.model_version, e.s2_composite_id,
       e.s2_composite_version, e.s1_composite_id, e.run_id, e.predicted_at, e.model_status
FROM soilclay.parcels AS p
LEFT JOIN LATERAL (
    SELECT pp.*, c.version AS s2_composite_version, mv.status AS model_status
    FROM soilclay.parcel_predictions AS pp
    JOIN soilclay.model_versions AS mv ON mv.version = pp.model_version AND mv.status IN ('champion', 'retired')
    JOIN soilclay.composites AS c ON c.composite_id = pp.s2_composite_id
    WHERE pp.parcel_id = p.parcel_id
    ORDER BY mv.status = 'champion' DESC, mv.promoted_at DESC NULLS LAST,
             pp.s2_composite_id DESC, pp.s1_composite_id DESC NULLS LAST
    LIMIT 1
) AS e ON true;
GRANT SELECT ON soilclay.parcel_clay_latest TO soilclay_writer, soilclay_reader;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
