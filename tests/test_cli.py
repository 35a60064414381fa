"""The console script's stage commands, run as a user would (against the real database)."""

from click.testing import CliRunner

from soilclay.cli import main


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
    assert first.exit_code == 0 and "Schema upgraded: empty -> 0001" in first.output
    assert "nothing to do" in runner.invoke(main, ["db", "upgrade"]).output
    assert "(up to date)" in runner.invoke(main, ["db", "current"]).output
    down = runner.invoke(main, ["db", "downgrade", "base"])
    assert down.exit_code == 0 and "0001 -> base" in down.output
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
