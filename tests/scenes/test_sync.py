"""Scene arrival recorded in PostGIS: idempotent, watermark-driven, new scenes only."""

from __future__ import annotations

import json
import shutil

from sqlalchemy import text

from soilclay.db.aois import register_aoi
from soilclay.demo import world
from soilclay.io.vector import read_aoi_file
from soilclay.scenes.local import LocalStacSource
from soilclay.scenes.sync import sync_scenes


def test_sync_records_each_scene_once_and_picks_up_new_ones(engine, small_world, tmp_path):
    copy = tmp_path / "w"
    shutil.copytree(small_world, copy)
    geometry, props = read_aoi_file(copy / "aoi.geojson")
    register_aoi(engine, "sync-test", geometry, props["grid_crs"])
    source = LocalStacSource(copy / "scenes")

    first = sync_scenes(engine, "sync-test", source)
    assert first.new == {"sentinel-2-l2a": 146, "sentinel-1-grd": 122}
    assert first.watermark_before is None and first.watermark_after is not None

    again = sync_scenes(engine, "sync-test", source)
    assert again.new_total == 0 and again.watermark_before == first.watermark_after
    assert again.listed < 10  # only the overlap window before the watermark is listed again

    world.add_scenes(copy, 3, workers=1)
    later = sync_scenes(engine, "sync-test", source)
    assert later.new["sentinel-2-l2a"] == 3 and later.new.get("sentinel-1-grd", 0) >= 1
    assert later.watermark_after > first.watermark_after

    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT count(*) AS n, count(DISTINCT scene_id) AS d, min(cloud_cover) AS lo, max(cloud_cover) AS hi, "
            "bool_and(ST_Intersects(footprint, a.geom)) AS inside, bool_and(href LIKE '%.json') AS hrefs "
            "FROM soilclay.scenes JOIN soilclay.aois a USING (aoi_id) WHERE a.name = 'sync-test'")).one()
        orbit = conn.execute(text(
            "SELECT DISTINCT properties->>'orbit_state' FROM soilclay.scenes s JOIN soilclay.aois a USING (aoi_id) "
            "WHERE a.name = 'sync-test' AND collection = 'sentinel-1-grd'")).scalars().all()
    assert row.n == row.d == 146 + 122 + 3 + later.new["sentinel-1-grd"]
    assert row.lo == 0 and row.hi > 95 and row.inside and row.hrefs
    assert sorted(orbit) == ["ascending", "descending"]


def test_scenes_outside_the_aoi_are_not_listed(small_world):
    far_away = {"type": "Polygon", "coordinates": [[[10, 50], [10.1, 50], [10.1, 50.1], [10, 50.1], [10, 50]]]}
    assert LocalStacSource(small_world / "scenes").list_scenes(far_away, ("sentinel-2-l2a",)) == []
    aoi = json.loads((small_world / "aoi.geojson").read_text())["features"][0]["geometry"]
    assert len(LocalStacSource(small_world / "scenes").list_scenes(aoi, ("sentinel-2-l2a",))) == 146
