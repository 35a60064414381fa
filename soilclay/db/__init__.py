"""The database layer: the only place in soilclay with SQL.

- :mod:`soilclay.db.engine` builds engines; :mod:`soilclay.db.migrate` applies the Alembic
  migrations in ``sql/``; :mod:`soilclay.db.admin` creates databases.
- :mod:`soilclay.db.tx` is the error boundary: :func:`~soilclay.db.tx.transaction` (one commit) and
  :func:`~soilclay.db.tx.reading` turn every driver error into soilclay's error tree
  (bad input / transient / final), once.
- One repository module per table group (``aois``, ``scenes``, ``composites``, ``samples``,
  ``models``, ``parcels``, ``predictions``, ``runs``, plus read-only ``reports``): small functions
  that take a ``Connection`` (so a stage composes several in one transaction) and return plain
  values or frozen dataclasses, never driver rows.

Stages, the CLI and the DAGs call repository functions inside ``transaction``/``reading``; none of
them writes SQL.
"""

from soilclay.db.engine import make_engine
from soilclay.db.tx import reading, transaction

__all__ = ["make_engine", "reading", "transaction"]
