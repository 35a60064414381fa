"""The local Prometheus's ``prometheus.yml``, rendered from plain values (pure: no file, no network).

Scrape jobs (their names are the contract of the alert rules in ``monitoring/prometheus/rules`` and of the
Grafana dashboards):

- ``soilclay``: soilclay's exporter (``soilclay metrics serve``), ``/metrics``;
- ``prometheus``: Prometheus itself;
- ``tf-serving``: TensorFlow Serving's REST port, ``/monitoring/prometheus/metrics``, only when a TF Serving
  address is given (``PrometheusConfig.tf_serving``): the local demo predicts in-process, and a target that
  never answers would keep ``TFServingDown`` firing;
- ``airflow``: Airflow's metrics through the statsd-exporter, in Kubernetes only (never rendered here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from soilclay.errors import BadInputError
from soilclay.monitoring.tf_serving import PROMETHEUS_PATH as TF_SERVING_METRICS_PATH

JOB_SOILCLAY = "soilclay"
JOB_PROMETHEUS = "prometheus"
JOB_TF_SERVING = "tf-serving"
JOB_AIRFLOW = "airflow"
JOBS = (JOB_SOILCLAY, JOB_PROMETHEUS, JOB_TF_SERVING, JOB_AIRFLOW)
DEFAULT_INTERVAL = "15s"
#: Where the repository keeps the alert rules and their promtool tests.
RULES_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus" / "rules"
RULES_GLOB = "*.rules.yml"
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


@dataclass(frozen=True)
class PrometheusConfig:
    """What the local ``prometheus.yml`` says. Targets are ``host:port``."""

    exporter: str
    prometheus: str
    #: TF Serving's REST base URL (``http://host:8501``); None: no ``tf-serving`` job.
    tf_serving: str | None = None
    rule_files: tuple[str, ...] = (str(RULES_DIR / RULES_GLOB),)
    scrape_interval: str = DEFAULT_INTERVAL
    evaluation_interval: str = DEFAULT_INTERVAL


def check_duration(value: str, what: str) -> str:
    """A Prometheus duration (``15s``, ``1m30s``), else BadInputError naming ``what``."""
    if not _DURATION.match(value or ""):
        raise BadInputError(f"{what} must be a Prometheus duration such as 15s or 1m, found {value!r}")
    return value


def tf_serving_target(rest_url: str) -> tuple[str, str]:
    """``(scheme, host:port)`` of TF Serving's REST base URL; the port defaults to 8501."""
    parts = urlsplit(rest_url if "://" in rest_url else f"http://{rest_url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"SOILCLAY_TF_SERVING_REST must be an http(s) URL such as http://host:8501, "
                            f"found {rest_url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.scheme, f"{host}:{parts.port or 8501}"


def _job(name: str, target: str, *, metrics_path: str = "/metrics", scheme: str = "http") -> dict:
    job: dict = {"job_name": name}
    if metrics_path != "/metrics":
        job["metrics_path"] = metrics_path
    if scheme != "http":
        job["scheme"] = scheme
    job["static_configs"] = [{"targets": [target]}]
    return job


def scrape_configs(config: PrometheusConfig) -> list[dict]:
    jobs = [_job(JOB_SOILCLAY, config.exporter), _job(JOB_PROMETHEUS, config.prometheus)]
    if config.tf_serving:
        scheme, target = tf_serving_target(config.tf_serving)
        jobs.append(_job(JOB_TF_SERVING, target, metrics_path=TF_SERVING_METRICS_PATH, scheme=scheme))
    return jobs


def document(config: PrometheusConfig) -> dict:
    return {
        "global": {"scrape_interval": check_duration(config.scrape_interval, "the scrape interval"),
                   "evaluation_interval": check_duration(config.evaluation_interval, "the evaluation interval")},
        "rule_files": list(config.rule_files),
        "scrape_configs": scrape_configs(config),
    }


def render(config: PrometheusConfig) -> str:
    """The text of ``prometheus.yml``."""
    header = "# Written by soilclay (soilclay.monitoring.prometheus); rewritten at every `soilclay airflow up`.\n"
    return header + yaml.safe_dump(document(config), sort_keys=False, default_flow_style=False)
