"""parcel_clay_latest never goes blank on a promotion: a parcel the new champion has not estimated yet
shows the estimate of the most recently promoted former champion, and every row says which model
(``model_version``, and the new ``model_status``: 'champion' or 'retired') it comes from.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Per parcel: the champion's estimate on the newest composites it ran on; until it has one, the
-- estimate of the former champion promoted most recently (status 'retired'). Candidates and
-- rejected versions are never shown.
CREATE OR REPLACE VIEW soilclay.parcel_clay_latest AS
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
       e.predicted_at,
       e.model_status
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
"""

# CREATE OR REPLACE cannot drop a column: the old view comes back whole, with its grants.
DOWNGRADE = r"""
DROP VIEW soilclay.parcel_clay_latest;
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
GRANT SELECT ON soilclay.parcel_clay_latest TO soilclay_writer, soilclay_reader;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
