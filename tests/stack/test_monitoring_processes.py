"""The monitoring components for real, without Airflow: the exporter on a migrated test database and
Prometheus scraping it, started and stopped by :mod:`soilclay.stack.monitoring` (and processes.stop)."""

from __future__ import annotations

import socket
import time

import httpx
import psutil

from soilclay.settings import Settings
from soilclay.stack import monitoring, processes
from soilclay.stack.config import default_spec
from tests.ports import free_ports


def query(spec, expr: str) -> list[dict]:
    response = httpx.get(f"http://{spec.prometheus_address}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def wait_for(spec, expr: str, timeout: float = 45) -> list[dict]:
    """The query's result once it is not empty (Prometheus scrapes each job on its own schedule)."""
    deadline = time.monotonic() + timeout
    while not (result := query(spec, expr)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return result


def test_prometheus_scrapes_the_exporter_and_stop_leaves_nothing(migrated_url, tmp_path):
    exporter_port, prometheus_port = free_ports(2)
    spec = default_spec(Settings(database_url=migrated_url), home=tmp_path / "airflow", environ={}, cwd=tmp_path,
                        exporter_port=exporter_port, prometheus_port=prometheus_port, scrape_interval="1s")
    lines: list[str] = []
    family: list[psutil.Process] = []
    try:
        started = monitoring.start(spec, timeout=60, log=lines.append)
        assert set(started) == {"exporter", "prometheus"}, lines
        for pid in started.values():
            family += [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        assert monitoring.running(spec) == started
        assert processes.running(spec) == dict.fromkeys(processes.COMPONENTS)  # no Airflow here
        metrics = httpx.get(f"http://{spec.exporter_address}/metrics", timeout=10).text
        assert "soilclay_database_up 1.0" in metrics
        up = wait_for(spec, 'up{job="soilclay"} == 1')
        assert up and up[0]["metric"]["instance"] == spec.exporter_address, up
        assert wait_for(spec, 'soilclay_database_up{job="soilclay"}')[0]["value"][1] == "1"
        assert wait_for(spec, 'up{job="prometheus"} == 1')  # the two jobs' first scrapes are not ordered
        rules = httpx.get(f"http://{spec.prometheus_address}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in rules} >= {"soilclay.availability", "soilclay.pipeline"}
        # a second start finds them running and starts nothing new
        assert monitoring.start(spec, log=lines.append) == started
        assert "pw" not in "\n".join(lines)
    finally:
        stopped = processes.stop(spec, log=lines.append)
    assert set(stopped) == {"exporter", "prometheus"}
    psutil.wait_procs(family, timeout=5)
    left = [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left after stop: {left}"
    assert monitoring.running(spec) == {"exporter": None, "prometheus": None}
    assert not spec.pid_file("exporter").exists() and not spec.pid_file("prometheus").exists()
    with socket.socket() as s:
        s.bind(("127.0.0.1", prometheus_port))  # the port is free again
