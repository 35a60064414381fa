"""What the local Airflow deployment is (:class:`StackSpec`) and the environment its processes share.

Everything here is pure (no processes, no network, no database) so it can be unit-tested: the
secrets are passed in by :mod:`soilclay.stack.processes`, which generates them once per Airflow home.

Airflow is configured through ``AIRFLOW__SECTION__KEY`` variables only (names checked against
Airflow 3.3.2's ``config_templates/config.yml``); ``airflow.cfg`` in the home stays at its defaults.
The four processes and the task processes they fork get the same environment, which also carries
soilclay's ``SOILCLAY_*`` settings with relative paths made absolute (tasks may run in another cwd)
and the ``soilclay_db`` connection as ``AIRFLOW_CONN_SOILCLAY_DB`` (JSON form).

Next to Airflow run the two monitoring components (:mod:`soilclay.stack.monitoring`): soilclay's exporter
(``soilclay metrics serve``, reading the database the tasks' connection names) and Prometheus (config and
data under ``<home>/prometheus``), both on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from soilclay.monitoring.prometheus import DEFAULT_INTERVAL, PrometheusConfig
from soilclay.settings import Settings

#: Database of Airflow's own metadata, on the same server as soilclay's database.
METADATA_DATABASE = "soilclay_airflow"
DEFAULT_HOME = Path("var/airflow")
DEFAULT_PORT = 8080
#: Local demo login (SimpleAuthManager, role admin); `soilclay airflow up --password` changes the password.
DEFAULT_ADMIN = ("admin", "admin")
#: soilclay settings that are local paths (or URLs, left alone): made absolute for the task processes.
PATH_SETTINGS = ("store_url", "model_base_path", "demo_dir", "scene_archive", "work_dir", "model_config_file",
                 "tf_serving_config_dir", "ee_key_file")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Health-report key of each component (the api-server answers for the metadata database).
HEALTH_KEYS = {"api-server": "metadatabase", "scheduler": "scheduler", "dag-processor": "dag_processor",
               "triggerer": "triggerer"}
#: The api-server stops last: the scheduler's task processes report their end through its Execution API.
STOP_ORDER = (("scheduler", "triggerer", "dag-processor"), ("api-server",))
#: ... and starts first (and answers) before the others start, for the same reason.
START_ORDER = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The monitoring components next to Airflow (each its own process group, pid file and log like Airflow's).
MONITORING_COMPONENTS = ("exporter", "prometheus")
DEFAULT_EXPORTER_PORT = 9464
DEFAULT_PROMETHEUS_PORT = 9090
#: The parcel map page of soilclay's Airflow plugin, under the UI address.
PARCEL_MAP_PATH = "plugin/soilclay-parcel-map"
#: Airflow pools the DAGs use: name -> (slots, description).
POOLS = {"earthengine": (2, "Concurrent Earth Engine exports")}


def repo_root() -> Path:
    """The source checkout holding ``dags/`` and ``plugins/``."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackSpec:
    """One local Airflow deployment: where it lives, what it runs, how tasks reach soilclay."""

    home: Path
    metadata_url: str = field(repr=False)
    #: soilclay's PostGIS database, given to the tasks as the ``soilclay_db`` connection (when TCP).
    database_url: str = field(repr=False)
    dags_folder: Path
    plugins_folder: Path
    port: int = DEFAULT_PORT
    admin_user: str = DEFAULT_ADMIN[0]
    admin_password: str = field(default=DEFAULT_ADMIN[1], repr=False)
    #: Extra environment for every process (and so for the tasks): SOILCLAY_* settings, SOILCLAY_AOIS, ...
    task_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Airflow's dags_are_paused_at_creation. False: asset-scheduled DAGs run without unpausing, but
    #: cron DAGs with catchup=False also start a run for their latest past tick as soon as they are parsed.
    paused_at_creation: bool = False
    #: Ports of the scheduler's and the triggerer's log servers (Airflow: 8793, 8794); default port+1, port+2.
    log_ports: tuple[int, int] | None = None
    #: Run the exporter and Prometheus next to Airflow (``processes.start``/``stop``).
    monitoring: bool = True
    exporter_port: int = DEFAULT_EXPORTER_PORT
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    #: Prometheus's scrape and rule-evaluation interval (a Prometheus duration).
    scrape_interval: str = DEFAULT_INTERVAL
    #: TF Serving's REST base URL for the ``tf-serving`` scrape job; None: not scraped.
    tf_serving_url: str | None = None

    @property
    def worker_log_port(self) -> int:
        return self.log_ports[0] if self.log_ports else self.port + 1

    @property
    def trigger_log_port(self) -> int:
        return self.log_ports[1] if self.log_ports else self.port + 2

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.port}/"

    @property
    def parcel_map_url(self) -> str:
        return f"{self.ui_url}{PARCEL_MAP_PATH}"

    @property
    def exporter_address(self) -> str:
        return f"127.0.0.1:{self.exporter_port}"

    @property
    def prometheus_address(self) -> str:
        return f"127.0.0.1:{self.prometheus_port}"

    @property
    def exporter_url(self) -> str:
        """The exporter's metrics page (also its health check)."""
        return f"http://localhost:{self.exporter_port}/metrics"

    @property
    def prometheus_url(self) -> str:
        return f"http://localhost:{self.prometheus_port}/"

    @property
    def prometheus_dir(self) -> Path:
        return self.home / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def prometheus_data(self) -> Path:
        return self.prometheus_dir / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"


def metadata_url_for(database_url: str, name: str = METADATA_DATABASE) -> str:
    """Airflow's metadata database: same server and credentials as ``database_url``, database ``name``."""
    url = make_url(database_url).set(drivername="postgresql+psycopg2", database=name)
    return url.render_as_string(hide_password=False)


def _absolute(value: str, cwd: Path) -> str:
    if not value or "://" in value or os.path.isabs(value):
        return value
    return str((cwd / value).resolve())


def soilclay_env(settings: Settings, environ: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """``SOILCLAY_*`` for the tasks: those of ``environ``, then every field of ``settings``, paths absolute."""
    env = {k: v for k, v in environ.items() if k.startswith("SOILCLAY_")}
    for name in type(settings).model_fields:
        value = str(getattr(settings, name))
        env[f"SOILCLAY_{name.upper()}"] = _absolute(value, cwd) if name in PATH_SETTINGS else value
    return env


def connection_json(database_url: str) -> str | None:
    """``AIRFLOW_CONN_SOILCLAY_DB`` (JSON, conn type postgres) for ``database_url``.

    A Unix-socket URL (no host, ``?host=/dir``) puts the socket directory in the connection's host,
    as libpq reads it (the DAGs' helper turns it back into ``?host=``). None without any host.
    """
    url = make_url(database_url)
    host = url.host or url.query.get("host")
    if not isinstance(host, str) or not host:
        return None
    url = url.difference_update_query(["host"])
    conn: dict[str, object] = {"conn_type": "postgres", "host": host, "schema": url.database or ""}
    if url.port:
        conn["port"] = url.port
    if url.username:
        conn["login"] = url.username
    if url.password:
        conn["password"] = url.password
    libpq = {k: v for k, v in url.query.items() if isinstance(v, str)}
    if libpq:
        conn["extra"] = libpq
    return json.dumps(conn)


def airflow_env(spec: StackSpec, secrets: Mapping[str, str], base_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of all four processes (and the tasks): ``base_env`` without its Airflow config,
    ``spec.task_env``, this deployment's Airflow config and the ``soilclay_db`` connection."""
    home = spec.home
    conf = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": spec.metadata_url,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(spec.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(spec.plugins_folder),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(spec.paused_at_creation),
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{spec.base_url}/execution/",
        "AIRFLOW__CORE__FERNET_KEY": secrets["fernet_key"],
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{spec.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(spec.passwords_file),
        "AIRFLOW__API__BASE_URL": spec.base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(spec.port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(spec.log_dir),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(spec.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(spec.trigger_log_port),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "PYTHONUNBUFFERED": "1",
    }
    # Inherited Airflow configuration (e.g. a test session's AIRFLOW__CORE__UNIT_TEST_MODE or another
    # AIRFLOW_HOME) must not leak in: this deployment is configured here (or in its home's airflow.cfg).
    inherited = {k: v for k, v in base_env.items()
                 if not k.startswith("AIRFLOW__") and k not in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")}
    env = {**inherited, **spec.task_env, **conf}
    conn = connection_json(spec.database_url)
    if conn:
        env["AIRFLOW_CONN_SOILCLAY_DB"] = conn
    else:
        env.pop("AIRFLOW_CONN_SOILCLAY_DB", None)
    return env


def exporter_env(spec: StackSpec, base_env: Mapping[str, str]) -> dict[str, str]:
    """The exporter's environment: ``base_env`` without Airflow's config, the tasks' ``SOILCLAY_*`` and the
    database the tasks' ``soilclay_db`` connection names (``spec.database_url``, even when the task env
    overrides ``SOILCLAY_DATABASE_URL``). The password travels in the environment only, never in argv."""
    inherited = {k: v for k, v in base_env.items()
                 if not k.startswith("AIRFLOW__") and k not in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")}
    return {**inherited, **spec.task_env, "SOILCLAY_DATABASE_URL": spec.database_url, "PYTHONUNBUFFERED": "1"}


def prometheus_config(spec: StackSpec) -> PrometheusConfig:
    """The local Prometheus's configuration: scrape the exporter, itself and (when set) TF Serving."""
    return PrometheusConfig(exporter=spec.exporter_address, prometheus=spec.prometheus_address,
                            tf_serving=spec.tf_serving_url, scrape_interval=spec.scrape_interval,
                            evaluation_interval=spec.scrape_interval)


def default_spec(settings: Settings, *, home: Path | str | None = None, port: int = DEFAULT_PORT,
                 metadata_url: str | None = None, extra_env: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None, cwd: Path | None = None,
                 admin: tuple[str, str] = DEFAULT_ADMIN, paused_at_creation: bool = False,
                 log_ports: tuple[int, int] | None = None, monitoring: bool = True,
                 exporter_port: int = DEFAULT_EXPORTER_PORT, prometheus_port: int = DEFAULT_PROMETHEUS_PORT,
                 scrape_interval: str = DEFAULT_INTERVAL, tf_serving_url: str | None = None) -> StackSpec:
    """The spec for ``settings``: home ``var/airflow``, metadata DB ``soilclay_airflow`` on soilclay's server."""
    cwd = (cwd or Path.cwd()).resolve()
    environ = os.environ if environ is None else environ
    task_env = soilclay_env(settings, environ, cwd) | dict(extra_env or {})
    root = repo_root()
    return StackSpec(home=(cwd / (home or DEFAULT_HOME)).resolve(),
                     metadata_url=metadata_url or metadata_url_for(settings.database_url),
                     database_url=settings.database_url,
                     dags_folder=root / "dags", plugins_folder=root / "plugins", port=port,
                     admin_user=admin[0], admin_password=admin[1], task_env=task_env,
                     paused_at_creation=paused_at_creation, log_ports=log_ports, monitoring=monitoring,
                     exporter_port=exporter_port, prometheus_port=prometheus_port,
                     scrape_interval=scrape_interval, tf_serving_url=tf_serving_url)
