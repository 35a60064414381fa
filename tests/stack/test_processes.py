"""The process machinery's local parts: secrets, pid files, health parsing, the CLI's view of a home."""

import json
import os
import stat
import subprocess

from click.testing import CliRunner

from soilclay.cli import main
from soilclay.settings import Settings
from soilclay.stack import processes
from soilclay.stack.config import default_spec

HEALTHY = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"},
           "triggerer": {"status": "healthy"}, "dag_processor": {"status": "healthy"}}


def spec_in(tmp_path, **kwargs):
    return default_spec(Settings(), home=tmp_path / "home", environ={}, cwd=tmp_path, **kwargs)


def test_secrets_are_generated_once_and_private(tmp_path):
    spec = spec_in(tmp_path)
    first = processes.load_secrets(spec)
    assert set(first) == {"jwt_secret", "api_secret_key", "fernet_key"}
    assert processes.load_secrets(spec) == first
    assert stat.S_IMODE(os.stat(spec.secrets_file).st_mode) == 0o600


def test_passwords_file_holds_the_admin_login(tmp_path):
    spec = spec_in(tmp_path, admin=("admin", "s3cret"))
    processes.write_passwords(spec)
    assert json.loads(spec.passwords_file.read_text()) == {"admin": "s3cret"}


def test_stale_or_foreign_pid_files_do_not_count_as_running(tmp_path):
    spec = spec_in(tmp_path)
    spec.run_dir.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        spec.pid_file("scheduler").write_text(str(sleeper.pid))  # alive, but not `airflow scheduler`
        spec.pid_file("triggerer").write_text("999999999")  # no such process
        assert processes.running(spec) == {c: None for c in ("api-server", "scheduler", "dag-processor",
                                                             "triggerer")}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_unhealthy_names_the_components():
    assert processes.unhealthy(HEALTHY) == []
    report = {**HEALTHY, "triggerer": {"status": "unhealthy"}, "dag_processor": None}
    assert processes.unhealthy(report) == ["dag-processor", "triggerer"]
    assert processes.unhealthy(None) == ["api-server", "scheduler", "dag-processor", "triggerer"]


def test_status_of_a_stopped_deployment(tmp_path):
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    (home / "run" / "port").write_text("1")  # as recorded by `up`; nothing listens there
    result = CliRunner().invoke(main, ["airflow", "status", "--home", str(home)])
    assert result.exit_code == 1
    assert "scheduler      not running    unreachable" in result.output
    assert "API not answering at http://127.0.0.1:1" in result.output


def test_down_with_nothing_running(tmp_path):
    result = CliRunner().invoke(main, ["airflow", "down", "--home", str(tmp_path / "home")])
    assert result.exit_code == 0 and "nothing was running" in result.output
