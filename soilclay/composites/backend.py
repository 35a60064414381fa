"""What a composite backend is: the plan it computes, what it returns, and the Protocol both
backends (local numpy, Earth Engine) implement.

:mod:`soilclay.composites.build` plans and registers; a backend only computes and publishes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

from soilclay.composites.grid import TargetGrid
from soilclay.composites.recipe import Recipe
from soilclay.contract import SceneRef
from soilclay.db.aois import Aoi
from soilclay.errors import BadInputError

SENSORS = ("sentinel-2", "sentinel-1")
#: Which recorded scenes each backend composites (by ``soilclay.scenes.source``).
SCENE_SOURCES = {"local": ("local", "stac-api"), "earthengine": ("earthengine",)}


@dataclass(frozen=True)
class CompositeRequest:
    """One refresh of an AOI's composites: the recipe (default: the AOI's default recipe), the
    sensors, the date ending the window (default: the newest scene) and the run recording it."""

    aoi: str
    recipe: Recipe | None = None
    sensors: tuple[str, ...] = SENSORS
    refresh: date | None = None
    run_id: str | None = None

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
    register), 'up-to-date' (``existing`` names the version) or 'no-scenes'."""

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


@dataclass(frozen=True)
class Computed:
    """A published composite: its URI, the scenes it used and those skipped with the reason."""

    uri: str
    used: int
    skipped: list[tuple[str, str]] = field(default_factory=list)


class Store(Protocol):
    def publish_file(self, local_path: Path, key: str) -> str: ...


@runtime_checkable
class CompositeBackend(Protocol):
    """Computes one planned composite and publishes it under ``plan.key``."""

    #: Stored in ``soilclay.composites.backend``; a key of :data:`SCENE_SOURCES`.
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
        if self.workdir is not None:
            Path(self.workdir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="soilclay-composite-", dir=self.workdir) as tmp:
            local = LocalBackend(Path(tmp), progress=self.progress, workers=self.workers)
            build = local.s2 if plan.sensor == "sentinel-2" else local.s1
            result = build(plan.recipe, grid, list(plan.scenes), plan.name)
            if not result.used:
                reasons = "; ".join(f"{sid}: {why}" for sid, why in result.skipped[:5])
                raise BadInputError(f"no usable {plan.sensor} scenes for {plan.recipe.aoi} "
                                    f"({len(plan.scenes)} listed): {reasons}")
            uri = store.publish_file(result.path, plan.key)
        return Computed(uri, len(result.used), result.skipped)
