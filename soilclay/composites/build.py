"""Refresh an AOI's composites: pick the scenes of the recipe's window, skip when this recipe has
already been computed over exactly these scenes, otherwise compute (local or Earth Engine), publish
to the object store, and register a new composite version with its lineage.

A refresh with no new scenes does nothing; old versions stay. The COG is published under a key
derived from the recipe and input hashes before the version row is committed, so a crash leaves
either nothing visible in the database or a complete, registered composite.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from soilclay.composites.grid import TargetGrid
from soilclay.composites.recipe import Grid, Recipe, TimeWindow, inputs_hash
from soilclay.db.aois import Aoi, get_aoi
from soilclay.errors import BadInputError
from soilclay.scenes.types import COLLECTION_OF, SceneRef

log = logging.getLogger(__name__)
SENSORS = ("sentinel-2", "sentinel-1")
_LOCAL_SOURCES = ("local", "stac-api")


@dataclass
class CompositeOutcome:
    sensor: str
    status: str  # 'created', 'up-to-date' or 'no-scenes'
    period: tuple[date, date]
    composite_id: int | None = None
    version: int | None = None
    uri: str | None = None
    scene_count: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> str:
        head = f"{self.sensor}: {self.status}"
        if self.version is not None:
            head += f" (version {self.version}, {self.scene_count} scenes, {self.period[0]}..{self.period[1]})"
        lines = [head]
        if self.uri:
            lines.append(f"  {self.uri}")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} scenes:")
            lines += [f"    {sid}: {why}" for sid, why in self.skipped]
        return "\n".join(lines)


class Store(Protocol):
    def publish_file(self, local_path: Path, key: str) -> str: ...


class RemoteBackend(Protocol):
    """A backend that computes elsewhere and writes the COG itself (Earth Engine)."""

    def build(self, recipe: Recipe, sensor: str, aoi: Aoi, period: tuple[date, date], name: str) -> str: ...


def default_recipe(aoi: Aoi, years: int = 3) -> Recipe:
    return Recipe(aoi=aoi.name, window=TimeWindow(years=years), grid=Grid(crs=aoi.grid_crs))


def newest_acquisition(conn: Connection, aoi_id: int) -> date | None:
    value = conn.execute(text("SELECT max(acquired_at) FROM soilclay.scenes WHERE aoi_id = :a"), {"a": aoi_id}).scalar()
    return value.astimezone(UTC).date() if value else None


def scenes_in_window(conn: Connection, aoi_id: int, collection: str, start: date, end: date,
                     sources: tuple[str, ...]) -> list[SceneRef]:
    rows = conn.execute(text(
        "SELECT scene_id, collection, platform, acquired_at, published_at, source, cloud_cover, href, properties "
        "FROM soilclay.scenes WHERE aoi_id = :a AND collection = :c AND source = ANY(:src) "
        "AND acquired_at >= :s AND acquired_at < :e ORDER BY acquired_at, scene_id"),
        {"a": aoi_id, "c": collection, "src": list(sources),
         "s": datetime.combine(start, datetime.min.time(), UTC),
         "e": datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)}).mappings()
    return [SceneRef(scene_id=r["scene_id"], collection=r["collection"], platform=r["platform"],
                     acquired_at=r["acquired_at"], source=r["source"], href=r["href"] or "",
                     published_at=r["published_at"], cloud_cover=r["cloud_cover"],
                     orbit_state=r["properties"].get("orbit_state"), properties=r["properties"]) for r in rows]


def _existing(conn: Connection, aoi_id: int, sensor: str, recipe_hash: str, ih: str):
    return conn.execute(text(
        "SELECT composite_id, version, uri, scene_count FROM soilclay.composites "
        "WHERE aoi_id = :a AND sensor = :s AND recipe_hash = :r AND inputs_hash = :i"),
        {"a": aoi_id, "s": sensor, "r": recipe_hash, "i": ih}).first()


def register_composite(engine: Engine, *, aoi: Aoi, sensor: str, recipe: Recipe, ih: str, period: tuple[date, date],
                       scene_count: int, skipped: int, backend: str, uri: str, run_id: str | None):
    """Insert the next version for (AOI, sensor), or return the row already registered for these inputs."""
    rh = recipe.hash(sensor)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('composites:' || :k))"), {"k": f"{aoi.name}/{sensor}"})
        row = _existing(conn, aoi.aoi_id, sensor, rh, ih)
        if row is not None:
            return row, False
        row = conn.execute(text(
            "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, recipe, "
            " inputs_hash, scene_count, skipped_count, backend, uri, run_id) "
            "SELECT :a, :s, coalesce(max(version), 0) + 1, :ps, :pe, :r, CAST(:rj AS jsonb), :i, :n, :k, :b, :u, :run "
            "FROM soilclay.composites WHERE aoi_id = :a AND sensor = :s "
            "RETURNING composite_id, version, uri, scene_count"),
            {"a": aoi.aoi_id, "s": sensor, "ps": period[0], "pe": period[1], "r": rh,
             "rj": recipe.model_dump_json(), "i": ih, "n": scene_count, "k": skipped, "b": backend, "u": uri,
             "run": run_id}).first()
        return row, True


@dataclass(frozen=True)
class CompositePlan:
    """What refreshing one sensor's composite of an AOI needs: ``status`` 'todo' (compute, then
    :func:`register_planned`), 'up-to-date' (``existing`` names the version) or 'no-scenes'."""

    aoi: Aoi
    sensor: str
    recipe: Recipe
    status: str
    period: tuple[date, date]
    scenes: tuple[SceneRef, ...] = ()
    inputs_hash: str = ""
    existing: CompositeOutcome | None = None

    @property
    def name(self) -> str:
        return f"{self.aoi.name}-{self.sensor}-{self.recipe.hash(self.sensor)[:12]}-{self.inputs_hash[:12]}"

    @property
    def key(self) -> str:
        """Object-store key of the COG (Earth Engine writes ``{store prefix}/{key}``)."""
        return f"composites/{self.aoi.name}/{self.sensor}/{self.name}.tif"


def plan_composites(engine: Engine, *, aoi_name: str, recipe: Recipe | None = None,
                    sensors: tuple[str, ...] = SENSORS, backend: str = "local",
                    refresh: date | None = None) -> list[CompositePlan]:
    """One plan per sensor (sensors the recipe leaves out are dropped): which scenes, which name, and
    whether that composite already exists."""
    if backend not in ("local", "earthengine"):
        raise BadInputError(f"backend must be 'local' or 'earthengine', found {backend!r}")
    with engine.connect() as conn:
        aoi = get_aoi(conn, aoi_name)
        refresh = refresh or newest_acquisition(conn, aoi.aoi_id)
    recipe = recipe or default_recipe(aoi)
    if recipe.aoi != aoi.name:
        raise BadInputError(f"recipe is for AOI {recipe.aoi!r}, not {aoi.name!r}")
    if refresh is None:
        return [CompositePlan(aoi, s, recipe, "no-scenes", (date.min, date.min)) for s in sensors]
    period = recipe.window.resolve(refresh)
    sources = _LOCAL_SOURCES if backend == "local" else ("earthengine",)
    plans = []
    for sensor in sensors:
        if (recipe.s2 if sensor == "sentinel-2" else recipe.s1) is None:
            continue
        with engine.connect() as conn:
            scenes = scenes_in_window(conn, aoi.aoi_id, COLLECTION_OF[sensor], *period, sources)
            if not scenes:
                plans.append(CompositePlan(aoi, sensor, recipe, "no-scenes", period))
                continue
            ih = inputs_hash([s.scene_id for s in scenes])
            row = _existing(conn, aoi.aoi_id, sensor, recipe.hash(sensor), ih)
        existing = None if row is None else CompositeOutcome(sensor, "up-to-date", period, row.composite_id,
                                                             row.version, row.uri, row.scene_count)
        plans.append(CompositePlan(aoi, sensor, recipe, "todo" if row is None else "up-to-date", period,
                                   tuple(scenes), ih, existing))
    return plans


def register_planned(engine: Engine, plan: CompositePlan, *, uri: str, backend: str, run_id: str | None,
                     used: int | None = None, skipped: list[tuple[str, str]] | None = None) -> CompositeOutcome:
    """Register the composite computed for ``plan`` (``used`` scenes, default all of the plan's)."""
    if plan.status != "todo":
        raise BadInputError(f"{plan.aoi.name}/{plan.sensor}: the plan is {plan.status!r}, nothing to register")
    skipped = skipped or []
    used = len(plan.scenes) if used is None else used
    row, created = register_composite(engine, aoi=plan.aoi, sensor=plan.sensor, recipe=plan.recipe,
                                      ih=plan.inputs_hash, period=plan.period, scene_count=used,
                                      skipped=len(skipped), backend=backend, uri=uri, run_id=run_id)
    return CompositeOutcome(plan.sensor, "created" if created else "up-to-date", plan.period, row.composite_id,
                            row.version, row.uri, row.scene_count, skipped)


def build_composites(engine: Engine, *, aoi_name: str, store: Store, recipe: Recipe | None = None,
                     sensors: tuple[str, ...] = SENSORS, backend: str = "local", refresh: date | None = None,
                     run_id: str | None = None, remote: RemoteBackend | None = None, workdir: Path | None = None,
                     progress: bool = False) -> list[CompositeOutcome]:
    """Refresh the AOI's composites for ``sensors``; see the module docstring."""
    if backend == "earthengine" and remote is None:
        raise BadInputError("the earthengine backend needs an initialised Earth Engine client")
    plans = plan_composites(engine, aoi_name=aoi_name, recipe=recipe, sensors=sensors, backend=backend,
                            refresh=refresh)
    outcomes = []
    for plan in plans:
        if plan.status != "todo":
            outcomes.append(plan.existing or CompositeOutcome(plan.sensor, plan.status, plan.period))
            continue
        if backend == "local":
            grid = TargetGrid.for_aoi(plan.aoi.geometry, plan.recipe.grid)
            uri, used, skipped = _build_local(plan.recipe, plan.sensor, grid, list(plan.scenes), plan.name, plan.key,
                                              store, workdir, progress)
        else:
            assert remote is not None
            uri, used, skipped = remote.build(plan.recipe, plan.sensor, plan.aoi, plan.period,
                                              plan.key.removesuffix(".tif")), len(plan.scenes), []
        outcomes.append(register_planned(engine, plan, uri=uri, backend=backend, run_id=run_id, used=used,
                                         skipped=skipped))
    return outcomes


def _build_local(recipe: Recipe, sensor: str, grid: TargetGrid, scenes: list[SceneRef], name: str, key: str,
                 store: Store, workdir: Path | None, progress: bool) -> tuple[str, int, list[tuple[str, str]]]:
    from soilclay.composites.local import LocalBackend

    with tempfile.TemporaryDirectory(prefix="soilclay-composite-", dir=workdir) as tmp:
        local = LocalBackend(Path(tmp), progress=progress)
        build = local.s2 if sensor == "sentinel-2" else local.s1
        result = build(recipe, grid, scenes, name)
        if not result.used:
            reasons = "; ".join(f"{sid}: {why}" for sid, why in result.skipped[:5])
            raise BadInputError(f"no usable {sensor} scenes for {recipe.aoi} ({len(scenes)} listed): {reasons}")
        uri = store.publish_file(result.path, key)
    return uri, len(result.used), result.skipped
