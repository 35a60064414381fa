"""Fixtures of the composite tests: a private copy of the small demo world, an AOI registered from it."""

from __future__ import annotations

import shutil

import pytest

from soilclay.db.aois import register_aoi
from soilclay.io.vector import read_aoi_file
from soilclay.scenes.local import LocalStacSource
from soilclay.scenes.sync import sync_scenes


@pytest.fixture
def world_copy(small_world, tmp_path):
    copy = tmp_path / "world"
    shutil.copytree(small_world, copy)
    return copy


def register_world(engine, world_dir, name):
    """Register ``world_dir``'s AOI as ``name`` and record its scenes."""
    geometry, props = read_aoi_file(world_dir / "aoi.geojson")
    register_aoi(engine, name, geometry, props["grid_crs"])
    sync_scenes(engine, name, LocalStacSource(world_dir / "scenes"))
