"""Shared fixtures: real PostGIS databases (created, migrated, copied, dropped), the small demo world
(generated once per session by the library's own builder) and the states the pipeline's stages leave
on it (:class:`soilclay.testing.WorldStates`: built once, a copy per test).

Markers are applied here, by directory and by fixture, not per file (see ``pytest_collection_modifyitems``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from soilclay.db import migrate
from soilclay.db.admin import create_database, ensure_database
from soilclay.db.engine import make_engine
from soilclay.settings import Settings
from soilclay.testing import WorldStates
from tests import airflow_env  # noqa: F401  (sets AIRFLOW_* before any test module imports Airflow)


def _server_url() -> str:
    return os.environ.get("SOILCLAY_TEST_DATABASE_URL", Settings().database_url)


@pytest.fixture(scope="session")
def db_factory() -> Iterator:
    """Create PostGIS databases on the local server: empty, or a copy of ``template`` (a database URL; it
    must have no open connection). All are dropped at the end."""
    created: list[str] = []
    base = make_url(_server_url())

    def make(prefix: str = "soilclay_test", template: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        url = base.set(database=name).render_as_string(hide_password=False)
        if template is None:
            ensure_database(url)
        else:
            create_database(url, template=make_url(template).database)
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


@pytest.fixture(scope="session")
def world_states(db_factory, small_world, tmp_path_factory) -> Iterator[WorldStates]:
    """The small world's pipeline states (``soilclay.testing.STAGES``), each built once by the library's
    builders on first use; ``world_states.fresh(stage)`` is a database copy (and a directory) of one's own."""
    states = WorldStates(small_world, new_database=lambda template=None: db_factory("soilclay_world", template),
                         new_dir=tmp_path_factory.mktemp)
    yield states
    states.close()


# --- markers, by directory and by fixture --------------------------------------------------------------

TESTS = Path(__file__).resolve().parent
#: Fixtures that reach the PostgreSQL server (directly or through other fixtures: ``fixturenames`` is the
#: whole closure).
DB_FIXTURES = {"engine", "migrated_url", "db_factory"}
DB_DIRS = {"db"}
E2E_DIRS = {"e2e"}
#: Fixtures that cost tens of seconds to build (the demo world; the pipeline states, which train a model).
SLOW_FIXTURES = {"small_world", "world_states"}
#: Files whose every test takes several seconds (``dag.test()`` runs, model training).
SLOW_FILES = {"dags/test_dag_runs.py", "model/test_training.py"}
#: Single tests that take several seconds (a fresh interpreter importing the stack, a world generated).
SLOW_TESTS = {
    "dags/test_dag_integrity.py::test_importing_the_dags_imports_no_heavy_library",
    "stack/test_config.py::test_the_library_never_imports_airflow",
    "test_cli.py::test_demo_world_command_reports_what_it_made",
}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        try:
            rel = Path(item.path).resolve().relative_to(TESTS)
        except ValueError:
            continue
        top = rel.parts[0] if len(rel.parts) > 1 else ""
        fixtures = set(item.fixturenames)
        if top in E2E_DIRS:
            item.add_marker(pytest.mark.e2e)
        if top in E2E_DIRS or top in DB_DIRS or fixtures & DB_FIXTURES:
            item.add_marker(pytest.mark.db)
        test_id = f"{rel.as_posix()}::{item.originalname}"
        if top in E2E_DIRS or rel.as_posix() in SLOW_FILES or test_id in SLOW_TESTS or fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
