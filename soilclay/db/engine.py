"""SQLAlchemy engine for the soilclay PostGIS database."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

SCHEMA = "soilclay"


def make_engine(database_url: str, *, echo: bool = False) -> Engine:
    """An engine whose connections see the ``soilclay`` schema first on the search path."""
    return create_engine(
        database_url,
        echo=echo,
        pool_pre_ping=True,
        connect_args={"options": f"-c search_path={SCHEMA},public"},
    )
