"""The Grafana dashboards, their provisioning (compose, Grafana files, the Helm chart), offline.

Every panel query parses as PromQL and names only metrics of soilclay's catalogue, TF Serving's, the Airflow
names the official chart's statsd-exporter produces, or ``up``; the files on disk are the generator's output;
the Grafana provisioning and the compose file point at paths that exist; the Helm chart renders (helm-python-sdk:
Helm's Go SDK, offline) into ConfigMaps that validate against the Kubernetes schema and carry the dashboards
byte for byte.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from soilclay.monitoring import dashboards as gen
from soilclay.monitoring.airflow_names import (
    AIRFLOW_METRIC_NAMES,
    AIRFLOW_METRICS,
    EARTHENGINE_POOL,
    SOILCLAY_DAG_IDS,
)
from soilclay.monitoring.catalogue import BY_NAME as SOILCLAY_METRICS
from soilclay.monitoring.promql import known_labels, selectors, tf_serving_series

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "monitoring" / "grafana" / "dashboards"
PROVISIONING = ROOT / "monitoring" / "grafana" / "provisioning"
COMPOSE = ROOT / "docker" / "compose.yaml"
CHART = ROOT / "helm" / "soilclay"
COMPOSE_PROMETHEUS = ROOT / "docker" / "prometheus" / "prometheus.yml"

ALWAYS_LABELS = {"job", "instance"}


BUILT = gen.build()
ON_DISK = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}
QUERIES = list(gen.panel_queries(ON_DISK.values()))


# --- the dashboards ------------------------------------------------------------------------------------


def test_the_files_on_disk_are_the_generators_output():
    assert gen.check(DASHBOARDS_DIR) == [], "run: python -m soilclay.monitoring.dashboards --write"
    assert set(ON_DISK) == {f"{uid}.json" for uid in (
        "soilclay-health", "soilclay-model", "soilclay-estimates", "soilclay-serving", "soilclay-airflow")}


@pytest.mark.parametrize("name", sorted(ON_DISK))
def test_dashboard_has_uid_unique_panel_ids_and_current_schema(name):
    d = ON_DISK[name]
    assert name == f"{d['uid']}.json" and re.fullmatch(r"[a-z0-9-]{1,40}", d["uid"])
    assert d["schemaVersion"] >= 39
    assert "id" not in d  # provisioned dashboards get their id from Grafana
    ids = [p["id"] for p in gen.iter_panels(d)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    for p in gen.iter_panels(d):
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["title"] and p["targets"], p
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"] == p["datasource"] for t in p["targets"])
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        assert p["fieldConfig"]["defaults"]["unit"], p["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["current"]["value"] == gen.PROMETHEUS_UID


def test_dashboards_do_not_overlap_panels():
    for d in ON_DISK.values():
        cells: set[tuple[int, int]] = set()
        for p in gen.iter_panels(d):
            g = p["gridPos"]
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not area & cells, f"{d['uid']}: {p['title']} overlaps another panel"
            cells |= area


def test_every_template_variable_used_is_defined():
    builtin = {"__rate_interval", "__interval", "__range"}
    for d in ON_DISK.values():
        defined = {v["name"] for v in d["templating"]["list"]} | builtin
        for q in gen.panel_queries([d], raw=True):
            used = {a or b for a, b in re.findall(r"\$\{(\w+)[^}]*\}|\$(\w+)", q.expr)}
            assert used <= defined, (d["uid"], q.panel, used - defined)


def test_aoi_variable_where_panels_are_per_aoi():
    for d in ON_DISK.values():
        names = {v["name"] for v in d["templating"]["list"]}
        exprs = [q.expr for q in gen.panel_queries([d], raw=True)]
        if any('aoi=~"$aoi"' in e for e in exprs):
            assert "aoi" in names
        per_aoi = [n for e in exprs for n, _ in selectors(gen.substitute(e))
                   if n in SOILCLAY_METRICS and "aoi" in SOILCLAY_METRICS[n].labels]
        if per_aoi:
            assert "aoi" in names, f"{d['uid']} shows per-AOI metrics without an aoi variable"


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.dashboard}:{q.panel}:{i}" for i, q in enumerate(QUERIES)])
def test_every_panel_query_parses_and_names_known_metrics(query):
    found = selectors(query.expr)  # raises on a PromQL syntax error
    assert found, query
    for name, labels in found:
        assert name is not None, f"selector without a metric name in {query.expr!r}"
        allowed = known_labels(name)
        assert allowed is not None, (f"{query.dashboard} / {query.panel}: {name} is in neither soilclay's catalogue, "
                                     "TF_SERVING_METRICS, the Airflow names nor 'up'")
        assert set(labels) <= allowed | ALWAYS_LABELS, (query.panel, name, set(labels) - allowed)


def test_variable_queries_name_known_metrics():
    for d in ON_DISK.values():
        for v in d["templating"]["list"]:
            if v["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["definition"])
            assert m, v["definition"]
            assert v["query"]["query"] == v["definition"]
            for name, _ in selectors(m.group(1)):
                assert m.group(2) in (known_labels(name) or set()), v["definition"]


def test_panel_queries_cover_every_target_and_substitute_variables():
    targets = sum(len(p.get("targets", [])) for d in ON_DISK.values() for p in gen.iter_panels(d))
    assert len(QUERIES) == targets > 50
    assert not any("$" in q.expr for q in QUERIES)
    soilclay_only = [q for q in QUERIES if all(n in SOILCLAY_METRICS for n, _ in selectors(q.expr))]
    assert {q.dashboard for q in soilclay_only} >= {"soilclay-health", "soilclay-model", "soilclay-estimates"}
    custom = next(gen.panel_queries(values={"aoi": "demo"}))
    assert "$" not in custom.expr
    with pytest.raises(KeyError):
        gen.substitute("up{x=\"$nope\"}")


def test_the_dashboards_use_all_four_sources():
    names = {n for q in QUERIES for n, _ in selectors(q.expr)}
    assert names & set(SOILCLAY_METRICS) and names & set(tf_serving_series()) and names & AIRFLOW_METRIC_NAMES
    # every metric of the catalogue is on some dashboard
    assert set(SOILCLAY_METRICS) - names == set()


def test_tf_serving_latency_panels_convert_microseconds_to_seconds():
    for q in QUERIES:
        if "latency" in q.expr and ":tensorflow:" in q.expr:
            assert q.expr.rstrip().endswith("/ 1e6"), q


def test_time_panels_have_time_units():
    for d in ON_DISK.values():
        for p in gen.iter_panels(d):
            for t in p.get("targets", []):
                if "_timestamp_seconds" in t["expr"] and not t["expr"].startswith("time() -"):
                    assert p["fieldConfig"]["defaults"]["unit"].startswith("dateTime"), p["title"]
                    assert t["expr"].endswith("* 1000"), p["title"]  # Grafana's dateTime units take ms


# --- the Airflow names ---------------------------------------------------------------------------------


def _example(statsd: str) -> str:
    """A StatsD name of the template: ``airflow.pool.open_slots.<pool>`` -> ``airflow.pool.open_slots.x``."""
    return re.sub(r"<\w+>", "x", statsd.replace("[", "").replace("]", ""))


def test_airflow_names_follow_the_chart_mapping_or_the_exporters_default():
    assert len({m.name for m in AIRFLOW_METRICS}) == len(AIRFLOW_METRICS)
    for m in AIRFLOW_METRICS:
        assert re.fullmatch(r"airflow_[a-z0-9_]+", m.name) and m.statsd.startswith("airflow."), m
        example = _example(m.statsd)
        if m.rule is None:  # statsd-exporter's default: every character outside [a-zA-Z0-9_] becomes "_"
            assert "<" not in m.statsd and m.labels == ()
            assert re.sub(r"[^a-zA-Z0-9_]", "_", m.statsd) == m.name, m
        elif "(" in m.rule:  # match_type: regex
            assert re.fullmatch(m.rule, example), m
        else:  # glob: * is one dot-separated component
            glob = "\\.".join("[^.]+" if part == "*" else re.escape(part) for part in m.rule.split("."))
            assert re.fullmatch(glob, example), m
    assert {f"{m.name}_count" for m in AIRFLOW_METRICS if m.kind == "summary"} <= AIRFLOW_METRIC_NAMES


def test_the_pool_and_dag_ids_are_the_repositorys():
    plugin = (ROOT / "plugins" / "soilclay_airflow" / "operators" / "earthengine.py").read_text(encoding="utf-8")
    assert f'EARTHENGINE_POOL = "{EARTHENGINE_POOL}"' in plugin
    dag_ids = {m for p in (ROOT / "dags").glob("soilclay_*.py")
               for m in re.findall(r'dag_id="([a-z0-9_]+)"', p.read_text(encoding="utf-8"))}
    assert dag_ids == set(SOILCLAY_DAG_IDS)


# --- Grafana provisioning and compose ------------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _mounts(service: dict) -> dict[str, Path]:
    """{container path: host path} of the service's bind mounts (host paths relative to docker/)."""
    out = {}
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith((".", "/")) and "$" not in source:
            out[target] = (COMPOSE.parent / source).resolve()
    return out


def _host_path(mounts: dict[str, Path], container_path: str) -> Path:
    p = PurePosixPath(container_path)
    for target, source in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if p == PurePosixPath(target) or PurePosixPath(target) in p.parents:
            return source / p.relative_to(target)
    raise AssertionError(f"{container_path} is not inside a mounted directory")


def test_compose_still_parses_and_keeps_its_services():
    services = _compose()["services"]
    assert {"postgis", "migrate", "soilclay-exporter", "prometheus", "grafana"} <= set(services)
    assert services["migrate"]["entrypoint"] == ["soilclay", "db", "upgrade"]
    exporter = services["soilclay-exporter"]
    assert exporter["entrypoint"] == ["soilclay", "metrics", "serve", "--host", "0.0.0.0", "--port", "9464"]
    assert exporter["build"] == services["migrate"]["build"]
    assert "${SOILCLAY_DB_PASSWORD" in exporter["environment"]["SOILCLAY_DATABASE_URL"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_compose_mounts_exist_and_monitoring_mounts_are_read_only():
    for name, service in _compose()["services"].items():
        for v in service.get("volumes", []):
            source = v.split(":")[0]
            if source.startswith((".", "/")) and "$" not in source:
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
                if name in ("prometheus", "grafana"):
                    assert v.endswith(":ro"), v


def test_grafana_password_comes_from_the_environment_only():
    env = _compose()["services"]["grafana"]["environment"]
    assert re.fullmatch(r"\$\{SOILCLAY_GRAFANA_ADMIN_PASSWORD:\?[^}]*\}", env["GF_SECURITY_ADMIN_PASSWORD"])
    assert not (set(COMPOSE.read_text(encoding="utf-8").split()) & {"admin:admin", "password: admin"})


def test_grafana_provisioning_parses_and_points_at_the_dashboards():
    mounts = _mounts(_compose()["services"]["grafana"])
    assert _host_path(mounts, "/etc/grafana/provisioning") == PROVISIONING.resolve()
    ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text(encoding="utf-8"))
    assert ds["apiVersion"] == 1
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == gen.PROMETHEUS_UID
    services = _compose()["services"]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"]).groups()
    assert host in services and f"{port}:{port}" in services[host]["ports"]
    prov = yaml.safe_load((PROVISIONING / "dashboards" / "soilclay.yaml").read_text(encoding="utf-8"))
    assert prov["apiVersion"] == 1
    [provider] = prov["providers"]
    assert provider["type"] == "file"
    folder = _host_path(mounts, provider["options"]["path"])
    assert folder == DASHBOARDS_DIR.resolve() and sorted(p.name for p in folder.glob("*.json")) == sorted(ON_DISK)
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path(mounts, home).is_file()


def test_compose_prometheus_scrapes_the_compose_services_with_the_rules():
    services = _compose()["services"]
    serving = yaml.safe_load((ROOT / "docker" / "compose.serving.yaml").read_text(encoding="utf-8"))["services"]
    mounts = _mounts(services["prometheus"])
    assert _host_path(mounts, "/etc/prometheus/prometheus.yml") == COMPOSE_PROMETHEUS.resolve()
    config = yaml.safe_load(COMPOSE_PROMETHEUS.read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert {"soilclay", "tf-serving"} <= set(jobs)
    [exporter] = jobs["soilclay"]["static_configs"][0]["targets"]
    assert exporter == "soilclay-exporter:9464"
    [tf] = jobs["tf-serving"]["static_configs"][0]["targets"]
    assert tf.split(":")[0] in serving and "8501:8501" in serving["tf-serving"]["ports"]
    assert jobs["tf-serving"]["metrics_path"] == "/monitoring/prometheus/metrics"
    for pattern in config["rule_files"]:
        rules = _host_path(mounts, pattern)
        assert list(rules.parent.glob(rules.name)), f"{pattern} matches no rule file"


def test_promtool_accepts_the_compose_prometheus_config_and_its_rules(tmp_path):
    config = yaml.safe_load(COMPOSE_PROMETHEUS.read_text(encoding="utf-8"))
    mounts = _mounts(_compose()["services"]["prometheus"])
    config["rule_files"] = [str(_host_path(mounts, p)) for p in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout + result.stderr


# --- the Helm chart ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        assert chart.name == "soilclay"
        manifests = chart.render({}, name="soilclay", namespace="monitoring")
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def test_the_chart_embeds_the_same_dashboard_files():
    link = CHART / "dashboards"
    assert link.is_symlink() and link.resolve() == DASHBOARDS_DIR.resolve()


def test_the_chart_renders_one_valid_configmap_per_dashboard(rendered):
    kv = pytest.importorskip("kubernetes_validate")
    maps = [d for d in rendered if d["kind"] == "ConfigMap"]
    assert len(maps) == len(ON_DISK)
    for cm in maps:
        kv.validate(cm, kv.latest_version(), strict=True)
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        assert len(cm["metadata"]["name"]) <= 63
        [(key, text)] = cm["data"].items()
        assert text + "\n" == (DASHBOARDS_DIR / key).read_text(encoding="utf-8"), f"{key} changed in the ConfigMap"
        assert len(text.encode()) < 1024 * 1024  # ConfigMap size limit
    assert sorted(k for cm in maps for k in cm["data"]) == sorted(ON_DISK)
    assert len({cm["metadata"]["name"] for cm in maps}) == len(maps)


def test_the_chart_values_switch_and_relabel_the_dashboards():
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        off = chart.render({"grafanaDashboards": {"enabled": False}}, name="x", namespace="ns")
        other = chart.render({"grafanaDashboards": {"label": "dash", "labelValue": "yes", "namespace": "grafana"}},
                             name="x", namespace="ns")
    assert not [d for t in off.values() for d in yaml.safe_load_all(t) if d]
    docs = [d for t in other.values() for d in yaml.safe_load_all(t) if d]
    assert docs and all(d["metadata"]["labels"]["dash"] == "yes" and d["metadata"]["namespace"] == "grafana"
                        for d in docs)
