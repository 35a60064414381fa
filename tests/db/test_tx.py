"""The database error boundary: which driver error becomes which soilclay error, decided once."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from soilclay.db.tx import classify, reading, transaction, translated
from soilclay.errors import BadInputError, FinalExternalError, NotReadyError, TransientExternalError
from tests.db import builders


class _Orig(Exception):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _error(kind: type[sa_exc.DBAPIError], sqlstate: str | None, message: str = "boom") -> sa_exc.DBAPIError:
    return kind("SELECT 1", {}, _Orig(message, sqlstate))


@pytest.mark.parametrize(("error", "expected"), [
    (_error(sa_exc.IntegrityError, "23514", 'violates check constraint "x"'), BadInputError),
    (_error(sa_exc.IntegrityError, "23505", "duplicate key"), BadInputError),
    (_error(sa_exc.DataError, "22P02", "invalid input syntax"), BadInputError),
    (_error(sa_exc.InternalError, "XX000", "lwgeom_intersection: GEOS Error"), BadInputError),
    (_error(sa_exc.OperationalError, "40001", "could not serialize access"), TransientExternalError),
    (_error(sa_exc.OperationalError, "40P01", "deadlock detected"), TransientExternalError),
    (_error(sa_exc.OperationalError, "57P01", "terminating connection due to administrator command"),
     TransientExternalError),
    (_error(sa_exc.OperationalError, None, "connection refused"), TransientExternalError),
    (_error(sa_exc.InterfaceError, None, "connection already closed"), TransientExternalError),
    (_error(sa_exc.ProgrammingError, "42P01", 'relation "soilclay.parcels" does not exist'), FinalExternalError),
    (_error(sa_exc.ProgrammingError, "42501", "permission denied for table parcels"), FinalExternalError),
])
def test_each_driver_error_has_one_kind(error, expected):
    translated_error = classify(error, "loading parcels from a.gpkg")
    assert type(translated_error) is expected
    assert str(translated_error).startswith("loading parcels from a.gpkg: ")
    assert str(error.orig).splitlines()[0] in str(translated_error)


def test_translated_chains_the_cause_and_lets_soilclay_errors_through():
    original = _error(sa_exc.IntegrityError, "23505", "duplicate key value")
    with pytest.raises(BadInputError) as caught, translated("writing"):
        raise original
    assert caught.value.__cause__ is original
    with pytest.raises(NotReadyError, match="no champion"), translated("writing"):
        raise NotReadyError("no champion")


def test_transaction_rolls_back_and_translates(engine):
    with pytest.raises(BadInputError, match="probing: the database refused the data: division by zero"):
        with transaction(engine, "probing") as conn:
            builders.aoi(conn, "tx-probe")
            conn.execute(text("SELECT 1 / 0"))
    with reading(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM soilclay.aois WHERE name = 'tx-probe'")).scalar() == 0
    with pytest.raises(FinalExternalError, match="counting: the database failed: .*does not exist"):
        with reading(engine, "counting") as conn:
            conn.execute(text("SELECT count(*) FROM soilclay.no_such_table"))


def test_an_unreachable_server_is_transient():
    from soilclay.db.engine import make_engine

    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(TransientExternalError, match="looking: the database is unreachable"):
            with reading(engine, "looking") as conn:
                conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_a_connection_lost_during_a_write_is_one_line_and_writes_nothing(engine):
    """The server ends the writer's backend mid-transaction (as a restart or a network cut would)."""
    with pytest.raises(TransientExternalError) as caught:
        with transaction(engine, "loading parcels from a.gpkg") as conn:
            builders.aoi(conn, "tx-lost")
            with engine.connect() as killer:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            conn.execute(text("SELECT 1"))
    message = str(caught.value)
    assert message.startswith("database connection lost during loading parcels from a.gpkg; nothing was "
                              "written, rerun (")
    assert "\n" not in message
    with reading(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM soilclay.aois WHERE name = 'tx-lost'")).scalar() == 0


def test_a_connection_lost_at_the_commit_says_so():
    lost = _error(sa_exc.OperationalError, None, "server closed the connection unexpectedly")
    assert "while committing writing; the commit may not have landed, rerun" in str(classify(lost, "writing", "commit"))
    assert str(classify(lost, "reading")).startswith("reading: the database is unreachable")
