"""The database error boundary: one place where driver errors become soilclay's errors.

Every repository function runs its SQL inside :func:`transaction` (writes, one commit) or
:func:`reading` (reads). Whatever the driver raises inside leaves as one of:

- :class:`~soilclay.errors.BadInputError`: the database refused the data (a constraint, a value out
  of range: SQLSTATE classes 22 and 23; and XX000, which is how PostGIS and GEOS refuse a geometry);
  retrying will not help, the message carries the database's reason;
- :class:`~soilclay.errors.TransientExternalError`: the connection was lost or refused, a query was
  cancelled, or the transaction lost a race (serialisation failure 40001, deadlock 40P01, lock not
  available 55P03, too many connections 53300); retrying may pass;
- :class:`~soilclay.errors.FinalExternalError`: anything else from the server (missing table, no
  permission, a schema that was not migrated); an operator must act.

soilclay's own errors raised inside pass through unchanged. So callers (the CLI, the DAGs' retry
policy) only ever see soilclay's error tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from soilclay.errors import BadInputError, FinalExternalError, SoilclayError, TransientExternalError

#: SQLSTATEs of a transaction that lost a race or was cancelled: the same work may pass when retried.
_TRANSIENT_STATES = {"40001", "40P01", "55P03", "53300", "57014"}
#: SQLSTATEs of a server that ended the connection (shutdown, crash, restart): a lost connection.
_GONE_STATES = {"57P01", "57P02", "57P03"}


#: How a lost connection is described, by the phase of a write it happened in (None: a read).
_LOST = {
    None: "{what}: the database is unreachable or dropped the connection: {reason}",
    "write": "database connection lost during {what}; nothing was written, rerun ({reason})",
    "commit": "database connection lost while committing {what}; the commit may not have landed, "
              "rerun (writes are idempotent) ({reason})",
}


def classify(error: sa_exc.SQLAlchemyError, what: str, phase: str | None = None) -> SoilclayError:
    """The soilclay error that a driver error inside ``what`` stands for (pure: nothing is raised);
    ``phase`` ("write" or "commit") words a lost connection for a write."""
    orig = getattr(error, "orig", None)
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    message = str(orig if orig is not None else error).strip()
    reason = message.splitlines()[0] if message else type(error).__name__
    if state in _GONE_STATES:
        return TransientExternalError(_LOST[phase].format(what=what, reason=reason))
    if state in _TRANSIENT_STATES:
        return TransientExternalError(f"{what}: the database asked for a retry ({state}): {reason}")
    if isinstance(error, sa_exc.IntegrityError | sa_exc.DataError) or state[:2] in ("22", "23"):
        return BadInputError(f"{what}: the database refused the data: {reason}")
    if isinstance(error, sa_exc.InternalError) and state == "XX000":  # PostGIS/GEOS refusing a geometry
        return BadInputError(f"{what}: the database could not process the data: {reason}")
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError
                  | sa_exc.TimeoutError) or state[:2] in ("08",):
        return TransientExternalError(_LOST[phase].format(what=what, reason=reason))
    return FinalExternalError(f"{what}: the database failed: {reason}")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Translate driver errors raised in the block (see :func:`classify`); soilclay errors pass."""
    try:
        yield
    except sa_exc.SQLAlchemyError as e:
        raise classify(e, what) from e


@contextmanager
def transaction(engine: Engine, what: str = "database write") -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back on any error (translated; a lost
    connection says whether it came before the commit, when nothing was written, or at it)."""
    phase = "write"
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            try:
                yield conn
            except BaseException:
                tx.rollback()
                raise
            phase = "commit"
            tx.commit()
    except sa_exc.SQLAlchemyError as e:
        raise classify(e, what, phase) from e


@contextmanager
def reading(engine: Engine, what: str = "database read") -> Iterator[Connection]:
    """A connection for reads (no commit); driver errors translated."""
    with translated(what), engine.connect() as conn:
        yield conn


def advisory_lock(conn: Connection, key: str) -> None:
    """Hold the transaction-level advisory lock named ``key`` until the transaction ends."""
    from sqlalchemy import text

    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
