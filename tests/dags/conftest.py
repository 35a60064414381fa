"""DAG tests: Airflow configured for unit tests before anything imports it; no metadata database needed."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
PLUGINS_FOLDER = DAGS_FOLDER.parent / "plugins"

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="soilclay-airflow-home-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PLUGINS_FOLDER)
if str(PLUGINS_FOLDER) not in sys.path:  # as Airflow puts it on sys.path
    sys.path.append(str(PLUGINS_FOLDER))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def dags_folder() -> Path:
    return DAGS_FOLDER
