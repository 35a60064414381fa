"""Test builder: a database of its own holding the small demo world's AOI, scenes, composites and
samples, as the stages before training leave it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from soilclay.composites.build import build_composites
from soilclay.composites.recipe import Recipe
from soilclay.db import migrate
from soilclay.db.aois import read_aoi_file, register_aoi
from soilclay.db.engine import make_engine
from soilclay.io.store import LocalStore
from soilclay.samples.load import load_samples
from soilclay.scenes.local import LocalStacSource
from soilclay.scenes.sync import sync_scenes

AOI = "demo-small"
#: A model config that trains in seconds on the small world.
FAST = {"folds": 3, "block_size_m": 300, "cnn": {"epochs": 80, "patience": 20},
        "rf": {"n_estimators": 60}, "ann": {"max_iter": 300}}


def prepared_world_db(database_url: str, world: Path, root: Path) -> tuple[Engine, LocalStore]:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    geometry, props = read_aoi_file(world / "aoi.geojson")
    register_aoi(engine, AOI, geometry, props["grid_crs"])
    sync_scenes(engine, AOI, LocalStacSource(world / "scenes"))
    store = LocalStore(root / "store")
    recipe = Recipe.parse({"aoi": AOI, "window": {"years": 3}, "grid": {"crs": "EPSG:32633"}, "tile_size": 128})
    build_composites(engine, aoi_name=AOI, store=store, recipe=recipe)
    load_samples(engine, world / "samples.csv", source="demo")
    return engine, store
