"""SQLAlchemy engine for the soilclay PostGIS database."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

SCHEMA = "soilclay"


def make_engine(database_url: str, *, echo: bool = False) -> Engine:
    """An engine whose connections see the ``soilclay`` schema first on the search path."""
    return create_engine(
        database_url,
        echo=echo,
        pool_pre_ping=True,
        connect_args={"options": f"-c search_path={SCHEMA},public"},
    )


#: libpq parameters taken from an Airflow connection's extras into the URL's query.
LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options")


def url_from_connection(*, login: str | None, password: str | None, host: str | None, port: int | None,
                        schema: str | None, extra: Mapping[str, object]) -> str:
    """The SQLAlchemy URL of an Airflow Postgres connection's fields (a host starting with ``/`` is a
    Unix-socket directory, passed as libpq's ``?host=/dir``)."""
    query = {k: str(extra[k]) for k in LIBPQ_EXTRAS if k in extra}
    host = host or None
    if host and host.startswith("/"):
        query["host"], host = host, None
    url = URL.create("postgresql+psycopg", username=login or None, password=password or None, host=host,
                     port=port or None, database=schema or None, query=query)
    return url.render_as_string(hide_password=False)
