"""The champion/challenger gate: pure decision, applied in one locked transaction, one champion at most;
what counts as a new champion; the retraining request and how a version number is chosen.

These tests need an empty registry, so they use a database of their own rather than the shared one.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from soilclay.db import migrate
from soilclay.db.engine import make_engine
from soilclay.errors import BadInputError, TransientExternalError
from soilclay.io.store import open_store
from soilclay.model.config import ModelConfig
from soilclay.model.pipeline import RetrainRequest, choose_version
from soilclay.model.registry import (
    ChampionChange,
    ChampionInfo,
    Decision,
    apply_decision,
    champion_change,
    current_champion,
    decide,
    next_version,
    register_candidate,
    servable_version,
)
from soilclay.serving.publish import ServingConfigTarget

# --- decide: pure --------------------------------------------------------------------------------------------


def test_decide_promotes_without_champion():
    d = decide(5.0, None)
    assert d.promote and "5.0000" in d.reason and "no champion" in d.reason


def test_decide_rejects_worse_or_equal_and_names_both_rmses():
    for cand in (5.5, 5.0):
        d = decide(cand, 5.0)
        assert not d.promote
        assert f"{cand:.4f}" in d.reason and "5.0000" in d.reason and "same held-out data" in d.reason


def test_decide_promotes_better_beyond_min_improvement_only():
    assert decide(4.0, 5.0).promote
    assert not decide(4.9, 5.0, min_improvement=0.2).promote
    d = decide(4.7, 5.0, min_improvement=0.2)
    assert d.promote and "4.7000" in d.reason and "5.0000" in d.reason


def test_decide_force_promotes_a_worse_one():
    d = decide(9.0, 5.0, force=True)
    assert d.promote and "forced" in d.reason and "9.0000" in d.reason and "5.0000" in d.reason


@pytest.mark.parametrize(("cand", "champ", "margin"), [
    (float("nan"), 5.0, 0.0), (5.0, float("inf"), 0.0), (-1.0, None, 0.0), (5.0, 5.0, -0.1), ("5", None, 0.0)])
def test_decide_refuses_meaningless_numbers(cand, champ, margin):
    with pytest.raises(BadInputError, match="must be a finite number"):
        decide(cand, champ, min_improvement=margin)


# --- what counts as a new champion: pure ---------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "expected"), [
    ({"before": None, "after": 2}, ChampionChange(True, None)),  # the first champion
    ({"before": 1, "after": 2}, ChampionChange(True, 1)),  # promoted over v1
    ({"before": 1, "after": 1}, ChampionChange(False, 1)),  # rejected: v1 stays
    ({"before": None, "after": None}, ChampionChange(False, None)),  # rejected, no champion at all
    # A retry finds v2 champion already: new only if this DAG run registered it (then it replaced v1).
    ({"before": 2, "after": 2, "registered_in_dag_run": True, "replaced": 1}, ChampionChange(True, 1)),
    ({"before": 2, "after": 2, "replaced": 1}, ChampionChange(False, None)),
    ({"before": 1, "after": 3}, ChampionChange(False, 1)),  # another run promoted v3 meanwhile
])
def test_champion_change(kw, expected):
    version = 2
    assert champion_change(version, **kw) == expected


# --- the retraining request ---------------------------------------------------------------------------------


def _request(**kw) -> RetrainRequest:
    return RetrainRequest(**{"aoi": "demo", "config": ModelConfig.parse({}), "store_url": "/s",
                             "model_base_path": "/m", **kw})


def test_retrain_request_is_frozen_and_normalised():
    request = _request(workdir="var/work", sources=["demo", "lucas"], dag_run=["soilclay_retrain", "manual__1"],
                       serving=ServingConfigTarget("var/tf-serving"))
    assert request.workdir == Path("var/work") and request.sources == ("demo", "lucas")
    assert request.dag_run == ("soilclay_retrain", "manual__1")
    assert request.serving == ServingConfigTarget(Path("var/tf-serving"), "clay", "/models/clay")
    assert (request.force, request.run_id, _request().serving, _request().dag_run) == (False, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.force = True  # type: ignore[misc]


@pytest.mark.parametrize(("kw", "message"), [
    ({"aoi": ""}, "retrain aoi must be a non-empty string"),
    ({"store_url": None}, "retrain store_url must be a non-empty string"),
    ({"config": {"cnn": {}}}, "retrain config must be a ModelConfig"),
    ({"force": "yes"}, "retrain force must be true or false"),
    ({"run_id": ""}, "retrain run_id must be a non-empty string or None"),
    ({"sources": "demo"}, "retrain sources must be a non-empty list"),
    ({"sources": []}, "retrain sources must be a non-empty list"),
    ({"dag_run": ("soilclay_retrain",)}, r"retrain dag_run must be \(dag_id, dag_run_id\)"),
    ({"dag_run": ("soilclay_retrain", "")}, "retrain dag_run_id must be a non-empty string"),
    ({"serving": "var/tf-serving"}, "retrain serving must be a ServingConfigTarget"),
    ({"workdir": 3}, "retrain workdir must be a directory path"),
])
def test_retrain_request_refuses_what_it_cannot_run(kw, message):
    with pytest.raises(BadInputError, match=message):
        _request(**kw)


# --- the registry in PostGIS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reg_engine(db_factory):
    url = db_factory("soilclay_registry")
    migrate.upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def reg(reg_engine):
    """An empty registry per test."""
    with reg_engine.begin() as conn:
        conn.execute(text("DELETE FROM soilclay.model_versions"))
    return reg_engine


def _register(engine, version: int, rmse: float, **kw) -> None:
    register_candidate(engine, version=version, artefact_uri=f"file:///models/clay/{version}",
                       metrics={"rmse": rmse}, training_data={"samples": 100}, config_hash="cfg1", run_id=None, **kw)


def _statuses(engine) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT version, status FROM soilclay.model_versions")).all())


def _gate(engine, version: int, rmse: float, **kw) -> Decision:
    """What the training DAG does: compare with the champion (here its stored RMSE stands in for the
    re-evaluation on the new held-out set), then apply."""
    with engine.connect() as conn:
        champion = current_champion(conn)
    decision = decide(rmse, None if champion is None else champion.metrics["rmse"], **kw)
    apply_decision(engine, version, decision)
    return decision


def test_first_candidate_becomes_champion(reg):
    with reg.connect() as conn:
        assert next_version(conn) == 1
        assert servable_version(conn) is None and current_champion(conn) is None
    _register(reg, 1, 5.0)
    _gate(reg, 1, 5.0)
    with reg.connect() as conn:
        assert current_champion(conn) == ChampionInfo(1, {"rmse": 5.0}, "file:///models/clay/1")
        assert servable_version(conn) == 1
        assert next_version(conn) == 2
        row = conn.execute(text("SELECT promoted_at, decision_reason FROM soilclay.model_versions")).one()
    assert row.promoted_at is not None and "no champion" in row.decision_reason


def test_worse_candidate_is_rejected_and_never_served(reg):
    _register(reg, 1, 5.0)
    _gate(reg, 1, 5.0)
    _register(reg, 2, 6.0)
    decision = _gate(reg, 2, 6.0)
    assert not decision.promote
    assert _statuses(reg) == {1: "champion", 2: "rejected"}
    with reg.connect() as conn:
        assert servable_version(conn) == 1
        reason = conn.execute(text("SELECT decision_reason FROM soilclay.model_versions WHERE version = 2")).scalar()
        assert next_version(conn) == 3  # a rejected version number is never reused
    assert "6.0000" in reason and "5.0000" in reason
    with pytest.raises(BadInputError, match="is 'rejected', expected a 'candidate'"):
        apply_decision(reg, 2, decide(1.0, 5.0))
    with reg.connect() as conn:
        assert servable_version(conn) == 1


def test_better_candidate_becomes_champion_and_retires_the_old_one(reg):
    _register(reg, 1, 5.0)
    _gate(reg, 1, 5.0)
    _register(reg, 2, 4.0)
    assert _gate(reg, 2, 4.0).promote
    assert _statuses(reg) == {1: "retired", 2: "champion"}
    with reg.connect() as conn:
        assert servable_version(conn) == 2


def test_force_promotes_a_worse_one(reg):
    _register(reg, 1, 5.0)
    _gate(reg, 1, 5.0)
    _register(reg, 2, 7.0)
    assert _gate(reg, 2, 7.0, force=True).promote
    assert _statuses(reg) == {1: "retired", 2: "champion"}


def test_reapplying_the_same_outcome_is_a_no_op(reg):
    _register(reg, 1, 5.0)
    decision = decide(5.0, None)
    assert apply_decision(reg, 1, decision) == "champion"
    assert apply_decision(reg, 1, decision) == "champion"
    assert _statuses(reg) == {1: "champion"}


def test_register_is_idempotent_but_refuses_a_different_model_under_a_taken_version(reg):
    _register(reg, 1, 5.0)
    _register(reg, 1, 5.0)
    with pytest.raises(BadInputError, match="already registered with artefact"):
        register_candidate(reg, version=1, artefact_uri="file:///elsewhere/1", metrics={}, training_data={},
                           config_hash="cfg1", run_id=None)
    with pytest.raises(BadInputError, match="another version"):
        register_candidate(reg, version=2, artefact_uri="file:///models/clay/1", metrics={}, training_data={},
                           config_hash="cfg1", run_id=None)
    with pytest.raises(BadInputError, match="finite numbers"):
        register_candidate(reg, version=3, artefact_uri="file:///models/clay/3", metrics={"rmse": float("nan")},
                           training_data={}, config_hash="cfg1", run_id=None)
    assert _statuses(reg) == {1: "candidate"}


def test_register_records_lineage_and_run(reg):
    with reg.begin() as conn:
        conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage) VALUES ('train-reg-1', 'train')"))
    register_candidate(reg, version=1, artefact_uri="gs://b/models/clay/1", metrics={"rmse": 4.0, "r2": 0.6},
                       training_data={"samples": 812, "split": "spatial-blocks"}, config_hash="f00d",
                       run_id="train-reg-1")
    with reg.connect() as conn:
        row = conn.execute(text("SELECT * FROM soilclay.model_versions WHERE version = 1")).one()
    assert (row.status, row.run_id, row.config_hash) == ("candidate", "train-reg-1", "f00d")
    assert row.training_data == {"samples": 812, "split": "spatial-blocks"} and row.metrics["r2"] == 0.6


def test_stale_decision_is_refused(reg):
    _register(reg, 1, 5.0)
    _register(reg, 2, 4.0)
    _register(reg, 3, 4.5)
    apply_decision(reg, 1, decide(5.0, None))
    apply_decision(reg, 2, decide(4.0, 5.0), expected_champion=1)
    with pytest.raises(TransientExternalError, match="made against champion 1, but the champion is now 2"):
        apply_decision(reg, 3, decide(4.5, 5.0), expected_champion=1)
    assert _statuses(reg) == {1: "retired", 2: "champion", 3: "candidate"}


def test_unknown_version_is_refused(reg):
    with pytest.raises(BadInputError, match="not registered"):
        apply_decision(reg, 99, Decision(True, "x"))


def test_the_database_allows_one_champion_only(reg):
    _register(reg, 1, 5.0)
    _register(reg, 2, 4.0)
    apply_decision(reg, 1, decide(5.0, None))
    with pytest.raises(IntegrityError, match="model_versions_one_champion"), reg.begin() as conn:
        conn.execute(text("UPDATE soilclay.model_versions SET status = 'champion', promoted_at = now() "
                          "WHERE version = 2"))
    assert _statuses(reg) == {1: "champion", 2: "candidate"}


def test_concurrent_promotions_leave_exactly_one_champion(reg):
    for v in range(1, 7):
        _register(reg, v, 5.0 - v / 10)
    errors: list[BaseException] = []

    def promote(version: int) -> None:
        try:
            apply_decision(reg, version, Decision(True, f"forced v{version}"))
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=promote, args=(v,)) for v in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    statuses = _statuses(reg)
    assert sorted(statuses.values()) == ["champion"] + ["retired"] * 5
    with reg.connect() as conn:
        assert statuses[servable_version(conn)] == "champion"


def test_the_version_number_is_one_more_than_any_used_anywhere(reg, tmp_path):
    """Registered versions, published directories under the base path and rejected exports all count (a run may
    have published and then failed before registering)."""
    base, store = tmp_path / "models", open_store(str(tmp_path / "store"))
    assert choose_version(reg, str(base), store) == 1
    _register(reg, 2, 5.0)
    assert choose_version(reg, str(base), store) == 3
    (base / "5").mkdir(parents=True)
    (base / "5" / "saved_model.pb").write_bytes(b"x")
    assert choose_version(reg, str(base), store) == 6
    (tmp_path / "store" / "models" / "rejected" / "7").mkdir(parents=True)
    (tmp_path / "store" / "models" / "rejected" / "7" / "saved_model.pb").write_bytes(b"x")
    assert choose_version(reg, str(base), store) == 8
