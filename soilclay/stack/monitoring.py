"""Start, check and stop the local stack's monitoring components, alone or next to Airflow:

- ``exporter``: ``soilclay metrics serve --port P --host 127.0.0.1`` (health: ``GET /metrics``), with the
  database settings the tasks get (:func:`soilclay.stack.config.exporter_env`);
- ``prometheus``: the ``prometheus`` executable on PATH with ``<home>/prometheus/prometheus.yml`` (rendered
  at every start by :mod:`soilclay.monitoring.prometheus`) and its TSDB in ``<home>/prometheus/data``
  (health: ``GET /-/ready``). Without the executable it is left out, said in one line.

Like the Airflow components, each is its own process group with ``run/<name>.pid`` and ``logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import psutil

from soilclay.errors import SoilclayError
from soilclay.monitoring.prometheus import render
from soilclay.stack import procgroup
from soilclay.stack.config import MONITORING_COMPONENTS, StackSpec, exporter_env, prometheus_config


class MonitoringError(SoilclayError):
    """The exporter or Prometheus could not be started."""


def prometheus_executable() -> str | None:
    return shutil.which("prometheus")


def exporter_command(spec: StackSpec) -> list[str]:
    """``soilclay metrics serve`` of this interpreter's installation (the venv's console script, else -m)."""
    script = Path(sys.executable).parent / "soilclay"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "soilclay.cli"]
    return [*head, "metrics", "serve", "--port", str(spec.exporter_port), "--host", "127.0.0.1"]


def prometheus_command(spec: StackSpec, executable: str = "prometheus") -> list[str]:
    return [executable, f"--config.file={spec.prometheus_config}", f"--storage.tsdb.path={spec.prometheus_data}",
            f"--web.listen-address={spec.prometheus_address}"]


def health_url(spec: StackSpec, component: str) -> str:
    if component == "exporter":
        return f"http://{spec.exporter_address}/metrics"
    return f"http://{spec.prometheus_address}/-/ready"


def port_of(spec: StackSpec, component: str) -> int:
    return spec.exporter_port if component == "exporter" else spec.prometheus_port


def _is(spec: StackSpec, component: str):
    """Recognises the component's process by its command line (a pid file may name a recycled pid)."""
    def check(proc: psutil.Process) -> bool:
        args = proc.cmdline()
        if component == "exporter":
            return "metrics" in args and "serve" in args and any("soilclay" in a for a in args)
        return bool(args) and Path(args[0]).name == "prometheus" and f"--config.file={spec.prometheus_config}" in args
    return check


def running(spec: StackSpec) -> dict[str, int | None]:
    """Monitoring component -> pid of its live process (None: not running)."""
    return {c: procgroup.read_pid(spec.pid_file(c), _is(spec, c)) for c in MONITORING_COMPONENTS}


def healthy(spec: StackSpec, component: str) -> bool:
    try:
        return httpx.get(health_url(spec, component), timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def write_config(spec: StackSpec) -> Path:
    spec.prometheus_data.mkdir(parents=True, exist_ok=True)
    spec.prometheus_config.write_text(render(prometheus_config(spec)))
    return spec.prometheus_config


def _command(spec: StackSpec, component: str, log) -> list[str] | None:
    if component == "exporter":
        return exporter_command(spec)
    executable = prometheus_executable()
    if executable is None:
        log("prometheus: not installed (no `prometheus` on PATH; Debian: apt-get install prometheus), "
            "carrying on without it")
        return None
    return prometheus_command(spec, executable)


def start(spec: StackSpec, timeout: float = 60, log=print) -> dict[str, int]:
    """Start the monitoring components not already running; wait until each answers its health check."""
    for folder in (spec.log_dir, spec.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    write_config(spec)
    pids = running(spec)
    launched: dict[str, int] = {}
    try:
        for component in MONITORING_COMPONENTS:
            if pids[component]:
                log(f"{component}: already running (pid {pids[component]})")
                if component == "prometheus":  # it re-reads the configuration written above
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pids[component], signal.SIGHUP)
                continue
            args = _command(spec, component, log)
            if args is None:
                continue
            port = port_of(spec, component)
            if not _port_free(port):
                raise MonitoringError(f"{component}: port {port} on 127.0.0.1 is in use by another program; "
                                      f"choose another with `soilclay airflow up --{component}-port`")
            env = exporter_env(spec, os.environ) if component == "exporter" else dict(os.environ)
            cwd = spec.prometheus_dir if component == "prometheus" else spec.home
            pids[component] = launched[component] = procgroup.launch(
                args, env=env, cwd=cwd, log_file=spec.log_file(component), pid_file=spec.pid_file(component))
            log(f"{component}: started (pid {pids[component]}, port {port}, log {spec.log_file(component)})")
        started = {c: p for c, p in pids.items() if p}
        wait_healthy(spec, started, timeout)
    except BaseException:
        procgroup.terminate(launched, timeout=10, log=log)  # what this call started; running ones stay
        for component in launched:
            spec.pid_file(component).unlink(missing_ok=True)
        raise
    return started


def wait_healthy(spec: StackSpec, pids: dict[str, int], timeout: float = 60, poll: float = 0.5) -> None:
    """Until every component of ``pids`` answers its health check; MonitoringError naming the culprit.

    Liveness is the pid's (exists, not a zombie): the command-line identity check of :func:`running` is
    for pid files of earlier runs, and right after a launch it has been seen to miss a live Prometheus."""
    deadline = time.monotonic() + timeout
    waiting = list(pids)
    while waiting:
        for component in waiting:
            if not procgroup.pid_alive(pids[component]):
                raise MonitoringError(f"{component} exited during start-up "
                                      f"({procgroup.describe(spec.pid_file(component))}); "
                                      f"tail of {spec.log_file(component)}:\n"
                                      f"{procgroup.log_tail(spec.log_file(component))}")
        waiting = [c for c in waiting if not healthy(spec, c)]
        if not waiting:
            return
        if time.monotonic() > deadline:
            culprit = waiting[0]
            raise MonitoringError(f"{culprit} not answering {health_url(spec, culprit)} after {timeout:.0f} s; "
                                  f"tail of {spec.log_file(culprit)}:\n{procgroup.log_tail(spec.log_file(culprit))}")
        time.sleep(poll)


def stop(spec: StackSpec, timeout: float = 15, log=print) -> list[str]:
    """Stop the monitoring components (SIGTERM their groups, SIGKILL after ``timeout``); those that ran."""
    pids = {c: p for c, p in running(spec).items() if p}
    procgroup.terminate(pids, timeout=timeout, log=log)
    for component in MONITORING_COMPONENTS:
        with contextlib.suppress(OSError):
            spec.pid_file(component).unlink(missing_ok=True)
    return list(pids)
