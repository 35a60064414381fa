"""The local Prometheus configuration and the alert rules: promtool's own checks and unit tests, and every
metric the rules name is one the exporter (the catalogue), TF Serving or Prometheus publishes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from soilclay.errors import BadInputError
from soilclay.monitoring.prometheus import (
    JOB_PROMETHEUS,
    JOB_SOILCLAY,
    JOB_TF_SERVING,
    JOBS,
    RULES_DIR,
    PrometheusConfig,
    render,
    tf_serving_target,
)
from soilclay.monitoring.promql import known_labels, selectors

PROMETHEUS_DIR = RULES_DIR.parent
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool") or "promtool"  # installed by the bootstrap (Debian's prometheus)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def alerts() -> dict[str, dict]:
    return {r["alert"]: r for r in rules() if "alert" in r}


def known(name: str, recorded: set[str]) -> bool:
    return name in recorded or known_labels(name) is not None and not name.startswith("airflow_")


# --- the renderer -------------------------------------------------------------------------------------------

def test_render_has_the_jobs_intervals_and_rules():
    config = PrometheusConfig(exporter="127.0.0.1:9464", prometheus="127.0.0.1:9090", scrape_interval="2s",
                              evaluation_interval="1s")
    doc = yaml.safe_load(render(config))
    assert doc["global"] == {"scrape_interval": "2s", "evaluation_interval": "1s"}
    assert doc["rule_files"] == [str(RULES_DIR / "*.rules.yml")]
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert list(jobs) == [JOB_SOILCLAY, JOB_PROMETHEUS]
    assert jobs[JOB_SOILCLAY]["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]
    assert "metrics_path" not in jobs[JOB_SOILCLAY]


def test_tf_serving_is_scraped_only_when_given():
    config = PrometheusConfig(exporter="127.0.0.1:9464", prometheus="127.0.0.1:9090",
                              tf_serving="https://serving.example:8601/")
    jobs = {j["job_name"]: j for j in yaml.safe_load(render(config))["scrape_configs"]}
    assert jobs[JOB_TF_SERVING] == {"job_name": "tf-serving", "metrics_path": "/monitoring/prometheus/metrics",
                                    "scheme": "https", "static_configs": [{"targets": ["serving.example:8601"]}]}
    assert tf_serving_target("localhost") == ("http", "localhost:8501")
    with pytest.raises(BadInputError, match="SOILCLAY_TF_SERVING_REST"):
        tf_serving_target("grpc://x:8500")


def test_a_bad_interval_is_one_clear_error():
    with pytest.raises(BadInputError, match="scrape interval must be a Prometheus duration.*'fast'"):
        render(PrometheusConfig(exporter="a:1", prometheus="b:2", scrape_interval="fast"))


def test_promtool_accepts_the_rendered_config(tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(render(PrometheusConfig(exporter="127.0.0.1:9464", prometheus="127.0.0.1:9090",
                                            tf_serving="http://localhost:8501", scrape_interval="1s",
                                            evaluation_interval="1s")))
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


# --- the rules ------------------------------------------------------------------------------------------------

def test_promtool_checks_the_rules():
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass():
    result = promtool("test", "rules", *(p.name for p in TEST_FILES), cwd=PROMETHEUS_DIR / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_in_the_rules_is_published():
    recorded = {r["record"] for r in rules() if "record" in r}
    unknown = sorted({f"{name} (in {r.get('alert') or r.get('record')})" for r in rules()
                      for name, _ in selectors(r["expr"]) if not (name and known(name, recorded))})
    assert not unknown, f"metrics neither in the catalogue, TF Serving's list nor `up`: {unknown}"


def test_rules_name_only_the_contract_jobs():
    jobs = {m["job"] for r in rules() for _, m in selectors(r["expr"]) if "job" in m}
    assert jobs <= set(JOBS) and {JOB_SOILCLAY, JOB_TF_SERVING} <= jobs


def test_pipeline_outcomes_are_pipeline_runs_statuses():
    statuses = {"running", "success", "failed", "skipped"}  # CHECK pipeline_runs_status_known
    outcomes = {m["outcome"] for r in rules() for name, m in selectors(r["expr"])
                if name == "soilclay_pipeline_runs_total" and "outcome" in m}
    assert outcomes and outcomes <= statuses


EXPECTED_ALERTS = {"SoilclayExporterDown", "SoilclayDatabaseUnreadable", "TFServingDown", "TFServingRequestErrors",
                   "SoilclayNoNewScenes", "SoilclayCompositeStale", "SoilclayParcelsWaiting",
                   "SoilclayEstimatesLagging", "SoilclayPipelineRunsFailed", "SoilclayParcelsFlagged"}


def test_every_alert_has_for_severity_and_annotations():
    found = alerts()
    assert set(found) == EXPECTED_ALERTS
    for name, rule in found.items():
        assert "for" in rule, name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "$value" in rule["annotations"]["summary"] + rule["annotations"]["description"], name


def test_every_alert_has_a_firing_and_a_quiet_promtool_case():
    cases: dict[str, list[bool]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(bool(case.get("exp_alerts")))
    for name in EXPECTED_ALERTS:
        assert True in cases.get(name, []) and False in cases.get(name, []), f"{name}: {cases.get(name)}"
