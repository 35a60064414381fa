"""DAG tests: the session's Airflow environment is set in ``tests/airflow_env.py`` (root conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_env import DAGS_FOLDER, PLUGINS_FOLDER
from tests.dags.earthengine_fakes import BUCKET

__all__ = ["DAGS_FOLDER", "PLUGINS_FOLDER"]


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return DAGS_FOLDER


@pytest.fixture(scope="session")
def emulator_host() -> Iterator[str]:
    """A real in-memory Cloud Storage emulator on a free port of 127.0.0.1, stopped at the end."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._api._httpd.server_address[1]}"  # no public accessor for the port
    finally:
        server.stop()
