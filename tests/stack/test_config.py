"""The deployment's environment, built without starting anything."""

import json
import subprocess
import sys
from pathlib import Path

from soilclay.settings import Settings
from soilclay.stack.config import airflow_env, connection_json, default_spec, metadata_url_for, soilclay_env

SECRETS = {"jwt_secret": "jwt", "api_secret_key": "key", "fernet_key": "fernet"}
TCP_URL = "postgresql+psycopg://clay:pw@db.example:5433/soilclay?sslmode=require"


def spec_for(tmp_path, **kwargs):
    settings = Settings(database_url=TCP_URL, store_url="var/store", scene_archive="/data/scenes",
                        model_base_path="gs://bucket/models")
    return default_spec(settings, home="var/airflow", port=8123, environ={}, cwd=tmp_path, **kwargs)


def test_metadata_database_is_on_the_same_server_with_psycopg2():
    url = metadata_url_for(TCP_URL)
    assert url.startswith("postgresql+psycopg2://clay:pw@db.example:5433/soilclay_airflow")


def test_soilclay_paths_are_made_absolute_and_urls_left_alone(tmp_path):
    settings = Settings(database_url=TCP_URL, store_url="var/store", model_base_path="gs://bucket/models",
                        scene_archive="/data/scenes")
    env = soilclay_env(settings, {"SOILCLAY_AOIS": "demo-small", "OTHER": "x"}, tmp_path)
    assert env["SOILCLAY_STORE_URL"] == str(tmp_path / "var/store")
    assert env["SOILCLAY_WORK_DIR"] == str(tmp_path / "var/work")
    assert env["SOILCLAY_MODEL_BASE_PATH"] == "gs://bucket/models"
    assert env["SOILCLAY_SCENE_ARCHIVE"] == "/data/scenes"
    assert env["SOILCLAY_AOIS"] == "demo-small" and "OTHER" not in env
    assert env["SOILCLAY_DATABASE_URL"] == TCP_URL


def test_connection_json_for_tcp_and_unix_sockets():
    conn = json.loads(connection_json(TCP_URL))
    assert conn == {"conn_type": "postgres", "host": "db.example", "port": 5433, "login": "clay", "password": "pw",
                    "schema": "soilclay", "extra": {"sslmode": "require"}}
    socket = json.loads(connection_json("postgresql+psycopg://root@/soilclay?host=/var/run/postgresql"))
    assert socket == {"conn_type": "postgres", "host": "/var/run/postgresql", "login": "root", "schema": "soilclay"}
    assert connection_json("postgresql+psycopg:///soilclay") is None


def test_airflow_env(tmp_path):
    spec = spec_for(tmp_path, extra_env={"SOILCLAY_AOIS": "demo-small"})
    base = {"PATH": "/usr/bin", "AIRFLOW__CORE__UNIT_TEST_MODE": "True", "AIRFLOW_HOME": "/elsewhere"}
    env = airflow_env(spec, SECRETS, base)
    assert env["PATH"] == "/usr/bin" and "AIRFLOW__CORE__UNIT_TEST_MODE" not in env
    assert env["AIRFLOW_HOME"] == str(tmp_path / "var/airflow")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt" and env["AIRFLOW__CORE__FERNET_KEY"] == "fernet"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].endswith("simple_auth_manager_passwords.json")
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert Path(env["AIRFLOW__CORE__DAGS_FOLDER"]).name == "dags"
    assert (env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"], env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]) == (
        "8124", "8125")
    assert env["SOILCLAY_AOIS"] == "demo-small" and env["SOILCLAY_STORE_URL"] == str(tmp_path / "var/store")
    assert json.loads(env["AIRFLOW_CONN_SOILCLAY_DB"])["host"] == "db.example"


def test_a_socket_url_is_a_connection_with_the_socket_directory_as_host(tmp_path):
    settings = Settings(database_url="postgresql+psycopg:///soilclay?host=/var/run/postgresql")
    spec = default_spec(settings, environ={}, cwd=tmp_path)
    env = airflow_env(spec, SECRETS, {"AIRFLOW_CONN_SOILCLAY_DB": "stale"})
    assert json.loads(env["AIRFLOW_CONN_SOILCLAY_DB"])["host"] == "/var/run/postgresql"
    assert env["SOILCLAY_DATABASE_URL"].endswith("host=/var/run/postgresql")


def test_no_connection_without_any_host(tmp_path):
    settings = Settings(database_url="postgresql+psycopg:///soilclay")
    env = airflow_env(default_spec(settings, environ={}, cwd=tmp_path), SECRETS, {"AIRFLOW_CONN_SOILCLAY_DB": "x"})
    assert "AIRFLOW_CONN_SOILCLAY_DB" not in env


def test_spec_repr_hides_secrets(tmp_path):
    text = repr(spec_for(tmp_path))
    assert "pw@" not in text and "admin_password" not in text and "task_env" not in text


def test_the_library_never_imports_airflow():
    code = ("import sys, soilclay.cli, soilclay.stack.processes, soilclay.stack.rest; "
            "print(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_connection_follows_the_settings_even_when_the_task_env_overrides_the_url(tmp_path):
    decoy = "postgresql+psycopg://clay@db.example:5433/no_such_db"
    spec = spec_for(tmp_path, extra_env={"SOILCLAY_DATABASE_URL": decoy})
    env = airflow_env(spec, SECRETS, {})
    assert env["SOILCLAY_DATABASE_URL"] == decoy
    assert json.loads(env["AIRFLOW_CONN_SOILCLAY_DB"])["schema"] == "soilclay"


def test_the_api_server_starts_first_and_stops_last():
    from soilclay.stack.config import COMPONENTS, START_ORDER, STOP_ORDER

    assert sorted(START_ORDER) == sorted(COMPONENTS) and START_ORDER[0] == "api-server"
    assert STOP_ORDER[-1] == ("api-server",) and sorted(c for phase in STOP_ORDER for c in phase) == sorted(COMPONENTS)
