"""``soilclay airflow``: run the project's DAGs on a local Airflow 3.3 deployment and trigger them.

``up`` prepares (metadata database ``soilclay_airflow`` on soilclay's PostgreSQL server, migrations,
pools) and starts api-server, scheduler (LocalExecutor), dag-processor and triggerer in the
background, with soilclay's metrics exporter and Prometheus next to them (``--no-monitoring`` leaves
those out); ``down`` stops them all; ``trigger`` starts a DAG through the REST API and can wait for the
runs its Assets set off. The login is a local demo one (SimpleAuthManager, default admin/admin).

``up`` records its choices in the home's ``run/`` (``port``; ``monitoring.json``: exporter and Prometheus
ports, TF Serving address, scrape interval), so ``status``, ``down`` and ``trigger`` find the deployment.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click

from soilclay.monitoring.prometheus import DEFAULT_INTERVAL, check_duration
from soilclay.settings import Settings
from soilclay.stack.config import (
    COMPONENTS,
    DEFAULT_EXPORTER_PORT,
    DEFAULT_HOME,
    DEFAULT_PORT,
    DEFAULT_PROMETHEUS_PORT,
    MONITORING_COMPONENTS,
    StackSpec,
    default_spec,
)

CHAIN = ("soilclay_composites", "soilclay_retrain", "soilclay_predict_parcels")
home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
                           show_default=True, help="AIRFLOW_HOME of the local deployment.")


def _recorded_monitoring(home: Path) -> dict | None:
    """What `up` recorded about the monitoring components (None: not recorded, or started without them)."""
    path = (home / "run" / "monitoring.json")
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return recorded if recorded.get("monitoring") else None


def _spec(settings: Settings, home: Path, port: int | None, password: str | None = None,
          monitoring: dict | None = None) -> StackSpec:
    """The deployment's spec; port, login and monitoring default to those recorded by `up` in the home."""
    spec = default_spec(settings, home=home)
    recorded = spec.run_dir / "port"
    if port is None:
        port = int(recorded.read_text()) if recorded.exists() else DEFAULT_PORT
    if monitoring is None:
        monitoring = _recorded_monitoring(spec.home) or {"monitoring": False}
    if password is None and spec.passwords_file.exists():
        user, password = next(iter(json.loads(spec.passwords_file.read_text()).items()))
        return default_spec(settings, home=home, port=port, admin=(user, password), **monitoring)
    return default_spec(settings, home=home, port=port, admin=(spec.admin_user, password or spec.admin_password),
                        **monitoring)


@click.group("airflow")
def airflow() -> None:
    """Local Airflow 3.3 (api-server, scheduler, dag-processor, triggerer) for the DAGs in dags/."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


@airflow.command()
@home_option
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="API server / UI port.")
@click.option("--password", default=None, help="Password of the UI/API user 'admin' (default: the recorded one, "
              "else admin).")
@click.option("--monitoring/--no-monitoring", default=True, show_default=True,
              help="Also run soilclay's metrics exporter and Prometheus.")
@click.option("--exporter-port", type=int, default=DEFAULT_EXPORTER_PORT, show_default=True,
              help="Port of `soilclay metrics serve` (127.0.0.1).")
@click.option("--prometheus-port", type=int, default=DEFAULT_PROMETHEUS_PORT, show_default=True,
              help="Port of Prometheus (127.0.0.1).")
@click.option("--scrape-interval", default=DEFAULT_INTERVAL, show_default=True,
              help="Prometheus's scrape and rule evaluation interval.")
@click.option("--tf-serving/--no-tf-serving", "tf_serving", default=None,
              help="Scrape TF Serving at SOILCLAY_TF_SERVING_REST (job tf-serving). Default: only when "
              "SOILCLAY_TF_SERVING_REST is set in the environment.")
@click.option("--timeout", type=float, default=180, show_default=True, help="Seconds to wait for health.")
@click.pass_obj
def up(settings: Settings, home: Path, port: int, password: str | None, monitoring: bool, exporter_port: int,
       prometheus_port: int, scrape_interval: str, tf_serving: bool | None, timeout: float) -> None:
    """Prepare and start the deployment in the background (reuses processes already running)."""
    from soilclay.stack import monitoring as monitor
    from soilclay.stack import processes

    if tf_serving is None:
        tf_serving = bool(os.environ.get("SOILCLAY_TF_SERVING_REST"))
    chosen = {"monitoring": monitoring, "exporter_port": exporter_port, "prometheus_port": prometheus_port,
              "scrape_interval": check_duration(scrape_interval, "--scrape-interval"),
              "tf_serving_url": settings.tf_serving_rest if tf_serving else None}
    spec = _spec(settings, home, port, password, chosen)
    recorded = spec.run_dir / "port"
    if processes.running(spec)["api-server"] and recorded.exists() and int(recorded.read_text()) != port:
        raise click.ClickException(f"already running on port {recorded.read_text()}: `soilclay airflow down` first")
    before = _recorded_monitoring(spec.home) or {}
    for component, pid in monitor.running(spec).items():
        key = f"{component}_port"
        if pid and before.get(key) not in (None, chosen[key]):
            raise click.ClickException(f"{component} already running on port {before[key]}: "
                                       "`soilclay airflow down` first")
    processes.prepare(spec, log=click.echo)
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    (spec.run_dir / "monitoring.json").write_text(json.dumps(chosen))
    processes.start(spec, timeout=timeout, log=click.echo)
    (spec.run_dir / "port").write_text(str(port))
    shown = spec.admin_password if spec.admin_password == "admin" else "<the password you set>"
    click.echo(f"Airflow is up: {spec.ui_url}  (login {spec.admin_user} / {shown}; local demo)")
    if monitoring:
        pids = monitor.running(spec)
        click.echo(f"parcel map: {spec.parcel_map_url}")
        click.echo(f"Prometheus: {spec.prometheus_url}" if pids["prometheus"] else "Prometheus: not running")
        click.echo(f"exporter:   {spec.exporter_url}")
    click.echo(f"logs: {spec.log_dir}   stop: soilclay airflow down --home {home}")


@airflow.command()
@home_option
@click.pass_obj
def down(settings: Settings, home: Path) -> None:
    """Stop the deployment's processes (SIGTERM, then SIGKILL what is left)."""
    from soilclay.stack import processes

    stopped = processes.stop(_spec(settings, home, None), log=click.echo)
    click.echo("stopped: " + ", ".join(stopped) if stopped else "nothing was running")


@airflow.command()
@home_option
@click.option("--port", type=int, default=None, help="API port (default: the one `up` used).")
@click.pass_obj
def status(settings: Settings, home: Path, port: int | None) -> None:
    """Which processes run and what the health endpoints say (exit 1 unless all are healthy)."""
    from soilclay.stack import monitoring, processes

    spec = _spec(settings, home, port)
    pids = processes.running(spec)
    report = processes.health(spec)
    bad = processes.unhealthy(report)
    for component in COMPONENTS:
        pid = pids[component]
        health = "unreachable" if report is None else ("unhealthy" if component in bad else "healthy")
        click.echo(f"{component:<14} {'pid ' + str(pid) if pid else 'not running':<14} {health}")
    failing = bool(bad) or not all(pids.values())
    watching = monitoring.running(spec)
    for component in MONITORING_COMPONENTS:
        pid = watching[component]
        expected = spec.monitoring and (component != "prometheus" or monitoring.prometheus_executable() is not None)
        if pid is None and not expected:
            continue
        health = "healthy" if pid and monitoring.healthy(spec, component) else "unreachable"
        failing |= health != "healthy"
        click.echo(f"{component:<14} {'pid ' + str(pid) if pid else 'not running':<14} {health}")
    click.echo(f"UI: {spec.ui_url}" if report else f"API not answering at {spec.base_url}")
    if watching["prometheus"]:
        click.echo(f"Prometheus: {spec.prometheus_url}   exporter: {spec.exporter_url}")
    if failing:
        raise SystemExit(1)


@airflow.command()
@click.argument("dag_id")
@home_option
@click.option("--port", type=int, default=None, help="API port (default: the one `up` used).")
@click.option("--conf", "conf_json", default=None, help='Run conf as JSON, e.g. \'{"dry_run": true}\'.')
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the run and its asset chain.")
@click.option("--downstream", multiple=True, help=f"DAGs to follow (repeatable; default {', '.join(CHAIN)}).")
@click.option("--expect", multiple=True, help="Downstream DAGs that must run (repeatable; others may not).")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to wait for the chain.")
@click.option("--unpause/--no-unpause", default=True, show_default=True, help="Unpause the DAGs involved.")
@click.pass_obj
def trigger(settings: Settings, dag_id: str, home: Path, port: int | None, conf_json: str | None, wait: bool,
            downstream: tuple[str, ...], expect: tuple[str, ...], timeout: float, unpause: bool) -> None:
    """Trigger DAG_ID through the REST API; with --wait, follow the runs its Assets trigger to the end."""
    from soilclay.stack.rest import AirflowClient, ChainFailed, render_summary

    try:
        conf = json.loads(conf_json) if conf_json else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--conf") from exc
    spec = _spec(settings, home, port)
    follow = [d for d in (downstream or CHAIN) if d != dag_id]
    with AirflowClient(spec.base_url, spec.admin_user, spec.admin_password) as client:
        details = client.wait_for_dags([dag_id, *follow, *expect], timeout=60)
        for name, dag in details.items():
            if dag.get("is_paused") and unpause:
                client.unpause(name)
                click.echo(f"unpaused {name}")
            elif dag.get("is_paused"):
                click.echo(f"warning: {name} is paused: its runs will stay queued")
        run_id = client.trigger(dag_id, conf)
        click.echo(f"triggered {dag_id}: {run_id}")
        if not wait:
            return
        try:
            summary = client.wait_for_chain(dag_id, run_id, follow, expected=expect, timeout=timeout,
                                            progress=click.echo)
        except ChainFailed as exc:
            click.echo(render_summary(exc.summary))
            raise click.ClickException(f"{exc}  (task logs under {spec.log_dir})") from exc
        click.echo(render_summary(summary))
