"""Estimate clay for an AOI's parcels with the champion model on the newest composites.

Only parcels without an estimate for this (model version, composite versions) are computed, so a
re-run does nothing and an interrupted run resumes. The predictor is the champion SavedModel
in-process (the default) or TF Serving pinned to the champion version.

For parallel work (one Airflow task per chunk) :func:`plan_predictions` fixes the champion version
and the composites once and cuts the AOI's parcels into ``parcel_id`` ranges; :func:`predict_aoi`
with those pins and one range estimates that chunk only, and refuses to run when the champion has
changed since the plan (mixing two models in one run would leave a map stitched from both).
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
from soilclay.errors import BadInputError, ChampionChangedError, NotReadyError
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


@dataclass(frozen=True)
class PredictPlan:
    """What one prediction run uses (pinned) and how its parcels are cut into ``parcel_id`` ranges."""

    aoi: str
    model_version: int
    s2_composite_id: int
    s1_composite_id: int | None
    parcels_in_aoi: int
    chunks: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict:
        return {"aoi": self.aoi, "model_version": self.model_version, "s2_composite_id": self.s2_composite_id,
                "s1_composite_id": self.s1_composite_id, "parcels_in_aoi": self.parcels_in_aoi,
                "chunks": [list(c) for c in self.chunks]}


#: parcel ids compare bytewise everywhere (plan and chunks), whatever the database's collation.
_IN_AOI = ("FROM soilclay.parcels p JOIN soilclay.aois a ON ST_Intersects(p.geom, a.geom) WHERE a.aoi_id = :a"
           " AND (CAST(:lo AS text) IS NULL OR p.parcel_id COLLATE \"C\" BETWEEN :lo AND :hi)")


#: More mapped tasks than this is a planning mistake (Airflow's max_map_length is 1024): chunks grow.
MAX_CHUNKS = 1000


def _resolve(conn, aoi_name: str, model_version: int | None, s2_id: int | None, s1_id: int | None,
             pinned: bool = False):
    from soilclay.features.points import pick_composite
    from soilclay.model import registry

    aoi = get_aoi(conn, aoi_name)
    champion = registry.current_champion(conn)
    if champion is None:
        raise NotReadyError("no champion model yet: run `soilclay model retrain` first")
    if model_version is not None and champion.version != model_version:
        raise ChampionChangedError(f"model version {model_version} was requested (or planned) but the champion "
                                   f"is now version {champion.version}; estimates come from the champion only")
    s2 = pick_composite(conn, aoi.aoi_id, aoi.name, "sentinel-2", s2_id)
    s1 = None if pinned and s1_id is None else pick_composite(conn, aoi.aoi_id, aoi.name, "sentinel-1", s1_id)
    if s2 is None:
        raise NotReadyError(f"AOI {aoi.name} has no Sentinel-2 composite yet: run `soilclay composites build`")
    return aoi, champion, s2, s1


def plan_predictions(engine: Engine, *, aoi_name: str, chunk_size: int = 500,
                     model_version: int | None = None) -> PredictPlan:
    """Pin the champion and the newest composites; cut the AOI's parcels into ranges of ``chunk_size``
    (enlarged when that would make more than :data:`MAX_CHUNKS` chunks)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise BadInputError(f"chunk_size must be an integer >= 1, found {chunk_size!r}")
    with engine.connect() as conn:
        aoi, champion, s2, s1 = _resolve(conn, aoi_name, model_version, None, None)
        total = conn.execute(text(f"SELECT count(*) {_IN_AOI}"), {"a": aoi.aoi_id, "lo": None, "hi": None}).scalar_one()
        chunk_size = max(chunk_size, -(-int(total) // MAX_CHUNKS))
        rows = conn.execute(text(
            "SELECT min(id) AS lo, max(id) AS hi FROM ("
            " SELECT p.parcel_id COLLATE \"C\" AS id, (row_number() OVER (ORDER BY p.parcel_id COLLATE \"C\") - 1)"
            f" / :size AS chunk {_IN_AOI}) t GROUP BY chunk ORDER BY chunk"),
            {"a": aoi.aoi_id, "size": chunk_size, "lo": None, "hi": None}).all()
    return PredictPlan(aoi.name, champion.version, s2.composite_id, None if s1 is None else s1.composite_id,
                       int(total), tuple((r.lo, r.hi) for r in rows))


def _todo(engine: Engine, aoi_id: int, model_version: int, s2: int, s1: int | None,
          parcel_range: tuple[str, str] | None) -> tuple[gpd.GeoDataFrame, int]:
    lo, hi = parcel_range if parcel_range is not None else (None, None)
    with engine.connect() as conn:
        total = conn.execute(text(f"SELECT count(*) {_IN_AOI}"), {"a": aoi_id, "lo": lo, "hi": hi}).scalar_one()
        rows = conn.execute(text(
            f"SELECT p.parcel_id, ST_AsBinary(p.geom) AS wkb {_IN_AOI} AND NOT EXISTS ("
            " SELECT 1 FROM soilclay.parcel_predictions pp WHERE pp.parcel_id = p.parcel_id"
            " AND pp.model_version = :m AND pp.s2_composite_id = :s2"
            " AND pp.s1_composite_id IS NOT DISTINCT FROM :s1) ORDER BY p.parcel_id"),
            {"a": aoi_id, "m": model_version, "s2": s2, "s1": s1, "lo": lo, "hi": hi}).all()
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else []
    frame = gpd.GeoDataFrame({"parcel_id": [r.parcel_id for r in rows]}, geometry=list(geoms), crs="EPSG:4326")
    return frame, int(total)


def predict_aoi(engine: Engine, *, aoi_name: str, predictor_factory, store=None, run_id: str,
                max_pixels: int = 200, inward_buffer_m: float = 0.0, min_pixels: int = 3,
                workdir: Path | None = None, progress: bool = False, model_version: int | None = None,
                s2_composite_id: int | None = None, s1_composite_id: int | None = None,
                parcel_range: tuple[str, str] | None = None, pin_composites: bool = False) -> PredictOutcome:
    """``predictor_factory(champion) -> Predictor`` builds the predictor for the champion version.

    Defaults: the champion, the newest composites, every parcel of the AOI. ``model_version`` (must be
    the champion), ``s2_composite_id`` / ``s1_composite_id`` and ``parcel_range`` (inclusive ``parcel_id``
    bounds, bytewise order) pin them, as a :class:`PredictPlan` chunk does; with ``pin_composites`` the
    composite ids are exact (a None S1 id means "no S1", not "the newest"). A champion other than
    ``model_version`` raises :class:`ChampionChangedError`.
    """
    from soilclay.features.points import local_path

    started = time.monotonic()
    with engine.connect() as conn:
        aoi, champion, s2, s1 = _resolve(conn, aoi_name, model_version, s2_composite_id, s1_composite_id,
                                         pin_composites)
    predictor = predictor_factory(champion)
    try:
        s1_id = s1.composite_id if s1 is not None and "sar" in predictor.inputs else None
        parcels, total = _todo(engine, aoi.aoi_id, champion.version, s2.composite_id, s1_id, parcel_range)
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
