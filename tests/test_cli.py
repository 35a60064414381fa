"""The console script's stage commands, run as a user would (against the real database)."""

from click.testing import CliRunner

from soilclay.cli import main
from soilclay.db import migrate


def test_settings_command_masks_secrets(monkeypatch):
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", "postgresql://u:hunter2@localhost/soilclay")
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0, result.output
    assert "SOILCLAY_DATABASE_URL" in result.output and "hunter2" not in result.output


def test_db_create_upgrade_current_downgrade(db_factory, monkeypatch):
    url = db_factory()
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", url)
    runner = CliRunner()
    assert "database ready" in runner.invoke(main, ["db", "create"]).output
    first = runner.invoke(main, ["db", "upgrade"])
    assert first.exit_code == 0 and f"Schema upgraded: empty -> {migrate.head_revision()}" in first.output
    assert "nothing to do" in runner.invoke(main, ["db", "upgrade"]).output
    assert "(up to date)" in runner.invoke(main, ["db", "current"]).output
    down = runner.invoke(main, ["db", "downgrade", "base"])
    assert down.exit_code == 0 and f"{migrate.head_revision()} -> base" in down.output
    assert "behind" in runner.invoke(main, ["db", "current"]).output


def test_demo_world_command_reports_what_it_made(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["demo-world", "--out", str(tmp_path / "w"), "--size", "small", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "146 Sentinel-2 L2A" in result.output and "soil samples: 120" in result.output
    again = runner.invoke(main, ["demo-world", "--out", str(tmp_path / "w"), "--size", "small", "--seed", "3"])
    assert "nothing to do" in again.output
    more = runner.invoke(main, ["demo-world", "--out", str(tmp_path / "w"), "--add-scenes", "2"])
    assert more.exit_code == 0 and "new: 2 S2" in more.output


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    result = CliRunner().invoke(main, ["demo-world", "--out", str(tmp_path), "--add-scenes", "2"])
    assert result.exit_code != 0
    assert "no world.json" in result.output


def test_aoi_scenes_composites_commands(db_factory, small_world, tmp_path, monkeypatch):
    from soilclay.db import migrate

    url = db_factory()
    migrate.upgrade(url)
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", url)
    monkeypatch.setenv("SOILCLAY_SCENE_ARCHIVE", str(small_world / "scenes"))
    monkeypatch.setenv("SOILCLAY_STORE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("SOILCLAY_WORK_DIR", str(tmp_path / "work"))
    runner = CliRunner()
    added = runner.invoke(main, ["aoi", "add", str(small_world / "aoi.geojson")])
    assert added.exit_code == 0 and "AOI demo-small registered" in added.output, added.output
    assert "demo-small" in runner.invoke(main, ["aoi", "list"]).output
    synced = runner.invoke(main, ["scenes", "sync", "--aoi", "demo-small"])
    assert "new: 146 sentinel-2-l2a, 122 sentinel-1-grd" in synced.output, synced.output
    assert "new: none" in runner.invoke(main, ["scenes", "sync", "--aoi", "demo-small"]).output
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"s2": {"statistic": "p25"}, "s1": {"orbit_pass": "ascending"}, "tile_size": 128}')
    built = runner.invoke(main, ["composites", "build", "--aoi", "demo-small", "--recipe", str(recipe)])
    assert built.exit_code == 0, built.output
    assert "sentinel-2: created (version 1, 144 scenes" in built.output
    assert "no clear pixel over the AOI" in built.output  # the skipped all-cloud scenes are named
    again = runner.invoke(main, ["composites", "build", "--aoi", "demo-small", "--recipe", str(recipe)])
    assert again.output.count("up-to-date") == 2
    listed = runner.invoke(main, ["composites", "list", "--aoi", "demo-small"])
    assert listed.output.count(" v1 ") == 2 and str(tmp_path / "store") in listed.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"s2": {"min_bare_count": 0}}')
    refused = runner.invoke(main, ["composites", "build", "--aoi", "demo-small", "--recipe", str(bad)])
    assert refused.exit_code == 1 and "s2.min_bare_count" in refused.output
    unknown = runner.invoke(main, ["composites", "build", "--aoi", "atlantis"])
    assert unknown.exit_code == 1 and "unknown AOI 'atlantis'; registered: demo-small" in unknown.output
