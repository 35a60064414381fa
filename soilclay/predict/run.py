"""Estimate clay for an AOI's parcels with the champion model on the newest composites.

Only parcels without an estimate for this (model version, composite versions) are computed, so a
re-run does nothing and an interrupted run resumes. The predictor is the champion SavedModel
in-process (the default) or TF Serving pinned to the champion version.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import Engine, text

from soilclay.db.aois import get_aoi
from soilclay.errors import BadInputError
from soilclay.predict.aggregate import aggregate
from soilclay.predict.pixels import parcel_pixels
from soilclay.predict.write import write_estimates

log = logging.getLogger(__name__)


@dataclass
class PredictOutcome:
    aoi: str
    model_version: int
    s2_composite_id: int
    s1_composite_id: int | None
    parcels_in_aoi: int
    estimated: int
    written: int
    flagged: dict[str, int]
    pixels: int
    seconds: float

    def render(self) -> str:
        flags = ", ".join(f"{k} {v}" for k, v in sorted(self.flagged.items())) or "none"
        if self.estimated == 0:
            return (f"AOI {self.aoi}: all {self.parcels_in_aoi} parcels already have estimates from model "
                    f"v{self.model_version} on composites {self.s2_composite_id}/{self.s1_composite_id}; nothing to do")
        return (f"AOI {self.aoi}: {self.estimated} parcels estimated ({self.written} rows written) with model "
                f"v{self.model_version} on composites S2 {self.s2_composite_id}, S1 {self.s1_composite_id}; "
                f"{self.pixels:,} pixels; flags: {flags}; {self.seconds:.1f} s "
                f"({self.estimated / max(self.seconds, 1e-9):,.0f} parcels/s)")


def _todo(engine: Engine, aoi_id: int, model_version: int, s2: int, s1: int | None) -> tuple[gpd.GeoDataFrame, int]:
    with engine.connect() as conn:
        total = conn.execute(text(
            "SELECT count(*) FROM soilclay.parcels p JOIN soilclay.aois a ON ST_Intersects(p.geom, a.geom) "
            "WHERE a.aoi_id = :a"), {"a": aoi_id}).scalar_one()
        rows = conn.execute(text(
            "SELECT p.parcel_id, ST_AsBinary(p.geom) AS wkb FROM soilclay.parcels p "
            "JOIN soilclay.aois a ON ST_Intersects(p.geom, a.geom) WHERE a.aoi_id = :a AND NOT EXISTS ("
            " SELECT 1 FROM soilclay.parcel_predictions pp WHERE pp.parcel_id = p.parcel_id"
            " AND pp.model_version = :m AND pp.s2_composite_id = :s2"
            " AND pp.s1_composite_id IS NOT DISTINCT FROM :s1) ORDER BY p.parcel_id"),
            {"a": aoi_id, "m": model_version, "s2": s2, "s1": s1}).all()
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else []
    frame = gpd.GeoDataFrame({"parcel_id": [r.parcel_id for r in rows]}, geometry=list(geoms), crs="EPSG:4326")
    return frame, int(total)


def predict_aoi(engine: Engine, *, aoi_name: str, predictor_factory, store=None, run_id: str,
                max_pixels: int = 200, inward_buffer_m: float = 0.0, min_pixels: int = 3,
                workdir: Path | None = None, progress: bool = False) -> PredictOutcome:
    """``predictor_factory(champion) -> Predictor`` builds the predictor for the champion version."""
    from soilclay.features.points import local_path, pick_composite
    from soilclay.model import registry

    started = time.monotonic()
    with engine.connect() as conn:
        aoi = get_aoi(conn, aoi_name)
        champion = registry.current_champion(conn)
        if champion is None:
            raise BadInputError("no champion model yet: run `soilclay model retrain` first")
        s2 = pick_composite(conn, aoi.aoi_id, aoi.name, "sentinel-2", None)
        s1 = pick_composite(conn, aoi.aoi_id, aoi.name, "sentinel-1", None)
    if s2 is None:
        raise BadInputError(f"AOI {aoi.name} has no Sentinel-2 composite yet: run `soilclay composites build`")
    predictor = predictor_factory(champion)
    try:
        s1_id = s1.composite_id if s1 is not None and "sar" in predictor.inputs else None
        parcels, total = _todo(engine, aoi.aoi_id, champion.version, s2.composite_id, s1_id)
        if parcels.empty:
            return PredictOutcome(aoi.name, champion.version, s2.composite_id, s1_id, total, 0, 0, {}, 0,
                                  time.monotonic() - started)
        with tempfile.TemporaryDirectory(prefix="soilclay-predict-", dir=workdir) as tmp:
            s2_path = local_path(s2.uri, store, Path(tmp))
            s1_path = local_path(s1.uri, store, Path(tmp)) if s1_id is not None else None
            pixels = parcel_pixels(parcels, s2_path, s1_path, predictor.inputs, inward_buffer_m=inward_buffer_m,
                                   max_pixels=max_pixels)
        out = predictor.predict(pixels.arrays)
        estimates = aggregate(pixels.parcel_ids, pixels.parcel, np.asarray(out["clay"], float),
                              np.asarray(out["clay_lower"], float), np.asarray(out["clay_upper"], float),
                              np.asarray(out["in_domain"], bool), pixels.total_pixels, pixels.usable_pixels,
                              min_pixels=min_pixels)
        written = write_estimates(engine, estimates, model_version=champion.version,
                                  s2_composite_id=s2.composite_id, s1_composite_id=s1_id, run_id=run_id)
    finally:
        predictor.close()
    flagged: dict[str, int] = {}
    for flags in estimates.flags:
        for f in flags:
            flagged[f] = flagged.get(f, 0) + 1
    return PredictOutcome(aoi.name, champion.version, s2.composite_id, s1_id, total, len(parcels), written,
                          flagged, int(len(pixels.parcel)), time.monotonic() - started)
