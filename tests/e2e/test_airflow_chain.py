"""End to end on a real local Airflow 3.3 (api-server, scheduler with LocalExecutor, dag-processor,
triggerer; PostgreSQL metadata DB) with the monitoring beside it (soilclay's exporter, Prometheus): only
``soilclay_scene_watch`` is triggered, the Assets drive composites -> retrain -> predict, and per-parcel
estimates land in PostGIS. Then, with the stack still up: every soilclay Grafana panel's query returns data
from the running Prometheus and its alert rules evaluate; the parcel map page inside the Airflow UI draws the
parcels in view, shows the stored estimate of a clicked parcel and one skill point per model version
(Chromium through Playwright; the screenshot is left in ``var/test-artefacts/``).

Two things make the run deterministic:

- the DAGs are unpaused at creation (as ``soilclay airflow up`` does), so the cron DAGs (scene watch,
  retrain; ``catchup=False``) start a run for their latest past tick as soon as they are parsed. The
  scene archive is therefore an empty directory until those start-up runs are over (the scene watch
  then finds nothing and emits no event); then it becomes a symlink to the small world's scenes and
  the test triggers the scene watch itself. The start-up retrain finds no composites and is skipped.
- ``SOILCLAY_DATABASE_URL`` in the tasks' environment names a database that does not exist: the
  tasks can only succeed through the ``soilclay_db`` connection (``AIRFLOW_CONN_SOILCLAY_DB``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from soilclay.db import migrate
from soilclay.db.aois import register_aoi
from soilclay.db.engine import make_engine
from soilclay.io.vector import read_aoi_file
from soilclay.parcels.load import load_parcels
from soilclay.samples.load import load_samples
from soilclay.settings import Settings
from soilclay.stack import monitoring, processes
from soilclay.stack.config import COMPONENTS, default_spec, metadata_url_for
from soilclay.stack.rest import AirflowClient, ChainFailed, render_summary
from soilclay.testing import AOI, FAST
from tests.e2e.monitoring_checks import check_panels_have_data
from tests.e2e.parcel_map_browser import check_parcel_map_page
from tests.ports import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.db, pytest.mark.timeout(900)]

WATCH = "soilclay_scene_watch"
ARTEFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artefacts"
CHAIN = ["soilclay_composites", "soilclay_retrain", "soilclay_predict_parcels"]


def tcp_url(url: str) -> str:
    """The same database over TCP (a Unix-socket URL works too; TCP keeps this test independent of it)."""
    parsed = make_url(url)
    if parsed.host and not parsed.host.startswith("/"):
        return url
    query = {k: v for k, v in parsed.query.items() if k != "host"}
    return parsed.set(host="127.0.0.1", port=parsed.port or 5432, query=query).render_as_string(hide_password=False)


def print_logs(spec) -> None:
    """Tails of the component logs and of every task log (JSON lines shown as level + event + error)."""
    for component in COMPONENTS:
        print(f"\n===== {component} ({spec.log_file(component)}) =====\n{processes.log_tail(spec, component, 40)}")
    for path in sorted(spec.log_dir.glob("dag_id=*/**/*.log")):
        lines = []
        for raw in path.read_text(errors="replace").splitlines()[-15:]:
            try:
                entry = json.loads(raw)
            except ValueError:
                lines.append(raw[:300])
                continue
            errors = [f"{e.get('exc_type')}: {e.get('exc_value')}" for e in entry.get("error_detail") or []]
            lines.append(f"{entry.get('level', '?'):<7} {str(entry.get('event'))[:300]} {' | '.join(errors)}")
        print(f"\n===== task log {path.relative_to(spec.log_dir)} =====\n" + "\n".join(lines))


def test_scene_watch_drives_the_asset_chain_to_parcel_estimates(db_factory, small_world: Path, tmp_path: Path):
    url = tcp_url(db_factory("soilclay_e2e"))
    migrate.upgrade(url)
    engine = make_engine(url)
    geometry, props = read_aoi_file(small_world / "aoi.geojson")
    register_aoi(engine, AOI, geometry, props["grid_crs"])
    load_samples(engine, small_world / "samples.csv", source=AOI)
    load_parcels(engine, small_world / "parcels.gpkg")
    archive = tmp_path / "scene-archive"
    archive.mkdir()
    (tmp_path / "model.json").write_text(json.dumps(FAST))
    settings = Settings(database_url=url, store_url=str(tmp_path / "store"),
                        model_base_path=str(tmp_path / "models"), work_dir=tmp_path / "work",
                        tf_serving_config_dir=tmp_path / "tf-serving", scene_archive=str(archive),
                        model_config_file=str(tmp_path / "model.json"))
    decoy = make_url(url).set(database="soilclay_e2e_no_such_database").render_as_string(hide_password=False)
    port, worker_logs, trigger_logs, exporter_port, prometheus_port = free_ports(5)
    meta = db_factory("soilclay_e2e_airflow")
    spec = default_spec(settings, home=tmp_path / "airflow", port=port, log_ports=(worker_logs, trigger_logs),
                        metadata_url=metadata_url_for(meta, make_url(meta).database),
                        exporter_port=exporter_port, prometheus_port=prometheus_port, scrape_interval="2s",
                        extra_env={"SOILCLAY_AOIS": AOI, "SOILCLAY_DATABASE_URL": decoy,
                                   "SOILCLAY_MODEL_CONFIG_FILE": str(tmp_path / "model.json")})
    timings: dict[str, float] = {}
    family: list[psutil.Process] = []
    started = time.monotonic()
    try:
        processes.prepare(spec)
        timings["prepare"] = time.monotonic() - started
        (pool,) = json.loads(processes.run_airflow(spec, "pools", "get", "earthengine", "-o", "json").strip()
                             .splitlines()[-1])
        assert int(pool["slots"]) == 2 and str(pool["include_deferred"]).lower() == "true", pool
        processes.start(spec)
        timings["start"] = time.monotonic() - started - timings["prepare"]
        for pid in [*processes.running(spec).values(), *monitoring.running(spec).values()]:
            assert pid, "a component is not running"
            proc = psutil.Process(pid)
            family += [proc, *proc.children(recursive=True)]
        with AirflowClient(spec.base_url, spec.admin_user, spec.admin_password) as client:
            client.wait_for_dags([WATCH, *CHAIN])
            mark = time.monotonic()
            startup = client.wait_idle([WATCH, *CHAIN], timeout=240, poll=2, ready=lambda runs: (
                bool(runs[WATCH] and runs["soilclay_retrain"]) or time.monotonic() - mark > 45))
            timings["start-up runs"] = time.monotonic() - mark
            print("start-up runs:", {d: [(r["run_type"], r["state"]) for r in rs] for d, rs in startup.items()})
            archive.rmdir()
            archive.symlink_to(small_world / "scenes", target_is_directory=True)
            mark = time.monotonic()
            run_id = client.trigger(WATCH)
            try:
                summary = client.wait_for_chain(WATCH, run_id, CHAIN, expected=CHAIN, timeout=600, poll=3)
            except ChainFailed as exc:
                print(render_summary(exc.summary))
                raise
            timings["chain"] = time.monotonic() - mark
            print(render_summary(summary))
        mark = time.monotonic()
        panels = check_panels_have_data(spec.prometheus_url)
        print(f"{len(panels)} soilclay panel queries returned data")
        seen = check_parcel_map_page(spec.base_url, spec.admin_user, spec.admin_password, engine, ARTEFACTS)
        print("parcel map:", {k: v for k, v in seen.items() if k != "hosts"})
        timings["monitoring checks"] = time.monotonic() - mark
    except BaseException:
        print_logs(spec)
        raise
    finally:
        processes.stop(spec)
        timings["total"] = time.monotonic() - started
        print("timings (s):", {k: round(v) for k, v in timings.items()})
    left = [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left after stop: {left}"

    assert summary[WATCH][0]["state"] == "success"
    for dag_id in CHAIN:
        assert summary[dag_id] and all(r["state"] == "success" for r in summary[dag_id]), summary[dag_id]
    with engine.connect() as conn:
        sensors = {r.sensor for r in conn.execute(text("SELECT DISTINCT sensor FROM soilclay.composites"))}
        champion = conn.execute(text("SELECT version FROM soilclay.model_versions WHERE status = 'champion'")).all()
        in_aoi = conn.execute(text(
            "SELECT count(*) FROM soilclay.parcels p JOIN soilclay.aois a ON ST_Intersects(p.geom, a.geom) "
            "WHERE a.name = :n"), {"n": AOI}).scalar()
        predictions = conn.execute(text(
            "SELECT count(*) AS n, count(DISTINCT parcel_key) AS parcels, min(model_version) AS lo, "
            "max(model_version) AS hi FROM soilclay.parcel_predictions")).one()
        lineage = conn.execute(text(
            "SELECT stage, dag_id, dag_run_id, status FROM soilclay.pipeline_runs WHERE dag_id IS NOT NULL")).all()
    engine.dispose()
    assert sensors == {"sentinel-2", "sentinel-1"}
    assert champion == [(1,)]
    assert in_aoi > 0 and predictions.n == predictions.parcels == in_aoi
    assert (predictions.lo, predictions.hi) == (1, 1)
    chain_runs = {(d, r["run_id"]) for d, runs in summary.items() for r in runs}
    recorded = {(row.dag_id, row.dag_run_id) for row in lineage if row.status == "success"}
    stages = {row.stage for row in lineage if (row.dag_id, row.dag_run_id) in chain_runs}
    assert (WATCH, run_id) in recorded and {"scene_sync", "composite", "train", "predict"} <= stages
    for dag_id in [WATCH, *CHAIN]:
        assert any(key[0] == dag_id and key in chain_runs for key in recorded), f"no recorded success of {dag_id}"
