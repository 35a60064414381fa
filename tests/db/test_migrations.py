import pytest
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, inspect, text

from soilclay.db import migrate
from soilclay.errors import SoilclayError


def _revision(rev: str):
    """The module of a migration script (its VIEWS and TABLES)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config()).get_revision(rev).module


#: The parcel views of 0002..0004 and the monitoring views of 0005 (later revisions may add more).
VIEWS_0005 = {"parcel_clay_latest", "parcel_clay_history", *_revision("0005").VIEWS}
TABLES = {"aois", "scenes", "composites", "samples", "parcels", "parcel_geometries", "model_versions",
          "parcel_predictions", "pipeline_runs", "alembic_version", *_revision("0005").TABLES}


def _tables(url: str) -> set[str]:
    eng = create_engine(url)
    try:
        return set(inspect(eng).get_table_names(schema="soilclay"))
    finally:
        eng.dispose()


def test_upgrade_downgrade_upgrade_on_fresh_database(db_factory):
    url = db_factory()
    first = migrate.upgrade(url)
    assert first.before is None and first.after == migrate.head_revision()
    assert _tables(url) == TABLES
    again = migrate.upgrade(url)
    assert not again.changed
    down = migrate.downgrade(url, "base")
    assert down.after is None
    assert _tables(url) == {"alembic_version"}
    migrate.upgrade(url)
    assert _tables(url) == TABLES


def test_view_and_indexes_exist(engine):
    with engine.connect() as conn:
        views = conn.execute(text(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'soilclay'")).scalars().all()
        gist = conn.execute(text(
            "SELECT tablename FROM pg_indexes WHERE schemaname = 'soilclay' AND indexdef LIKE '%USING gist%'"
        )).scalars().all()
    assert VIEWS_0005 <= set(views)
    assert {"aois", "scenes", "samples", "parcels"} <= set(gist)


def test_failed_migration_leaves_database_unchanged(db_factory):
    url = db_factory()
    with pytest.raises(CommandError, match="no-such-revision"):
        migrate.upgrade(url, "no-such-revision")
    assert "parcels" not in _tables(url)


def test_migration_whose_result_does_not_check_out_is_rolled_back(db_factory, monkeypatch):
    url = db_factory()
    real_upgrade = migrate.command.upgrade

    def upgrade_then_corrupt(cfg, target):
        real_upgrade(cfg, target)
        cfg.attributes["connection"].execute(text("UPDATE soilclay.alembic_version SET version_num = 'bogus'"))

    monkeypatch.setattr(migrate.command, "upgrade", upgrade_then_corrupt)
    with pytest.raises(SoilclayError, match=f"expected revision '{migrate.head_revision()}', found 'bogus'"):
        migrate.upgrade(url)
    assert "parcels" not in _tables(url)


# --- an old schema with data in it, upgraded --------------------------------------------------------

FIRST = "0001"
SQUARE = "SRID=4326;MULTIPOLYGON(((12.9 52.6,12.91 52.6,12.91 52.61,12.9 52.61,12.9 52.6)))"
PARCEL = "SRID=4326;MULTIPOLYGON(((12.901 52.601,12.902 52.601,12.902 52.602,12.901 52.602,12.901 52.601)))"

#: Rows as revision 0001 holds them, written with its own columns: every table, a retired, a champion
#: and a rejected model, a parcel estimated on two composite versions, one flagged without a number and
#: one never estimated.
REVISION_1_ROWS = [
    ("INSERT INTO soilclay.aois (name, geom, grid_crs, description) "
     "VALUES ('old-aoi', ST_GeomFromEWKT(:square), 'EPSG:32633', 'loaded before 0002')", {}),
    ("INSERT INTO soilclay.pipeline_runs (run_id, stage, aoi_id, status, dag_id, dag_run_id, params, summary, error, "
     "started_at, finished_at) VALUES "
     "('composite:1', 'composite', 1, 'success', 'soilclay_composites', 'manual__1', '{\"years\": 3}', "
     " '{\"created\": 3}', NULL, '2025-01-01T10:00Z', '2025-01-01T10:05Z'), "
     "('train:1', 'train', 1, 'success', 'soilclay_retrain', 'manual__2', '{}', '{\"version\": 2}', NULL, "
     " '2025-01-02T10:00Z', '2025-01-02T11:00Z'), "
     "('predict:1', 'predict', 1, 'success', 'soilclay_predict_parcels', 'manual__3', '{}', '{}', NULL, "
     " '2025-01-03T10:00Z', '2025-01-03T10:01Z'), "
     "('predict:2', 'predict', 1, 'failed', 'soilclay_predict_parcels', 'manual__4', '{}', '{}', 'disk full', "
     " '2025-01-04T10:00Z', '2025-01-04T10:01Z')", {}),
    ("INSERT INTO soilclay.scenes (aoi_id, scene_id, collection, platform, acquired_at, published_at, source, "
     "cloud_cover, footprint, href, properties) VALUES "
     "(1, 'S2A_20240601', 'sentinel-2-l2a', 'sentinel-2a', '2024-06-01T10:00Z', '2024-06-02T00:00Z', 'local', 12.5, "
     " ST_GeomFromEWKT(:square), '/archive/s2.json', '{\"proj:code\": \"EPSG:32633\"}'), "
     "(1, 'S1A_20240603', 'sentinel-1-grd', 'sentinel-1a', '2024-06-03T05:00Z', NULL, 'earthengine', NULL, NULL, "
     " 'COPERNICUS/S1_GRD/S1A_20240603', '{\"orbit_state\": \"ascending\"}')", {}),
    ("INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, recipe, "
     "inputs_hash, scene_count, skipped_count, backend, uri, run_id) VALUES "
     "(1, 'sentinel-2', 1, '2021-06-01', '2024-05-31', 'aaaaaaaaaaaaaaaa', '{\"ndvi_max\": 0.25}', "
     " 'bbbbbbbbbbbbbbbb', 40, 2, 'local', '/store/s2-v1.tif', 'composite:1'), "
     "(1, 'sentinel-2', 2, '2021-07-01', '2024-06-30', 'aaaaaaaaaaaaaaaa', '{\"ndvi_max\": 0.25}', "
     " 'cccccccccccccccc', 41, 0, 'local', '/store/s2-v2.tif', 'composite:1'), "
     "(1, 'sentinel-1', 1, '2021-07-01', '2024-06-30', 'dddddddddddddddd', '{}', "
     " 'eeeeeeeeeeeeeeee', 30, 0, 'earthengine', 'gs://b/s1-v1.tif', 'composite:1')", {}),
    ("INSERT INTO soilclay.samples (source, point_id, geom, clay, sand, silt, survey_date, attributes) VALUES "
     "('lucas', 'P-1', ST_SetSRID(ST_MakePoint(12.905, 52.605), 4326), 23.5, 40, 36.5, '2018-07-01', "
     " '{\"lc\": \"B11\"}'), "
     "('lucas', 'P-2', ST_SetSRID(ST_MakePoint(12.906, 52.606), 4326), 31, NULL, NULL, NULL, '{}')", {}),
    ("INSERT INTO soilclay.parcels (parcel_id, geom, source_file, attributes) VALUES "
     "('F-1', ST_GeomFromEWKT(:parcel), 'fields.gpkg', '{\"crop\": \"wheat\"}'), "
     "('F-2', ST_GeomFromEWKT(:parcel), 'fields.gpkg', '{\"crop\": \"grass\"}'), "
     "('F-3', ST_GeomFromEWKT(:parcel), 'fields.gpkg', '{}')", {}),
    ("INSERT INTO soilclay.model_versions (version, status, metrics, artefact_uri, config_hash, training_data, "
     "decision_reason, run_id, created_at, promoted_at) VALUES "
     "(1, 'retired', '{\"models\": {\"cnn\": {\"rmse\": 5.1}}}', '/models/1', 'h1', '{\"s2_composite_id\": 1}', "
     " 'no champion yet', NULL, '2024-12-01T00:00Z', '2024-12-01T00:00Z'), "
     "(2, 'champion', '{\"models\": {\"cnn\": {\"rmse\": 4.2}}}', '/models/2', 'h1', '{\"s2_composite_id\": 2}', "
     " 'RMSE 4.20 vs champion RMSE 5.10', 'train:1', '2025-01-02T11:00Z', '2025-01-02T11:00Z'), "
     "(3, 'rejected', '{\"models\": {\"cnn\": {\"rmse\": 9.9}}}', '/store/rejected/3', 'h2', '{}', "
     " 'RMSE 9.90 vs champion RMSE 4.20', 'train:1', '2025-01-02T12:00Z', NULL)", {}),
    ("INSERT INTO soilclay.parcel_predictions (parcel_id, model_version, s2_composite_id, s1_composite_id, run_id, "
     "clay_mean, clay_median, clay_lower, clay_upper, pixel_count, bare_fraction, out_of_domain_share, flags, "
     "predicted_at) VALUES "
     "('F-1', 1, 1, NULL, 'predict:1', 20.0, 20.5, 15.0, 25.0, 12, 0.8, 0.0, '{}', '2024-12-02T00:00Z'), "
     "('F-1', 2, 1, 3, 'predict:1', 22.0, 22.0, 18.0, 26.0, 12, 0.8, 0.0, '{}', '2025-01-03T10:00Z'), "
     "('F-1', 2, 2, 3, 'predict:1', 24.0, 23.5, 20.0, 28.0, 14, 0.9, 0.1, '{}', '2025-01-03T10:01Z'), "
     "('F-2', 2, 2, 3, 'predict:1', NULL, NULL, NULL, NULL, 0, 0.0, NULL, '{no_bare_pixels}', "
     " '2025-01-03T10:01Z')", {}),
]

COUNTS = {"aois": 1, "pipeline_runs": 4, "scenes": 2, "composites": 3, "samples": 2, "parcels": 3,
          "model_versions": 3, "parcel_predictions": 4}


def _counts(conn) -> dict[str, int]:
    return {t: conn.execute(text(f"SELECT count(*) FROM soilclay.{t}")).scalar() for t in COUNTS}


def _views(conn) -> set[str]:
    return set(conn.execute(text(
        "SELECT table_name FROM information_schema.views WHERE table_schema = 'soilclay'")).scalars())


def test_data_written_at_the_first_revision_survives_the_upgrade_to_head(db_factory):
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrate.alembic_config()).get_base() == FIRST
    url = db_factory()
    assert migrate.upgrade(url, FIRST).after == FIRST
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            for sql, params in REVISION_1_ROWS:
                conn.execute(text(sql), {"square": SQUARE, "parcel": PARCEL, **params})
        with eng.connect() as conn:
            assert _counts(conn) == COUNTS
            assert _views(conn) == {"parcel_clay_latest"}

        up = migrate.upgrade(url)
        assert (up.before, up.after) == (FIRST, migrate.head_revision())

        with eng.connect() as conn:
            assert _counts(conn) == COUNTS
            assert VIEWS_0005 <= _views(conn)
            # 0005: the parcels of the time are members of the AOI they lie in
            assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_aois JOIN soilclay.parcels "
                                     "USING (parcel_key, geom_hash) WHERE aoi_id = 1")).scalar() == 3
            aoi = conn.execute(text(
                "SELECT name, grid_crs, description, ST_AsEWKT(geom) AS g FROM soilclay.aois")).one()
            assert aoi[:3] == ("old-aoi", "EPSG:32633", "loaded before 0002")
            assert aoi.g == SQUARE
            runs = conn.execute(text("SELECT run_id, status, error, params, summary FROM soilclay.pipeline_runs "
                                     "ORDER BY run_id")).all()
            assert [(r.run_id, r.status, r.error) for r in runs] == [
                ("composite:1", "success", None), ("predict:1", "success", None), ("predict:2", "failed", "disk full"),
                ("train:1", "success", None)]
            assert runs[0].params == {"years": 3} and runs[0].summary == {"created": 3}
            scenes = conn.execute(text("SELECT scene_id, source, cloud_cover, footprint IS NOT NULL AS fp, properties "
                                       "FROM soilclay.scenes ORDER BY scene_id")).all()
            assert [tuple(s) for s in scenes] == [
                ("S1A_20240603", "earthengine", None, False, {"orbit_state": "ascending"}),
                ("S2A_20240601", "local", 12.5, True, {"proj:code": "EPSG:32633"})]
            composites = conn.execute(text("SELECT composite_id, sensor, version, backend, uri, scene_count, "
                                           "skipped_count FROM soilclay.composites ORDER BY composite_id")).all()
            assert [tuple(c) for c in composites] == [
                (1, "sentinel-2", 1, "local", "/store/s2-v1.tif", 40, 2),
                (2, "sentinel-2", 2, "local", "/store/s2-v2.tif", 41, 0),
                (3, "sentinel-1", 1, "earthengine", "gs://b/s1-v1.tif", 30, 0)]
            samples = conn.execute(text("SELECT point_id, clay, sand, silt, survey_date::text, attributes, "
                                        "ST_X(geom) AS x FROM soilclay.samples ORDER BY point_id")).all()
            assert [tuple(s) for s in samples] == [("P-1", 23.5, 40.0, 36.5, "2018-07-01", {"lc": "B11"}, 12.905),
                                                   ("P-2", 31.0, None, None, None, {}, 12.906)]
            models = conn.execute(text("SELECT version, status, metrics->'models'->'cnn'->>'rmse' AS rmse, "
                                       "promoted_at IS NOT NULL AS promoted FROM soilclay.model_versions "
                                       "ORDER BY version")).all()
            assert [tuple(m) for m in models] == [(1, "retired", "5.1", True), (2, "champion", "4.2", True),
                                                  (3, "rejected", "9.9", False)]

            # The latest view: per parcel the champion's (v2) estimate on the newest composites; a flagged
            # parcel keeps its flags without a number; a parcel never estimated is there with nothing.
            latest = conn.execute(text(
                "SELECT parcel_id, clay, clay_lower, clay_upper, model_version, s2_composite_version, "
                "s1_composite_id, run_id, flags FROM soilclay.parcel_clay_latest ORDER BY parcel_id")).all()
            assert conn.execute(text("SELECT array_agg(DISTINCT model_status) FROM soilclay.parcel_clay_latest "
                                     "WHERE model_status IS NOT NULL")).scalar() == ["champion"]  # added by 0003
            assert [tuple(r) for r in latest] == [
                ("F-1", 24.0, 20.0, 28.0, 2, 2, 3, "predict:1", []),
                ("F-2", None, None, None, 2, 2, 3, "predict:1", ["no_bare_pixels"]),
                ("F-3", None, None, None, None, None, None, None, None)]
            # The history view (added by 0002): every estimate, with its model's status and composite version.
            history = conn.execute(text(
                "SELECT parcel_id, model_version, model_status, s2_composite_version, s2_period_end::text, "
                "s1_composite_id, clay FROM soilclay.parcel_clay_history "
                "ORDER BY parcel_id, model_version, s2_composite_version")).all()
            assert [tuple(r) for r in history] == [
                ("F-1", 1, "retired", 1, "2024-05-31", None, 20.0),
                ("F-1", 2, "champion", 1, "2024-05-31", 3, 22.0),
                ("F-1", 2, "champion", 2, "2024-06-30", 3, 24.0),
                ("F-2", 2, "champion", 2, "2024-06-30", 3, None)]
            # 0004: parcels are (source, parcel_id) with the source of their file name; every estimate names the
            # geometry it was computed on, which is kept in parcel_geometries.
            parcels = conn.execute(text("SELECT source, parcel_id, parcel_key, length(geom_hash) AS h "
                                        "FROM soilclay.parcels ORDER BY parcel_id")).all()
            assert [tuple(p) for p in parcels] == [("fields", "F-1", 1, 32), ("fields", "F-2", 2, 32),
                                                   ("fields", "F-3", 3, 32)]
            assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_geometries g JOIN soilclay.parcels p "
                                     "USING (parcel_key, geom_hash)")).scalar() == 3
            assert conn.execute(text("SELECT bool_and(geometry_current) AND bool_and(geom IS NOT NULL) "
                                     "FROM soilclay.parcel_clay_history")).scalar() is True
        with eng.connect() as conn:  # the upgraded schema goes on working: new ids follow the old rows
            new_id = conn.execute(text(
                "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, "
                "recipe, inputs_hash, scene_count, backend, uri) VALUES (1, 'sentinel-2', 3, '2021-08-01', "
                "'2024-07-31', 'aaaaaaaaaaaaaaaa', '{}', 'ffffffffffffffff', 42, 'local', '/store/s2-v3.tif') "
                "RETURNING composite_id")).scalar()
            assert new_id == 4
            conn.rollback()
    finally:
        eng.dispose()

    # Down to nothing and back up on that same database: the data goes with the schema, the schema comes back.
    down = migrate.downgrade(url, "base")
    assert (down.before, down.after) == (migrate.head_revision(), None)
    assert _tables(url) == {"alembic_version"}
    again = migrate.upgrade(url)
    assert (again.before, again.after) == (None, migrate.head_revision())
    assert _tables(url) == TABLES
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            assert _counts(conn) == dict.fromkeys(COUNTS, 0)
            assert VIEWS_0005 <= _views(conn)
            assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_clay_latest")).scalar() == 0
    finally:
        eng.dispose()


def test_downgrade_below_0004_keeps_current_estimates_and_refuses_shared_ids(db_factory):
    from tests.db import builders as b

    url = db_factory()
    migrate.upgrade(url)
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            a, r, m = b.aoi(conn), b.run(conn), b.model(conn, 1, "champion")
            s2 = b.composite(conn, a)
            b.parcel(conn, "F-1")
            b.prediction(conn, "F-1", m, s2, r, clay=20.0, lower=15.0, upper=25.0)  # on the first shape
            conn.execute(text("UPDATE soilclay.parcels SET geom = ST_Multi(ST_Buffer(geom, 0.0001))"))
            b.prediction(conn, "F-1", m, s2, r, clay=22.0, lower=17.0, upper=27.0)  # on the current one
            b.parcel(conn, "F-1", source="other")
        with pytest.raises(SoilclayError, match="^downgrade to 0003 refused, nothing changed: cannot downgrade below "
                                                "0004: some parcel ids are used by several sources$"):
            migrate.downgrade(url, "0003")
        with eng.connect() as conn:  # one transaction: nothing changed
            assert conn.execute(text("SELECT version_num FROM soilclay.alembic_version")).scalar() == \
                migrate.head_revision()
            assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_predictions")).scalar() == 2
        with eng.begin() as conn:
            conn.execute(text("DELETE FROM soilclay.parcels WHERE source = 'other'"))
        assert migrate.downgrade(url, "0003").after == "0003"
        with eng.connect() as conn:
            rows = conn.execute(text("SELECT parcel_id, clay FROM soilclay.parcel_clay_latest")).all()
        assert [tuple(x) for x in rows] == [("F-1", 22.0)]
    finally:
        eng.dispose()


def _schema_objects(url: str) -> dict[str, set[str]]:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return {
                "views": _views(conn),
                "tables": set(inspect(conn).get_table_names(schema="soilclay")),
                "indexes": set(conn.execute(text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'soilclay'")).scalars()),
                "functions": set(conn.execute(text(
                    "SELECT proname FROM pg_proc WHERE pronamespace = 'soilclay'::regnamespace")).scalars()),
                "triggers": set(conn.execute(text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
                    "(SELECT oid FROM pg_class WHERE relnamespace = 'soilclay'::regnamespace)")).scalars()),
            }
    finally:
        eng.dispose()


def test_0005_downgrades_to_exactly_0004_and_upgrades_again_with_the_parcels_of_the_time(db_factory):
    from tests.db import builders as b

    url = db_factory()
    migrate.upgrade(url, "0004")
    at_0004 = _schema_objects(url)
    assert migrate.upgrade(url, "0005").after == "0005"
    at_0005 = _schema_objects(url)
    assert at_0005["views"] == VIEWS_0005 and at_0005["tables"] == TABLES
    assert {"parcel_aois_pkey", "parcel_predictions_current_idx"} <= at_0005["indexes"]
    assert "parcel_predictions_model_composite_idx" not in at_0005["indexes"]  # its prefix: replaced
    assert {t for t in at_0005["triggers"] if t.startswith("parcel_aois_")} == {
        "parcel_aois_parcels_inserted", "parcel_aois_parcels_updated", "parcel_aois_aois_inserted",
        "parcel_aois_aois_updated"}
    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            b.aoi(conn)
            b.parcel(conn, "P1")
            b.parcel(conn, "P2", "SRID=4326;MULTIPOLYGON(((5 5,5.1 5,5.1 5.1,5 5.1,5 5)))")
        assert migrate.downgrade(url, "0004").after == "0004"
        assert _schema_objects(url) == at_0004  # nothing of 0005 left, 0004's index back
        with eng.begin() as conn:  # written while 0005 is not there: no triggers
            b.parcel(conn, "P3")
            conn.execute(text("UPDATE soilclay.parcels SET geom = ST_Multi(ST_Buffer(geom, 0.0001)) "
                              "WHERE parcel_id = 'P1'"))
        assert migrate.upgrade(url, "0005").after == "0005"
        assert _schema_objects(url) == at_0005
        with eng.connect() as conn:  # the upgrade fills the memberships from the geometries of the time
            rows = conn.execute(text("SELECT p.parcel_id FROM soilclay.parcel_aois AS m "
                                     "JOIN soilclay.parcels AS p USING (parcel_key, geom_hash) ORDER BY 1")).scalars()
            assert list(rows) == ["P1", "P3"]
    finally:
        eng.dispose()
