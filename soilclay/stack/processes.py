"""Prepare, start and stop a local Airflow 3.3 deployment: api-server, scheduler (LocalExecutor),
dag-processor and triggerer, each the ``airflow`` executable in its own process group; with them the
monitoring components (exporter, Prometheus: :mod:`soilclay.stack.monitoring`).

Nothing here imports Airflow: the ``airflow`` command runs as subprocesses and the health check is
plain HTTP. State lives in the Airflow home (:class:`~soilclay.stack.config.StackSpec`):

- ``secrets.json`` (mode 0600): JWT secret, API secret key and Fernet key, generated once, shared by
  all processes, never printed;
- ``simple_auth_manager_passwords.json``: the admin login (SimpleAuthManager);
- ``logs/<component>.log``: each process's stdout/stderr (task logs: ``logs/dag_id=...``);
- ``run/<component>.pid``: the running processes, so ``start`` reuses them and ``stop`` finds them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy.engine import make_url

from soilclay.errors import SoilclayError
from soilclay.stack import monitoring, procgroup
from soilclay.stack.config import (
    COMPONENTS,
    HEALTH_KEYS,
    POOLS,
    START_ORDER,
    STOP_ORDER,
    StackSpec,
    airflow_env,
)


class StackError(SoilclayError):
    """The local Airflow deployment could not be prepared, started or stopped."""


def airflow_executable() -> str:
    """The ``airflow`` next to this interpreter (the venv's), else the first on PATH."""
    candidate = Path(sys.executable).parent / "airflow"
    found = str(candidate) if candidate.exists() else shutil.which("airflow")
    if not found:
        raise StackError("the `airflow` executable was not found next to python nor on PATH")
    return found


def _write_private(path: Path, data: dict) -> None:
    """JSON readable by the owner only (created with mode 0600, never world-readable in between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(data, out)


def load_secrets(spec: StackSpec) -> dict[str, str]:
    """The deployment's JWT secret, API secret key and Fernet key, generated into ``secrets.json`` once."""
    if not spec.secrets_file.exists():
        _write_private(spec.secrets_file, {
            "jwt_secret": secrets.token_urlsafe(48), "api_secret_key": secrets.token_urlsafe(48),
            "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode()})
    return json.loads(spec.secrets_file.read_text())


def environment(spec: StackSpec) -> dict[str, str]:
    return airflow_env(spec, load_secrets(spec), os.environ)


def write_passwords(spec: StackSpec) -> None:
    """The SimpleAuthManager passwords file: exactly the spec's admin login (read at api-server start)."""
    _write_private(spec.passwords_file, {spec.admin_user: spec.admin_password})


def ensure_metadata_database(metadata_url: str) -> bool:
    """Create the (plain) metadata database when missing; True when it was created."""
    from soilclay.db.admin import create_database

    return create_database(make_url(metadata_url).set(drivername="postgresql+psycopg").render_as_string(
        hide_password=False))


def run_airflow(spec: StackSpec, *args: str, timeout: float = 600) -> str:
    """Run ``airflow ARGS`` to completion in the deployment's environment; its output, or StackError."""
    proc = subprocess.run([airflow_executable(), *args], env=environment(spec), cwd=spec.home, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise StackError(f"`airflow {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def prepare(spec: StackSpec, log=print) -> None:
    """Metadata database, schema (``airflow db migrate``, idempotent), pools, login. Safe to repeat."""
    for folder in (spec.home, spec.log_dir, spec.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if ensure_metadata_database(spec.metadata_url):
        log(f"created metadata database {make_url(spec.metadata_url).database}")
    started = time.monotonic()
    run_airflow(spec, "db", "migrate")
    log(f"airflow db migrate: done in {time.monotonic() - started:.0f} s")
    for name, (slots, description) in POOLS.items():
        # deferred tasks hold their slot: an Earth Engine export is deferred for almost all its life
        run_airflow(spec, "pools", "set", name, str(slots), description, "--include-deferred")
    write_passwords(spec)


def _is_airflow(component: str):
    """Recognises ``airflow <component>`` (not a recycled pid; the api-server retitles itself api_server)."""
    def check(proc: psutil.Process) -> bool:
        cmdline = " ".join(proc.cmdline()).replace("_", "-")
        return "airflow" in cmdline and component in cmdline
    return check


def running(spec: StackSpec) -> dict[str, int | None]:
    """Airflow component -> pid of its live process (None: not running, stale pid files are ignored).
    The monitoring components: :func:`soilclay.stack.monitoring.running`."""
    return {c: procgroup.read_pid(spec.pid_file(c), _is_airflow(c)) for c in COMPONENTS}


def log_tail(spec: StackSpec, component: str, lines: int = 25) -> str:
    return procgroup.log_tail(spec.log_file(component), lines)


def health(spec: StackSpec) -> dict | None:
    """``GET /api/v2/monitor/health`` (no login needed), or None while the api-server does not answer."""
    try:
        response = httpx.get(f"{spec.base_url}/api/v2/monitor/health", timeout=5)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def unhealthy(report: dict | None) -> list[str]:
    """Components not healthy in a health report (all of them when there is no report)."""
    if report is None:
        return list(COMPONENTS)
    return [c for c, key in HEALTH_KEYS.items() if (report.get(key) or {}).get("status") != "healthy"]


def start(spec: StackSpec, timeout: float = 180, log=print) -> dict[str, int]:
    """Start the components not already running (detached, own process groups); wait until all are healthy.

    With ``spec.monitoring`` the exporter and Prometheus start first (:mod:`soilclay.stack.monitoring`: a
    few seconds, and a busy port fails before Airflow's minute of start-up). Returns the Airflow pids."""
    for folder in (spec.log_dir, spec.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if spec.monitoring:
        monitoring.start(spec, log=log)
    if not spec.passwords_file.exists():
        write_passwords(spec)
    env = environment(spec)
    pids = running(spec)
    deadline = time.monotonic() + timeout
    for component in START_ORDER:
        if pids[component]:
            log(f"{component}: already running (pid {pids[component]})")
            continue
        args = [airflow_executable(), component]
        if component == "api-server":
            args += ["--port", str(spec.port), "--host", "127.0.0.1"]
        pids[component] = procgroup.launch(args, env=env, cwd=spec.home, log_file=spec.log_file(component),
                                           pid_file=spec.pid_file(component))
        log(f"{component}: started (pid {pids[component]}, log {spec.log_file(component)})")
        if component == "api-server":
            # Task processes report to the api-server's Execution API from their first second: a scheduler
            # started before it answers runs its start-up ticks into timeouts (and a long retry delay).
            _wait_answering(spec, deadline)
    wait_healthy(spec, max(deadline - time.monotonic(), 30))
    return {c: p for c, p in pids.items() if p}


def _wait_answering(spec: StackSpec, deadline: float, poll: float = 1) -> None:
    """Until the api-server answers its health endpoint (whatever the other components' state)."""
    while health(spec) is None:
        if running(spec)["api-server"] is None:
            raise StackError(f"api-server exited during start-up; tail of {spec.log_file('api-server')}:\n"
                             f"{log_tail(spec, 'api-server')}")
        if time.monotonic() > deadline:
            raise StackError(f"api-server not answering {spec.base_url}/api/v2/monitor/health; tail of "
                             f"{spec.log_file('api-server')}:\n{log_tail(spec, 'api-server')}")
        time.sleep(poll)


def wait_healthy(spec: StackSpec, timeout: float = 180, poll: float = 2) -> dict:
    """Until the health report says all four components are healthy; StackError naming the culprit."""
    deadline = time.monotonic() + timeout
    while True:
        dead = [c for c, pid in running(spec).items() if pid is None]
        if dead:
            raise StackError(f"{dead[0]} exited during start-up; tail of {spec.log_file(dead[0])}:\n"
                             f"{log_tail(spec, dead[0])}")
        report = health(spec)
        bad = unhealthy(report)
        if not bad:
            return report  # type: ignore[return-value]
        if time.monotonic() > deadline:
            details = "\n".join(f"--- {c} ({spec.log_file(c)}):\n{log_tail(spec, c)}" for c in bad)
            raise StackError(f"not healthy after {timeout:.0f} s: {', '.join(bad)}\n{details}")
        time.sleep(poll)


def stop(spec: StackSpec, timeout: float = 30, log=print) -> list[str]:
    """SIGTERM each component's process group (and descendants that left it), the api-server last;
    SIGKILL whatever is left after ``timeout`` seconds. The monitoring components (exporter, Prometheus)
    go first, whether or not the spec asks for them. Returns the components that were running."""
    stopped = monitoring.stop(spec, log=log)
    pids = {c: p for c, p in running(spec).items() if p}
    for phase in STOP_ORDER:
        procgroup.terminate({c: pids[c] for c in phase if c in pids}, timeout=timeout, log=log)
    for component in COMPONENTS:
        spec.pid_file(component).unlink(missing_ok=True)
    return stopped + list(pids)


class Stack:
    """``with Stack(spec) as stack:`` prepares and starts the deployment and always stops it on exit."""

    def __init__(self, spec: StackSpec, timeout: float = 180, log=print):
        self.spec, self.timeout, self.log = spec, timeout, log

    def __enter__(self) -> Stack:
        prepare(self.spec, log=self.log)
        try:
            start(self.spec, timeout=self.timeout, log=self.log)
        except BaseException:
            stop(self.spec, log=self.log)
            raise
        return self

    def __exit__(self, *exc) -> None:
        stop(self.spec, log=self.log)
