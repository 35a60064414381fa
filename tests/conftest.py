"""Shared fixtures: a real PostGIS database per test session (created, migrated, dropped) and the
small demo world (generated once per session by the library's own builder)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from soilclay.db import migrate
from soilclay.db.admin import ensure_database
from soilclay.db.engine import make_engine
from soilclay.settings import Settings
from tests import airflow_env  # noqa: F401  (sets AIRFLOW_* before any test module imports Airflow)


def _server_url() -> str:
    return os.environ.get("SOILCLAY_TEST_DATABASE_URL", Settings().database_url)


@pytest.fixture(scope="session")
def db_factory() -> Iterator:
    """Create empty PostGIS databases on the local server; all are dropped at the end."""
    created: list[str] = []
    base = make_url(_server_url())

    def make(prefix: str = "soilclay_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        url = base.set(database=name).render_as_string(hide_password=False)
        ensure_database(url)
        created.append(name)
        return url

    yield make
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_url(db_factory) -> str:
    url = db_factory()
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(migrated_url) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


@pytest.fixture
def ee_api() -> Iterator[None]:
    """Earth Engine initialised offline against the real algorithm catalogue of ``ee.apitestcase``."""
    from ee import apitestcase

    case = apitestcase.ApiTestCase()
    case.setUp()
    try:
        yield
    finally:
        case.tearDown()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    from soilclay.demo import world

    out = tmp_path_factory.mktemp("worlds") / "small"
    world.generate(out, size="small", seed=42)
    return out
