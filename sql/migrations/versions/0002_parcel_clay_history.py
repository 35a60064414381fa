"""A reader-facing view of every estimate of a parcel across model and composite versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE VIEW soilclay.parcel_clay_history AS
SELECT pp.parcel_id,
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
       pp.predicted_at
FROM soilclay.parcel_predictions AS pp
JOIN soilclay.model_versions AS mv ON mv.version = pp.model_version
JOIN soilclay.composites AS c ON c.composite_id = pp.s2_composite_id;
GRANT SELECT ON soilclay.parcel_clay_history TO soilclay_reader, soilclay_writer;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP VIEW soilclay.parcel_clay_history")
