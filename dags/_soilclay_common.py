"""Shared pieces of the soilclay DAGs: Assets, default task arguments, runtime settings.

Nothing here imports ``soilclay`` (or anything heavy) at module level and nothing here looks up a
connection, a Variable or the database when a DAG file is parsed: the helpers do that inside tasks.

Assets (declared once here, used by every DAG):

- ``SCENES``: new Sentinel-1/2 scenes were recorded for some AOI (``extra``: new scene counts);
- ``COMPOSITES``: new composite versions were registered (``extra``: the versions created);
- ``MODEL``: a new champion model version was published (``extra``: its version);
- ``PREDICTIONS``: new per-parcel estimates were written (``extra``: counts and model version).

Retries: only failures that may pass by themselves are retried: soilclay's
``TransientExternalError``, which the library's boundaries raise for lost database connections,
lost races, network timeouts and quota errors (``soilclay.db.tx``, the store, TF Serving and Earth
Engine clients translate their drivers' errors once), with exponential back-off. Wrong input or
configuration (``BadInputError``), a refusal for good (``FinalExternalError``) and any unexpected
error (a bug, invalid settings) fail at once: retrying them only delays the alert. This uses Airflow 3.3's
``ExceptionRetryPolicy`` (``retry_policy`` in ``default_args``), evaluated in the worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, ExceptionRetryPolicy, RetryRule
from airflow.sdk.definitions.retry_policy import RetryAction

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from soilclay.settings import Settings

SCENES = Asset(name="soilclay_scenes", uri="soilclay://scenes", group="soilclay")
COMPOSITES = Asset(name="soilclay_composites", uri="soilclay://composites", group="soilclay")
MODEL = Asset(name="soilclay_model", uri="soilclay://model", group="soilclay")
PREDICTIONS = Asset(name="soilclay_predictions", uri="soilclay://predictions", group="soilclay")

#: Airflow connection holding the PostGIS database (conn type postgres); else SOILCLAY_DATABASE_URL.
DB_CONN_ID = "soilclay_db"
#: Airflow connection of TF Serving (host, port = gRPC; extra ``rest_url``); else SOILCLAY_TF_SERVING_*.
TF_SERVING_CONN_ID = "tf_serving"
START_DATE = datetime(2025, 1, 1)
OWNER = "soilclay"

#: First matching rule wins; anything unmatched fails without retry (see the module docstring).
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=["soilclay.errors.TransientExternalError"],
            action=RetryAction.RETRY,
            reason="transient failure: retry with back-off",
        ),
        RetryRule(
            exception=["soilclay.errors.SoilclayError"],
            action=RetryAction.FAIL,
            reason="bad input, configuration or a final refusal: retrying will not help",
        ),
    ],
    default=RetryAction.FAIL,
)


def default_args(stage: str, timeout: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    """Task defaults: 3 retries of transient errors only, 2 min doubling up to 30 min, a hard timeout,
    and a failure recorded in ``soilclay.pipeline_runs`` under ``stage`` (see :func:`record_failure`)."""
    return {
        "on_failure_callback": record_failure(stage),
        "owner": OWNER,
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "retry_policy": RETRY_POLICY,
        "execution_timeout": timeout,
    }


def default_aois() -> list[str]:
    """AOIs from ``SOILCLAY_AOIS`` (comma-separated; an environment variable, not a Variable), else ["demo"]."""
    names = [n.strip() for n in os.environ.get("SOILCLAY_AOIS", "").split(",") if n.strip()]
    return names or ["demo"]


def database_url_from_connection(conn_id: str = DB_CONN_ID) -> str | None:
    """The SQLAlchemy URL of the Airflow connection ``conn_id``, or None when it is not defined.

    Call only inside a task: it asks the Airflow API server (or a secrets backend) for the connection.
    """
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from soilclay.db.engine import url_from_connection

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    return url_from_connection(login=conn.login, password=conn.password, host=conn.host, port=conn.port,
                               schema=conn.schema, extra=conn.extra_dejson)


def tf_serving_from_connection(conn_id: str = TF_SERVING_CONN_ID) -> dict[str, str]:
    """``tf_serving_grpc`` (host:port) and ``tf_serving_rest`` (extra ``rest_url``) from the Airflow
    connection ``conn_id``; empty when it is not defined. Call only inside a task."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return {}
    out = {}
    if conn.host:
        out["tf_serving_grpc"] = f"{conn.host}:{conn.port or 8500}"
    if conn.extra_dejson.get("rest_url"):
        out["tf_serving_rest"] = str(conn.extra_dejson["rest_url"])
    return out


def build_settings() -> Settings:
    """soilclay settings from ``SOILCLAY_*``; the database URL from the ``soilclay_db`` connection and the
    TF Serving addresses from the ``tf_serving`` connection when those are defined."""
    from airflow.sdk.log import mask_secret

    from soilclay.settings import Settings

    overrides: dict[str, Any] = tf_serving_from_connection()
    url = database_url_from_connection()
    if url:
        overrides["database_url"] = url
    settings = Settings(**overrides)
    for secret in settings.secrets():  # credentials of SOILCLAY_* URLs too, not only connections'
        mask_secret(secret)
    return settings


@contextmanager
def soilclay_runtime() -> Iterator[tuple[Settings, Engine]]:
    """Settings and a database engine for one task; the engine is disposed afterwards."""
    from soilclay.db.engine import make_engine

    settings = build_settings()
    engine = make_engine(settings.database_url)
    try:
        yield settings, engine
    finally:
        engine.dispose()


def task_run_id(stage: str, context: Any) -> str:
    """The ``pipeline_runs.run_id`` of this task try: stage, DAG, run, task, map index and try number."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    index = f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
    return f"{stage}:{ti.dag_id}:{ti.run_id}:{ti.task_id}{index}:try{ti.try_number}"


def record_failure(stage: str):
    """An ``on_failure_callback`` that makes sure a failed task try is a 'failed' row in
    ``soilclay.pipeline_runs`` with the reason, also when it failed before the task opened its own
    recorded run (bad params, unknown AOI, a failed Earth Engine export in the operator), or was
    killed while its row still says 'running' (timeout, OOM). A try that recorded its own outcome
    keeps it (same run id; only a 'running' row is overwritten)."""

    def callback(context: Any) -> None:
        import logging

        from soilclay.db.runs import record_failed_try
        from soilclay.db.tx import transaction

        exc = context.get("exception")
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "task failed (no exception in the context)"
        ti = context["ti"]
        try:
            with soilclay_runtime() as (_, engine), transaction(engine, "recording a failed task try") as conn:
                record_failed_try(conn, run_id=task_run_id(stage, context), stage=stage, reason=reason,
                                  params={"task_id": ti.task_id, "map_index": ti.map_index}, dag_id=ti.dag_id,
                                  dag_run_id=ti.run_id)
        except Exception:  # a callback must not hide the task's own failure
            logging.getLogger(__name__).exception("could not record the failure of %s in pipeline_runs", ti.task_id)

    return callback


@contextmanager
def task_run(engine: Engine, stage: str, item: str = "", **kwargs: Any) -> Iterator[Any]:
    """``soilclay.db.runs.recorded_run`` for the current task try (run id from :func:`task_run_id`,
    plus ``/item`` when one task records several runs)."""
    from airflow.sdk import get_current_context

    from soilclay.db.runs import recorded_run

    context = get_current_context()
    run_id = task_run_id(stage, context) + (f"/{item}" if item else "")
    with recorded_run(engine, stage, run_id=run_id, **dag_run_ids(context), **kwargs) as run:
        yield run


def dag_run_ids(context: Any) -> dict[str, str | None]:
    """dag_id and dag_run_id for ``soilclay.pipeline_runs`` lineage."""
    dag_run = context.get("dag_run")
    return {"dag_id": getattr(dag_run, "dag_id", None), "dag_run_id": getattr(dag_run, "run_id", None)}
