"""``soilclay airflow``: run the project's DAGs on a local Airflow 3.3 deployment and trigger them.

``up`` prepares (metadata database ``soilclay_airflow`` on soilclay's PostgreSQL server, migrations,
pools) and starts api-server, scheduler (LocalExecutor), dag-processor and triggerer in the
background; ``down`` stops them; ``trigger`` starts a DAG through the REST API and can wait for the
runs its Assets set off. The login is a local demo one (SimpleAuthManager, default admin/admin).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from soilclay.settings import Settings
from soilclay.stack.config import COMPONENTS, DEFAULT_HOME, DEFAULT_PORT, StackSpec, default_spec

CHAIN = ("soilclay_composites", "soilclay_retrain", "soilclay_predict_parcels")
home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_HOME,
                           show_default=True, help="AIRFLOW_HOME of the local deployment.")


def _spec(settings: Settings, home: Path, port: int | None, password: str | None = None) -> StackSpec:
    """The deployment's spec; port and login default to those recorded by `up` in the home."""
    spec = default_spec(settings, home=home)
    recorded = spec.run_dir / "port"
    if port is None:
        port = int(recorded.read_text()) if recorded.exists() else DEFAULT_PORT
    if password is None and spec.passwords_file.exists():
        user, password = next(iter(json.loads(spec.passwords_file.read_text()).items()))
        return default_spec(settings, home=home, port=port, admin=(user, password))
    return default_spec(settings, home=home, port=port, admin=(spec.admin_user, password or spec.admin_password))


@click.group("airflow")
def airflow() -> None:
    """Local Airflow 3.3 (api-server, scheduler, dag-processor, triggerer) for the DAGs in dags/."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


@airflow.command()
@home_option
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="API server / UI port.")
@click.option("--password", default=None, help="Password of the UI/API user 'admin' (default: the recorded one, "
              "else admin).")
@click.option("--timeout", type=float, default=180, show_default=True, help="Seconds to wait for health.")
@click.pass_obj
def up(settings: Settings, home: Path, port: int, password: str | None, timeout: float) -> None:
    """Prepare and start the deployment in the background (reuses processes already running)."""
    from soilclay.stack import processes

    spec = _spec(settings, home, port, password)
    recorded = spec.run_dir / "port"
    if processes.running(spec)["api-server"] and recorded.exists() and int(recorded.read_text()) != port:
        raise click.ClickException(f"already running on port {recorded.read_text()}: `soilclay airflow down` first")
    processes.prepare(spec, log=click.echo)
    processes.start(spec, timeout=timeout, log=click.echo)
    (spec.run_dir / "port").write_text(str(port))
    shown = spec.admin_password if spec.admin_password == "admin" else "<the password you set>"
    click.echo(f"Airflow is up: {spec.ui_url}  (login {spec.admin_user} / {shown}; local demo)")
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
    """Which processes run and what the health endpoint says (exit 1 unless all are healthy)."""
    from soilclay.stack import processes

    spec = _spec(settings, home, port)
    pids = processes.running(spec)
    report = processes.health(spec)
    bad = processes.unhealthy(report)
    for component in COMPONENTS:
        pid = pids[component]
        health = "unreachable" if report is None else ("unhealthy" if component in bad else "healthy")
        click.echo(f"{component:<14} {'pid ' + str(pid) if pid else 'not running':<14} {health}")
    click.echo(f"UI: {spec.ui_url}" if report else f"API not answering at {spec.base_url}")
    if bad or not all(pids.values()):
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
