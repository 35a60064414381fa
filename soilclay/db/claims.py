"""Claims: one run at a time of work that must not be done twice (e.g. retraining).

A claim is a PostgreSQL session-level advisory lock held on a connection of its own for as long as the
work runs. A killed process's connection closes and its claim goes with it, so a claim never outlives
its holder. A second claimant waits up to ``wait_s`` for the first to finish, then gives up with a
:class:`~soilclay.errors.TransientExternalError` naming the run that holds the claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from soilclay.db.tx import translated
from soilclay.errors import TransientExternalError

log = logging.getLogger(__name__)

_TRY = text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))")
_HOLDERS = text(
    "SELECT run_id, started_at, params->>'aoi' AS aoi FROM soilclay.pipeline_runs "
    "WHERE stage = :stage AND status = 'running' AND run_id IS DISTINCT FROM :own ORDER BY started_at DESC LIMIT 1")


def _holder(conn, stage: str, own_run: str | None) -> str:
    row = conn.execute(_HOLDERS, {"stage": stage, "own": own_run}).first()
    if row is None:
        return "another run"
    aoi = f" of AOI {row.aoi}" if row.aoi else ""
    return f"run {row.run_id}{aoi}, started {row.started_at:%Y-%m-%d %H:%M:%S %Z}"


@contextmanager
def claim(engine: Engine, key: str, *, stage: str, what: str, own_run: str | None = None,
          wait_s: float = 900.0, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the claim ``key`` while the block runs (``what`` words messages; ``stage`` is the
    ``pipeline_runs`` stage whose running row names the holder). Waits up to ``wait_s`` for a holder."""
    with translated(f"claiming {what}"):
        conn = engine.connect()
    try:
        with translated(f"claiming {what}"):
            deadline = time.monotonic() + wait_s
            waited = False
            while not conn.execute(_TRY, {"k": key}).scalar_one():
                holder = _holder(conn, stage, own_run)
                conn.commit()
                if time.monotonic() >= deadline:
                    raise TransientExternalError(
                        f"{what}: {holder} still holds it after {wait_s:g} s; nothing was done here, "
                        "retry when it has finished")
                if not waited:
                    log.warning("%s: %s holds it; waiting up to %g s", what, holder, wait_s)
                    waited = True
                time.sleep(poll_s)
            conn.commit()
            if waited:
                log.info("%s: claimed after the other run finished", what)
        yield
    finally:
        try:
            with translated(f"releasing {what}"):
                conn.execute(_UNLOCK, {"k": key})
                conn.commit()
        except TransientExternalError:  # the connection is gone, and the claim with it
            pass
        finally:
            conn.close()
