"""Repository of ``soilclay.parcel_predictions``: per-parcel estimates, written in bulk.

:func:`insert_estimates` COPYs the rows into a temporary staging table (dropped afterwards), then moves
them with one ``INSERT … ON CONFLICT DO NOTHING``: re-writing the same (parcel geometry, model version,
composite versions) adds nothing, and the constraints of the table judge every row at once. Run it
inside :func:`soilclay.db.tx.transaction` so that nothing of a failed write is visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, text
from sqlalchemy import exc as sa_exc

#: Columns of an estimate row, in the order :func:`insert_estimates` expects them.
COLUMNS = ("parcel_key", "geom_hash", "model_version", "s2_composite_id", "s1_composite_id", "run_id", "clay_mean",
           "clay_median", "clay_lower", "clay_upper", "pixel_count", "bare_fraction", "out_of_domain_share", "flags")

_STAGING = text("""
CREATE TEMP TABLE predictions_staging (
    parcel_key bigint, geom_hash text, model_version integer, s2_composite_id bigint, s1_composite_id bigint,
    run_id text, clay_mean real, clay_median real, clay_lower real, clay_upper real, pixel_count integer,
    bare_fraction real, out_of_domain_share real, flags text[]
) ON COMMIT DROP
""")
_COPY = f"COPY predictions_staging ({', '.join(COLUMNS)}) FROM STDIN"
_APPLY = text(f"INSERT INTO soilclay.parcel_predictions ({', '.join(COLUMNS)}) "
              f"SELECT {', '.join(COLUMNS)} FROM predictions_staging "
              "ON CONFLICT ON CONSTRAINT parcel_predictions_unique DO NOTHING")
_DROP = text("DROP TABLE predictions_staging")


def insert_estimates(conn: Connection, rows: Iterable[Sequence]) -> int:
    """Insert estimate rows (values in :data:`COLUMNS` order); returns how many were new. Nothing is
    visible to others before the transaction commits."""
    conn.execute(_STAGING)
    _copy(conn, rows)
    inserted = int(conn.execute(_APPLY).rowcount)
    conn.execute(_DROP)  # so the same transaction may insert again
    return inserted


def _copy(conn: Connection, rows: Iterable[Sequence]) -> None:
    """COPY ``rows`` into the staging table through the driver; its errors leave as SQLAlchemy's, so
    :func:`soilclay.db.tx.transaction` translates them like any other."""
    import psycopg

    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor() as cursor, cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as e:
        raise sa_exc.DBAPIError.instance(_COPY, None, e, psycopg.Error,
                                         connection_invalidated=bool(dbapi.closed)) from e
