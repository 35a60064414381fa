"""The champion/challenger gate over ``soilclay.model_versions``.

A trained model is registered as a *candidate* under the version it is published as. :func:`decide` (pure)
compares RMSEs; :func:`apply_decision` makes it the *champion* (retiring the previous one) or *rejected*, in one
transaction under an advisory lock. The database's partial unique index keeps at most one champion whatever
happens; :func:`servable_version` returns only that champion, so a rejected or untried version is never what
serving is pointed at.

The comparison is only fair on the SAME held-out data: the caller evaluates the current champion on the new
held-out set and passes that RMSE, not the one stored when the champion was trained (a different split).
:func:`decide` only compares the numbers it is given.

TF Serving's default version policy serves the *highest* version under the base path, which may be a rejected
one; deployments pin ``model_version_policy { specific { versions: N } }`` with ``N = servable_version(...)``.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from soilclay.errors import BadInputError

#: Key of the transaction-level advisory lock that serialises promotions.
GATE_LOCK = "model_versions:gate"
_UNSET: Any = object()


@dataclass(frozen=True)
class ChampionInfo:
    """The version serving should use, with what it was registered with."""

    version: int
    metrics: dict[str, Any]
    artefact_uri: str


@dataclass(frozen=True)
class Decision:
    """Whether to promote a candidate, and why (the reason is stored as ``decision_reason``)."""

    promote: bool
    reason: str


def _check_version(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadInputError(f"model version must be an integer >= 1, found {version!r}")
    return version


def _json(value: Any, name: str) -> str:
    if not isinstance(value, dict):
        raise BadInputError(f"{name} must be a dict, found {type(value).__name__}")
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"{name} must be JSON-serialisable with finite numbers: {e}") from e


def _check_rmse(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise BadInputError(f"{name} must be a finite number >= 0, found {value!r}")
    return float(value)


def next_version(conn: Connection) -> int:
    """One more than the highest registered version (1 for an empty registry); rejected ones count too."""
    return int(conn.execute(text("SELECT COALESCE(MAX(version), 0) + 1 FROM soilclay.model_versions")).scalar_one())


def register_candidate(engine: Engine, *, version: int, artefact_uri: str, metrics: dict[str, Any],
                       training_data: dict[str, Any], config_hash: str, run_id: str | None) -> None:
    """Insert ``version`` as a candidate. Registering the same version, URI and config again is a no-op."""
    version = _check_version(version)
    if not isinstance(artefact_uri, str) or not artefact_uri.strip():
        raise BadInputError(f"artefact_uri must be a non-empty string, found {artefact_uri!r}")
    params = {"v": version, "u": artefact_uri, "m": _json(metrics, "metrics"),
              "t": _json(training_data, "training_data"), "c": config_hash, "r": run_id}
    with engine.begin() as conn:
        inserted = conn.execute(text(
            "INSERT INTO soilclay.model_versions (version, artefact_uri, metrics, training_data, config_hash, run_id) "
            "VALUES (:v, :u, CAST(:m AS jsonb), CAST(:t AS jsonb), :c, :r) ON CONFLICT DO NOTHING RETURNING version"),
            params).scalar_one_or_none()
        if inserted is not None:
            return
        row = conn.execute(text(
            "SELECT artefact_uri, config_hash FROM soilclay.model_versions WHERE version = :v"),
            {"v": version}).one_or_none()
    if row is None:
        raise BadInputError(f"artefact {artefact_uri!r} is already registered under another version than {version}")
    if (row.artefact_uri, row.config_hash) != (artefact_uri, config_hash):
        raise BadInputError(
            f"model version {version} is already registered with artefact {row.artefact_uri!r} and config "
            f"{row.config_hash!r}; found {artefact_uri!r} and {config_hash!r}. Use next_version() for a new model")


def current_champion(conn: Connection) -> ChampionInfo | None:
    """The champion, or None before the first promotion."""
    row = conn.execute(text(
        "SELECT version, metrics, artefact_uri FROM soilclay.model_versions WHERE status = 'champion'")).one_or_none()
    return None if row is None else ChampionInfo(int(row.version), dict(row.metrics), row.artefact_uri)


def servable_version(conn: Connection) -> int | None:
    """The only version serving may use: the champion's (candidates, rejected and retired ones never)."""
    champion = current_champion(conn)
    return None if champion is None else champion.version


def decide(candidate_rmse: float, champion_rmse: float | None, *, force: bool = False,
           min_improvement: float = 0.0) -> Decision:
    """Promote when there is no champion, when forced, or when the candidate's RMSE is lower than the
    champion's by more than ``min_improvement``. Both RMSEs must come from the SAME held-out data."""
    cand = _check_rmse(candidate_rmse, "candidate_rmse")
    champ = None if champion_rmse is None else _check_rmse(champion_rmse, "champion_rmse")
    margin = _check_rmse(min_improvement, "min_improvement")
    if champ is None:
        return Decision(True, f"no champion yet: candidate RMSE {cand:.4f} promoted"
                              + (" (forced)" if force else ""))
    gain = champ - cand
    compared = f"candidate RMSE {cand:.4f} vs champion RMSE {champ:.4f} on the same held-out data"
    if force:
        return Decision(True, f"forced: {compared} (improvement {gain:.4f})")
    if gain > margin:
        return Decision(True, f"{compared}: better by {gain:.4f} > required {margin:.4f}")
    return Decision(False, f"{compared}: improvement {gain:.4f} is not more than required {margin:.4f}")


def apply_decision(engine: Engine, version: int, decision: Decision, *,
                   expected_champion: int | None = _UNSET) -> str:
    """Make candidate ``version`` the champion (retiring the old one) or reject it; return its new status.

    One transaction under an advisory lock, so concurrent gates queue and serving never sees zero or two
    champions. Re-applying the same outcome is a no-op (a retried task is harmless); a version that is not a
    candidate otherwise raises. Pass ``expected_champion`` (the version, or None, the decision was made
    against) to refuse a stale decision when another model was promoted in between.
    """
    version = _check_version(version)
    if not isinstance(decision, Decision):
        raise BadInputError(f"decision must be a Decision, found {type(decision).__name__}")
    target = "champion" if decision.promote else "rejected"
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": GATE_LOCK})
        status = conn.execute(text("SELECT status FROM soilclay.model_versions WHERE version = :v FOR UPDATE"),
                              {"v": version}).scalar_one_or_none()
        if status is None:
            raise BadInputError(f"model version {version} is not registered; register_candidate() it first")
        if status == target:
            return status
        if status != "candidate":
            raise BadInputError(f"model version {version} is {status!r}, expected a 'candidate' to become {target!r}")
        if expected_champion is not _UNSET:
            current = conn.execute(text(
                "SELECT version FROM soilclay.model_versions WHERE status = 'champion'")).scalar_one_or_none()
            if current != expected_champion:
                raise BadInputError(f"the decision on version {version} was made against champion "
                                    f"{expected_champion}, but the champion is now {current}; decide again")
        if decision.promote:
            # Retire first: the one-champion index is checked per statement.
            conn.execute(text("UPDATE soilclay.model_versions SET status = 'retired' "
                              "WHERE status = 'champion' AND version <> :v"), {"v": version})
            conn.execute(text("UPDATE soilclay.model_versions SET status = 'champion', promoted_at = now(), "
                              "decision_reason = :r WHERE version = :v"), {"v": version, "r": decision.reason})
        else:
            conn.execute(text("UPDATE soilclay.model_versions SET status = 'rejected', decision_reason = :r "
                              "WHERE version = :v"), {"v": version, "r": decision.reason})
    return target
