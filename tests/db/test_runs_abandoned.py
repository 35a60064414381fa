"""Runs whose process is gone (SIGKILL, a connection lost before the outcome was recorded) do not stay
'running' forever: the next run of the stage, or ``sweep_abandoned``, closes them as abandoned; live runs
(their process holds the run's advisory lock) are left alone."""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC

import pytest
from sqlalchemy import Engine, text

from soilclay.db import migrate, runs
from soilclay.db.engine import make_engine
from soilclay.db.runs import recorded_run, sweep_abandoned
from soilclay.errors import TransientExternalError

#: A process that opens a run and sleeps in it until it is killed.
CHILD = """
import sys, time
from soilclay.db.engine import make_engine
from soilclay.db.runs import recorded_run
with recorded_run(make_engine(sys.argv[1]), sys.argv[2], run_id=sys.argv[3]):
    print("started", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def runs_engine(db_factory) -> Iterator[Engine]:
    """A database of this module's own: sweeping all stages must not touch other tests' rows."""
    url = db_factory("soilclay_runs")
    migrate.upgrade(url)
    eng = make_engine(url)
    eng.test_url = url  # type: ignore[attr-defined]
    yield eng
    eng.dispose()


def _stage() -> str:
    return f"sweep_{uuid.uuid4().hex[:8]}"


def _row(engine: Engine, run_id: str):
    with engine.connect() as conn:
        return conn.execute(text("SELECT status, error, started_at, finished_at FROM soilclay.pipeline_runs "
                                 "WHERE run_id = :r"), {"r": run_id}).one()


def _lock_free(engine: Engine, run_id: str) -> bool:
    with engine.connect() as conn, conn.begin():
        return conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended('soilclay.run:' || :r, 0))"),
                            {"r": run_id}).scalar()


def _wait_lock_free(engine: Engine, run_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not _lock_free(engine, run_id):
        assert time.monotonic() < deadline, f"the lock of {run_id} is still held"
        time.sleep(0.05)


def _killed_run(engine: Engine, stage: str) -> str:
    """A run opened by a real process that was then SIGKILLed: its row stays 'running'."""
    run_id = f"{stage}-killed-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, engine.test_url, stage, run_id],  # type: ignore[attr-defined]
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert line.strip() == "started", f"child did not start: {line!r} {proc.poll()} " + (
            proc.stderr.read() if proc.poll() is not None else "")
        assert not _lock_free(engine, run_id)  # the live child holds it
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    _wait_lock_free(engine, run_id)  # the server noticed the closed connection
    assert _row(engine, run_id).status == "running"
    return run_id


def _assert_abandoned(engine: Engine, run_id: str) -> None:
    row = _row(engine, run_id)
    assert row.status == "failed"
    started = row.started_at.astimezone(UTC).isoformat(timespec="microseconds")
    assert row.error == f"abandoned: its process is gone (no live holder since started_at {started})"
    assert row.finished_at is not None and row.finished_at >= row.started_at


def test_a_killed_run_is_closed_as_abandoned_by_the_next_run_of_its_stage(runs_engine, caplog):
    stage = _stage()
    killed = _killed_run(runs_engine, stage)
    other_stage = _killed_run(runs_engine, _stage())
    with caplog.at_level(logging.WARNING, logger="soilclay.db.runs"), recorded_run(runs_engine, stage) as run:
        pass
    _assert_abandoned(runs_engine, killed)
    assert any(killed in r.getMessage() and "abandoned" in r.getMessage() for r in caplog.records)
    assert _row(runs_engine, run.run_id).status == "success"
    assert _row(runs_engine, other_stage).status == "running"  # another stage's run is not this run's business
    assert sweep_abandoned(runs_engine) == [other_stage]
    _assert_abandoned(runs_engine, other_stage)


def test_sweep_abandoned_closes_a_killed_run_of_the_stage(runs_engine):
    stage = _stage()
    killed = _killed_run(runs_engine, stage)
    assert sweep_abandoned(runs_engine, _stage()) == []
    assert sweep_abandoned(runs_engine, stage) == [killed]
    _assert_abandoned(runs_engine, killed)
    assert sweep_abandoned(runs_engine, stage) == []  # closed once


def test_a_live_run_in_another_thread_is_not_swept(runs_engine):
    stage = _stage()
    opened, finish = threading.Event(), threading.Event()
    live: dict = {}

    def worker() -> None:
        with recorded_run(runs_engine, stage) as run:
            live["run_id"] = run.run_id
            opened.set()
            finish.wait(30)
            run.summary = {"rows": 1}

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert opened.wait(30)
        run_id = live["run_id"]
        assert run_id not in sweep_abandoned(runs_engine, stage)
        assert run_id not in sweep_abandoned(runs_engine)
        with recorded_run(runs_engine, stage) as later:  # a concurrent run of the same stage
            pass
        assert _row(runs_engine, later.run_id).status == "success"
        assert _row(runs_engine, run_id).status == "running"
    finally:
        finish.set()
        thread.join(30)
    row = _row(runs_engine, run_id)
    assert (row.status, row.error) == ("success", None)
    assert _lock_free(runs_engine, run_id)


def test_a_successful_run_ends_success_and_releases_its_lock(runs_engine):
    with recorded_run(runs_engine, _stage()) as run:
        assert not _lock_free(runs_engine, run.run_id)
        run.summary = {"n": 3}
    row = _row(runs_engine, run.run_id)
    assert (row.status, row.error) == ("success", None)
    assert row.finished_at >= row.started_at
    assert _lock_free(runs_engine, run.run_id)


def test_a_failed_run_ends_failed_and_releases_its_lock(runs_engine):
    with pytest.raises(ValueError, match="boom"), recorded_run(runs_engine, _stage()) as run:
        raise ValueError("boom")
    row = _row(runs_engine, run.run_id)
    assert (row.status, row.error) == ("failed", "ValueError: boom")
    assert _lock_free(runs_engine, run.run_id)


def test_a_lost_connection_when_recording_the_failure_does_not_hide_the_error(runs_engine, monkeypatch):
    real = runs.transaction

    def losing(engine, what="database write"):
        if what.startswith("recording the failure"):
            raise TransientExternalError(f"database connection lost during {what}; nothing was written, rerun")
        return real(engine, what)

    stage = _stage()
    monkeypatch.setattr(runs, "transaction", losing)
    with pytest.raises(ValueError, match="the run's own error"), recorded_run(runs_engine, stage) as run:
        raise ValueError("the run's own error")
    monkeypatch.undo()
    assert _row(runs_engine, run.run_id).status == "running"  # not recorded, and no live holder any more
    assert sweep_abandoned(runs_engine, stage) == [run.run_id]
    _assert_abandoned(runs_engine, run.run_id)


def test_a_run_id_held_by_a_live_process_cannot_be_restarted(runs_engine, monkeypatch):
    monkeypatch.setattr(runs, "_LOCK_WAIT_S", 0.2)
    stage = _stage()
    with recorded_run(runs_engine, stage) as run:
        with pytest.raises(TransientExternalError, match="in progress in another live process"), \
                recorded_run(runs_engine, stage, run_id=run.run_id):
            pass
        assert _row(runs_engine, run.run_id).status == "running"
    assert _row(runs_engine, run.run_id).status == "success"


def test_credentials_never_reach_pipeline_runs(engine):
    from sqlalchemy import text as sql

    with pytest.raises(RuntimeError):
        with recorded_run(engine, "secretstage", params={"store": "gs://b/p?token=T0KEN",
                                                          "serving": "http://svc:RestPW@h:8501"}) as run:
            raise RuntimeError("could not reach http://svc:RestPW@h:8501/v1/models")
    with engine.connect() as conn:
        row = conn.execute(sql("SELECT params::text AS p, error FROM soilclay.pipeline_runs WHERE run_id = :r"),
                           {"r": run.run_id}).one()
    assert "T0KEN" not in row.p and "RestPW" not in row.p and "RestPW" not in row.error
    assert "token=***" in row.p and "http://svc:***@h:8501/v1/models" in row.error
