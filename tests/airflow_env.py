"""One throw-away Airflow environment for the whole test session, set before anything imports Airflow.

``AIRFLOW_HOME`` is a temporary directory, the DAGs and plugins are this repository's, and the
metadata database is a SQLite file in that home: created and migrated only when a test asks for it
(:func:`migrated_metadata_db`, used by the ``dag.test()`` runs), so the parse-only DAG and plugin
tests need no database. The end-to-end test runs its own Airflow (PostgreSQL metadata DB, real
processes) with an environment of its own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "dags"
PLUGINS_FOLDER = REPO / "plugins"
HOME = Path(tempfile.mkdtemp(prefix="soilclay-airflow-home-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)

ENV = {
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
}
os.environ.update(ENV)
for folder in (PLUGINS_FOLDER, DAGS_FOLDER):  # as Airflow puts them on sys.path
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

_migrated = False


def migrated_metadata_db() -> str:
    """Create and migrate the session's Airflow metadata database (once); return its URL."""
    global _migrated
    if not _migrated:
        airflow = Path(sys.executable).with_name("airflow")
        done = subprocess.run([str(airflow), "db", "migrate"], env={**os.environ, **ENV}, capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        _migrated = True
    return ENV["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
