"""The monitoring components' spec, commands, environment and Prometheus config, built without starting anything."""

import json

import yaml
from click.testing import CliRunner

from soilclay.cli import main
from soilclay.settings import Settings
from soilclay.stack import monitoring
from soilclay.stack.config import default_spec, exporter_env, prometheus_config

TCP_URL = "postgresql+psycopg://clay:pw@db.example:5433/soilclay"


def spec_for(tmp_path, **kwargs):
    return default_spec(Settings(database_url=TCP_URL), home="home", port=8123, environ={}, cwd=tmp_path, **kwargs)


def test_defaults_and_addresses(tmp_path):
    spec = spec_for(tmp_path)
    assert spec.monitoring and (spec.exporter_port, spec.prometheus_port) == (9464, 9090)
    assert spec.parcel_map_url == "http://localhost:8123/plugin/soilclay-parcel-map"
    assert spec.prometheus_url == "http://localhost:9090/"
    assert spec.exporter_url == "http://localhost:9464/metrics"
    assert spec.prometheus_config == tmp_path / "home" / "prometheus" / "prometheus.yml"
    assert spec.pid_file("exporter") == tmp_path / "home" / "run" / "exporter.pid"
    assert spec.log_file("prometheus") == tmp_path / "home" / "logs" / "prometheus.log"


def test_commands(tmp_path):
    spec = spec_for(tmp_path, exporter_port=19464, prometheus_port=19090)
    assert monitoring.exporter_command(spec)[-6:] == ["metrics", "serve", "--port", "19464", "--host", "127.0.0.1"]
    home = tmp_path / "home"
    assert monitoring.prometheus_command(spec, "/usr/bin/prometheus") == [
        "/usr/bin/prometheus", f"--config.file={home}/prometheus/prometheus.yml",
        f"--storage.tsdb.path={home}/prometheus/data", "--web.listen-address=127.0.0.1:19090"]
    assert monitoring.health_url(spec, "prometheus") == "http://127.0.0.1:19090/-/ready"
    assert monitoring.health_url(spec, "exporter") == "http://127.0.0.1:19464/metrics"


def test_the_exporter_reads_the_database_the_tasks_connection_names(tmp_path):
    decoy = "postgresql+psycopg://clay@db.example:5433/no_such_db"
    spec = spec_for(tmp_path, extra_env={"SOILCLAY_DATABASE_URL": decoy, "SOILCLAY_AOIS": "demo"})
    env = exporter_env(spec, {"PATH": "/usr/bin", "AIRFLOW__CORE__UNIT_TEST_MODE": "True", "AIRFLOW_HOME": "/x"})
    assert env["SOILCLAY_DATABASE_URL"] == TCP_URL
    assert env["SOILCLAY_AOIS"] == "demo" and env["PATH"] == "/usr/bin"
    assert not any(k.startswith("AIRFLOW") for k in env)
    assert not any("pw" in arg for arg in monitoring.exporter_command(spec))


def test_prometheus_config_of_the_spec(tmp_path):
    spec = spec_for(tmp_path, exporter_port=1001, prometheus_port=1002, scrape_interval="1s",
                    tf_serving_url="http://localhost:8501")
    config = prometheus_config(spec)
    assert (config.exporter, config.prometheus, config.tf_serving) == ("127.0.0.1:1001", "127.0.0.1:1002",
                                                                       "http://localhost:8501")
    monitoring.write_config(spec)
    doc = yaml.safe_load(spec.prometheus_config.read_text())
    assert doc["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert [j["job_name"] for j in doc["scrape_configs"]] == ["soilclay", "prometheus", "tf-serving"]
    assert spec.prometheus_data.is_dir()
    assert prometheus_config(spec_for(tmp_path)).tf_serving is None


def test_stale_pid_files_of_monitoring_components_do_not_count(tmp_path):
    spec = spec_for(tmp_path)
    spec.run_dir.mkdir(parents=True)
    spec.pid_file("exporter").write_text("999999999")
    spec.pid_file("prometheus").write_text("garbage")
    assert monitoring.running(spec) == {"exporter": None, "prometheus": None}


def test_a_busy_port_is_one_clear_error(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        spec = spec_for(tmp_path, exporter_port=port)
        try:
            monitoring.start(spec, log=lambda _: None)
        except monitoring.MonitoringError as exc:
            assert f"exporter: port {port} on 127.0.0.1 is in use" in str(exc) and "--exporter-port" in str(exc)
        else:
            raise AssertionError("started on a busy port")
        finally:
            monitoring.stop(spec, log=lambda _: None)


def test_without_prometheus_the_exporter_still_starts(tmp_path, monkeypatch):
    spec = spec_for(tmp_path)
    monkeypatch.setattr(monitoring, "prometheus_executable", lambda: None)
    lines: list[str] = []
    assert monitoring._command(spec, "prometheus", lines.append) is None
    assert len(lines) == 1 and "prometheus: not installed" in lines[0] and "carrying on" in lines[0]
    assert monitoring._command(spec, "exporter", lines.append) == monitoring.exporter_command(spec)


def test_up_refuses_a_bad_scrape_interval_before_starting_anything(tmp_path):
    result = CliRunner().invoke(main, ["airflow", "up", "--home", str(tmp_path / "home"), "--scrape-interval", "x"])
    assert result.exit_code == 1 and "--scrape-interval must be a Prometheus duration" in result.output
    assert not (tmp_path / "home").exists()


def test_status_and_down_use_the_recorded_monitoring(tmp_path):
    run = tmp_path / "home" / "run"
    run.mkdir(parents=True)
    (run / "port").write_text("1")
    (run / "monitoring.json").write_text(json.dumps({"monitoring": True, "exporter_port": 1, "prometheus_port": 2,
                                                     "scrape_interval": "15s", "tf_serving_url": None}))
    result = CliRunner().invoke(main, ["airflow", "status", "--home", str(tmp_path / "home")])
    assert result.exit_code == 1
    assert "exporter       not running    unreachable" in result.output
    down = CliRunner().invoke(main, ["airflow", "down", "--home", str(tmp_path / "home")])
    assert down.exit_code == 0 and "nothing was running" in down.output
