"""Alembic environment for soilclay.

`soilclay db upgrade` passes an open connection (already inside one transaction) through
``config.attributes["connection"]``; plain ``alembic -c sql/alembic.ini`` builds one from
``SOILCLAY_DATABASE_URL``. The version table lives in the ``soilclay`` schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

SCHEMA = "soilclay"


def _run(connection) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table_schema=SCHEMA,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from soilclay.db.engine import make_engine
    from soilclay.settings import Settings

    engine = make_engine(Settings().database_url)
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    raise SystemExit("soilclay migrations run online only (they check the result in the same transaction)")
run_migrations_online()
