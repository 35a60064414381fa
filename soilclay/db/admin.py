"""Create the database and the PostGIS extension when missing (idempotent)."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from soilclay.errors import SoilclayError


def ensure_database(database_url: str) -> list[str]:
    """Create the database of ``database_url`` and its PostGIS extension if missing.

    Returns what was done (empty when everything already existed). Needs CREATEDB on the server
    and the right to create the extension (superuser, or PostGIS marked trusted).
    """
    url = make_url(database_url)
    name = url.database
    if not name:
        raise SoilclayError(f"database URL names no database: {url.render_as_string(hide_password=True)}")
    done: list[str] = []
    if create_database(url.render_as_string(hide_password=False)):
        done.append(f"created database {name}")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            has = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).scalar()
            if not has:
                available = conn.execute(
                    text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
                ).scalar()
                if not available:
                    raise SoilclayError(
                        "PostGIS is not installed on the server: apt-get install postgresql-15-postgis-3"
                    )
                conn.execute(text("CREATE EXTENSION postgis"))
                done.append(f"created extension postgis in {name}")
    finally:
        engine.dispose()
    return done


def create_database(database_url: str, *, template: str | None = None) -> bool:
    """Create the database of ``database_url`` when missing, empty or as a copy of the database named
    ``template`` (which must have no open connection); True when it was created."""
    url = make_url(database_url)
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).scalar():
                return False
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{url.database}"{copy}'))
            return True
    finally:
        maintenance.dispose()
