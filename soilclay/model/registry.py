"""The champion/challenger gate over ``soilclay.model_versions``.

A trained model is registered as a *candidate* under the version it is published as. :func:`decide` (pure)
compares RMSEs; :func:`apply_decision` makes it the *champion* (retiring the previous one) or *rejected*, in one
transaction under an advisory lock. The database's partial unique index keeps at most one champion whatever
happens; :func:`servable_version` returns only that champion, so a rejected or untried version is never what
serving is pointed at. The SQL is in :mod:`soilclay.db.models`; this module holds the rules.

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

from sqlalchemy import Connection, Engine

from soilclay.contract import check_model_version
from soilclay.db import models
from soilclay.db.models import GATE_LOCK, ChampionInfo, current_champion, next_version
from soilclay.db.tx import transaction
from soilclay.errors import BadInputError, TransientExternalError

__all__ = ["GATE_LOCK", "ChampionChange", "ChampionInfo", "Decision", "apply_decision", "champion_change",
           "current_champion", "decide", "next_version", "register_candidate", "servable_version"]
_UNSET: Any = object()


@dataclass(frozen=True)
class Decision:
    """Whether to promote a candidate, and why (the reason is stored as ``decision_reason``)."""

    promote: bool
    reason: str


@dataclass(frozen=True)
class ChampionChange:
    """What a retraining run did to the champion."""

    #: This run made its version the champion (a MODEL event is due).
    new_champion: bool
    #: The champion it replaced (for a new champion), else the champion the run left in place; None when none.
    previous_champion: int | None


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


def register_candidate(engine: Engine, *, version: int, artefact_uri: str, metrics: dict[str, Any],
                       training_data: dict[str, Any], config_hash: str, run_id: str | None) -> None:
    """Insert ``version`` as a candidate. Registering the same version, URI and config again is a no-op."""
    version = check_model_version(version)
    if not isinstance(artefact_uri, str) or not artefact_uri.strip():
        raise BadInputError(f"artefact_uri must be a non-empty string, found {artefact_uri!r}")
    metrics_json, training_json = _json(metrics, "metrics"), _json(training_data, "training_data")
    with transaction(engine, f"registering model version {version}") as conn:
        if models.insert_candidate(conn, version=version, artefact_uri=artefact_uri, metrics_json=metrics_json,
                                   training_data_json=training_json, config_hash=config_hash, run_id=run_id):
            return
        row = models.get_registration(conn, version)
    if row is None:
        raise BadInputError(f"artefact {artefact_uri!r} is already registered under another version than {version}")
    if (row.artefact_uri, row.config_hash) != (artefact_uri, config_hash):
        raise BadInputError(
            f"model version {version} is already registered with artefact {row.artefact_uri!r} and config "
            f"{row.config_hash!r}; found {artefact_uri!r} and {config_hash!r}. Use next_version() for a new model")


def servable_version(conn: Connection) -> int | None:
    """The only version serving may use: the champion's (candidates, rejected and retired ones never)."""
    return models.champion_version(conn)


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
    version = check_model_version(version)
    if not isinstance(decision, Decision):
        raise BadInputError(f"decision must be a Decision, found {type(decision).__name__}")
    target = "champion" if decision.promote else "rejected"
    with transaction(engine, f"applying the gate's decision on model version {version}") as conn:
        models.lock_gate(conn)
        status = models.status_for_update(conn, version)
        if status is None:
            raise BadInputError(f"model version {version} is not registered; register_candidate() it first")
        if status == target:
            return status
        if status != "candidate":
            raise BadInputError(f"model version {version} is {status!r}, expected a 'candidate' to become {target!r}")
        if expected_champion is not _UNSET:
            current = models.champion_version(conn)
            if current != expected_champion:
                raise TransientExternalError(  # a lost race: a retry gates a fresh candidate against the new one
                    f"the decision on version {version} was made against champion {expected_champion}, but the "
                    f"champion is now {current}; decide again")
        if decision.promote:
            models.promote(conn, version, decision.reason)
        else:
            models.reject(conn, version, decision.reason)
    return target


def champion_change(version: int, *, before: int | None, after: int | None, registered_in_dag_run: bool = False,
                    replaced: int | None = None) -> ChampionChange:
    """Whether a run that ended with model ``version`` made a new champion (pure).

    ``before``/``after``: the champion's version before and after the run. ``version`` is a new champion when
    it is the champion after the run and either was not before (this run promoted it), or this DAG run
    registered it (``registered_in_dag_run``: an earlier try of the same DAG run promoted it and then failed,
    so the retry finds it champion already; ``replaced`` is the champion that try replaced).
    """
    if after != version:
        return ChampionChange(False, None if before == version else before)
    if before != version:
        return ChampionChange(True, before)
    if registered_in_dag_run:
        return ChampionChange(True, replaced)
    return ChampionChange(False, None)
