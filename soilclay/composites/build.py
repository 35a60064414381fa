"""Refresh an AOI's composites: pick the scenes of the recipe's window, skip when this recipe has
already been computed over exactly these scenes, otherwise compute (a
:class:`~soilclay.composites.backend.CompositeBackend`: local or Earth Engine), publish to the object
store, and register a new composite version with its lineage.

A refresh with no new scenes does nothing; old versions stay. The COG is published under a key
derived from the recipe and input hashes before the version row is committed, so a crash leaves
either nothing visible in the database or a complete, registered composite.

The inputs hash of a registered version is over the planned scenes less those that failed to read (a
missing or corrupt asset; scenes the recipe rules out by content, such as all-cloud ones, still count):
a composite that lost scenes that way is not up to date for the planned scenes, so the next build
retries them and registers a new version if they now read (or finds the same version if they still fail).

A computed composite whose share of valid pixels on the AOI grid is below ``min_valid_share`` (or that
has no valid pixel at all) is refused (:func:`check_valid_share`): not registered, its COG removed from
the store, and the outcome says 'refused' with the reason. The same check holds for a COG Earth Engine
exported into the store (:func:`refused_export`, before :func:`register_planned`).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from sqlalchemy import Engine

from soilclay.composites.backend import (
    SENSORS,
    CompositeBackend,
    CompositeOutcome,
    CompositePlan,
    CompositeRequest,
    Computed,
    LocalComposites,
    Store,
)
from soilclay.composites.recipe import Grid, Recipe, TimeWindow, inputs_hash
from soilclay.contract import COLLECTION_OF, SCENE_SOURCES
from soilclay.db import composites as composite_rows
from soilclay.db import scenes as scene_rows
from soilclay.db.aois import Aoi, get_aoi
from soilclay.db.tx import reading, transaction
from soilclay.errors import BadInputError
from soilclay.io.raster import nodata_to_nan

log = logging.getLogger(__name__)
__all__ = ["MIN_VALID_SHARE", "SENSORS", "CompositeOutcome", "CompositePlan", "CompositeRequest",
           "build_composites", "check_valid_share", "plan_composites", "refusal", "refused_export",
           "register_planned", "valid_share"]

#: Default least share of the AOI grid's pixels a composite must have valid to be registered.
MIN_VALID_SHARE = 0.05


def default_recipe(aoi: Aoi, years: int = 3) -> Recipe:
    return Recipe(aoi=aoi.name, window=TimeWindow(years=years), grid=Grid(crs=aoi.grid_crs))


def _outcome(row: composite_rows.CompositeRow, status: str, period: tuple[date, date],
             skipped: list[tuple[str, str]] | None = None) -> CompositeOutcome:
    return CompositeOutcome(row.sensor, status, period, row.composite_id, row.version, row.uri, row.scene_count,
                            skipped or [])


def plan_composites(engine: Engine, request: CompositeRequest, *, backend: str = "local") -> list[CompositePlan]:
    """One plan per requested sensor (sensors the recipe leaves out are dropped): which scenes of
    ``backend``'s sources, which name, and whether that composite already exists."""
    if backend not in SCENE_SOURCES:
        raise BadInputError(f"backend must be one of {', '.join(SCENE_SOURCES)}, found {backend!r}")
    with reading(engine, f"planning the composites of AOI {request.aoi}") as conn:
        aoi = get_aoi(conn, request.aoi)
        refresh = request.refresh or scene_rows.newest_acquisition(conn, aoi.aoi_id)
        recipe = request.recipe or default_recipe(aoi)
        if refresh is None:
            return [CompositePlan(aoi, s, recipe, "no-scenes", (date.min, date.min)) for s in request.sensors]
        period = recipe.window.resolve(refresh)
        plans = []
        for sensor in request.sensors:
            if (recipe.s2 if sensor == "sentinel-2" else recipe.s1) is None:
                continue
            scenes = scene_rows.scenes_in_window(conn, aoi.aoi_id, COLLECTION_OF[sensor], *period,
                                                 SCENE_SOURCES[backend])
            if not scenes:
                plans.append(CompositePlan(aoi, sensor, recipe, "no-scenes", period))
                continue
            ih = inputs_hash([s.scene_id for s in scenes])
            row = composite_rows.find_by_inputs(conn, aoi.aoi_id, sensor, recipe.hash(sensor), ih)
            existing = None if row is None else _outcome(row, "up-to-date", period)
            status = "todo" if row is None or request.force else "up-to-date"
            plans.append(CompositePlan(aoi, sensor, recipe, status, period, tuple(scenes), ih, existing,
                                       force=request.force))
    return plans


def valid_share(path: str | Path) -> tuple[int, int]:
    """(valid pixels, all pixels) of a composite COG: a pixel is valid where the first band (S2: the
    median reflectance of the bare observations; S1: the VV backscatter) is finite and not nodata.
    Read block by block, so memory stays bounded by the block size."""
    valid = 0
    with rasterio.open(path) as src:
        for _, window in src.block_windows(1):
            data = nodata_to_nan(src.read(1, window=window).astype(np.float32), src.nodata, copy=False)
            valid += int(np.isfinite(data).sum())
        return valid, src.width * src.height


def _read_share(uri: str, key: str, store: Store) -> tuple[int, int]:
    """:func:`valid_share` of a published COG: read in place (a local path, or a URL GDAL reads), else
    downloaded through the store (Earth Engine's exports land in the store's bucket under ``key``)."""
    try:
        return valid_share(uri)
    except RasterioError:
        download = getattr(store, "download", None)
        if "://" not in uri or download is None:
            raise
    with tempfile.TemporaryDirectory(prefix="soilclay-share-") as tmp:
        return valid_share(download(key, Path(tmp) / "composite.tif"))


def check_valid_share(plan: CompositePlan, valid: int, total: int, min_valid_share: float,
                      uri: str | None = None) -> str | None:
    """The reason to refuse ``plan``'s composite (the COG at ``uri``) with ``valid`` of ``total`` grid
    pixels valid, or None: one line naming the AOI, the sensor, the COG and the share found and required."""
    share = valid / total if total else 0.0
    if valid > 0 and share >= min_valid_share:
        return None
    where = f" in {uri}" if uri else ""
    return (f"AOI {plan.aoi.name}: {plan.sensor} composite refused, {share:.1%} of the grid's pixels valid "
            f"({valid} of {total}){where}, below the minimum {min_valid_share:.1%}; not registered")


def refusal(plan: CompositePlan, uri: str, store: Store, *, key: str | None = None,
            min_valid_share: float = MIN_VALID_SHARE) -> str | None:
    """Why the COG published at ``uri`` (store key ``key``, default the plan's) must not be registered
    for ``plan``, or None: the one check every path registering a computed composite goes through."""
    return check_valid_share(plan, *_read_share(uri, key or plan.key, store), min_valid_share, uri)


def refused_export(engine: Engine, plan: CompositePlan, uri: str, store: Store, *,
                   min_valid_share: float = MIN_VALID_SHARE) -> CompositeOutcome | None:
    """The 'refused' outcome of the COG an export wrote at ``uri`` for ``plan`` (store key: the plan's,
    below the store's prefix) when :func:`refusal` refuses it, the COG removed from the store as a refused
    local build's is; None when it may be registered (:func:`register_planned`). Every planned scene is an
    input of an export. A COG missing from the store or unreadable is a :class:`BadInputError` naming it."""
    if not 0.0 <= min_valid_share <= 1.0:
        raise BadInputError(f"min_valid_share must be between 0 and 1, found {min_valid_share!r}")
    try:
        reason = refusal(plan, uri, store, min_valid_share=min_valid_share)
    except (FileNotFoundError, RasterioError) as exc:
        raise BadInputError(f"AOI {plan.aoi.name}: the {plan.sensor} export {uri} is missing or not a readable "
                            f"GeoTIFF ({exc}); not registered") from exc
    if reason is None:
        return None
    return _refuse(engine, plan, Computed(uri, len(plan.scenes), [], plan.key), store, reason)


def register_planned(engine: Engine, plan: CompositePlan, *, uri: str, backend: str, run_id: str | None,
                     used: int | None = None, skipped: list[tuple[str, str]] | None = None,
                     used_hash: str | None = None) -> CompositeOutcome:
    """Register the composite computed for ``plan`` (``used`` scenes hashing to ``used_hash``, default
    all of the plan's) as the next version, or return the version already registered for these inputs
    ('recomputed' when the plan was forced)."""
    if plan.status != "todo":
        raise BadInputError(f"{plan.aoi.name}/{plan.sensor}: the plan is {plan.status!r}, nothing to register")
    skipped = skipped or []
    new = composite_rows.NewComposite(
        aoi_id=plan.aoi.aoi_id, sensor=plan.sensor, period=plan.period, recipe_hash=plan.recipe.hash(plan.sensor),
        recipe_json=plan.recipe.model_dump_json(), inputs_hash=used_hash or plan.inputs_hash,
        scene_count=len(plan.scenes) if used is None else used, skipped_count=len(skipped), backend=backend,
        uri=uri, run_id=run_id)
    with transaction(engine, f"registering the {plan.sensor} composite of AOI {plan.aoi.name}") as conn:
        composite_rows.lock_series(conn, plan.aoi.name, plan.sensor)
        row = composite_rows.find_by_inputs(conn, new.aoi_id, new.sensor, new.recipe_hash, new.inputs_hash)
        if row is not None:
            return _outcome(row, "recomputed" if plan.force else "up-to-date", plan.period, skipped)
        return _outcome(composite_rows.insert_next_version(conn, new), "created", plan.period, skipped)


def _refuse(engine: Engine, plan: CompositePlan, computed: Computed, store: Store, reason: str) -> CompositeOutcome:
    """Remove the refused COG from the store (unless a registered version points to it) and say why."""
    log.warning("%s", reason)
    used_hash = computed.inputs_hash or plan.inputs_hash
    with reading(engine, f"checking the {plan.sensor} composites of AOI {plan.aoi.name}") as conn:
        row = composite_rows.find_by_inputs(conn, plan.aoi.aoi_id, plan.sensor, plan.recipe.hash(plan.sensor),
                                            used_hash)
    delete = getattr(store, "delete", None)
    if (row is None or row.uri != computed.uri) and delete is not None:
        delete(computed.key or plan.key)
    return CompositeOutcome(plan.sensor, "refused", plan.period, scene_count=computed.used,
                            skipped=list(computed.skipped), reason=reason)


def build_composites(engine: Engine, request: CompositeRequest, *, store: Store,
                     backend: CompositeBackend | None = None,
                     min_valid_share: float = MIN_VALID_SHARE) -> list[CompositeOutcome]:
    """Refresh the AOI's composites for the request's sensors with ``backend`` (default: local).

    A computed composite with less than ``min_valid_share`` of its grid's pixels valid is refused (see
    :func:`check_valid_share`); the other sensors go on."""
    if not 0.0 <= min_valid_share <= 1.0:
        raise BadInputError(f"min_valid_share must be between 0 and 1, found {min_valid_share!r}")
    backend = backend or LocalComposites()
    outcomes = []
    for plan in plan_composites(engine, request, backend=backend.name):
        if plan.status != "todo":
            outcomes.append(plan.existing or CompositeOutcome(plan.sensor, plan.status, plan.period))
            continue
        computed = backend.compute(plan, store)
        reason = refusal(plan, computed.uri, store, key=computed.key or None, min_valid_share=min_valid_share)
        if reason is not None:
            outcomes.append(_refuse(engine, plan, computed, store, reason))
            continue
        outcomes.append(register_planned(engine, plan, uri=computed.uri, backend=backend.name,
                                         run_id=request.run_id, used=computed.used, skipped=computed.skipped,
                                         used_hash=computed.inputs_hash or None))
    return outcomes
