"""The champion/challenger gate: pure decision, applied in one locked transaction, one champion at most.

These tests need an empty registry, so they use a database of their own rather than the shared one.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from soilclay.db import migrate
from soilclay.db.engine import make_engine
from soilclay.errors import BadInputError
from soilclay.model.registry import (
    ChampionInfo,
    Decision,
    apply_decision,
    current_champion,
    decide,
    next_version,
    register_candidate,
    servable_version,
)

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
    with pytest.raises(BadInputError, match="made against champion 1, but the champion is now 2"):
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
