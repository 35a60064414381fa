"""Database access: engine construction and Alembic migrations (kept in ``sql/``)."""

from soilclay.db.engine import make_engine

__all__ = ["make_engine"]
