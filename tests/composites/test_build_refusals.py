"""Composites that must not replace good ones (too few valid pixels: refused, not registered), scenes that
failed to read being retried by the next build, and forced recomputes (issue 12, items 3 and 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from soilclay.cli import main
from soilclay.composites.backend import CompositeRequest, LocalComposites
from soilclay.composites.build import build_composites, valid_share
from soilclay.composites.recipe import Recipe
from soilclay.errors import BadInputError
from soilclay.io.store import LocalStore
from tests.composites.conftest import register_world


def _recipe(aoi: str, **s2) -> Recipe:
    return Recipe.parse({"aoi": aoi, "window": {"years": 3}, "grid": {"crs": "EPSG:32633"}, "tile_size": 128,
                         **({"s2": s2} if s2 else {})})


class CountingBackend(LocalComposites):
    """The local backend, counting what it computes."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.computed: list[str] = []

    def compute(self, plan, store):
        self.computed.append(plan.sensor)
        return super().compute(plan, store)


def _rows(engine, name):
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT sensor, version, scene_count, skipped_count, inputs_hash, uri FROM soilclay.composites c "
            "JOIN soilclay.aois a USING (aoi_id) WHERE a.name = :n ORDER BY sensor, version"), {"n": name}).all()


def _newest(engine, name, sensor):
    return [r for r in _rows(engine, name) if r.sensor == sensor][-1]


def test_an_all_nodata_composite_is_refused_and_the_previous_version_stays_newest(engine, world_copy, tmp_path):
    name = "refuse-empty"
    register_world(engine, world_copy, name)
    store = LocalStore(tmp_path / "store")
    backend = CountingBackend()
    (good,) = build_composites(engine, CompositeRequest(name, _recipe(name), sensors=("sentinel-2",)), store=store,
                               backend=backend)
    assert (good.status, good.version) == ("created", 1)
    # The two all-cloud scenes the recipe rules out do not make the composite stale: nothing recomputed.
    (again,) = build_composites(engine, CompositeRequest(name, _recipe(name), sensors=("sentinel-2",)), store=store,
                                backend=backend)
    assert again.status == "up-to-date" and backend.computed == ["sentinel-2"]

    # No pixel has 1000 bare observations: every reflectance is nodata.
    empty = _recipe(name, min_bare_count=1000)
    (out,) = build_composites(engine, CompositeRequest(name, empty, sensors=("sentinel-2",)), store=store)
    assert out.status == "refused" and out.version is None and out.uri is None
    assert f"AOI {name}" in out.reason and "sentinel-2" in out.reason
    assert "0.0%" in out.reason and "minimum 5.0%" in out.reason
    assert "refused" in out.render()
    rows = _rows(engine, name)
    assert [(r.sensor, r.version) for r in rows] == [("sentinel-2", 1)]
    assert _newest(engine, name, "sentinel-2").uri == good.uri
    assert [store.uri(k) for k in store.list("composites")] == [good.uri]  # the refused COG is gone
    assert not list(Path(tmp_path / "store").rglob(".*tmp-*"))


def test_the_minimum_valid_share_is_configurable(engine, world_copy, tmp_path):
    name = "refuse-share"
    register_world(engine, world_copy, name)
    store = LocalStore(tmp_path / "store")
    request = CompositeRequest(name, _recipe(name), sensors=("sentinel-2",))
    (good,) = build_composites(engine, request, store=store, min_valid_share=0.0)
    valid, total = valid_share(good.uri)
    assert 0 < valid < total  # pixels without enough bare observations are nodata
    # Recomputed (forced) against a minimum just above its share: refused, and version 1's COG, which the
    # recomputed one is identical to, stays.
    forced = CompositeRequest(name, _recipe(name), sensors=("sentinel-2",), force=True)
    (out,) = build_composites(engine, forced, store=store, min_valid_share=valid / total + 0.001)
    assert out.status == "refused" and f"({valid} of {total})" in out.reason
    assert [(r.sensor, r.version) for r in _rows(engine, name)] == [("sentinel-2", 1)] and Path(good.uri).is_file()
    with pytest.raises(BadInputError, match="min_valid_share"):
        build_composites(engine, request, store=store, min_valid_share=1.5)


def test_a_scene_that_failed_to_read_is_retried_once_repaired(engine, world_copy, tmp_path):
    name = "retry-skipped"
    register_world(engine, world_copy, name)
    store = LocalStore(tmp_path / "store")
    backend = CountingBackend()
    scene_dir = sorted(p for p in (world_copy / "scenes" / "sentinel-1-grd").iterdir() if p.is_dir())[5]
    asset = scene_dir / "vv.tif"
    good_bytes = asset.read_bytes()
    asset.write_bytes(b"not a GeoTIFF")
    request = CompositeRequest(name, _recipe(name), sensors=("sentinel-1",))

    (first,) = build_composites(engine, request, store=store, backend=backend)
    assert (first.status, first.version) == ("created", 1)
    assert [sid for sid, _ in first.skipped] == [scene_dir.name] and "unreadable" in first.skipped[0][1]
    assert _newest(engine, name, "sentinel-1").skipped_count == 1

    # Still corrupt: retried, the same inputs as version 1, so no new version.
    (still,) = build_composites(engine, request, store=store, backend=backend)
    assert (still.status, still.version) == ("up-to-date", 1) and backend.computed == ["sentinel-1"] * 2

    asset.write_bytes(good_bytes)  # repaired
    (repaired,) = build_composites(engine, request, store=store, backend=backend)
    assert (repaired.status, repaired.version, repaired.skipped) == ("created", 2, [])
    assert repaired.scene_count == first.scene_count + 1
    v1, v2 = _rows(engine, name)
    assert (v1.skipped_count, v2.skipped_count) == (1, 0) and v1.uri != v2.uri and v1.inputs_hash != v2.inputs_hash

    (done,) = build_composites(engine, request, store=store, backend=backend)
    assert (done.status, done.version) == ("up-to-date", 2) and len(backend.computed) == 3  # nothing left to retry


def test_force_recomputes_an_up_to_date_composite(engine, world_copy, tmp_path):
    name = "force-build"
    register_world(engine, world_copy, name)
    store = LocalStore(tmp_path / "store")
    backend = CountingBackend()
    (first,) = build_composites(engine, CompositeRequest(name, _recipe(name), sensors=("sentinel-1",)), store=store,
                                backend=backend)
    Path(first.uri).unlink()  # the published COG lost: a forced build restores it
    forced = CompositeRequest(name, _recipe(name), sensors=("sentinel-1",), force=True)
    (again,) = build_composites(engine, forced, store=store, backend=backend)
    assert (again.status, again.version, again.uri) == ("recomputed", 1, first.uri)
    assert backend.computed == ["sentinel-1", "sentinel-1"] and Path(first.uri).is_file()
    assert len(_rows(engine, name)) == 1


def test_cli_warns_on_a_refused_sensor_and_fails_only_when_nothing_is_usable(engine, world_copy, tmp_path,
                                                                              monkeypatch):
    name = "refuse-cli"
    register_world(engine, world_copy, name)
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SOILCLAY_STORE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("SOILCLAY_WORK_DIR", str(tmp_path / "work"))
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"s2": {"min_bare_count": 1000}, "tile_size": 128}')
    runner = CliRunner()
    args = ["composites", "build", "--aoi", name, "--recipe", str(recipe)]

    one = runner.invoke(main, args)
    assert one.exit_code == 0, one.output
    assert f"Warning: AOI {name}: sentinel-2 composite refused" in one.output
    assert "sentinel-1: created (version 1" in one.output

    none = runner.invoke(main, [*args, "--sensor", "sentinel-2"])
    assert none.exit_code == 1, none.output
    assert none.output.count("Warning:") == 1
    assert none.output.strip().splitlines()[-1] == (
        f"Error: no usable composite for AOI {name}: sentinel-2 refused (see the warnings above)")
    forced = runner.invoke(main, ["composites", "build", "--aoi", name, "--sensor", "sentinel-1", "--force",
                                  "--recipe", str(recipe)])
    assert forced.exit_code == 0 and "sentinel-1: recomputed (version 1" in forced.output, forced.output
    rows = _rows(engine, name)
    assert [(r.sensor, r.version) for r in rows] == [("sentinel-1", 1)] and Path(rows[0].uri).is_file()
