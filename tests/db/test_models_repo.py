"""The model registry's repository (``soilclay.db.models``) against PostGIS, and its error translation.

A database of its own (the registry must start empty); each test's work is rolled back.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from soilclay.db import migrate, models
from soilclay.db.engine import make_engine
from soilclay.db.tx import reading, transaction
from soilclay.errors import BadInputError
from soilclay.model.registry import register_candidate
from tests.db import builders as b


@pytest.fixture(scope="module")
def engine(db_factory):
    """A database of this module's own (the registry is global): ``conn`` of tests/db/conftest.py rolls
    each test back on it."""
    url = db_factory("soilclay_models_repo")
    migrate.upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _candidate(conn, version: int, *, run_id: str | None = None, metrics: dict | None = None,
               training_data: dict | None = None, uri: str | None = None) -> bool:
    return models.insert_candidate(
        conn, version=version, artefact_uri=uri or f"file:///models/clay/{version}",
        metrics_json=json.dumps(metrics or {"rmse": 5.0}), training_data_json=json.dumps(training_data or {}),
        config_hash="cfg", run_id=run_id)


def _dag_run(conn, run_id: str, dag_id: str | None, dag_run_id: str | None) -> str:
    conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage, dag_id, dag_run_id) "
                      "VALUES (:r, 'train', :d, :dr)"), {"r": run_id, "d": dag_id, "dr": dag_run_id})
    return run_id


def test_next_version_counts_every_registered_version(conn):
    assert models.next_version(conn) == 1
    _candidate(conn, 1)
    b.model(conn, 3, "rejected")
    assert models.next_version(conn) == 4


def test_insert_candidate_writes_once_and_reports_a_taken_version_or_uri(conn):
    assert _candidate(conn, 1, metrics={"rmse": 4.5}, training_data={"samples": 10})
    assert not _candidate(conn, 1)  # same version again: nothing written
    assert not _candidate(conn, 2, uri="file:///models/clay/1")  # same artefact under another version
    assert models.get_registration(conn, 1) == models.Registration(1, "candidate", "file:///models/clay/1", "cfg")
    assert models.get_registration(conn, 2) is None
    row = conn.execute(text("SELECT metrics, training_data FROM soilclay.model_versions WHERE version = 1")).one()
    assert (row.metrics, row.training_data) == ({"rmse": 4.5}, {"samples": 10})


def test_promote_retires_the_old_champion_and_reject_records_the_reason(conn):
    assert models.current_champion(conn) is None and models.champion_version(conn) is None
    for v in (1, 2, 3):
        _candidate(conn, v, metrics={"rmse": 6.0 - v})
    models.lock_gate(conn)
    assert models.status_for_update(conn, 1) == "candidate" and models.status_for_update(conn, 9) is None
    models.promote(conn, 1, "first")
    models.promote(conn, 2, "better")
    models.reject(conn, 3, "worse")
    assert models.current_champion(conn) == models.ChampionInfo(2, {"rmse": 4.0}, "file:///models/clay/2")
    assert models.champion_version(conn) == 2
    rows = conn.execute(text("SELECT version, status, decision_reason, promoted_at IS NOT NULL AS promoted "
                             "FROM soilclay.model_versions ORDER BY version")).all()
    assert [tuple(r) for r in rows] == [(1, "retired", "first", True), (2, "champion", "better", True),
                                        (3, "rejected", "worse", False)]


def test_trained_on_finds_the_newest_version_with_the_inputs_key(conn):
    assert models.trained_on(conn, "k1") is None
    _candidate(conn, 1, training_data={"inputs_key": "k1", "samples": 40, "gate": {"champion_version": None}})
    _candidate(conn, 2, training_data={"inputs_key": "k1", "samples": 41, "gate": {"champion_version": 1}})
    _candidate(conn, 3, training_data={"inputs_key": "k2"})
    found = models.trained_on(conn, "k1")
    assert found == models.TrainedVersion(2, "candidate", "file:///models/clay/2", {"rmse": 5.0}, 41, 1)
    assert models.trained_on(conn, "k2") == models.TrainedVersion(3, "candidate", "file:///models/clay/3",
                                                                  {"rmse": 5.0}, None, None)


def test_list_versions_is_newest_first_with_the_cnn_metrics(conn):
    _candidate(conn, 1, metrics={"models": {"cnn": {"r2": 0.0, "rmse": 4.25}}})
    _candidate(conn, 2, metrics={"models": {"rf": {"r2": 0.5}}})
    listed = models.list_versions(conn)
    assert [(v.version, v.status, v.cnn_r2, v.cnn_rmse) for v in listed] == [(2, "candidate", None, None),
                                                                             (1, "candidate", 0.0, 4.25)]
    assert listed[0].created_at is not None and listed[1].artefact_uri == "file:///models/clay/1"


def test_registered_in_dag_run_matches_the_dag_run_exactly(conn):
    ten = _dag_run(conn, "train:soilclay_retrain:manual__10:retrain:try1", "soilclay_retrain", "manual__10")
    _candidate(conn, 1, run_id=ten)
    odd = _dag_run(conn, "train:soilclay_retrain:manualxx1:retrain:try1", "soilclay_retrain", "manualxx1")
    _candidate(conn, 2, run_id=odd)
    _candidate(conn, 3)  # registered outside Airflow
    assert models.registered_in_dag_run(conn, 1, "soilclay_retrain", "manual__10")
    # A LIKE prefix of the DAG run id, LIKE wildcards ('_' matches the x of manualxx1), another DAG, another
    # version: all no.
    assert not models.registered_in_dag_run(conn, 1, "soilclay_retrain", "manual__1")
    assert not models.registered_in_dag_run(conn, 1, "soilclay_retrain", "manual__1%")
    assert not models.registered_in_dag_run(conn, 2, "soilclay_retrain", "manual__1")
    assert not models.registered_in_dag_run(conn, 1, "soilclay_composites", "manual__10")
    assert not models.registered_in_dag_run(conn, 2, "soilclay_retrain", "manual__10")
    assert not models.registered_in_dag_run(conn, 3, "soilclay_retrain", "manual__10")
    assert not models.registered_in_dag_run(conn, 99, "soilclay_retrain", "manual__10")


# --- driver errors leave as soilclay's errors ---------------------------------------------------------------


def test_a_check_violation_in_the_repository_is_bad_input(engine):
    with pytest.raises(BadInputError, match=r"^registering model version 0: the database refused the data: .*"
                                            r"model_versions_version_positive") as caught:
        with transaction(engine, "registering model version 0") as conn:
            _candidate(conn, 0)
    assert not isinstance(caught.value, SQLAlchemyError) and isinstance(caught.value.__cause__, SQLAlchemyError)
    with reading(engine) as conn:
        assert models.next_version(conn) == 1  # nothing written


def test_a_stage_function_turns_a_refused_row_into_bad_input(engine):
    """register_candidate with a run id no pipeline run has: the foreign key refuses it."""
    with pytest.raises(BadInputError, match=r"^registering model version 5: the database refused the data: .*"
                                            r"foreign key"):
        register_candidate(engine, version=5, artefact_uri="file:///models/clay/5", metrics={},
                           training_data={}, config_hash="cfg", run_id="no-such-run")
    with reading(engine) as conn:
        assert models.get_registration(conn, 5) is None
