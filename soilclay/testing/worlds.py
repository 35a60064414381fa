"""Builders of database states on the small demo world (``soilclay.demo.world``, ``size="small"``).

Each builder drives soilclay's own stage functions, as a user or a DAG task would; none writes SQL.
The states, in pipeline order (:data:`STAGES`), each one adding to the one before:

``loaded``
    migrated to the newest schema; the AOI :data:`AOI` registered from the world's ``aoi.geojson``; the
    world's soil samples (source :data:`SAMPLES_SOURCE`) and parcels loaded: what people load by hand.
``scenes``
    + every scene of the world's local STAC archive recorded for the AOI (source ``local``).
``composites``
    + the Sentinel-2 and Sentinel-1 composites (version 1 each) built by the local backend.
``champion``
    + model version 1 trained with :data:`FAST` and promoted champion; its SavedModel in the TF Serving
    layout (``models/1``) and the TF Serving config (``tf-serving/``).

:class:`WorldStates` builds each state once, into a *template* database, and hands out copies of it
(:meth:`WorldStates.fresh`): a test owns its copy and may change it; nobody changes a template. How
databases are created and copied is the caller's (a test suite's fixture), so this module stays free of
SQL. Files a template refers to (composite COGs, SavedModels) stay in the template's directory and are
only read by the copies; each copy gets a directory of its own for what it writes.

The library's entry points these builders use are gathered in the first section below, imported where
they are called (so importing this module stays cheap: no TensorFlow until a model is trained).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from soilclay.io.store import LocalStore

#: The small world's AOI name (its ``aoi.geojson``).
AOI = "demo-small"
#: The source name its soil samples are loaded under.
SAMPLES_SOURCE = "demo"
#: A model config that trains in seconds on the small world.
FAST = {"folds": 3, "block_size_m": 300, "cnn": {"epochs": 80, "patience": 20},
        "rf": {"n_estimators": 60}, "ann": {"max_iter": 300}}
#: The states :class:`WorldStates` builds, in pipeline order (each includes the ones before it).
STAGES = ("loaded", "scenes", "composites", "champion")


# --- the library's entry points (retarget here when a stage moves) -------------------------------------


def _migrate(database_url: str) -> None:
    from soilclay.db import migrate

    migrate.upgrade(database_url)


def _engine(database_url: str) -> Engine:
    from soilclay.db.engine import make_engine

    return make_engine(database_url)


def _read_aoi_file(aoi_file: Path) -> tuple[dict, dict]:
    from soilclay.io.vector import read_aoi_file

    return read_aoi_file(aoi_file)


def _register_aoi(engine: Engine, name: str, geometry: dict, grid_crs: str) -> Any:
    from soilclay.db.aois import register_aoi

    return register_aoi(engine, name, geometry, grid_crs)


def _local_scene_source(archive: Path) -> SceneSource:
    from soilclay.scenes.local import LocalStacSource

    return LocalStacSource(archive)


def _sync_scenes(engine: Engine, aoi: str, source: SceneSource) -> Any:
    from soilclay.scenes.sync import sync_scenes

    return sync_scenes(engine, aoi, source)


def _store(root: Path) -> LocalStore:
    from soilclay.io.store import LocalStore

    return LocalStore(root)


def _build_composites(engine: Engine, aoi: str, grid_crs: str, store: LocalStore) -> list:
    from soilclay.composites.backend import CompositeRequest
    from soilclay.composites.build import build_composites
    from soilclay.composites.recipe import Recipe

    # The AOI's default recipe (3-year window on its grid); tile_size only changes how the work is cut.
    recipe = Recipe.parse({"aoi": aoi, "window": {"years": 3}, "grid": {"crs": grid_crs}, "tile_size": 128})
    return build_composites(engine, CompositeRequest(aoi, recipe), store=store)


def _load_samples(engine: Engine, csv: Path, source: str) -> Any:
    from soilclay.samples.load import load_samples

    return load_samples(engine, csv, source=source)


def _load_parcels(engine: Engine, path: Path) -> Any:
    from soilclay.parcels.load import load_parcels

    return load_parcels(engine, path)


def _retrain(engine: Engine, aoi: str, *, store_url: str, model_base_path: str, config: dict,
             serving_config_dir: Path, workdir: Path) -> Any:
    from soilclay.model.config import ModelConfig
    from soilclay.model.pipeline import RetrainRequest, retrain
    from soilclay.serving.publish import ServingConfigTarget

    return retrain(engine, RetrainRequest(aoi, ModelConfig.parse(config), store_url, model_base_path,
                                          workdir=workdir, serving=ServingConfigTarget(serving_config_dir)))


# --- steps -------------------------------------------------------------------------------------------


class SceneSource(Protocol):
    source: str

    def list_scenes(self, aoi_geometry: dict, collections: tuple[str, ...],
                    since: datetime | None = None) -> list: ...


@dataclass
class RelabelledSource:
    """The scenes ``inner`` lists, as if another catalogue (``source``, e.g. ``earthengine``) had listed them."""

    inner: SceneSource
    source: str

    def list_scenes(self, aoi_geometry: dict, collections: tuple[str, ...], since: datetime | None = None) -> list:
        return [replace(s, source=self.source) for s in self.inner.list_scenes(aoi_geometry, collections, since)]


class BuildError(RuntimeError):
    """A builder did not reach the state it promises (the stage under it misbehaved)."""


def register_world_aoi(engine: Engine, world: Path, name: str = AOI) -> Any:
    """Register the world's AOI (its ``aoi.geojson``, grid CRS from its properties) under ``name``."""
    geometry, props = _read_aoi_file(world / "aoi.geojson")
    return _register_aoi(engine, name, geometry, props["grid_crs"])


def load_by_hand(engine: Engine, world: Path, aoi: str = AOI) -> None:
    """What people load by hand before the pipeline runs: the AOI, the soil samples and the parcels."""
    register_world_aoi(engine, world, aoi)
    samples = _load_samples(engine, world / "samples.csv", SAMPLES_SOURCE)
    parcels = _load_parcels(engine, world / "parcels.gpkg")
    if not samples.valid or not parcels.valid:
        raise BuildError(f"loading the world's samples/parcels kept nothing: {samples}, {parcels}")


def record_world_scenes(engine: Engine, world: Path, aoi: str = AOI, source: str = "local") -> Any:
    """Record the scenes of the world's STAC archive for ``aoi``; ``source`` other than ``local`` records
    them as listed by that catalogue (e.g. ``earthengine``: an AOI whose scenes came from Earth Engine)."""
    listing: SceneSource = _local_scene_source(world / "scenes")
    if source != listing.source:
        listing = RelabelledSource(listing, source)
    result = _sync_scenes(engine, aoi, listing)
    if not result.new_total:
        raise BuildError(f"no scenes recorded for AOI {aoi} from {world / 'scenes'}")
    return result


def build_world_composites(engine: Engine, world: Path, store_root: Path, aoi: str = AOI) -> list:
    """Build the AOI's Sentinel-2 and Sentinel-1 composites (on the world's grid) with the local backend into
    ``store_root``."""
    _, props = _read_aoi_file(world / "aoi.geojson")
    outcomes = _build_composites(engine, aoi, props["grid_crs"], _store(store_root))
    if sorted(o.sensor for o in outcomes if o.status in ("created", "up-to-date")) != ["sentinel-1", "sentinel-2"]:
        raise BuildError(f"composites not built for AOI {aoi}: {outcomes}")
    return outcomes


def train_champion(engine: Engine, root: Path, store_root: Path, aoi: str = AOI, config: dict | None = None) -> Any:
    """Train on the AOI's samples and composites and promote the result champion (the registry must have no
    champion it could lose to); the SavedModel goes to ``root/models/{version}``, the TF Serving config to
    ``root/tf-serving``."""
    (root / "work").mkdir(parents=True, exist_ok=True)
    outcome = _retrain(engine, aoi, store_url=str(store_root), model_base_path=str(root / "models"),
                       config=FAST if config is None else config, serving_config_dir=root / "tf-serving",
                       workdir=root / "work")
    if outcome.status != "champion":
        raise BuildError(f"the trained model did not become champion: {outcome.status} ({outcome.reason})")
    return outcome


def prepared_world_db(database_url: str, world: Path, root: Path) -> tuple[Engine, LocalStore]:
    """A database (empty, at ``database_url``) holding the world's AOI, scenes, composites (store below
    ``root/store``) and samples: what the stages before training leave. No parcels."""
    _migrate(database_url)
    engine = _engine(database_url)
    register_world_aoi(engine, world)
    record_world_scenes(engine, world)
    build_world_composites(engine, world, root / "store")
    _load_samples(engine, world / "samples.csv", SAMPLES_SOURCE)
    return engine, _store(root / "store")


# --- states built once, copied per test -----------------------------------------------------------------


@dataclass
class World:
    """A database of one's own in one of the :data:`STAGES`, and a directory of one's own."""

    stage: str
    url: str
    engine: Engine
    root: Path  # this copy's directory: its store, models, work files
    source: Path  # the demo world's files (scene archive, samples, parcels, truth)

    @property
    def store_dir(self) -> Path:
        return self.root / "store"


@dataclass(frozen=True)
class _Template:
    url: str
    root: Path


#: ``new_database(template=None) -> url``: an empty PostGIS database, or a copy of the database ``template``.
NewDatabase = Callable[..., str]


@dataclass
class WorldStates:
    """Each of the :data:`STAGES` built once (on first use) into a template database; :meth:`fresh` copies.

    ``new_database`` creates databases (and copies them: a template must have no open connection while
    it is copied, which the builders see to); ``new_dir(name)`` makes a new empty directory.
    """

    world: Path
    new_database: NewDatabase
    new_dir: Callable[[str], Path]
    config: dict = field(default_factory=lambda: dict(FAST))
    _templates: dict[str, _Template] = field(default_factory=dict, init=False, repr=False)
    _failed: dict[str, BuildError] = field(default_factory=dict, init=False, repr=False)
    _handed_out: list[World] = field(default_factory=list, init=False, repr=False)

    def _build(self, stage: str) -> _Template:
        index = STAGES.index(stage)
        root = self.new_dir(f"world-{stage}")
        if index == 0:
            url = self.new_database()
            _migrate(url)
        else:
            url = self.new_database(template=self.template(STAGES[index - 1]).url)
        engine = _engine(url)
        try:
            if stage == "loaded":
                load_by_hand(engine, self.world)
            elif stage == "scenes":
                record_world_scenes(engine, self.world)
            elif stage == "composites":
                build_world_composites(engine, self.world, root / "store")
            else:
                train_champion(engine, root, self.template("composites").root / "store", config=self.config)
        finally:
            engine.dispose()  # a template is copied only without open connections
        return _Template(url, root)

    def template(self, stage: str) -> _Template:
        """The template of ``stage`` (built now if needed). Read-only: use :meth:`fresh` to change a state."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        if stage in self._failed:  # every user of a state that cannot be built fails the same way, fast
            raise self._failed[stage]
        if stage not in self._templates:
            try:
                self._templates[stage] = self._build(stage)
            except Exception as exc:
                self._failed[stage] = BuildError(f"building the world state {stage!r} failed: {exc!r}")
                raise self._failed[stage] from exc
        return self._templates[stage]

    def fresh(self, stage: str, root: Path | None = None) -> World:
        """A copy of ``stage``'s database for the caller alone, with ``root`` (default: a new directory)."""
        template = self.template(stage)
        url = self.new_database(template=template.url)
        root = root if root is not None else self.new_dir(f"copy-{stage}")
        root.mkdir(parents=True, exist_ok=True)
        world = World(stage, url, _engine(url), root, self.world)
        self._handed_out.append(world)
        return world

    def close(self) -> None:
        """Dispose of the engines of every copy handed out."""
        for world in self._handed_out:
            world.engine.dispose()
        self._handed_out.clear()
