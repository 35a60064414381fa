"""Pipeline runs: every stage run is a row in ``soilclay.pipeline_runs`` with its outcome.

The row is written in its own transactions, so a failure recorded here survives the rollback of
the work it describes.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from soilclay.db.tx import transaction, translated
from soilclay.errors import SoilclayError, TransientExternalError
from soilclay.redact import redact

logger = logging.getLogger(__name__)


def _json(value: dict) -> str:
    """JSON of run parameters or a summary, every credential in a URL masked (:mod:`soilclay.redact`)."""
    return redact(json.dumps(value, default=str))


def new_run_id(stage: str) -> str:
    return f"{stage}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class RunRecord:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.summary: dict = {}
        self.status = "success"


#: The advisory-lock key of a run: ``hashtextextended`` of ``'soilclay.run:' || run_id`` (an SQL expression
#: of the run id expression ``{run_id}``). The process of a run in progress holds it at session level.
_RUN_LOCK_KEY = "hashtextextended('soilclay.run:' || {run_id}, 0)"

#: How long the start of a run waits for its lock: a sweep holds it for an instant (a transaction).
_LOCK_WAIT_S = 3.0


def _hold_run_lock(engine: Engine, run_id: str) -> Connection:
    """A dedicated connection (autocommit: no transaction stays open) that holds the run's session-level
    advisory lock: the run's liveness signal, gone when the process dies and its connection closes."""
    what = f"taking the lock of run {run_id}"
    with translated(what):
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        deadline = time.monotonic() + _LOCK_WAIT_S
        with translated(what):
            while not conn.execute(text(f"SELECT pg_try_advisory_lock({_RUN_LOCK_KEY.format(run_id=':r')})"),
                                   {"r": run_id}).scalar():
                if time.monotonic() > deadline:
                    raise TransientExternalError(
                        f"run {run_id} is in progress in another live process (it holds the run's lock); "
                        "rerun when that one has ended")
                time.sleep(0.1)
    except BaseException:
        _release_run_lock(conn)
        raise
    return conn


def _release_run_lock(conn: Connection) -> None:
    """Release the run's lock and close its connection for good (not back to the pool, so a lock that
    could not be released explicitly ends with the session)."""
    try:
        conn.execute(text("SELECT pg_advisory_unlock_all()"))
    except Exception:  # a lost connection has released it already; closing below ends the session anyway
        pass
    finally:
        try:
            conn.invalidate()
        finally:
            conn.close()


def sweep_abandoned(engine: Engine, stage: str | None = None) -> list[str]:
    """Mark 'failed' every 'running' row (of ``stage``, or of all stages) that no live process holds: its
    run's advisory lock is free, so the process that ran it is gone (killed, or it lost the connection
    before recording the outcome). Returns the run ids marked.

    The sweep takes each candidate's lock as a transaction-level lock, so the check and the update are one
    atomic step: a run whose lock is held (live) is left alone, and a run cannot start holding a lock the
    sweep has taken. Rows being updated right now (their row lock is taken) are skipped."""
    with transaction(engine, "closing abandoned runs") as conn:
        rows = conn.execute(text(
            "WITH candidates AS MATERIALIZED ("
            "  SELECT run_id FROM soilclay.pipeline_runs"
            "  WHERE status = 'running' AND (CAST(:stage AS text) IS NULL OR stage = CAST(:stage AS text))"
            "  FOR UPDATE SKIP LOCKED), "
            "gone AS MATERIALIZED ("
            "  SELECT run_id FROM candidates"
            f"  WHERE pg_try_advisory_xact_lock({_RUN_LOCK_KEY.format(run_id='run_id')})) "
            "UPDATE soilclay.pipeline_runs p SET status = 'failed', "
            "  finished_at = greatest(clock_timestamp(), p.started_at), "
            "  error = 'abandoned: its process is gone (no live holder since started_at ' "
            "          || to_char(p.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') || ')' "
            "FROM gone WHERE p.run_id = gone.run_id "
            "RETURNING p.run_id"), {"stage": stage}).scalars().all()
    return sorted(rows)


@contextmanager
def recorded_run(engine: Engine, stage: str, *, run_id: str | None = None, aoi_id: int | None = None,
                 params: dict | None = None, dag_id: str | None = None,
                 dag_run_id: str | None = None) -> Iterator[RunRecord]:
    """Record a run: 'running' at start, then 'success' (or the status set on the record) with its
    summary, or 'failed' with the error message. Re-entering an existing run id restarts it.

    While the run is in progress its process holds the run's advisory lock (see :func:`sweep_abandoned`);
    a run whose process died (or lost the connection before recording the outcome) is closed as abandoned
    by the next run of the same stage, which sweeps at its start."""
    record = RunRecord(run_id or new_run_id(stage))
    lock = _hold_run_lock(engine, record.run_id)
    try:
        try:
            swept = sweep_abandoned(engine, stage)
        except SoilclayError as e:  # housekeeping: it must not stop the run; the next run sweeps again
            logger.warning("could not close the abandoned runs of stage %s: %s", stage, e)
        else:
            if swept:
                logger.warning("closed %d abandoned run(s) of stage %s (their process is gone): %s",
                               len(swept), stage, ", ".join(swept))
        with transaction(engine, f"recording the start of run {record.run_id}") as conn:
            conn.execute(text(
                "INSERT INTO soilclay.pipeline_runs (run_id, stage, aoi_id, params, dag_id, dag_run_id) "
                "VALUES (:r, :s, :a, CAST(:p AS jsonb), :d, :dr) "
                "ON CONFLICT (run_id) DO UPDATE SET status = 'running', error = NULL, finished_at = NULL, "
                "started_at = now(), params = EXCLUDED.params"),
                {"r": record.run_id, "s": stage, "a": aoi_id, "p": _json(params or {}),
                 "d": dag_id, "dr": dag_run_id})
        try:
            yield record
        except BaseException as exc:
            try:
                with transaction(engine, f"recording the failure of run {record.run_id}") as conn:
                    conn.execute(text(
                        "UPDATE soilclay.pipeline_runs SET status = 'failed', error = :e, finished_at = now(), "
                        "summary = CAST(:s AS jsonb) WHERE run_id = :r"),
                        {"e": redact(f"{type(exc).__name__}: {exc}")[:4000] or type(exc).__name__, "r": record.run_id,
                         "s": _json(record.summary)})
            except Exception as lost:  # do not hide the run's own error; the row is swept as abandoned later
                logger.warning("could not record the failure of run %s (%s); it stays 'running' until a "
                               "later run of stage %s closes it as abandoned", record.run_id, lost, stage)
            raise
        with transaction(engine, f"recording the outcome of run {record.run_id}") as conn:
            conn.execute(text(
                "UPDATE soilclay.pipeline_runs SET status = :st, summary = CAST(:s AS jsonb), finished_at = now() "
                "WHERE run_id = :r"),
                {"st": record.status, "s": _json(record.summary), "r": record.run_id})
    finally:
        _release_run_lock(lock)


def record_failed_try(conn: Connection, *, run_id: str, stage: str, reason: str, params: dict,
                      dag_id: str | None, dag_run_id: str | None) -> None:
    """Make ``run_id`` a 'failed' row with ``reason``: inserted when the try never opened its run,
    overwritten only while it still says 'running' (a killed try); a recorded outcome stays."""
    conn.execute(text(
        "INSERT INTO soilclay.pipeline_runs (run_id, stage, status, error, params, dag_id, dag_run_id, "
        "finished_at) VALUES (:r, :s, 'failed', :e, CAST(:p AS jsonb), :d, :dr, now()) "
        "ON CONFLICT (run_id) DO UPDATE SET status = 'failed', error = EXCLUDED.error, "
        "finished_at = now() WHERE soilclay.pipeline_runs.status = 'running'"),
        {"r": run_id, "s": stage, "e": redact(reason)[:4000], "p": _json(params), "d": dag_id,
         "dr": dag_run_id})
