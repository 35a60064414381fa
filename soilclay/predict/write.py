"""Write per-parcel estimates to PostGIS in one transaction (:func:`soilclay.db.predictions.insert_estimates`:
COPY into a staging table, then one INSERT … ON CONFLICT DO NOTHING into ``soilclay.parcel_predictions``).
Each row names the parcel geometry it was computed on (``parcel_key``, ``geom_hash``). Re-running the same
(parcel geometry, model version, composite versions) writes nothing; a failure leaves the
previous results intact and no partial rows visible; ``parcel_clay_latest`` changes only at the commit.
A row the database refuses raises :class:`~soilclay.errors.BadInputError`, a lost connection
:class:`~soilclay.errors.TransientExternalError`."""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlalchemy import Engine

from soilclay.db import predictions
from soilclay.db.tx import transaction
from soilclay.predict.aggregate import ParcelEstimates


def _num(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def rows(est: ParcelEstimates, geometries: Mapping[str, tuple[int, str]], *, model_version: int,
         s2_composite_id: int, s1_composite_id: int | None, run_id: str):
    """The estimate rows, in :data:`soilclay.db.predictions.COLUMNS` order (NaN as NULL); ``geometries`` maps
    each of ``est.parcel_ids`` to the (parcel_key, geom_hash) it was computed on."""
    for i, pid in enumerate(est.parcel_ids):
        yield (*geometries[pid], model_version, s2_composite_id, s1_composite_id, run_id, _num(est.clay_mean[i]),
               _num(est.clay_median[i]), _num(est.clay_lower[i]), _num(est.clay_upper[i]), int(est.pixel_count[i]),
               _num(est.bare_fraction[i]), _num(est.out_of_domain_share[i]), est.flags[i])


def write_estimates(engine: Engine, est: ParcelEstimates, geometries: Mapping[str, tuple[int, str]], *,
                    model_version: int, s2_composite_id: int, s1_composite_id: int | None, run_id: str) -> int:
    """Insert the estimates in one transaction; returns how many rows were new."""
    what = (f"writing {len(est.parcel_ids)} parcel estimates of model v{model_version} "
            f"(composites S2 {s2_composite_id}, S1 {s1_composite_id}, run {run_id})")
    with transaction(engine, what) as conn:
        return predictions.insert_estimates(conn, rows(est, geometries, model_version=model_version,
                                                       s2_composite_id=s2_composite_id,
                                                       s1_composite_id=s1_composite_id, run_id=run_id))
