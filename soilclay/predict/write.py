"""Write per-parcel estimates to PostGIS: COPY into a temporary staging table, then one INSERT …
ON CONFLICT DO NOTHING into ``soilclay.parcel_predictions``, all in one transaction. Re-running the
same (parcel, model version, composite versions) writes nothing; a failure leaves the previous
results intact and no partial rows visible; ``parcel_clay_latest`` changes only at the commit."""

from __future__ import annotations

import math

from sqlalchemy import Engine, text

from soilclay.predict.aggregate import ParcelEstimates

_COLUMNS = ("parcel_id", "model_version", "s2_composite_id", "s1_composite_id", "run_id", "clay_mean",
            "clay_median", "clay_lower", "clay_upper", "pixel_count", "bare_fraction", "out_of_domain_share", "flags")
_STAGING = """
CREATE TEMP TABLE predictions_staging (
    parcel_id text, model_version integer, s2_composite_id bigint, s1_composite_id bigint, run_id text,
    clay_mean real, clay_median real, clay_lower real, clay_upper real, pixel_count integer,
    bare_fraction real, out_of_domain_share real, flags text[]
) ON COMMIT DROP
"""


def _num(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def rows(est: ParcelEstimates, *, model_version: int, s2_composite_id: int, s1_composite_id: int | None,
         run_id: str):
    for i, pid in enumerate(est.parcel_ids):
        yield (pid, model_version, s2_composite_id, s1_composite_id, run_id, _num(est.clay_mean[i]),
               _num(est.clay_median[i]), _num(est.clay_lower[i]), _num(est.clay_upper[i]), int(est.pixel_count[i]),
               _num(est.bare_fraction[i]), _num(est.out_of_domain_share[i]), est.flags[i])


def write_estimates(engine: Engine, est: ParcelEstimates, *, model_version: int, s2_composite_id: int,
                    s1_composite_id: int | None, run_id: str) -> int:
    """Insert the estimates in one transaction; returns how many rows were new."""
    with engine.begin() as conn:
        conn.execute(text(_STAGING))
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY predictions_staging ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in rows(est, model_version=model_version, s2_composite_id=s2_composite_id,
                            s1_composite_id=s1_composite_id, run_id=run_id):
                copy.write_row(row)
        inserted = conn.execute(text(
            f"INSERT INTO soilclay.parcel_predictions ({', '.join(_COLUMNS)}) "
            f"SELECT {', '.join(_COLUMNS)} FROM predictions_staging "
            "ON CONFLICT ON CONSTRAINT parcel_predictions_unique DO NOTHING")).rowcount
    return int(inserted)
