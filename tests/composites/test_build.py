"""Composite refresh end to end against PostGIS and the object store: versions, lineage, idempotency,
and no half-written results when something fails."""

from __future__ import annotations

import pytest
import rasterio
from sqlalchemy import text

from soilclay.composites.backend import CompositeRequest
from soilclay.composites.build import build_composites
from soilclay.composites.recipe import Recipe
from soilclay.db.runs import recorded_run
from soilclay.demo import world
from soilclay.errors import BadInputError
from soilclay.io.store import LocalStore
from soilclay.scenes.local import LocalStacSource
from soilclay.scenes.sync import sync_scenes
from tests.composites.conftest import register_world


def _recipe(aoi: str) -> Recipe:
    return Recipe.parse({"aoi": aoi, "window": {"years": 3}, "grid": {"crs": "EPSG:32633"}, "tile_size": 128})


def _rows(engine, name):
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT sensor, version, scene_count, skipped_count, recipe_hash, inputs_hash, uri, run_id, period_start, "
            "period_end, recipe->'s2'->>'ndvi_max' AS ndvi_max FROM soilclay.composites c "
            "JOIN soilclay.aois a USING (aoi_id) WHERE a.name = :n ORDER BY sensor, version"), {"n": name}).all()


def test_refresh_builds_once_then_only_when_scenes_arrive(engine, world_copy, tmp_path):
    name = "build-test"
    register_world(engine, world_copy, name)
    store = LocalStore(tmp_path / "store")
    with recorded_run(engine, "composite") as run:
        first = build_composites(engine, CompositeRequest(name, _recipe(name), run_id=run.run_id), store=store)
    assert [(o.sensor, o.status, o.version) for o in first] == [("sentinel-2", "created", 1),
                                                               ("sentinel-1", "created", 1)]
    s2 = first[0]
    assert s2.scene_count == 144 and len(s2.skipped) == 2  # two all-cloud scenes
    with rasterio.open(s2.uri) as src:
        assert src.count == 13 and src.descriptions[-1] == "bare_frequency"
    rows = _rows(engine, name)
    assert [(r.sensor, r.version, r.run_id) for r in rows] == [("sentinel-1", 1, run.run_id),
                                                              ("sentinel-2", 1, run.run_id)]
    assert rows[1].skipped_count == 2 and rows[1].ndvi_max == "0.25" and rows[1].recipe_hash == _recipe(name).hash(
        "sentinel-2")

    again = build_composites(engine, CompositeRequest(name, _recipe(name)), store=store)
    assert [o.status for o in again] == ["up-to-date", "up-to-date"]
    assert len(_rows(engine, name)) == 2

    world.add_scenes(world_copy, 3, workers=1)
    sync_scenes(engine, name, LocalStacSource(world_copy / "scenes"))
    later = build_composites(engine, CompositeRequest(name, _recipe(name)), store=store)
    assert [(o.status, o.version) for o in later] == [("created", 2), ("created", 2)]
    rows = _rows(engine, name)
    assert len(rows) == 4 and len({r.uri for r in rows}) == 4  # old versions stay, each with its own COG
    v1, v2 = [r for r in rows if r.sensor == "sentinel-2"]
    assert v2.period_end > v1.period_end and v2.inputs_hash != v1.inputs_hash
    assert {store.uri(k) for k in store.list("composites")} >= {r.uri for r in rows}


def test_a_changed_recipe_is_a_new_version(engine, world_copy, tmp_path):
    name = "recipe-test"
    register_world(engine, world_copy, name)
    store = LocalStore(tmp_path / "store")
    build_composites(engine, CompositeRequest(name, _recipe(name), sensors=("sentinel-1",)), store=store)
    changed = Recipe.parse({**_recipe(name).model_dump(mode="json"), "s1": {"orbit_pass": "ascending"}})
    out = build_composites(engine, CompositeRequest(name, changed, sensors=("sentinel-1",)), store=store)
    assert (out[0].status, out[0].version) == ("created", 2)
    assert out[0].scene_count < 122


def test_failure_while_publishing_leaves_nothing_half_written(engine, world_copy, tmp_path):
    name = "crash-test"
    register_world(engine, world_copy, name)
    store = LocalStore(tmp_path / "store")

    def crash(local_path, key, **kwargs):
        raise OSError("disk full")

    original = store.publish_file
    store.publish_file = crash  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        with recorded_run(engine, "composite", run_id="crash-run") as run:
            build_composites(engine, CompositeRequest(name, _recipe(name), sensors=("sentinel-2",), run_id=run.run_id),
                             store=store)
    assert _rows(engine, name) == [] and store.list() == []
    with engine.connect() as conn:
        status, error = conn.execute(text(
            "SELECT status, error FROM soilclay.pipeline_runs WHERE run_id = 'crash-run'")).one()
    assert status == "failed" and "disk full" in error
    store.publish_file = original  # type: ignore[method-assign]
    out = build_composites(engine, CompositeRequest(name, _recipe(name), sensors=("sentinel-2",)), store=store)
    assert (out[0].status, out[0].version) == ("created", 1)


def test_unknown_aoi_and_foreign_recipe_are_refused(engine, tmp_path):
    with pytest.raises(BadInputError, match="unknown AOI 'nowhere'"):
        build_composites(engine, CompositeRequest("nowhere"), store=LocalStore(tmp_path))
