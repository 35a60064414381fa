"""Status views: what the parcel map's status panel reads, readable by ``soilclay_reader``.

The page (``plugins/soilclay_parcel_map.py``, :mod:`soilclay.db.parcel_map`) reads PostGIS as the reader
only, and the reader reads views only, never the tables (tests/db/test_roles_and_view.py). These views
expose the columns the status panel shows and nothing else: no run parameters or summaries, no URIs
(composites', models'), no whole recipes, metrics or training lineage (only the numbers the panel plots).
Scene freshness needs nothing beyond ``monitoring_scenes`` (0005: aoi_id, collection, acquired_at,
first_seen_at, the columns the exporter aggregates the same way), so it has no view here. The other
0005 views carry too little (no grid CRS, decision, skill, run ids or errors) and are the exporter's
contract, so the page has its own. Views run with their owner's rights (the migrating role), which is how
the reader sees these columns and no others; each reads one table (the runs' also the AOI names), so the
planner inlines it and the tables' indexes serve it.

Run errors (``status_pipeline_runs.error``): soilclay redacts them before storing them
(``soilclay.db.runs``: ``recorded_run`` and ``record_failed_try`` store ``soilclay.redact.redact(...)``,
the abandoned-run sweep writes a fixed text), but only since 2026-12-02 (06c02e4): rows written before,
or by any other client of ``soilclay_writer``, may hold a credential in clear. So the view masks again,
with the rules of :func:`soilclay.redact.redact` in SQL (:data:`REDACTED_ERROR`; tested to agree): a
URL's password and the values of credential parameters become ``***``, the parameters also after a space
or at the start (libpq's ``password=...``), which ``redact`` leaves alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

VIEWS = ("status_aois", "status_composites", "status_model_versions", "status_pipeline_runs")

#: Parameter names whose values are credentials, and name prefixes (soilclay.redact.SECRET_PARAMS and
#: _SECRET_PREFIXES at this revision; tested to agree).
SECRET_PARAMS = ("access_token", "api_key", "apikey", "auth", "authorization", "client_secret", "code", "credential",
                 "credentials", "id_token", "key", "passwd", "password", "pwd", "refresh_token", "sas", "secret",
                 "sig", "signature", "token")
SECRET_PREFIXES = ("x-amz-", "x-goog-")

# PostgreSQL AREs. No "(?:" groups: op.execute takes ":name" as a bind parameter.
_USERINFO = r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)"
_NAMES = "|".join([*SECRET_PARAMS, *(f"{p}[a-z0-9_.-]*" for p in SECRET_PREFIXES)])
_PARAM = rf"""((^|[?&;\s,(])({_NAMES})=)[^&#\s''"]+"""
#: ``error`` with every URL password and credential parameter value replaced by ``***``.
REDACTED_ERROR = f"regexp_replace(regexp_replace(r.error, '{_USERINFO}', '\\1***', 'g'), '{_PARAM}', '\\1***', 'gi')"

UPGRADE = rf"""
CREATE VIEW soilclay.status_aois AS
SELECT aoi_id, name, grid_crs, description, created_at, geom FROM soilclay.aois;
COMMENT ON VIEW soilclay.status_aois IS
    'The AOIs for the parcel map status panel (soilclay_reader): name, grid CRS, description, outline.';

-- The recipe only by its statistic; no URI, no hashes.
CREATE VIEW soilclay.status_composites AS
SELECT composite_id, aoi_id, sensor, version, period_start, period_end, scene_count, skipped_count, backend,
       recipe->'s2'->>'statistic' AS statistic, created_at
FROM soilclay.composites;
COMMENT ON VIEW soilclay.status_composites IS
    'Composite versions for the parcel map status panel (soilclay_reader): window, scene counts, backend, '
    'S2 statistic. No URI, recipe or input hashes.';

-- The skill the panel plots: the gate's scores (soilclay.model.gate: in the report, metrics.data.gate, and in
-- the lineage, training_data.gate) and the CNN's out-of-fold scores; no artefact URI, config hash or training
-- lineage beyond the AOI's name.
CREATE VIEW soilclay.status_model_versions AS
SELECT version, status, created_at, promoted_at, decision_reason,
       (coalesce(metrics->'data'->'gate', training_data->'gate')->>'candidate_rmse')::float8 AS gate_rmse,
       (coalesce(metrics->'data'->'gate', training_data->'gate')->>'champion_rmse')::float8 AS gate_champion_rmse,
       (coalesce(metrics->'data'->'gate', training_data->'gate')->>'samples')::int AS gate_samples,
       (metrics->'models'->'cnn'->>'r2')::float8 AS cnn_r2,
       coalesce((metrics->'models'->'cnn'->>'rmse')::float8, (metrics->>'rmse')::float8) AS cnn_rmse,
       training_data->>'aoi' AS training_aoi
FROM soilclay.model_versions;
COMMENT ON VIEW soilclay.status_model_versions IS
    'Model versions for the parcel map status panel (soilclay_reader): status, decision, gate and CNN skill. '
    'No artefact URI, metrics or training data beyond these numbers.';

-- A run's AOI is its aoi_id, else the AOI its "aoi" parameter names (stages that take an AOI by name);
-- the parameters themselves are not shown.
CREATE VIEW soilclay.status_pipeline_runs AS
SELECT r.run_id, r.stage, coalesce(r.aoi_id, a.aoi_id) AS aoi_id, r.status, r.dag_id, r.dag_run_id,
       r.started_at, r.finished_at, {REDACTED_ERROR} AS error
FROM soilclay.pipeline_runs AS r
LEFT JOIN soilclay.aois AS a ON r.aoi_id IS NULL AND a.name = r.params->>'aoi';
COMMENT ON VIEW soilclay.status_pipeline_runs IS
    'Pipeline runs for the parcel map status panel (soilclay_reader): stage, AOI, run and DAG ids, status, '
    'times, error. No parameters or summaries. The error is safe for readers: soilclay redacts it before '
    'storing it (soilclay.db.runs, soilclay.redact) and this view masks URL passwords and credential '
    'parameters again, for rows written before redaction existed or by other clients.';
COMMENT ON COLUMN soilclay.status_pipeline_runs.error IS
    'Why the run failed, with URL passwords and credential parameter values masked as ***.';

GRANT SELECT ON soilclay.status_aois, soilclay.status_composites, soilclay.status_model_versions,
                soilclay.status_pipeline_runs
      TO soilclay_reader, soilclay_writer;
"""

DOWNGRADE = r"""
DROP VIEW soilclay.status_pipeline_runs, soilclay.status_model_versions, soilclay.status_composites,
          soilclay.status_aois;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
