"""Refresh an AOI's composites: pick the scenes of the recipe's window, skip when this recipe has
already been computed over exactly these scenes, otherwise compute (a
:class:`~soilclay.composites.backend.CompositeBackend`: local or Earth Engine), publish to the object
store, and register a new composite version with its lineage.

A refresh with no new scenes does nothing; old versions stay. The COG is published under a key
derived from the recipe and input hashes before the version row is committed, so a crash leaves
either nothing visible in the database or a complete, registered composite.
"""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import Engine

from soilclay.composites.backend import (
    SCENE_SOURCES,
    SENSORS,
    CompositeBackend,
    CompositeOutcome,
    CompositePlan,
    CompositeRequest,
    LocalComposites,
    Store,
)
from soilclay.composites.recipe import Grid, Recipe, TimeWindow, inputs_hash
from soilclay.contract import COLLECTION_OF
from soilclay.db import composites as composite_rows
from soilclay.db import scenes as scene_rows
from soilclay.db.aois import Aoi, get_aoi
from soilclay.db.tx import reading, transaction
from soilclay.errors import BadInputError

log = logging.getLogger(__name__)
__all__ = ["SENSORS", "CompositeOutcome", "CompositePlan", "CompositeRequest", "build_composites",
           "plan_composites", "register_planned"]


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
            plans.append(CompositePlan(aoi, sensor, recipe, "todo" if row is None else "up-to-date", period,
                                       tuple(scenes), ih, existing))
    return plans


def register_planned(engine: Engine, plan: CompositePlan, *, uri: str, backend: str, run_id: str | None,
                     used: int | None = None, skipped: list[tuple[str, str]] | None = None) -> CompositeOutcome:
    """Register the composite computed for ``plan`` (``used`` scenes, default all of the plan's) as the
    next version, or return the version already registered for these inputs."""
    if plan.status != "todo":
        raise BadInputError(f"{plan.aoi.name}/{plan.sensor}: the plan is {plan.status!r}, nothing to register")
    skipped = skipped or []
    new = composite_rows.NewComposite(
        aoi_id=plan.aoi.aoi_id, sensor=plan.sensor, period=plan.period, recipe_hash=plan.recipe.hash(plan.sensor),
        recipe_json=plan.recipe.model_dump_json(), inputs_hash=plan.inputs_hash,
        scene_count=len(plan.scenes) if used is None else used, skipped_count=len(skipped), backend=backend,
        uri=uri, run_id=run_id)
    with transaction(engine, f"registering the {plan.sensor} composite of AOI {plan.aoi.name}") as conn:
        composite_rows.lock_series(conn, plan.aoi.name, plan.sensor)
        row = composite_rows.find_by_inputs(conn, new.aoi_id, new.sensor, new.recipe_hash, new.inputs_hash)
        if row is not None:
            return _outcome(row, "up-to-date", plan.period, skipped)
        return _outcome(composite_rows.insert_next_version(conn, new), "created", plan.period, skipped)


def build_composites(engine: Engine, request: CompositeRequest, *, store: Store,
                     backend: CompositeBackend | None = None) -> list[CompositeOutcome]:
    """Refresh the AOI's composites for the request's sensors with ``backend`` (default: local)."""
    backend = backend or LocalComposites()
    outcomes = []
    for plan in plan_composites(engine, request, backend=backend.name):
        if plan.status != "todo":
            outcomes.append(plan.existing or CompositeOutcome(plan.sensor, plan.status, plan.period))
            continue
        computed = backend.compute(plan, store)
        outcomes.append(register_planned(engine, plan, uri=computed.uri, backend=backend.name,
                                         run_id=request.run_id, used=computed.used, skipped=computed.skipped))
    return outcomes
