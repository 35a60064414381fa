"""Migration 0006: the status views of the parcel map page, readable by ``soilclay_reader`` only as views,
with exactly their columns; the runs' errors masked as :func:`soilclay.redact.redact` masks them; a
downgrade to 0005 removes them."""

from __future__ import annotations

import importlib.util

import pytest
from sqlalchemy import create_engine, text

from soilclay import redact as redact_module
from soilclay.db import migrate
from soilclay.redact import redact
from tests.db import builders as b

#: Every column of each view: nothing else reaches the reader.
COLUMNS = {
    "status_aois": ["aoi_id", "name", "grid_crs", "description", "created_at", "geom"],
    "status_composites": ["composite_id", "aoi_id", "sensor", "version", "period_start", "period_end", "scene_count",
                          "skipped_count", "backend", "statistic", "created_at"],
    "status_model_versions": ["version", "status", "created_at", "promoted_at", "decision_reason", "gate_rmse",
                              "gate_champion_rmse", "gate_samples", "cnn_r2", "cnn_rmse", "training_aoi"],
    "status_pipeline_runs": ["run_id", "stage", "aoi_id", "status", "dag_id", "dag_run_id", "started_at",
                             "finished_at", "error"],
}
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

#: Errors whose masking by the view is exactly ``redact``'s.
SAME_AS_REDACT = [
    "OperationalError: connection to postgresql://soil:s3cr3t@db:5432/soilclay refused",
    "GET https://stac.example/search?token=abc123&page=2 failed: 502",
    "s3://bucket/k.tif?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ff00&x-amz-date=1 expired",
    "https://h.example/x?Sig=abc#frag and https://h.example/y?sv=1&sas=zz",
    "'https://u:p@h.example/?key=v' quoted, https://h.example/?code= empty",
    "ValueError: 3 = 3, nothing secret here",
    "abandoned: its process is gone (no live holder since started_at 2026-12-02T10:00:00.000000+00:00)",
]
#: Errors the view masks more strictly than ``redact`` (parameters after a space or at the start).
STRICTER = {
    "conninfo host=db password=pgpass user=bob": "conninfo host=db password=*** user=bob",
    "token=abc123 rejected": "token=*** rejected",
    "signed (X-Goog-Signature=deadbeef expired)": "signed (X-Goog-Signature=*** expired)",
}


def _migration():
    path = migrate.sql_dir() / "migrations" / "versions" / "0006_status_views.py"
    spec = importlib.util.spec_from_file_location("soilclay_migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _views(conn) -> set[str]:
    return set(conn.execute(text(
        "SELECT table_name FROM information_schema.views WHERE table_schema = 'soilclay'")).scalars())


def _privileges(conn, role: str, view: str) -> set[str]:
    return {p for p in PRIVILEGES if conn.execute(text("SELECT has_table_privilege(:r, :t, :p)"),
                                                  {"r": role, "t": f"soilclay.{view}", "p": p}).scalar_one()}


def test_upgrade_gives_the_views_to_the_reader_and_downgrade_to_0005_removes_them(db_factory):
    url = db_factory()
    migrate.upgrade(url, "0005")
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            before = _views(conn)
        assert not before & set(COLUMNS)
        assert migrate.upgrade(url).before == "0005"
        with eng.connect() as conn:
            assert _views(conn) == before | set(COLUMNS)
            for view, columns in COLUMNS.items():
                assert conn.execute(text(
                    "SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns "
                    "WHERE table_schema = 'soilclay' AND table_name = :v"), {"v": view}).scalar_one() == columns
                assert _privileges(conn, "soilclay_reader", view) == {"SELECT"}
                assert _privileges(conn, "soilclay_writer", view) == {"SELECT"}
                assert conn.execute(text("SELECT obj_description(CAST(:v AS regclass), 'pg_class')"),
                                    {"v": f"soilclay.{view}"}).scalar_one()
            comment = conn.execute(text("SELECT obj_description('soilclay.status_pipeline_runs'::regclass, "
                                        "'pg_class')")).scalar_one()
            assert "redacts it before storing it" in comment and "masks" in comment
        down = migrate.downgrade(url, "0005")
        assert (down.after, down.changed) == ("0005", True)
        with eng.connect() as conn:
            assert _views(conn) == before
        migrate.upgrade(url)
        with eng.connect() as conn:
            assert set(COLUMNS) <= _views(conn)
    finally:
        eng.dispose()


def test_the_secret_names_are_those_of_soilclay_redact():
    m = _migration()
    assert set(m.SECRET_PARAMS) == redact_module.SECRET_PARAMS
    assert set(m.SECRET_PREFIXES) == set(redact_module._SECRET_PREFIXES)
    assert m.VIEWS == tuple(COLUMNS)


def _errors_as_reader(conn, errors: list[str]) -> list[str]:
    for i, error in enumerate(errors):
        conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage, status, error, finished_at) "
                          "VALUES (:r, 'predict', 'failed', :e, now())"), {"r": f"masked-{i}", "e": error})
    conn.execute(text("SET LOCAL ROLE soilclay_reader"))
    rows = dict(conn.execute(text("SELECT run_id, error FROM soilclay.status_pipeline_runs "
                                  "WHERE run_id LIKE 'masked-%'")).all())
    conn.execute(text("RESET ROLE"))
    return [rows[f"masked-{i}"] for i in range(len(errors))]


def test_the_view_masks_errors_as_redact_does(conn):
    """Rows stored in clear (before redaction at write time, or by another client) reach the reader masked:
    exactly as ``redact`` masks URLs, and parameters also after a space, so nothing ``redact`` would mask is
    left."""
    masked = _errors_as_reader(conn, SAME_AS_REDACT + list(STRICTER))
    assert masked[:len(SAME_AS_REDACT)] == [redact(e) for e in SAME_AS_REDACT]
    assert masked[len(SAME_AS_REDACT):] == list(STRICTER.values())
    assert all(redact(m) == m for m in masked)
    assert not [m for m in masked for s in ("s3cr3t", "abc123", "ff00", "AKIA", "pgpass", "deadbeef") if s in m]


def test_runs_show_their_aoi_by_id_or_by_the_aoi_parameter(conn):
    a = b.aoi(conn, "status-aoi")
    conn.execute(text(
        "INSERT INTO soilclay.pipeline_runs (run_id, stage, aoi_id, params) VALUES "
        "('by-id', 'composite', :a, '{}'), ('by-name', 'predict', NULL, '{\"aoi\": \"status-aoi\"}'), "
        "('unknown', 'predict', NULL, '{\"aoi\": \"elsewhere\"}'), ('none', 'sample_load', NULL, '{}')"), {"a": a})
    conn.execute(text("SET LOCAL ROLE soilclay_reader"))
    rows = dict(conn.execute(text("SELECT run_id, aoi_id FROM soilclay.status_pipeline_runs "
                                  "WHERE run_id IN ('by-id', 'by-name', 'unknown', 'none')")).all())
    assert rows == {"by-id": a, "by-name": a, "unknown": None, "none": None}


@pytest.mark.parametrize("sql", [
    "SELECT params FROM soilclay.status_pipeline_runs",
    "SELECT uri FROM soilclay.status_composites",
    "SELECT artefact_uri FROM soilclay.status_model_versions",
])
def test_the_views_hide_what_the_page_does_not_show(conn, sql):
    conn.execute(text("SET LOCAL ROLE soilclay_reader"))
    sp = conn.begin_nested()
    with pytest.raises(Exception, match="does not exist"):
        conn.execute(text(sql))
    sp.rollback()
