"""What a composite backend is: the plan it computes, what it returns, and the Protocol both
backends (local numpy, Earth Engine) implement.

:mod:`soilclay.composites.build` plans and registers; a backend only computes and publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

from soilclay.composites.grid import TargetGrid
from soilclay.composites.recipe import Recipe, inputs_hash
from soilclay.composites.scratch import run_scratch
from soilclay.contract import SceneRef
from soilclay.db.aois import Aoi
from soilclay.errors import BadInputError

SENSORS = ("sentinel-2", "sentinel-1")


@dataclass(frozen=True)
class CompositeRequest:
    """One refresh of an AOI's composites: the recipe (default: the AOI's default recipe), the
    sensors, the date ending the window (default: the newest scene) and the run recording it.
    ``force`` recomputes composites that are up to date."""

    aoi: str
    recipe: Recipe | None = None
    sensors: tuple[str, ...] = SENSORS
    refresh: date | None = None
    run_id: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.aoi, str) or not self.aoi.strip():
            raise BadInputError(f"a composite request needs an AOI name, found {self.aoi!r}")
        unknown = [s for s in self.sensors if s not in SENSORS]
        if unknown or not self.sensors:
            raise BadInputError(f"sensors must be among {', '.join(SENSORS)}, found {list(self.sensors)!r}")
        if self.recipe is not None and self.recipe.aoi != self.aoi:
            raise BadInputError(f"recipe is for AOI {self.recipe.aoi!r}, not {self.aoi!r}")


@dataclass(frozen=True)
class CompositePlan:
    """What refreshing one sensor's composite of an AOI needs: ``status`` 'todo' (compute, then
    register), 'up-to-date' (``existing`` names the version) or 'no-scenes'. A forced plan is 'todo'
    with ``existing`` naming the up-to-date version it recomputes.

    ``inputs_hash`` is over the planned scenes; a composite is registered (and published, :meth:`key_for`)
    under the hash of the planned scenes less those that failed to read, so one that lost scenes that
    way is not up to date for the planned ones and the next build retries them."""

    aoi: Aoi
    sensor: str
    recipe: Recipe
    status: str
    period: tuple[date, date]
    scenes: tuple[SceneRef, ...] = ()
    inputs_hash: str = ""
    existing: CompositeOutcome | None = None
    force: bool = False

    def name_for(self, used_hash: str) -> str:
        return f"{self.aoi.name}-{self.sensor}-{self.recipe.hash(self.sensor)[:12]}-{used_hash[:12]}"

    def key_for(self, used_hash: str) -> str:
        """Object-store key of the COG computed over the scenes hashing to ``used_hash``."""
        return f"composites/{self.aoi.name}/{self.sensor}/{self.name_for(used_hash)}.tif"

    @property
    def name(self) -> str:
        return self.name_for(self.inputs_hash)

    @property
    def key(self) -> str:
        """Object-store key of the COG over all planned scenes (Earth Engine writes ``{store prefix}/{key}``)."""
        return self.key_for(self.inputs_hash)


@dataclass
class CompositeOutcome:
    sensor: str
    status: str  # 'created', 'recomputed' (forced, same inputs), 'up-to-date', 'no-scenes' or 'refused'
    period: tuple[date, date]
    composite_id: int | None = None
    version: int | None = None
    uri: str | None = None
    scene_count: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None  # why a composite was refused

    def render(self) -> str:
        head = f"{self.sensor}: {self.status}"
        if self.reason:
            head += f": {self.reason}"
        if self.version is not None:
            head += f" (version {self.version}, {self.scene_count} scenes, {self.period[0]}..{self.period[1]})"
        lines = [head]
        if self.uri:
            lines.append(f"  {self.uri}")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} scenes:")
            lines += [f"    {sid}: {why}" for sid, why in self.skipped]
        return "\n".join(lines)


@dataclass(frozen=True)
class Computed:
    """A published composite: its URI, the scenes it used and those skipped with the reason.

    ``key`` is its object-store key and ``inputs_hash`` the hash of its inputs: the planned scenes less
    those that failed to read (both default to the plan's: no scene failed)."""

    uri: str
    used: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    key: str = ""
    inputs_hash: str = ""


class Store(Protocol):
    def publish_file(self, local_path: Path, key: str) -> str: ...


@runtime_checkable
class CompositeBackend(Protocol):
    """Computes one planned composite and publishes it under ``plan.key``."""

    #: Stored in ``soilclay.composites.backend``; a key of :data:`soilclay.contract.SCENE_SOURCES`.
    name: str

    def compute(self, plan: CompositePlan, store: Store) -> Computed: ...


class LocalComposites:
    """The local backend: numpy over the scenes' COGs (:mod:`soilclay.composites.local`), computed in
    a scratch directory below ``workdir`` and published to the store."""

    name = "local"

    def __init__(self, workdir: Path | None = None, *, progress: bool = False, workers: int | None = None) -> None:
        self.workdir, self.progress, self.workers = workdir, progress, workers

    def compute(self, plan: CompositePlan, store: Store) -> Computed:
        from soilclay.composites.local import LocalBackend

        grid = TargetGrid.for_aoi(plan.aoi.geometry, plan.recipe.grid)
        with run_scratch(self.workdir) as tmp:  # a killed run's scratch is removed by the next run
            local = LocalBackend(tmp, progress=self.progress, workers=self.workers)
            build = local.s2 if plan.sensor == "sentinel-2" else local.s1
            result = build(plan.recipe, grid, list(plan.scenes), plan.name)
            if not result.used:
                reasons = "; ".join(f"{sid}: {why}" for sid, why in result.skipped[:5])
                raise BadInputError(f"no usable {plan.sensor} scenes for {plan.recipe.aoi} "
                                    f"({len(plan.scenes)} listed): {reasons}")
            # The planned scenes less those that failed to read (a missing or corrupt file): a later
            # build retries those. Scenes the recipe rules out by content count as inputs.
            failed = {sid for sid, _ in result.skipped} - set(result.excluded)
            used_hash = inputs_hash([s.scene_id for s in plan.scenes if s.scene_id not in failed])
            key = plan.key_for(used_hash)
            exists, uri_of = getattr(store, "exists", None), getattr(store, "uri", None)
            if not plan.force and exists is not None and uri_of is not None and exists(key):
                uri = uri_of(key)  # published before (same recipe, same scenes): objects are immutable
            else:  # forced: identical content is a no-op, a missing COG is restored, a different one refused
                uri = store.publish_file(result.path, key)
        return Computed(uri, len(result.used), result.skipped, key, used_hash)
