"""Repository of ``soilclay.model_versions``: the registered model versions and their gate status.

Call these inside :func:`soilclay.db.tx.transaction` / :func:`~soilclay.db.tx.reading`; the gate's rules
(what may become champion, idempotence, stale decisions) are in :mod:`soilclay.model.registry`. The
database keeps at most one champion (a partial unique index), whatever the callers do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from soilclay.db.tx import advisory_lock

#: Key of the transaction-level advisory lock that serialises promotions.
GATE_LOCK = "model_versions:gate"


@dataclass(frozen=True)
class ChampionInfo:
    """The version serving should use, with what it was registered with."""

    version: int
    metrics: dict[str, Any]
    artefact_uri: str
    #: Its lineage: the samples and the composites (and their methods) it was trained on.
    training_data: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Registration:
    """What a registered version was registered with (to tell a repeated registration from a clash)."""

    version: int
    status: str
    artefact_uri: str
    config_hash: str | None


@dataclass(frozen=True)
class TrainedVersion:
    """A version trained on given inputs: its status, metrics and lineage summary."""

    version: int
    status: str
    artefact_uri: str
    metrics: dict[str, Any]
    samples: int | None
    #: The champion the gate compared it with when it was trained (None: there was none).
    gated_against: int | None


@dataclass(frozen=True)
class VersionSummary:
    """One line of ``soilclay model list``."""

    version: int
    status: str
    created_at: datetime
    cnn_r2: float | None
    cnn_rmse: float | None
    decision_reason: str | None
    artefact_uri: str


def next_version(conn: Connection) -> int:
    """One more than the highest registered version (1 for an empty registry); rejected ones count too."""
    return int(conn.execute(text("SELECT COALESCE(MAX(version), 0) + 1 FROM soilclay.model_versions")).scalar_one())


def insert_candidate(conn: Connection, *, version: int, artefact_uri: str, metrics_json: str,
                     training_data_json: str, config_hash: str | None, run_id: str | None) -> bool:
    """Insert ``version`` as a candidate; False (nothing written) when the version or the URI is taken."""
    inserted = conn.execute(text(
        "INSERT INTO soilclay.model_versions (version, artefact_uri, metrics, training_data, config_hash, run_id) "
        "VALUES (:v, :u, CAST(:m AS jsonb), CAST(:t AS jsonb), :c, :r) ON CONFLICT DO NOTHING RETURNING version"),
        {"v": version, "u": artefact_uri, "m": metrics_json, "t": training_data_json, "c": config_hash,
         "r": run_id}).scalar_one_or_none()
    return inserted is not None


def get_registration(conn: Connection, version: int) -> Registration | None:
    """What ``version`` is registered with, or None when it is not registered."""
    row = conn.execute(text(
        "SELECT version, status, artefact_uri, config_hash FROM soilclay.model_versions WHERE version = :v"),
        {"v": version}).one_or_none()
    return None if row is None else Registration(int(row.version), row.status, row.artefact_uri, row.config_hash)


def current_champion(conn: Connection) -> ChampionInfo | None:
    """The champion, or None before the first promotion."""
    row = conn.execute(text(
        "SELECT version, metrics, artefact_uri, training_data FROM soilclay.model_versions "
        "WHERE status = 'champion'")).one_or_none()
    return None if row is None else ChampionInfo(int(row.version), dict(row.metrics), row.artefact_uri,
                                                 dict(row.training_data or {}))


def champion_version(conn: Connection) -> int | None:
    """The champion's version, or None."""
    value = conn.execute(text(
        "SELECT version FROM soilclay.model_versions WHERE status = 'champion'")).scalar_one_or_none()
    return None if value is None else int(value)


def lock_gate(conn: Connection) -> None:
    """Serialise gate decisions (promotions and rejections) until the transaction ends."""
    advisory_lock(conn, GATE_LOCK)


def status_for_update(conn: Connection, version: int) -> str | None:
    """The status of ``version``, its row locked until the transaction ends; None when not registered."""
    return conn.execute(text("SELECT status FROM soilclay.model_versions WHERE version = :v FOR UPDATE"),
                        {"v": version}).scalar_one_or_none()


def promote(conn: Connection, version: int, reason: str) -> None:
    """Retire the champion (if another) and make ``version`` the champion, with ``reason``."""
    # Retire first: the one-champion index is checked per statement.
    conn.execute(text("UPDATE soilclay.model_versions SET status = 'retired' "
                      "WHERE status = 'champion' AND version <> :v"), {"v": version})
    conn.execute(text("UPDATE soilclay.model_versions SET status = 'champion', promoted_at = now(), "
                      "decision_reason = :r WHERE version = :v"), {"v": version, "r": reason})


def reject(conn: Connection, version: int, reason: str) -> None:
    """Mark ``version`` rejected, with ``reason``."""
    conn.execute(text("UPDATE soilclay.model_versions SET status = 'rejected', decision_reason = :r "
                      "WHERE version = :v"), {"v": version, "r": reason})


def trained_on(conn: Connection, inputs_key: str) -> TrainedVersion | None:
    """The newest version whose lineage has ``inputs_key`` (trained on exactly those inputs), or None."""
    row = conn.execute(text(
        "SELECT version, status, artefact_uri, metrics, (training_data->>'samples')::int AS samples, "
        "(training_data->'gate'->>'champion_version')::int AS gated_against "
        "FROM soilclay.model_versions WHERE training_data->>'inputs_key' = :k ORDER BY version DESC LIMIT 1"),
        {"k": inputs_key}).first()
    if row is None:
        return None
    return TrainedVersion(int(row.version), row.status, row.artefact_uri, dict(row.metrics), row.samples,
                          row.gated_against)


def list_versions(conn: Connection) -> list[VersionSummary]:
    """Every version, newest first, with the CNN's stored R2 and RMSE (None when not recorded)."""
    rows = conn.execute(text(
        "SELECT version, status, created_at, metrics->'models'->'cnn'->>'r2' AS r2, "
        "metrics->'models'->'cnn'->>'rmse' AS rmse, decision_reason, artefact_uri "
        "FROM soilclay.model_versions ORDER BY version DESC")).all()
    return [VersionSummary(int(r.version), r.status, r.created_at, _number(r.r2), _number(r.rmse),
                           r.decision_reason, r.artefact_uri) for r in rows]


def registered_in_dag_run(conn: Connection, version: int, dag_id: str, dag_run_id: str) -> bool:
    """Whether a task try of the Airflow DAG run ``dag_id``/``dag_run_id`` registered ``version`` (through
    the ``pipeline_runs`` row the version names)."""
    return conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM soilclay.model_versions m JOIN soilclay.pipeline_runs r "
        "ON r.run_id = m.run_id WHERE m.version = :v AND r.dag_id = :d AND r.dag_run_id = :dr)"),
        {"v": version, "d": dag_id, "dr": dag_run_id}).scalar_one()


def _number(value: str | None) -> float | None:
    return None if value is None or value == "" else float(value)
