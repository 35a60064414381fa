"""Pipeline runs: every stage run is a row in ``soilclay.pipeline_runs`` with its outcome.

The row is written in its own transactions, so a failure recorded here survives the rollback of
the work it describes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from soilclay.db.tx import transaction


def new_run_id(stage: str) -> str:
    return f"{stage}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class RunRecord:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.summary: dict = {}
        self.status = "success"


@contextmanager
def recorded_run(engine: Engine, stage: str, *, run_id: str | None = None, aoi_id: int | None = None,
                 params: dict | None = None, dag_id: str | None = None,
                 dag_run_id: str | None = None) -> Iterator[RunRecord]:
    """Record a run: 'running' at start, then 'success' (or the status set on the record) with its
    summary, or 'failed' with the error message. Re-entering an existing run id restarts it."""
    record = RunRecord(run_id or new_run_id(stage))
    with transaction(engine, f"recording the start of run {record.run_id}") as conn:
        conn.execute(text(
            "INSERT INTO soilclay.pipeline_runs (run_id, stage, aoi_id, params, dag_id, dag_run_id) "
            "VALUES (:r, :s, :a, CAST(:p AS jsonb), :d, :dr) "
            "ON CONFLICT (run_id) DO UPDATE SET status = 'running', error = NULL, finished_at = NULL, "
            "started_at = now(), params = EXCLUDED.params"),
            {"r": record.run_id, "s": stage, "a": aoi_id, "p": json.dumps(params or {}, default=str),
             "d": dag_id, "dr": dag_run_id})
    try:
        yield record
    except BaseException as exc:
        with transaction(engine, f"recording the failure of run {record.run_id}") as conn:
            conn.execute(text(
                "UPDATE soilclay.pipeline_runs SET status = 'failed', error = :e, finished_at = now(), "
                "summary = CAST(:s AS jsonb) WHERE run_id = :r"),
                {"e": f"{type(exc).__name__}: {exc}"[:4000] or type(exc).__name__, "r": record.run_id,
                 "s": json.dumps(record.summary, default=str)})
        raise
    with transaction(engine, f"recording the outcome of run {record.run_id}") as conn:
        conn.execute(text(
            "UPDATE soilclay.pipeline_runs SET status = :st, summary = CAST(:s AS jsonb), finished_at = now() "
            "WHERE run_id = :r"),
            {"st": record.status, "s": json.dumps(record.summary, default=str), "r": record.run_id})


def record_failed_try(conn: Connection, *, run_id: str, stage: str, reason: str, params: dict,
                      dag_id: str | None, dag_run_id: str | None) -> None:
    """Make ``run_id`` a 'failed' row with ``reason``: inserted when the try never opened its run,
    overwritten only while it still says 'running' (a killed try); a recorded outcome stays."""
    conn.execute(text(
        "INSERT INTO soilclay.pipeline_runs (run_id, stage, status, error, params, dag_id, dag_run_id, "
        "finished_at) VALUES (:r, :s, 'failed', :e, CAST(:p AS jsonb), :d, :dr, now()) "
        "ON CONFLICT (run_id) DO UPDATE SET status = 'failed', error = EXCLUDED.error, "
        "finished_at = now() WHERE soilclay.pipeline_runs.status = 'running'"),
        {"r": run_id, "s": stage, "e": reason[:4000], "p": json.dumps(params, default=str), "d": dag_id,
         "dr": dag_run_id})
