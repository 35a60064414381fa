"""DAG tests: the session's Airflow environment is set in ``tests/airflow_env.py`` (root conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow_env import DAGS_FOLDER, PLUGINS_FOLDER

__all__ = ["DAGS_FOLDER", "PLUGINS_FOLDER"]


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return DAGS_FOLDER
