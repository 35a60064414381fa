import pytest
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, inspect, text

from soilclay.db import migrate
from soilclay.errors import SoilclayError

TABLES = {"aois", "scenes", "composites", "samples", "parcels", "model_versions", "parcel_predictions",
          "pipeline_runs", "alembic_version"}


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
    assert sorted(views) == ["parcel_clay_history", "parcel_clay_latest"]
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
    with pytest.raises(SoilclayError, match="expected revision '0002', found 'bogus'"):
        migrate.upgrade(url)
    assert "parcels" not in _tables(url)
